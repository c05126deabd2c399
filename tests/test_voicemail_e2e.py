"""A voicemail message end to end, as the daemon wires it: call core, IVR, playout and the
media plane on one shell, the voicemail service, the real crash-safe writer thread and
the real index on SQLite.

A caller rings DNIS 8000 (flow ``main``: a ``voicemail`` node for agent 1001's box),
talks over the greeting and the beep, goes on talking, presses ``#`` in-band (real DTMF
the media plane detects) and the switch hangs up. The WAV file is read back with
``wave`` and checked sample by sample against what the caller said after the beep; the
index row's figures are the file's; ``voicemail.new`` tells the owner; VM.FETCH's path
is the file. Virtual time, frame by frame; the writer's reports come through a
``call_soon`` the test drains, as ``loop.call_soon_threadsafe`` would.
"""

from __future__ import annotations

import asyncio
import hashlib
import wave
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from switchd.bus import Bus
from switchd.core.engine import SwitchCore, new_call_id
from switchd.core.inputs import CORE_INPUTS, Hangup, Incoming
from switchd.core.routing import CoreConfig, Route, Target, TargetKind
from switchd.events import CallEnded, Event, VoicemailNew
from switchd.ivr.interpreter import Ivr
from switchd.ivr.model import Flow, FlowSet, Mark, Voicemail
from switchd.lines.dtmf import generate_digits
from switchd.lines.media import MediaPlane
from switchd.lines.prompts import PromptCache
from switchd.lines.tones import DBM0_PEAK
from switchd.playout import Playout, run_frames
from switchd.recorder.mailboxes import Mailboxes
from switchd.recorder.model import Mailbox, VoicemailSettings
from switchd.recorder.vm_index import MessageIndex
from switchd.recorder.vm_tap import HASH_TRIM_FRAMES
from switchd.recorder.voicemail import VoicemailService, beep
from switchd.recorder.writer import RecordingWriter
from switchd.shell import Shell, VirtualClock
from switchd.store.sqlite import Store

F = 160


def _tone(n0: int, n: int, hz: float, dbm0: float) -> np.ndarray:
    k = np.arange(n0, n0 + n)
    return np.round(DBM0_PEAK * 10 ** (dbm0 / 20) * np.sin(2 * np.pi * hz * k / 8000)).astype(
        np.int16)


def _greeting(path: Path, seconds: float) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(_tone(0, int(8000 * seconds), 600, -15).tobytes())


class Caller:
    """The board: trunk/1's caller talks (a 440 Hz tone) until ``hash_at``, presses # for
    100 ms, then says nothing; every frame it said is kept by index."""

    def __init__(self, lines: list[str], hash_at: int) -> None:
        self.ch = lines.index("trunk/1")
        self.n = len(lines)
        self.hash_at = hash_at
        self.key = generate_digits("#", on_ms=100, off_ms=0)
        self.said: dict[int, np.ndarray] = {}
        self.heard: dict[int, np.ndarray] = {}

    def inbound(self, frame: int, time: float) -> np.ndarray:
        rows = np.zeros((self.n, F), dtype=np.int16)
        if frame < self.hash_at:
            rows[self.ch] = _tone(frame * F, F, 440, -18)
        elif frame < self.hash_at + len(self.key) // F:
            k = (frame - self.hash_at) * F
            rows[self.ch] = self.key[k:k + F]
        self.said[frame] = rows[self.ch].copy()
        return rows

    def outbound(self, frame: int, time: float, samples: np.ndarray) -> None:
        self.heard[frame] = samples[self.ch].copy()


async def _until(cond: Callable[[], bool], drain: Callable[[], None]) -> None:
    for _ in range(2000):
        drain()
        if cond():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("timed out")


