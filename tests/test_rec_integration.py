"""One call's recording through the whole stack, in virtual time, checked sample by sample.

The daemon's wiring without the process: the real :class:`SwitchCore` and :class:`Acd`,
the :class:`Recorder` engine, the :class:`RecordingService` on the real
:class:`MediaPlane` (music on hold included), the real :class:`RecordingWriter` thread
writing into ``tmp_path`` and the real :class:`RecordingIndex` on SQLite, all on one
:class:`Shell` with a virtual clock. The test ticks the media frames itself
(``run_frames``, as the daemon's ticker does) and delivers the writer's reports
(``call_soon`` puts them on a queue the test drains, as ``loop.call_soon_threadsafe``
would run them).

Every line says a tone of its own and the port keeps what each line said and heard per
frame, so each WAV is checked twice: exactly, sample by sample, against the voices
that must be in each channel in each phase of the call (left: the customer;
right: what the customer hears plus the switch-side voices it does not); and by tone
detection, so a reader sees who is where (issue 16: transfer and consult make one
recording with both agents, a cancelled consult keeps recording, a whisper is only
in the right channel, a listener nowhere).
"""

from __future__ import annotations

import hashlib
import queue
import random
import wave
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from switchd.acd.engine import Acd
from switchd.acd.inputs import ACD_INPUTS
from switchd.acd.model import AcdSettings, Strategy
from switchd.bus import Bus
from switchd.core.engine import SwitchCore, new_call_id
from switchd.core.inputs import (
    CORE_INPUTS,
    Answer,
    BlindTransfer,
    Cancel,
    Complete,
    Consult,
    Hangup,
    Incoming,
    Monitor,
    SetMonitorMode,
)
from switchd.core.routing import CoreConfig, Route, Target, TargetKind
from switchd.events import (
    AgentStateChanged,
    CallEnded,
    Event,
    RecordingDone,
    RecordingFailed,
    RecordingStarted,
    RecordingStopped,
    Role,
)
from switchd.lines.media import FRAME, MediaPlane
from switchd.lines.prompts import PromptCache
from switchd.playout import Playout, run_frames
from switchd.recorder import index as rec_index
from switchd.recorder.engine import Recorder
from switchd.recorder.index import RecordingIndex
from switchd.recorder.inputs import TapOpen
from switchd.recorder.model import RecordingSettings, RecordMode
from switchd.recorder.service import RecordingService
from switchd.recorder.writer import RecordingWriter
from switchd.shell import Shell, VirtualClock
from switchd.store.sqlite import Store
from tests.acdhelp import T0, agents
from tests.acdhelp import queue as queue_settings
from tests.corehelp import StrictLog

RATE = 8000
LEVEL = 6000.0
#: Each line's own tone (Hz): multiples of 50 Hz, so a 20 ms block holds whole cycles;
#: away from the music on hold's chime (523 Hz and 659 Hz) and from each other.
TONES = {"trunk/1": 400.0, "trunk/2": 450.0, "ext/201": 1000.0, "ext/202": 1500.0,
         "ext/203": 2000.0, "ext/204": 2500.0}
CUSTOMER, AGENT1, AGENT2, SUPERVISOR = "trunk/1", "ext/201", "ext/202", "ext/203"


