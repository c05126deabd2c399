"""``switchd bench media``: the real-time factor of the media tick.

The inbound audio comes the way a real board delivers it: G.711 (µ-law) frames of
recorded speech (the shipped prompts) and music (the music on hold), encoded once
beforehand as the far ends would have, and decoded per tick for every line in one
batch as the SIP driver decodes its RTP; the switch's outbound audio is G.711-encoded
per tick as the SIP driver sends it. Handing over the pre-encoded frames is the far
ends' work, timed apart (``far_end_ms_per_frame``); ``rtf`` is the switch's alone.

The mix (issue 20): nine channels in ten are in two-party calls (trunk ↔ extension),
the rest in groups of three, half of them conferences and half calls a supervisor
monitors (listen); DTMF detection runs on every leg; a quarter of the two-party calls
are tapped for recording (into a sink that keeps the frames, as a recorder would);
a tenth of the channels hear music on hold. ``rtf`` = the switch's wall time / audio
time, on one core; ``ms_per_frame_p50``/``_p99`` per 20 ms frame; ``bytes_per_channel``:
the media plane's own memory per channel (numpy buffers, allocated at build, traced).
``--find-max`` also searches the largest channel count with rtf ≤ 0.5.

With ``record`` (``--record``) every call is recorded instead, through the daemon's
own path: :class:`~switchd.recorder.service.RecordingService` (``TapOpen`` … ``TapClose``),
its :class:`~switchd.recorder.tap.RecordingTap` in the tick, and the
:class:`~switchd.recorder.writer.RecordingWriter` thread writing stereo PCM WAV files
into a temporary folder (removed afterwards). The extra figures: the tap's CPU time per
recorded channel-frame (a stereo recording holds two channels: the caller and the
agent), the writer's write rate from the first frame to the last file closed, the
rate real time would need, and every byte or frame that was dropped. The frames run
as fast as the CPU allows, so the writer is pushed ``1 / rtf`` times harder than real
time would push it: a run without drops at ``rtf`` < 1 is a run real time sustains.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import queue
import shutil
import sys
import tempfile
import time
import tracemalloc
import wave
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from time import perf_counter

import numpy as np

from switchd.lines import g711
from switchd.lines.media import FRAME, MediaPlane
from switchd.lines.mixer import conference, listen, two_party
from switchd.lines.prompts import MusicOnHold, PromptCache
from switchd.recorder.inputs import RecordingClosed, RecordingError, TapClose, TapOpen
from switchd.recorder.model import RecordFormat, RecordLayout, recording_relpath
from switchd.recorder.service import RecordingService
from switchd.recorder.tap import frame_bytes
from switchd.recorder.writer import RecordingWriter

__all__ = ["G711Feed", "MediaResult", "bench_media", "run_media_bench"]

_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class MediaResult:
    """One media benchmark run. ``rtf`` = the switch's wall time (``wall_s``) / ``seconds``.

    ``far_end_ms_per_frame``: the far ends' own time per frame (handing over their
    pre-encoded G.711 frames), not in ``wall_s``; ``ms_per_frame_p50``/``_p99``: the
    switch's time per 20 ms frame; ``bytes_per_channel``: memory the media plane took
    per channel (traced at build and warm-up); ``conferences``/``monitored``: three-party
    groups of each kind; ``max_channels``: with ``--find-max``, the largest channel
    count found with rtf ≤ 0.5 (short runs), else None.

    With ``record`` (else None): ``recordings`` (one per call, stereo PCM);
    ``record_cpu_us_per_channel_frame`` / ``record_cpu_us_per_recording_frame``: CPU
    µs of the tap (thread time, hand-offs to the writer included) per recorded channel
    (two per recording) and per recording, per 20 ms frame; ``writer_bytes``: audio
    bytes the writer thread wrote; ``writer_bytes_per_s``: those bytes / the wall time
    from the first frame until the last file was closed; ``realtime_bytes_per_s``: what
    these recordings need in real time (32 000 B/s each); ``writer_drain_s``: wall time
    the writer took after the last frame to write what was queued and close every
    file; ``writer_cpu_s``: CPU time of the process outside the tick thread (the
    writer thread); ``max_queue_bytes``: the most audio ever waiting for the writer;
    ``dropped_bytes``/``dropped_frames``: audio handed over but not written (and media
    frames skipped beyond the tap's gap bound); ``record_failures``: recordings
    reported failed.
    """

    channels: int
    seconds: float
    wall_s: float
    rtf: float
    frames: int
    tapped: int
    playing: int
    ms_per_frame: float
    ms_per_frame_p50: float | None = None
    ms_per_frame_p99: float | None = None
    far_end_ms_per_frame: float | None = None
    bytes_per_channel: int | None = None
    conferences: int | None = None
    monitored: int | None = None
    max_channels: int | None = None
    recordings: int | None = None
    record_cpu_us_per_channel_frame: float | None = None
    record_cpu_us_per_recording_frame: float | None = None
    writer_bytes: int | None = None
    writer_bytes_per_s: float | None = None
    realtime_bytes_per_s: float | None = None
    writer_drain_s: float | None = None
    writer_cpu_s: float | None = None
    max_queue_bytes: int | None = None
    dropped_bytes: int | None = None
    dropped_frames: int | None = None
    record_failures: int | None = None


def _ulaw_frames(samples: np.ndarray) -> np.ndarray:
    """uint8 ``[F, 160]``: ``samples`` (int16, 8 kHz) as µ-law 20 ms frames."""
    n = max(1, len(samples) // FRAME) * FRAME
    pcm = np.resize(samples, n) if len(samples) < n else samples[:n]
    return g711.ulaw_encode(pcm).reshape(-1, FRAME)


class G711Feed:
    """The far ends of every line as a real board hands them over (an AudioPort).

    Each line plays a loop of pre-encoded µ-law frames — recorded speech on callers'
    lines, music on the others — from its own offset. :meth:`inbound` gathers this
    frame's codes (the far ends' work: a phone encodes its own audio; timed in
    ``far_end_s``) and decodes them all at once (the switch's, as the SIP driver decodes
    RTP); :meth:`outbound` encodes what every line hears (the switch's, as the SIP
    driver sends RTP).
    """

    def __init__(self, music_lines: np.ndarray, speech: np.ndarray, music: np.ndarray,
                 seed: int = 1) -> None:
        self.speech = _ulaw_frames(speech)
        self.music = _ulaw_frames(music)
        self.is_music = np.asarray(music_lines, dtype=bool)
        rng = np.random.default_rng(seed)
        self.offset = rng.integers(0, 1 << 30, len(self.is_music))
        self._speech_rows = np.flatnonzero(~self.is_music)
        self._music_rows = np.flatnonzero(self.is_music)
        self._codes = np.empty((len(self.is_music), FRAME), dtype=np.uint8)
        self.far_end_s = 0.0
        self.sent = np.empty(0, dtype=np.uint8)

    def inbound(self, frame: int, time: float) -> np.ndarray:
        """int16 [C, 160]: every line's far end this frame, decoded from G.711."""
        t0 = perf_counter()
        codes = self._codes
        s, m = self._speech_rows, self._music_rows
        codes[s] = self.speech[(self.offset[s] + frame) % len(self.speech)]
        codes[m] = self.music[(self.offset[m] + frame) % len(self.music)]
        self.far_end_s += perf_counter() - t0
        return g711.ulaw_decode(codes)

    def outbound(self, frame: int, time: float, samples: np.ndarray) -> None:
        """Encode what every line hears, as RTP would carry it."""
        self.sent = g711.ulaw_encode(samples)