async def test_a_message_left_by_a_caller_is_on_disk_sample_for_sample_and_indexed(tmp_path):
    greeting = tmp_path / "greeting.wav"
    _greeting(greeting, 0.5)
    settings = VoicemailSettings(
        directory=tmp_path / "vm", greeting=(greeting,), silence_s=5.0, min_s=1.0,
        boxes=MappingProxyType({"1001": Mailbox("1001", owner="agent:1001")}))
    mailboxes = Mailboxes(settings)
    node = Voicemail(name="vm", mark=Mark("main.yaml", 4, 3), mailbox="1001")
    flows = FlowSet({"main": Flow(name="main", version="v1", path=Path("main.yaml"),
                                  start="vm", nodes={"vm": node})})

    clock = VirtualClock(1_764_000_000.0)
    bus = Bus()
    events: list[Event] = []
    bus.on_any(events.append)
    shell = Shell(bus, clock, log_events=False)
    core = SwitchCore(CoreConfig(trunks=2, extensions=(201,),
                                 routes=(Route(Target(TargetKind.FLOW, "main"), dnis="8000"),)))
    lines = list(core.lines)
    caller = Caller(lines, hash_at=200)
    cache = PromptCache()
    assert cache.preload(mailboxes.greeting_files()) == []
    media = MediaPlane(lines, port=caller, prompt_cache=cache)
    bus.on_any(media.on_event)
    ivr = Ivr(flows, mailboxes=mailboxes)
    playout = Playout(media, cache)
    service = VoicemailService(mailboxes, media, submit=shell.submit)
    reports: list[Callable[[], None]] = []
    writer = RecordingWriter(settings.directory, flush_s=0.2, on_closed=service.closed,
                             on_error=service.failed, call_soon=reports.append)
    store = await Store.open(tmp_path / "switchd.db")
    index = MessageIndex(store, settings.directory, mailboxes)
    service.attach(writer=writer, index=index)
    writer.start()
    index.start()
    shell.add(core, takes=CORE_INPUTS)
    shell.add(ivr, takes=Ivr.TAKES, follows=Ivr.FOLLOWS)
    shell.add(playout, takes=Playout.TAKES)
    shell.add(service, takes=VoicemailService.TAKES, follows=VoicemailService.FOLLOWS)

    def drain() -> None:
        while reports:
            reports.pop(0)()

    try:
        call_id = new_call_id(shell.submit(Incoming("13900001111", "8000", trunk=1)))
        assert call_id is not None
        start_frame = None
        hash_frame = None
        for _ in range(400):
            clock.t = round(clock.t + 0.02, 6)
            shell.fire_due()
            frame = media.frames
            keys, _ = run_frames(media, playout, shell.submit, 1, clock.t)
            if keys and hash_frame is None:
                hash_frame = frame
            if service.messages and start_frame is None:
                start_frame = next(iter(service.messages.values())).capture.start_frame
            drain()
        assert start_frame is not None and hash_frame is not None
        # The greeting (25 frames) then the beep (20 frames) is what the caller heard.
        assert start_frame == 25 + 20
        heard = np.concatenate([caller.heard[f] for f in range(25, 45)])
        assert np.array_equal(heard, beep(settings.beep_hz, settings.beep_ms))

        [ended] = [e for e in events if isinstance(e, CallEnded)]
        assert (ended.cdr.hangup_by, ended.cdr.ivr_path) == ("system", "main:vm")
        leave = next(e for e in events if e.name == "ivr.leave")
        assert leave.why.startswith("message hash") and leave.digits == "#"

        await _until(lambda: index.saved == 1, drain)
        [new] = [e for e in events if isinstance(e, VoicemailNew)]
        path = Path(new.file)
        assert path.parent == settings.directory / "1001"
        with wave.open(str(path), "rb") as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
            got = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        # What the caller said after the beep, up to the '#' less its tone.
        last = hash_frame + 1 - HASH_TRIM_FRAMES
        want = np.concatenate([caller.said[f] for f in range(start_frame, last)])
        assert np.array_equal(got, want)
        assert (new.call_id, new.mailbox, new.owner, new.waiting, new.caller) == (
            call_id, "1001", "agent:1001", 1, "13900001111")
        assert new.duration_s == round(len(want) / 8000, 3)

        [row] = await index.list("1001")
        data = path.read_bytes()
        assert (row["size"], row["sha256"], row["duration_s"], row["call"]) == (
            len(data), hashlib.sha256(data).hexdigest(), len(want) / 8000, call_id)
        fetched = await index.fetch(row["id"])
        assert fetched["file"] == str(path) and fetched["heard"] is True
        assert await index.waiting("1001") == 0
    finally:
        assert await service.close(5.0) == 0
        await store.close()


async def test_a_caller_who_hangs_up_at_the_beep_leaves_no_file_and_no_row(tmp_path):
    settings = VoicemailSettings(directory=tmp_path / "vm", min_s=1.0,
                                 boxes=MappingProxyType({"sales": Mailbox("sales")}))
    mailboxes = Mailboxes(settings)
    clock = VirtualClock(1_764_000_000.0)
    bus = Bus()
    events: list[Any] = []
    bus.on_any(events.append)
    shell = Shell(bus, clock, log_events=False)
    core = SwitchCore(CoreConfig(trunks=1, extensions=(201,), routes=(
        Route(Target(TargetKind.VOICEMAIL, "sales"), dnis="8000"),)))
    lines = list(core.lines)
    caller = Caller(lines, hash_at=10_000)
    media = MediaPlane(lines, port=caller)
    bus.on_any(media.on_event)
    service = VoicemailService(mailboxes, media, submit=shell.submit)
    reports: list[Callable[[], None]] = []
    writer = RecordingWriter(settings.directory, on_closed=service.closed,
                             on_error=service.failed, call_soon=reports.append)
    store = await Store.open(tmp_path / "switchd.db")
    index = MessageIndex(store, settings.directory, mailboxes)
    service.attach(writer=writer, index=index)
    writer.start()
    index.start()
    ivr = Ivr(FlowSet(), mailboxes=mailboxes)
    playout = Playout(media, PromptCache())
    shell.add(core, takes=CORE_INPUTS)
    shell.add(ivr, takes=Ivr.TAKES, follows=Ivr.FOLLOWS)
    shell.add(playout, takes=Playout.TAKES)
    shell.add(service, takes=VoicemailService.TAKES, follows=VoicemailService.FOLLOWS)
    try:
        shell.submit(Incoming("13900002222", "8000", trunk=1))
        [message] = list(service.messages.values())  # no greeting: the beep at once
        for _ in range(40):  # the beep, then half a second of message
            clock.t = round(clock.t + 0.02, 6)
            run_frames(media, playout, shell.submit, 1, clock.t)
        shell.submit(Hangup("trunk/1"))

        def drain() -> None:
            while reports:
                reports.pop(0)()

        await _until(lambda: service.messages == {}, drain)
        await index.flush()
        assert not (settings.directory / message.relpath).exists()
        assert await index.list("sales") == [] and index.saved == 0
        assert not [e for e in events if isinstance(e, VoicemailNew)]
    finally:
        assert await service.close(5.0) == 0
        await store.close()