class LinePort:
    """The board: every line says its own tone, all the time; what each line said
    (inbound) and heard (outbound) is kept per media frame."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.freqs = np.array([TONES[ln] for ln in lines])
        self.said: dict[int, np.ndarray] = {}
        self.heard: dict[int, np.ndarray] = {}

    def inbound(self, frame: int, time: float) -> np.ndarray:
        n = frame * FRAME + np.arange(FRAME, dtype=np.float64)
        out = np.rint(LEVEL * np.sin(2 * np.pi * self.freqs[:, None] * n / RATE))
        self.said[frame] = out.astype(np.int16)
        return self.said[frame]

    def outbound(self, frame: int, time: float, samples: np.ndarray) -> None:
        self.heard[frame] = samples.copy()


class Rig:
    """Core, ACD (queue ``q``: agents a1 at ext/201, a2 at ext/202; linear), recorder,
    recording service, media plane, writer and index on one virtual-time shell.
    DNIS ``q`` queues the caller; recording mode ``on_agent`` (the file starts when
    the agent answers)."""

    def __init__(self, directory: Path, store: Store) -> None:
        self.directory = directory
        self.store = store
        self.core = SwitchCore(CoreConfig(
            trunks=2, extensions=(201, 202, 203, 204),
            routes=(Route(Target(TargetKind.QUEUE, "q"), dnis="q"),), ring_timeout_s=20.0))
        self.lines = list(self.core.lines)
        assert set(self.lines) == set(TONES)
        self.acd = Acd(AcdSettings({"q": queue_settings("q", strategy=Strategy.LINEAR)},
                                   agents(2, ("q",))), rng=random.Random(1))
        self.recorder = Recorder(RecordingSettings(mode=RecordMode.ON_AGENT, directory=directory),
                                 hidden_digits=self.core.hidden_digits)
        self.port = LinePort(self.lines)
        cache = PromptCache()
        self.media = MediaPlane(self.lines, port=self.port, prompt_cache=cache)
        self.playout = Playout(self.media, cache)
        self.clock = VirtualClock(T0)
        bus = Bus()
        self.events: list[Event] = []
        bus.on_any(self.events.append)
        bus.on_any(self.media.on_event)
        self.shell = Shell(bus, self.clock, log_events=False)
        self.shell.log = StrictLog()
        self.index = RecordingIndex(store)
        for kind in RecordingIndex.FOLLOWS:
            bus.on(kind.name, self.index.on_event)
        self.reports: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.service = RecordingService.with_writer(
            self.media, self.shell.submit,
            lambda closed, failed: RecordingWriter(directory, flush_s=0.2, on_closed=closed,
                                                   on_error=failed, call_soon=self.reports.put))
        self.taps: list[Any] = []
        shell = self.shell
        shell.add(self.core, takes=CORE_INPUTS)
        shell.add(self.acd, takes=ACD_INPUTS, follows=Acd.FOLLOWS)
        shell.add(self.playout, takes=Playout.TAKES)
        shell.add(self.recorder, takes=Recorder.TAKES, follows=Recorder.FOLLOWS)
        shell.add(_Spy(self.taps, self.service), takes=RecordingService.TAKES)
        self.service.writer.start()
        self.index.start()
        shell.dispatch(self.acd.start(T0), T0)
        #: media frame index at each named moment of the call
        self.at: dict[str, int] = {}

    # ------------------------------------------------------------------ people

    def do(self, item: Any, moment: str | None = None) -> None:
        """Submit an input between two frames, noting the frame index it takes effect at."""
        self.shell.submit(item)
        if moment is not None:
            self.at[moment] = self.media.frames

    def call(self) -> str:
        cid = new_call_id(self.shell.submit(Incoming("13900000001", "q", trunk=1)))
        assert cid is not None
        return cid

    def frames(self, n: int) -> None:
        """Let ``n`` media frames (20 ms each) pass, the engines' timers on time."""
        for _ in range(n):
            self.clock.t = round(self.clock.t + FRAME / RATE, 6)
            self.shell.fire_due()
            run_frames(self.media, self.playout, self.shell.submit, 1, self.clock.t)

    def finish(self, cid: str) -> RecordingDone:
        """Deliver the writer's reports until the recording of ``cid`` is done."""
        while not self.of(RecordingDone, cid):
            self.reports.get(timeout=10)()
        (done,) = self.of(RecordingDone, cid)
        return done

    # ------------------------------------------------------------------ looking

    def of(self, kind: type[Any], cid: str | None = None) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)
                and (cid is None or getattr(e, "call_id", None) == cid)]

    def said(self, line: str, start: int, end: int) -> np.ndarray:
        ch = self.media.channel_of[line]
        return np.concatenate([self.port.said[f][ch] for f in range(start, end)])

    def heard(self, line: str, start: int, end: int) -> np.ndarray:
        ch = self.media.channel_of[line]
        return np.concatenate([self.port.heard[f][ch] for f in range(start, end)])

    def agent_states(self, agent: str) -> list[str]:
        return [e.state.value for e in self.of(AgentStateChanged) if e.agent == agent]


