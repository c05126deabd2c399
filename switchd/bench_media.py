"""``switchd bench media``: the real-time factor of the media tick.

Every channel is in a bridged two-party call (trunk ↔ extension), every party sends
audio (a test tone on trunks, speech-like music on extensions), DTMF detection runs
on every leg, a quarter of the calls are tapped for recording (into a sink that
keeps the frames, as a recorder would), and a tenth of the channels hear a prompt
or music on hold. ``rtf`` = wall time / audio time, on one core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from switchd.drivers.sim.audio import SimAudio, SourceKind
from switchd.drivers.sim.board import SimSettings
from switchd.drivers.sim.driver import SimDriver
from switchd.lines.media import FRAME, MediaPlane
from switchd.lines.mixer import two_party
from switchd.lines.prompts import MusicOnHold, PromptCache

__all__ = ["MediaResult", "bench_media", "run_media_bench"]

_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class MediaResult:
    """One media benchmark run. ``rtf`` = ``wall_s`` / ``seconds``."""

    channels: int
    seconds: float
    wall_s: float
    rtf: float
    frames: int
    tapped: int
    playing: int
    ms_per_frame: float


def bench_media(channels: int, seconds: float) -> MediaResult:
    """Run ``seconds`` of audio through a media plane of ``channels`` channels (even, ≥ 2).

    Raises ValueError for fewer than 2 channels or non-positive seconds.
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
    kept: list[int] = [0]

    def sink(frame: int, t: float, keys: object, chs: np.ndarray, rx: np.ndarray,
             tx: np.ndarray) -> None:
        # A recorder interleaves the two legs into stereo frames.
        stereo = np.stack([rx, tx], axis=-1)
        kept[0] += stereo.nbytes

    for i in range(0, half, 4):
        media.taps.add(f"rec{i}", i, sink)
    playing = 0
    for ch in range(0, len(lines), 10):
        media.moh.start(media.player, ch, f"hold{ch}")
        playing += 1
    frames = int(round(seconds * 8000 / FRAME))
    media.process(5, 0.0)  # warm-up: caches, compiled mixer
    t0 = time.perf_counter()
    media.process(frames, 0.0)
    wall = time.perf_counter() - t0
    return MediaResult(channels=len(lines), seconds=frames * FRAME / 8000, wall_s=round(wall, 4),
                       rtf=round(wall / (frames * FRAME / 8000), 4), frames=frames,
                       tapped=len(media.taps), playing=playing,
                       ms_per_frame=round(wall * 1000 / frames, 4))


def run_media_bench(args: argparse.Namespace) -> int:
    """CLI entry of ``switchd bench media``; prints JSON with ``--json``. Returns the exit code."""
    try:
        result = bench_media(args.channels, args.seconds)
    except ValueError as exc:
        sys.stderr.write(f"switchd bench media: {exc}\n")
        return 2
    if args.json:
        sys.stdout.write(json.dumps(asdict(result)) + "\n")
    else:
        for key, value in asdict(result).items():
            sys.stdout.write(f"{key:>14}: {value}\n")
    sys.stdout.flush()
    return 0
