"""The seam between the media plane and a board driver (``switchd.lines.board``).

A fake board driver written here, and nothing of ``switchd.drivers``, carries a whole
call through the production shell on a virtual clock: its lines ring in, answer and
hang up as core inputs from ``handle_timer``, its parties' audio goes in and out through
``inbound``/``outbound``, and the media plane follows the core over the bus. A
subprocess proves ``lines/`` (with the core and the shell) needs neither the simulated
board nor the recorder (DESIGN §2: rooms and doors). Tap sinks see the media plane's
frame counter, a skipped frame included.
"""

from __future__ import annotations

import heapq
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from switchd.bus import Bus
from switchd.core.engine import CoreError, SwitchCore
from switchd.core.inputs import Answer, Hangup, Incoming
from switchd.core.routing import CoreConfig, Route, Target, TargetKind
from switchd.engine import Engine, Input
from switchd.events import CallAnswered, CallEnded, CallRinging, Cdr, Event, LineState
from switchd.lines.board import AudioPort, BoardDriver
from switchd.lines.media import FRAME, MediaPlane
from switchd.lines.state import LineStatus
from switchd.shell import Shell, VirtualClock

ROOT = Path(__file__).resolve().parents[1]
RATE = 8000
FRAME_S = FRAME / RATE
LEVEL = 6000.0
CALLER = "trunk/1"
AGENT = "ext/201"
TONES = {CALLER: 900.0, AGENT: 1200.0}
RING_AT_S = 0.5
ANSWER_AFTER_S = 1.0
TALK_S = 3.0


def level_db(samples: np.ndarray, hz: float) -> float:
    """Level of ``hz`` in ``samples`` relative to a sine of amplitude ``LEVEL`` (Blackman-Harris
    windowed single-bin DFT), dB."""
    x = samples.astype(np.float64)
    k = 2 * np.pi * np.arange(len(x)) / (len(x) - 1)
    w = 0.35875 - 0.48829 * np.cos(k) + 0.14128 * np.cos(2 * k) - 0.01168 * np.cos(3 * k)
    t = np.arange(len(x)) / RATE
    mag = abs(np.sum(x * w * np.exp(-2j * np.pi * hz * t)))
    return 20 * np.log10(max(mag, 1e-12) / (LEVEL * np.sum(w) / 2))


class ScriptedBoard:
    """A fake board driver: one scripted call, and a phone that talks while it is off-hook.

    Signalling: a caller rings in on trunk 1 at ``ring_at``; the agent's phone answers
    ``answer_after_s`` after it starts ringing; the caller hangs up ``talk_s`` after the
    answer. Audio: each line sends its tone in ``tones`` while the line is not idle, and
    what every line hears is kept with the frame index and time.
    """

    def __init__(self, lines: Sequence[str], tones: dict[str, float], *, ring_at: float,
                 answer_after_s: float, talk_s: float) -> None:
        self.lines = list(lines)
        self.channel_of = {name: i for i, name in enumerate(self.lines)}
        self.freqs = np.array([tones.get(name, 0.0) for name in self.lines])
        self.active = np.zeros(len(self.lines), dtype=bool)
        self.answer_after_s = answer_after_s
        self.talk_s = talk_s
        self._seq = 0
        self._due: list[tuple[float, int, Input]] = []
        self._at(ring_at, Incoming(caller="5551000", dnis="100", trunk=1))
        self.heard: list[tuple[int, float, np.ndarray]] = []
        self.inbound_frames: list[int] = []

    def _at(self, when: float, item: Input) -> None:
        self._seq += 1
        heapq.heappush(self._due, (when, self._seq, item))

    # ---------------------------------------------------------------- signalling

    def handle(self, now: float, item: Any) -> list[Any]:
        if isinstance(item, LineState):
            ch = self.channel_of.get(item.line)
            if ch is not None:
                self.active[ch] = item.state is not LineStatus.IDLE
        elif isinstance(item, CallRinging) and item.line == AGENT:
            self._at(now + self.answer_after_s, Answer(line=AGENT))
        elif isinstance(item, CallAnswered) and item.line == AGENT:
            self._at(now + self.talk_s, Hangup(line=CALLER))
        return []

    def next_deadline(self) -> float | None:
        return self._due[0][0] if self._due else None

    def handle_timer(self, now: float) -> list[Any]:
        out: list[Any] = []
        while self._due and self._due[0][0] <= now:
            out.append(heapq.heappop(self._due)[2])
        return out

    # --------------------------------------------------------------------- audio

    def inbound(self, frame: int, time: float) -> np.ndarray:
        self.inbound_frames.append(frame)
        n = frame * FRAME + np.arange(FRAME, dtype=np.float64)
        x = LEVEL * np.sin(2 * np.pi * self.freqs[:, None] * n[None, :] / RATE)
        x[~self.active] = 0.0
        return np.rint(x).astype(np.int16)

    def outbound(self, frame: int, time: float, samples: np.ndarray) -> None:
        self.heard.append((frame, time, samples.copy()))

    def heard_between(self, line: str, start: float, end: float) -> np.ndarray:
        """What ``line`` heard in the frames ending in (start, end]."""
        ch = self.channel_of[line]
        rows = [s[ch] for _, t, s in self.heard if start < t <= end + 1e-9]
        return np.concatenate(rows)