class _Spy:
    """The recording service, with every Tap* input it is given kept."""

    def __init__(self, kept: list[Any], service: RecordingService[Any]) -> None:
        self.kept = kept
        self.service = service

    def handle(self, now: float, item: Any) -> list[Any]:
        self.kept.append(item)
        return self.service.handle(now, item)

    def next_deadline(self) -> float | None:
        return self.service.next_deadline()

    def handle_timer(self, now: float) -> list[Any]:
        return self.service.handle_timer(now)


@asynccontextmanager
async def _rig(tmp_path: Path) -> AsyncIterator[Rig]:
    store = await Store.open(tmp_path / "switchd.db")
    rig = Rig(tmp_path / "rec", store)
    try:
        yield rig
    finally:
        assert await rig.service.writer.stop(5.0) == 0
        assert await rig.index.close(timeout_s=5.0) == 0
        await store.close()


# ------------------------------------------------------------------ reading back


def _wav(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) int16 of a stereo 16-bit 8 kHz file, read with ``wave``."""
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, RATE)
        a = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    return a[:, 0], a[:, 1]


def _sat(x: np.ndarray) -> np.ndarray:
    return np.clip(x, -32768, 32767).astype(np.int16)


def _mix(*parts: np.ndarray) -> np.ndarray:
    total = np.zeros(parts[0].shape, np.int32)
    for p in parts:
        total += p
    return _sat(total)


def _level(x: np.ndarray, hz: float) -> float:
    """Amplitude of the ``hz`` component of ``x`` (Goertzel at one frequency; a sine of
    peak A over whole cycles gives A)."""
    n = np.arange(len(x))
    return float(2 * abs(np.dot(x.astype(np.float64), np.exp(-2j * np.pi * hz * n / RATE)))
                 / len(x))


def _who(x: np.ndarray) -> set[str]:
    """The lines whose tone is in ``x`` at full level, 20 ms block by 20 ms block: the
    set of lines found in every block (a voice that comes and goes is not counted)."""
    blocks = x[: len(x) // FRAME * FRAME].reshape(-1, FRAME)
    found = [{ln for ln, hz in TONES.items() if _level(b, hz) > 0.9 * LEVEL} for b in blocks]
    return set.intersection(*found) if found else set()


def _absent(x: np.ndarray, line: str) -> bool:
    """Not a trace of ``line``'s tone in ``x`` (Hann-windowed over the whole span, so
    the music's notes do not leak into the bin)."""
    w = np.hanning(len(x))
    n = np.arange(len(x))
    amp = 2 * abs(np.dot(x * w, np.exp(-2j * np.pi * TONES[line] * n / RATE))) / w.sum()
    return bool(amp < 0.01 * LEVEL)


class File:
    """A recording read back, sliced by media frame index (frame ``first`` is sample 0)."""

    def __init__(self, path: Path, first: int) -> None:
        self.left, self.right = _wav(path)
        self.first = first

    def span(self, channel: str, start: int, end: int) -> np.ndarray:
        x = self.left if channel == "left" else self.right
        return x[(start - self.first) * FRAME:(end - self.first) * FRAME]

    def inner(self, channel: str, start: int, end: int) -> np.ndarray:
        """:meth:`span` without its first frame (the mixer's crossfade to new bridges)."""
        return self.span(channel, start + 1, end)

    @property
    def frames(self) -> int:
        return len(self.left) // FRAME


async def _row(rig: Rig, cid: str) -> dict[str, Any]:
    await rig.index.flush()
    (row,) = await rec_index.query(rig.store, call=cid, directory=rig.directory)
    return row


def _check_done(rig: Rig, cid: str, done: RecordingDone, row: dict[str, Any],
                frames: int) -> Path:
    """One file, opened once, closed ``done`` with the file's own figures; the CDR and
    the index name it. Returns its path."""
    (opened,) = [t for t in rig.taps if isinstance(t, TapOpen)]
    assert opened.recording_id == cid and opened.customer == CUSTOMER
    assert len(rig.of(RecordingStarted, cid)) == 1
    assert rig.of(RecordingStopped, cid) == [] and rig.of(RecordingFailed, cid) == []
    path = rig.directory / done.file
    data = path.read_bytes()
    assert done.status == "done" and done.duration_s == frames * FRAME / RATE
    assert done.size == len(data) == 44 + frames * FRAME * 4
    assert done.sha256 == hashlib.sha256(data).hexdigest()
    (ended,) = rig.of(CallEnded, cid)
    assert ended.cdr.recording_id == cid
    assert row["status"] == "done" and row["file"] == str(path)
    assert (row["duration_s"], row["size"], row["sha256"]) == (done.duration_s, done.size,
                                                               done.sha256)
    assert row["caller"] == "13900000001" and row["agent"] == "a1" and row["queue"] == "q"
    assert list(rig.directory.rglob("*.wav")) == [path]
    return path