def _speech() -> np.ndarray:
    """The shipped prompts back to back (int16, 8 kHz): recorded speech."""
    parts = []
    for wav in sorted((_ROOT / "prompts" / "zh").glob("*.wav"))[:12]:
        with wave.open(str(wav)) as w:
            if w.getframerate() == 8000 and w.getsampwidth() == 2 and w.getnchannels() == 1:
                parts.append(np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"))
    if not parts:       # no prompts beside the package: a speech-like tone pattern
        t = np.arange(8000 * 4) / 8000.0
        return (6000 * np.sin(2 * np.pi * 300 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
                ).astype(np.int16)
    return np.concatenate(parts)


def _layout(channels: int) -> tuple[list[tuple[int, int]], list[tuple[int, int, int]]]:
    """(two-party calls, three-party groups): about a tenth of the channels in groups
    of three, the rest in pairs."""
    triples = max(0, round(channels * 0.1 / 3))
    while (channels - 3 * triples) % 2:
        triples -= 1
    pairs = (channels - 3 * triples) // 2
    two = [(2 * i, 2 * i + 1) for i in range(pairs)]
    base = 2 * pairs
    three = [(base + 3 * j, base + 3 * j + 1, base + 3 * j + 2) for j in range(triples)]
    return two, three


def bench_media(channels: int, seconds: float, *, record: bool = False,
                record_dir: Path | None = None, find_max: bool = False) -> MediaResult:
    """Run ``seconds`` of audio through a media plane of ``channels`` channels (even, ≥ 2;
    the module docstring says what runs).

    ``record``: record every call (stereo PCM) through the recording service, tap and
    writer into ``record_dir`` (None: a temporary folder, removed afterwards) and
    report the recording figures (:class:`MediaResult`). ``find_max``: also search the
    largest channel count with rtf ≤ 0.5. Raises ValueError for fewer than 2 channels
    or non-positive seconds.
    """
    if channels < 2 or seconds <= 0:
        raise ValueError("need --channels >= 2 and --seconds > 0")
    cache = PromptCache()
    moh_dir = _ROOT / "prompts" / "moh"
    moh = MusicOnHold(moh_dir if moh_dir.is_dir() else None, cache)
    moh.preload()
    two, three = _layout(channels)
    lines = [""] * channels
    callers = np.zeros(channels, dtype=bool)
    for i, (a, b) in enumerate(two):
        lines[a], lines[b] = f"trunk/{i + 1}", f"ext/{1000 + i}"
        callers[a] = True
    for j, (a, b, c) in enumerate(three):
        lines[a], lines[b], lines[c] = (f"trunk/{len(two) + j + 1}", f"ext/{5000 + j}",
                                        f"ext/{9000 + j}")
        callers[a] = True
    music = moh.samples if len(moh.samples) else _speech()[::-1].copy()
    feed = G711Feed(~callers, _speech(), music)
    tracemalloc.start()
    media = MediaPlane(lines, port=feed, moh=moh, prompt_cache=cache)
    for i, (a, b) in enumerate(two):
        media.mixer.set_bridge(f"c{i}", two_party(a, b))
    conferences = monitored = 0
    for j, (a, b, c) in enumerate(three):
        if j % 2 == 0:
            media.mixer.set_bridge(f"t{j}", conference((a, b, c)))
            conferences += 1
        else:
            media.mixer.set_bridge(f"t{j}", listen(b, a, c))   # agent, caller, supervisor
            monitored += 1
    playing = 0
    for ch in range(0, channels, 10):
        media.moh.start(media.player, ch, f"hold{ch}")
        playing += 1
    frames = int(round(seconds * 8000 / FRAME))
    if record:
        tracemalloc.stop()
        calls = [a for a, _ in two]
        return _bench_recording(media, calls, frames, playing, record_dir)
    kept: list[int] = [0]

    def sink(frame: int, t: float, keys: object, chs: np.ndarray, rx: np.ndarray,
             tx: np.ndarray) -> None:
        # A recorder interleaves the two legs into stereo frames.
        stereo = np.stack([rx, tx], axis=-1)
        kept[0] += stereo.nbytes

    for i in range(0, len(two), 4):
        media.taps.add(f"rec{i}", two[i][0], sink)
    media.process(5, 0.0)  # warm-up: caches, compiled mixer
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    feed.far_end_s = 0.0
    times = np.empty(frames)
    far = np.empty(frames)
    for k in range(frames):
        before = feed.far_end_s
        t0 = perf_counter()
        media.process(1, 0.0)
        times[k] = perf_counter() - t0
        far[k] = feed.far_end_s - before
    switch = times - far
    wall = float(switch.sum())
    audio_s = frames * FRAME / 8000
    return MediaResult(channels=channels, seconds=audio_s, wall_s=round(wall, 4),
                       rtf=round(wall / audio_s, 4), frames=frames,
                       tapped=len(media.taps), playing=playing,
                       ms_per_frame=round(wall * 1000 / frames, 4),
                       ms_per_frame_p50=round(float(np.percentile(switch, 50)) * 1000, 4),
                       ms_per_frame_p99=round(float(np.percentile(switch, 99)) * 1000, 4),
                       far_end_ms_per_frame=round(float(far.sum()) * 1000 / frames, 4),
                       bytes_per_channel=int(peak // channels), conferences=conferences,
                       monitored=monitored,
                       max_channels=_find_max() if find_max else None)


def _find_max(goal: float = 0.5, seconds: float = 1.0) -> int:
    """The largest channel count (to within 5 %) whose rtf is ≤ ``goal``: doubling from
    1000, then halving the gap. Short runs (``seconds`` each)."""
    lo, hi = 0, 1000
    while bench_media(hi, seconds).rtf <= goal:
        lo, hi = hi, hi * 2
        if hi > 200_000:
            return lo
    while hi - lo > max(100, lo // 20):
        mid = (lo + hi) // 2 // 2 * 2
        if bench_media(mid, seconds).rtf <= goal:
            lo = mid
        else:
            hi = mid
    return lo


def _bench_recording(media: MediaPlane, callers: list[int], frames: int, playing: int,
                     record_dir: Path | None) -> MediaResult:
    """The ``record`` run of :func:`bench_media`: every call recorded (see the module doc)."""
    own_dir = record_dir is None
    directory = Path(tempfile.mkdtemp(prefix="switchd-bench-rec-")) if own_dir else record_dir
    assert directory is not None
    # The writer's reports run on this thread between batches, as the daemon's
    # call_soon_threadsafe runs them on the loop.
    reports: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
    outcomes: list[object] = []
    svc = RecordingService.with_writer(
        media, outcomes.append,
        lambda closed, failed: RecordingWriter(directory, on_closed=closed, on_error=failed,
                                               call_soon=reports.put),
        timer=time.thread_time)

    def run_reports() -> None:
        while True:
            try:
                reports.get_nowait()()
            except queue.Empty:
                return

    now = time.time()
    calls = len(callers)
    ids = [f"bench-{i:05d}" for i in range(calls)]
    try:
        svc.writer.start()
        for i, rid in enumerate(ids):
            outcomes.extend(svc.handle(now, TapOpen(
                rid, rid, recording_relpath(rid, now), now, RecordLayout.STEREO,
                RecordFormat.PCM, customer=media.lines[callers[i]])))
        media.process(5, 0.0)  # warm-up: caches, compiled mixer and tap, files created
        busy0, cpu0, thread0 = svc.tap.stats().busy_s, time.process_time(), time.thread_time()
        t0 = time.perf_counter()
        for done in range(0, frames, 50):  # one second of audio, then the reports
            media.process(min(50, frames - done), 0.0)
            run_reports()
        wall = time.perf_counter() - t0
        busy = svc.tap.stats().busy_s - busy0
        tapped = len(media.taps)
        for rid in ids:
            if svc.state(rid) is not None:
                svc.handle(now, TapClose(rid))
        asyncio.run(svc.writer.stop(timeout_s=600.0))
        run_reports()
        total = time.perf_counter() - t0
        writer_cpu = (time.process_time() - cpu0) - (time.thread_time() - thread0)
    finally:
        if own_dir:
            shutil.rmtree(directory, ignore_errors=True)
    ws = svc.writer.stats()
    tap = svc.tap.stats()
    failures = sum(isinstance(o, RecordingError) for o in outcomes)
    closed = sum(isinstance(o, RecordingClosed) for o in outcomes)
    if closed + failures != calls:
        raise RuntimeError(f"bench media --record: {calls} recordings, {closed} closed and "
                           f"{failures} failed")
    fb = frame_bytes(RecordLayout.STEREO, RecordFormat.PCM)
    audio_s = frames * FRAME / 8000
    return MediaResult(
        channels=len(media.lines), seconds=audio_s, wall_s=round(wall, 4),
        rtf=round(wall / audio_s, 4), frames=frames, tapped=tapped, playing=playing,
        ms_per_frame=round(wall * 1000 / frames, 4), recordings=calls,
        record_cpu_us_per_channel_frame=round(busy * 1e6 / (2 * calls * frames), 4),
        record_cpu_us_per_recording_frame=round(busy * 1e6 / (calls * frames), 4),
        writer_bytes=ws.bytes_written, writer_bytes_per_s=round(ws.bytes_written / total),
        realtime_bytes_per_s=float(calls * fb * 50), writer_drain_s=round(total - wall, 4),
        writer_cpu_s=round(writer_cpu, 4), max_queue_bytes=ws.max_queue_bytes,
        dropped_bytes=ws.dropped_bytes,
        dropped_frames=-(-ws.dropped_bytes // fb) + tap.gap_frames_lost,
        record_failures=failures)


def run_media_bench(args: argparse.Namespace) -> int:
    """CLI entry of ``switchd bench media``; prints JSON with ``--json``. Returns the exit code."""
    try:
        result = bench_media(args.channels, args.seconds,
                             record=bool(getattr(args, "record", False)),
                             find_max=bool(getattr(args, "find_max", False)))
    except ValueError as exc:
        sys.stderr.write(f"switchd bench media: {exc}\n")
        return 2
    if args.json:
        sys.stdout.write(json.dumps(asdict(result)) + "\n")
    else:
        shown = [(f.name, getattr(result, f.name)) for f in fields(result)]
        shown = [(k, v) for k, v in shown if v is not None]
        width = max(len(k) for k, _ in shown)
        for key, value in shown:
            sys.stdout.write(f"{key:>{width}}: {value}\n")
    sys.stdout.flush()
    return 0