@dataclass
class CallRun:
    """The outcome of :func:`run_call`."""

    t0: float
    board: ScriptedBoard
    media: MediaPlane
    core: SwitchCore
    cdrs: list[Cdr] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    refused: list[Exception] = field(default_factory=list)


def run_call(seconds: float = 6.0) -> CallRun:
    """The daemon's wiring on a virtual clock, with the fake board as the only driver.

    The media plane runs one frame per 20 ms of virtual time, after the shell has fired
    every deadline up to the frame's end.
    """
    core = SwitchCore(CoreConfig(trunks=2, extensions=(201, 202),
                                 routes=(Route(Target(TargetKind.EXTENSION, "201")),)))
    lines = list(core.lines)
    clock = VirtualClock()
    t0 = clock.now()
    board = ScriptedBoard(lines, TONES, ring_at=t0 + RING_AT_S, answer_after_s=ANSWER_AFTER_S,
                          talk_s=TALK_S)
    media = MediaPlane(lines, port=board)
    run = CallRun(t0, board, media, core)
    bus = Bus()
    bus.on_any(media.on_event)
    bus.on_any(run.events.append)
    bus.on(CallEnded.name, lambda ev: run.cdrs.append(ev.cdr))  # type: ignore[attr-defined]
    shell = Shell(bus, clock, log_events=False, refusals=(CoreError,),
                  on_refused=lambda _item, exc: run.refused.append(exc))
    shell.add(core, takes=(Input,))
    shell.add(board, follows=True)
    for k in range(1, round(seconds / FRAME_S) + 1):
        t = t0 + k * FRAME_S
        shell.run_until(t)
        assert not media.process(1, t)
    return run


def test_fake_driver_implements_the_board_driver_protocol() -> None:
    board = ScriptedBoard(["trunk/1"], TONES, ring_at=0.0, answer_after_s=1.0, talk_s=1.0)
    assert isinstance(board, BoardDriver)
    assert isinstance(board, AudioPort)
    assert isinstance(board, Engine)


def test_a_call_through_a_fake_board_rings_is_answered_talks_and_hangs_up() -> None:
    run = run_call()
    names = [ev.name for ev in run.events]
    for name in ("call.new", "call.ringing", "call.answered", "bridge.changed", "call.ended"):
        assert name in names
    assert names.index("call.ringing") < names.index("call.answered") < names.index("call.ended")
    assert run.refused == []
    assert all(run.core.lines[line].idle for line in run.core.lines)
    assert run.core.calls == {}

    (cdr,) = run.cdrs
    assert cdr.disposition == "ANSWERED"
    assert cdr.src == "5551000"
    assert cdr.trunk == 1
    assert cdr.extension == 201
    assert cdr.hangup_by == "caller"
    assert cdr.start == run.t0 + RING_AT_S
    assert cdr.answer == cdr.start + ANSWER_AFTER_S
    assert cdr.billsec == TALK_S
    assert cdr.duration == ANSWER_AFTER_S + TALK_S


def test_audio_flows_both_ways_only_while_the_call_is_up() -> None:
    run = run_call()
    board, t0 = run.board, run.t0
    answer = t0 + RING_AT_S + ANSWER_AFTER_S
    hangup = answer + TALK_S

    # Ringing: the caller hears ringback (cn, 450 Hz), not the agent's phone.
    ringing = board.heard_between(CALLER, t0 + RING_AT_S + 0.1, answer - 0.1)
    assert level_db(ringing, 450.0) > -30.0
    assert level_db(ringing, TONES[AGENT]) < -60.0
    assert not np.any(board.heard_between(AGENT, t0 + RING_AT_S + 0.1, answer - 0.1))

    # Talking (past the crossfade frame): each hears the other, nobody hears itself.
    caller_hears = board.heard_between(CALLER, answer + 0.1, hangup - 0.1)
    agent_hears = board.heard_between(AGENT, answer + 0.1, hangup - 0.1)
    assert level_db(caller_hears, TONES[AGENT]) > -1.0
    assert level_db(agent_hears, TONES[CALLER]) > -1.0
    assert level_db(caller_hears, TONES[CALLER]) < -60.0
    assert level_db(agent_hears, TONES[AGENT]) < -60.0
    assert level_db(caller_hears, 450.0) < -60.0  # ringback stopped at the answer

    # Hung up: silence for both, and for every other line all along.
    for line in (CALLER, AGENT):
        assert not np.any(board.heard_between(line, hangup + 0.1, t0 + 6.0))
    for line in ("trunk/2", "ext/202"):
        assert not np.any(board.heard_between(line, t0, t0 + 6.0))