def _members(row: dict[str, Any]) -> list[tuple[float, str]]:
    return [(m["offset_s"], m["detail"]) for m in row["marks"] if m["kind"] == "members"]


# ------------------------------------------------------------------------ tests


async def test_a_consult_then_transfer_is_one_recording_with_both_agents(tmp_path: Path) -> None:
    async with _rig(tmp_path) as r:
        cid = r.call()
        r.frames(10)                             # a1's phone rings (no recording yet)
        assert r.taps == []
        r.do(Answer(AGENT1), "answer")           # on_agent: the file starts here
        r.frames(50)
        r.do(Consult(AGENT1, "202"), "consult")  # the customer is held, a2's phone rings
        r.frames(25)
        r.do(Answer(AGENT2), "consult_talk")
        r.frames(50)
        r.do(Complete(AGENT1), "transfer")       # a1 hands the customer over to a2
        assert r.core.lines[AGENT1].call_id is None
        r.frames(50)
        r.do(Hangup(CUSTOMER), "end")
        done = r.finish(cid)
        row = await _row(r, cid)
        a = r.at
        path = _check_done(r, cid, done, row, a["end"] - a["answer"])
        f = File(path, a["answer"])
        assert f.frames == a["end"] - a["answer"]

        # Left: the customer, and only the customer, from the first sample to the last.
        assert np.array_equal(f.left, r.said(CUSTOMER, a["answer"], a["end"]))
        # Right, sample by sample, phase by phase: what the customer heard (tx) plus
        # the switch-side voices it did not hear.
        # 1. a1 talks with the customer: the customer hears a1, and that is the right.
        talk1 = (a["answer"], a["consult"])
        assert np.array_equal(f.span("right", *talk1), r.heard(CUSTOMER, *talk1))
        # 2. Consult, a2 ringing: the customer (held) hears the music; a1, whom the
        #    customer does not hear now, is added to the right.
        ring = (a["consult"], a["consult_talk"])
        moh = r.heard(CUSTOMER, *ring)
        assert np.array_equal(f.span("right", *ring), _mix(moh, r.said(AGENT1, *ring)))
        # 3. Consult, a2 answered: music + a1 + a2.
        consult = (a["consult_talk"], a["transfer"])
        moh2 = r.heard(CUSTOMER, *consult)
        assert np.array_equal(f.span("right", *consult),
                              _mix(moh2, r.said(AGENT1, *consult), r.said(AGENT2, *consult)))
        # What the held customer heard is the music on hold: sound, but no one's voice.
        music = np.concatenate([moh, moh2])
        assert np.abs(music).max() > 1000
        assert all(_absent(music, ln) for ln in TONES)
        # 4. After the transfer: a2 talks with the customer; a1 is gone.
        after = (a["transfer"], a["end"])
        assert np.array_equal(f.span("right", *after), r.heard(CUSTOMER, *after))

        # The same, as a listener would tell by the tones (each phase after its first
        # frame, where the mixer crossfades to the new bridges).
        assert _who(f.left) == {CUSTOMER}
        assert all(_absent(f.left, ln) for ln in (AGENT1, AGENT2))
        assert _who(f.inner("right", *talk1)) == {AGENT1}
        assert _who(f.inner("right", *ring)) == {AGENT1}
        assert _who(f.inner("right", *consult)) == {AGENT1, AGENT2}
        assert _who(f.inner("right", *after)) == {AGENT2}
        assert _absent(f.inner("right", *talk1), AGENT2)
        assert _absent(f.inner("right", *after), AGENT1)
        assert _absent(f.right, CUSTOMER)

        # Who was in the call when: the index's members marks, at offsets into the file.
        s = FRAME / RATE
        members = _members(row)
        assert members[0] == (0.0, "trunk/1:party,ext/201:party,agent=a1")
        # (Whether the mark also names agent a2: see the next test.)
        assert members[-1][0] == round((a["transfer"] - a["answer"]) * s, 3)
        assert members[-1][1].startswith("trunk/1:party,ext/202:party")
        assert any(o == round((a["consult_talk"] - a["answer"]) * s, 3)
                   and "trunk/1:held" in d and "ext/202:party" in d for o, d in members)
        # The agents: a1 freed by the transfer, a2 on the call until it ended.
        assert r.agent_states("a1")[-3:] == ["reserved", "on_call", "ready"]
        assert r.agent_states("a2") == ["ready", "on_call", "ready"]
        assert r.core.calls == {} and r.recorder.calls == {} and len(r.service) == 0


