"""``switchd bench media``: the real-time factor of the media tick.

Every channel is in a bridged two-party call (trunk ↔ extension), every party sends
audio (a test tone on trunks, speech-like music on extensions), DTMF detection runs
on every leg, a quarter of the calls are tapped for recording (into a sink that
keeps the frames, as a recorder would), and a tenth of the channels hear a prompt
or music on hold. ``rtf`` = wall time / audio time, on one core.

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
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from switchd.drivers.sim.audio import SimAudio, SourceKind
from switchd.drivers.sim.board import SimSettings
from switchd.drivers.sim.driver import SimDriver
from switchd.lines.media import FRAME, MediaPlane
from switchd.lines.mixer import two_party
from switchd.lines.prompts import MusicOnHold, PromptCache
from switchd.recorder.inputs import RecordingClosed, RecordingError, TapClose, TapOpen
from switchd.recorder.model import RecordFormat, RecordLayout, recording_relpath
from switchd.recorder.service import RecordingService
from switchd.recorder.tap import frame_bytes
from switchd.recorder.writer import RecordingWriter

__all__ = ["MediaResult", "bench_media", "run_media_bench"]

_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class MediaResult:
    """One media benchmark run. ``rtf`` = ``wall_s`` / ``seconds``.

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


def bench_media(channels: int, seconds: float, *, record: bool = False,
                record_dir: Path | None = None) -> MediaResult:
    """Run ``seconds`` of audio through a media plane of ``channels`` channels (even, ≥ 2).

    ``record``: record every call (stereo PCM) through the recording service, tap and
    writer into ``record_dir`` (None: a temporary folder, removed afterwards) and
    report the recording figures (:class:`MediaResult`). Raises ValueError for fewer
    than 2 channels or non-positive seconds.
    """
    if channels < 2 or seconds <= 0:
        raise ValueError("need --channels >= 2 and --seconds > 0")
    half = channels // 2
    lines = [f"trunk/{i + 1}" for i in range(half)] + [f"ext/{1000 + i}" for i in range(half)]
    cache = PromptCache()
    moh_dir = _ROOT / "prompts" / "moh"
    sim = SimAudio(len(lines), tone_hz=1000.0, tone_dbm0=-20.0, seed=1)
    # The simulated board's audio, as in the daemon: the parties' voices come through
    # the board-driver seam.
    driver = SimDriver(SimSettings(), (), lines, audio=sim)
    moh = MusicOnHold(moh_dir if moh_dir.is_dir() else None, cache)
    moh.preload()
    media = MediaPlane(lines, port=driver, moh=moh, prompt_cache=cache)
    speech = media.moh.samples
    sim.speech = speech if len(speech) else None
    for i in range(half):
        sim.start(i, SourceKind.TONE)
        sim.start(half + i, SourceKind.SPEECH)
        media.mixer.set_bridge(f"c{i}", two_party(i, half + i))
    playing = 0
    for ch in range(0, len(lines), 10):
        media.moh.start(media.player, ch, f"hold{ch}")
        playing += 1
    frames = int(round(seconds * 8000 / FRAME))
    if record:
        return _bench_recording(media, half, frames, playing, record_dir)
    kept: list[int] = [0]

    def sink(frame: int, t: float, keys: object, chs: np.ndarray, rx: np.ndarray,
             tx: np.ndarray) -> None:
        # A recorder interleaves the two legs into stereo frames.
        stereo = np.stack([rx, tx], axis=-1)
        kept[0] += stereo.nbytes

    for i in range(0, half, 4):
        media.taps.add(f"rec{i}", i, sink)
    media.process(5, 0.0)  # warm-up: caches, compiled mixer
    t0 = time.perf_counter()
    media.process(frames, 0.0)
    wall = time.perf_counter() - t0
    return MediaResult(channels=len(lines), seconds=frames * FRAME / 8000, wall_s=round(wall, 4),
                       rtf=round(wall / (frames * FRAME / 8000), 4), frames=frames,
                       tapped=len(media.taps), playing=playing,
                       ms_per_frame=round(wall * 1000 / frames, 4))


def _bench_recording(media: MediaPlane, calls: int, frames: int, playing: int,
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
    ids = [f"bench-{i:05d}" for i in range(calls)]
    try:
        svc.writer.start()
        for i, rid in enumerate(ids):
            outcomes.extend(svc.handle(now, TapOpen(
                rid, rid, recording_relpath(rid, now), now, RecordLayout.STEREO,
                RecordFormat.PCM, customer=media.lines[i])))
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
                             record=bool(getattr(args, "record", False)))
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