def test_media_frames_reach_the_driver_in_order_with_their_end_times() -> None:
    run = run_call(seconds=1.0)
    frames = [f for f, _, _ in run.board.heard]
    times = [t for _, t, _ in run.board.heard]
    assert frames == list(range(50)) == run.board.inbound_frames
    assert np.allclose(np.diff(times), FRAME_S, rtol=0, atol=1e-6)
    assert abs(times[-1] - (run.t0 + 1.0)) < 1e-6


_NO_DRIVER_NO_RECORDER = """
import json, sys
import switchd.lines.media, switchd.core.engine, switchd.shell
import tests.test_board_seam as seam
run = seam.run_call()
print(json.dumps({
    "cdrs": len(run.cdrs),
    "modules": sorted(m for m in sys.modules
                      if m.split(".")[:2] in (["switchd", "drivers"], ["switchd", "recorder"])),
}))
"""


def test_lines_core_and_shell_run_a_call_without_any_driver_or_recorder_module() -> None:
    out = subprocess.run([sys.executable, "-c", _NO_DRIVER_NO_RECORDER], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["cdrs"] == 1
    assert result["modules"] == []


# ------------------------------------------------------------------------- taps


class ToneEverywhere:
    """An audio port whose every line sends a tone of its own (100 Hz apart)."""

    def __init__(self, channels: int) -> None:
        self.freqs = 500.0 + 100.0 * np.arange(channels)
        self.sent: dict[int, np.ndarray] = {}
        self.got: dict[int, np.ndarray] = {}

    def inbound(self, frame: int, time: float) -> np.ndarray:
        n = frame * FRAME + np.arange(FRAME, dtype=np.float64)
        out = np.rint(LEVEL * np.sin(2 * np.pi * self.freqs[:, None] * n / RATE))
        self.sent[frame] = out.astype(np.int16)
        return self.sent[frame]

    def outbound(self, frame: int, time: float, samples: np.ndarray) -> None:
        self.got[frame] = samples.copy()


@dataclass
class FrameLog:
    """A tap sink that keeps every call it gets."""

    calls: list[tuple[int, float, list[str], np.ndarray, np.ndarray, np.ndarray]] = \
        field(default_factory=list)

    def __call__(self, frame: int, time: float, keys: Sequence[str], channels: np.ndarray,
                 rx: np.ndarray, tx: np.ndarray) -> None:
        self.calls.append((frame, time, list(keys), channels.copy(), rx.copy(), tx.copy()))


def _tapped_plane() -> tuple[MediaPlane, ToneEverywhere, FrameLog]:
    lines = ["trunk/1", "trunk/2", "ext/201", "ext/202"]
    port = ToneEverywhere(len(lines))
    media = MediaPlane(lines, port=port)
    sink = FrameLog()
    media.taps.add("rec-1", media.channel_of["trunk/1"], sink)
    return media, port, sink


def test_tap_sink_gets_strictly_increasing_frame_indices() -> None:
    media, port, sink = _tapped_plane()
    t0 = 1_764_000_000.0
    media.process(7, t0 + 7 * FRAME_S)
    media.process(3, t0 + 10 * FRAME_S)
    frames = [c[0] for c in sink.calls]
    times = [c[1] for c in sink.calls]
    assert frames == list(range(10))
    assert all(b > a for a, b in zip(frames, frames[1:], strict=False))
    assert np.allclose(np.diff(times), FRAME_S, rtol=0, atol=1e-6)
    for frame, _, keys, channels, rx, tx in sink.calls:
        assert keys == ["rec-1"]
        assert channels.tolist() == [0]
        assert np.array_equal(rx[0], port.sent[frame][0])  # what the caller says
        assert np.array_equal(tx[0], port.got[frame][0])  # what the caller hears


def test_skipped_frames_show_as_a_gap_in_the_tap_frame_index() -> None:
    media, port, sink = _tapped_plane()
    t0 = 1_764_000_000.0
    media.process(5, t0 + 5 * FRAME_S)
    media.skip(4)
    media.process(3, t0 + 12 * FRAME_S)
    frames = [c[0] for c in sink.calls]
    assert frames == [0, 1, 2, 3, 4, 9, 10, 11]
    assert np.diff(frames).tolist() == [1, 1, 1, 1, 5, 1, 1]
    # The driver sees the same counter: the skipped frames were never asked for.
    assert sorted(port.sent) == frames
    assert sorted(port.got) == frames
    assert media.frames == 12