async def test_the_agent_a_call_was_transferred_to_finds_its_recording(tmp_path: Path) -> None:
    """``REC.QUERY agent=`` finds a recording by any agent who was in the call (a
    transfer, a consult): the index reads them from the ``members`` marks. An agent who
    joined by a consult (dialled by extension, not offered by a queue) must be named
    there too, or the agent who finished the call cannot find it."""
    async with _rig(tmp_path) as r:
        cid = r.call()
        r.frames(5)
        r.do(Answer(AGENT1))
        r.frames(25)
        r.do(Consult(AGENT1, "202"))
        r.frames(5)
        r.do(Answer(AGENT2))
        r.frames(25)
        r.do(Complete(AGENT1))
        r.frames(25)
        r.do(Hangup(CUSTOMER))
        r.finish(cid)
        row = await _row(r, cid)
        assert r.agent_states("a2")[1] == "on_call"      # the ACD knows a2 took the call
        assert _members(row)[-1][1] == "trunk/1:party,ext/202:party,agent=a2"
        found = [x["id"] for x in await rec_index.query(r.store, agent="a2")]
        assert found == [cid]


async def test_a_cancelled_consult_keeps_recording_with_the_first_agent(tmp_path: Path) -> None:
    async with _rig(tmp_path) as r:
        cid = r.call()
        r.frames(5)
        r.do(Answer(AGENT1), "answer")
        r.frames(40)
        r.do(Consult(AGENT1, "202"), "consult")
        r.frames(10)
        r.do(Answer(AGENT2), "consult_talk")
        r.frames(30)
        r.do(Cancel(AGENT1), "cancel")           # back to the customer; a2 is released
        assert r.core.lines[AGENT2].call_id is None
        r.frames(60)
        r.do(Hangup(CUSTOMER), "end")
        done = r.finish(cid)
        row = await _row(r, cid)
        a = r.at
        path = _check_done(r, cid, done, row, a["end"] - a["answer"])
        f = File(path, a["answer"])
        assert np.array_equal(f.left, r.said(CUSTOMER, a["answer"], a["end"]))
        consult = (a["consult_talk"], a["cancel"])
        assert np.array_equal(f.span("right", *consult), _mix(
            r.heard(CUSTOMER, *consult), r.said(AGENT1, *consult), r.said(AGENT2, *consult)))
        # The recording goes on after the cancel, with a1 on the right again, alone.
        back = (a["cancel"], a["end"])
        assert a["end"] - a["cancel"] == 60
        assert np.array_equal(f.span("right", *back), r.heard(CUSTOMER, *back))
        assert _who(f.inner("right", *back)) == {AGENT1}
        assert _absent(f.inner("right", *back), AGENT2)
        assert _who(f.inner("right", *consult)) == {AGENT1, AGENT2}
        assert _who(f.left) == {CUSTOMER}
        members = _members(row)
        assert members[-1] == (round((a["cancel"] - a["answer"]) * FRAME / RATE, 3),
                               "trunk/1:party,ext/201:party,agent=a1")
        assert r.agent_states("a2") == ["ready", "on_call", "ready"]
        assert r.agent_states("a1")[-3:] == ["reserved", "on_call", "ready"]


async def test_a_blind_transfer_keeps_one_recording_and_the_second_agent_follows(
        tmp_path: Path) -> None:
    async with _rig(tmp_path) as r:
        cid = r.call()
        r.frames(5)
        r.do(Answer(AGENT1), "answer")
        r.frames(40)
        r.do(BlindTransfer(AGENT1, "202"), "blind")   # a1 leaves; a2's phone rings
        r.frames(20)
        r.do(Answer(AGENT2), "talk2")
        r.frames(40)
        r.do(Hangup(AGENT2), "end")
        done = r.finish(cid)
        row = await _row(r, cid)
        a = r.at
        path = _check_done(r, cid, done, row, a["end"] - a["answer"])
        f = File(path, a["answer"])
        assert np.array_equal(f.left, r.said(CUSTOMER, a["answer"], a["end"]))
        ringing = (a["blind"], a["talk2"])
        # While a2's phone rings the right is what the customer hears (ringback), and
        # neither agent's voice.
        assert np.array_equal(f.span("right", *ringing), r.heard(CUSTOMER, *ringing))
        assert _absent(f.inner("right", *ringing), AGENT1)
        assert _absent(f.inner("right", *ringing), AGENT2)
        talk2 = (a["talk2"], a["end"])
        assert np.array_equal(f.span("right", *talk2), r.heard(CUSTOMER, *talk2))
        assert _who(f.inner("right", a["answer"], a["blind"])) == {AGENT1}
        assert _who(f.inner("right", *talk2)) == {AGENT2}


@pytest.mark.parametrize("first", [Role.LISTEN, Role.WHISPER])
async def test_a_supervisor_whisper_is_only_in_the_right_channel_and_a_listener_nowhere(
        tmp_path: Path, first: Role) -> None:
    async with _rig(tmp_path) as r:
        cid = r.call()
        r.frames(5)
        r.do(Answer(AGENT1), "answer")
        r.frames(20)
        r.do(Monitor(SUPERVISOR, cid, first))
        r.frames(5)
        r.do(Answer(SUPERVISOR), "first")
        r.frames(30)
        second = Role.WHISPER if first is Role.LISTEN else Role.LISTEN
        r.do(SetMonitorMode(SUPERVISOR, second), "second")
        r.frames(30)
        r.do(SetMonitorMode(SUPERVISOR, Role.BARGE), "barge")
        r.frames(30)
        r.do(Hangup(SUPERVISOR), "gone")
        r.frames(10)
        r.do(Hangup(CUSTOMER), "end")
        done = r.finish(cid)
        row = await _row(r, cid)
        a = r.at
        _check_done(r, cid, done, row, a["end"] - a["answer"])
        f = File(r.directory / done.file, a["answer"])
        # The customer's channel never has the supervisor: not whispering, not
        # listening, not even barging in (a barge is heard, so it is on the right).
        assert np.array_equal(f.left, r.said(CUSTOMER, a["answer"], a["end"]))
        assert _absent(f.left, SUPERVISOR)
        whisper = (a["first"], a["second"]) if first is Role.WHISPER else (a["second"],
                                                                           a["barge"])
        listen = (a["first"], a["second"]) if first is Role.LISTEN else (a["second"],
                                                                         a["barge"])
        # Whisper: what the customer hears (the agent) and the supervisor on the right,
        # sample by sample.
        assert np.array_equal(f.span("right", *whisper),
                              _mix(r.heard(CUSTOMER, *whisper), r.said(SUPERVISOR, *whisper)))
        assert _who(f.inner("right", *whisper)) == {AGENT1, SUPERVISOR}
        assert _absent(f.inner("left", *whisper), SUPERVISOR)
        # Listen: never recorded; the right is what the customer hears, the agent alone.
        assert np.array_equal(f.span("right", *listen), r.heard(CUSTOMER, *listen))
        assert _absent(f.inner("right", *listen), SUPERVISOR)
        assert _who(f.inner("right", *listen)) == {AGENT1}
        # Barge: the customer hears agent and supervisor; so does the right channel.
        barge = (a["barge"], a["gone"])
        assert np.array_equal(f.span("right", *barge), r.heard(CUSTOMER, *barge))
        assert _who(f.inner("right", *barge)) == {AGENT1, SUPERVISOR}
        gone = (a["gone"], a["end"])
        assert np.array_equal(f.span("right", *gone), r.heard(CUSTOMER, *gone))
        assert _who(f.inner("right", *gone)) == {AGENT1}
        details = [d for _, d in _members(row)]
        assert f"trunk/1:party,ext/201:party,agent=a1,ext/203:whisper>{AGENT1}" in details
        assert "trunk/1:party,ext/201:party,agent=a1,ext/203:listen" in details
