"""The voicemail service on the real media plane: beep, the caller's audio sample by sample,
the ends (silence, #, max length, hang-up, a failing disk), the index hand-over and
``voicemail.new``.

The board is a scripted audio port (each line says a known tone in known frames); the
writer and the index are fakes that keep what they are given, so every byte the
service hands over is checked against what the caller said. Time is virtual: a frame
is processed, then the service's timers due by its end fire, as the daemon's tick and
shell do. (The real writer and index: tests/test_voicemail_e2e.py.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest

from switchd.events import CallEnded, Cdr, Disposition, HangupCause, VoicemailNew
from switchd.ivr.inputs import MessageEnd, MessageEnded, RecordMessage, StopMessage
from switchd.lines.media import MediaPlane
from switchd.lines.tones import DBM0_PEAK
from switchd.recorder.mailboxes import Mailboxes, folder_problem, missing_mailbox
from switchd.recorder.model import Mailbox, RecordFormat, VoicemailSettings
from switchd.recorder.vm_index import MessageRow
from switchd.recorder.vm_tap import (
    HAND_FRAMES,
    HASH_TRIM_FRAMES,
    TAIL_FRAMES,
    silence_threshold,
)
from switchd.recorder.voicemail import (
    BEEP_DBM0,
    MessageSaved,
    VoicemailService,
    WriterClosed,
    WriterFailed,
    beep,
)

T0 = 1_764_000_000.0
F = 160
LINES = ["trunk/1", "trunk/2", "ext/201"]
SETTINGS = VoicemailSettings(
    directory=Path("/var/vm"),
    boxes=MappingProxyType({"1001": Mailbox("1001", owner="agent:1001"),
                            "sales": Mailbox("sales", owner="queue:sales"),
                            "afterhours": Mailbox("afterhours")}),
    max_s=60.0, silence_s=2.0, silence_dbm0=-45.0, min_s=1.0, beep_hz=1000.0, beep_ms=400)
BEEP_FRAMES = 20  # 400 ms


def voice(frame: int, level_dbm0: float = -20.0, hz: float = 440.0) -> np.ndarray:
    """What a talking caller says in ``frame``: a sine, continuous across frames."""
    n = np.arange(frame * F, (frame + 1) * F)
    amp = DBM0_PEAK * 10 ** (level_dbm0 / 20)
    return np.round(amp * np.sin(2 * np.pi * hz * n / 8000)).astype(np.int16)


class Board:
    """An audio port: ``talk[line]`` says in which frames (a predicate) the line speaks."""

    def __init__(self) -> None:
        self.talk: dict[int, Callable[[int], np.ndarray | None]] = {}
        self.heard: list[np.ndarray] = []

    def inbound(self, frame: int, time: float) -> np.ndarray:
        rows = np.zeros((len(LINES), F), dtype=np.int16)
        for ch, fn in self.talk.items():
            got = fn(frame)
            if got is not None:
                rows[ch] = got
        return rows

    def outbound(self, frame: int, time: float, samples: np.ndarray) -> None:
        self.heard.append(samples.copy())


class Writer:
    """The writer's three calls, kept."""

    def __init__(self) -> None:
        self.opened: dict[str, tuple[Path, int, RecordFormat]] = {}
        self.data: dict[str, bytearray] = {}
        self.writes: list[tuple[str, int]] = []
        self.closed: list[str] = []

    def open(self, rec_id: str, relpath: Path, channels: int, fmt: RecordFormat) -> None:
        self.opened[rec_id] = (relpath, channels, fmt)
        self.data[rec_id] = bytearray()

    def write(self, rec_id: str, data: bytes) -> None:
        self.writes.append((rec_id, len(data)))
        self.data[rec_id] += data

    def close(self, rec_id: str) -> None:
        self.closed.append(rec_id)

    async def stop(self, timeout_s: float) -> int:
        return 0

    def samples(self, rec_id: str) -> np.ndarray:
        return np.frombuffer(bytes(self.data[rec_id]), dtype="<i2")


class Index:
    """The index's writing side, kept."""

    def __init__(self) -> None:
        self.directory = SETTINGS.directory
        self.rows: list[MessageRow] = []
        self.discarded: list[Path] = []
        self.on_saved: Any = None

    def save(self, row: MessageRow) -> None:
        self.rows.append(row)

    def discard(self, relpath: Path) -> None:
        self.discarded.append(relpath)


class Run:
    """The service on a media plane, driven frame by frame in virtual time."""

    def __init__(self, settings: VoicemailSettings = SETTINGS) -> None:
        self.board = Board()
        self.media = MediaPlane(LINES, port=self.board)
        self.submitted: list[Any] = []
        self.t = T0
        n = iter(range(1, 1000))
        self.svc = VoicemailService(Mailboxes(settings), self.media,
                                    submit=self.submitted.append,
                                    ids=lambda now: f"M{next(n):03d}")
        self.writer = Writer()
        self.index = Index()
        self.svc.attach(writer=self.writer, index=self.index)  # type: ignore[arg-type]
        self.out: list[Any] = []

    def do(self, item: Any) -> list[Any]:
        got = self.svc.handle(self.t, item)
        self.out += got
        return got

    def frames(self, n: int) -> None:
        for _ in range(n):
            self.t = round(self.t + 0.02, 6)
            self.media.process(1, self.t)
            d = self.svc.next_deadline()
            if d is not None and d <= self.t + 1e-9:
                self.out += self.svc.handle_timer(self.t)

    def feed_back(self) -> list[Any]:
        """Hand what the callbacks submitted to the service (the shell would)."""
        got: list[Any] = []
        while self.submitted:
            got += self.do(self.submitted.pop(0))
        return got

    def ended(self) -> list[MessageEnded]:
        return [o for o in self.out if isinstance(o, MessageEnded)]


def record(run: Run, line: str = "trunk/1", call: str = "C1", mailbox: str = "1001",
           **kw: Any) -> None:
    assert run.do(RecordMessage(call, line, mailbox, "13900001111", **kw)) == []


def talking(first: int, last: int, **kw: Any) -> Callable[[int], np.ndarray | None]:
    """Speech in frames first..last-1, silence around it."""
    return lambda frame: voice(frame, **kw) if first <= frame < last else None


def expected(first: int, last: int, silent_after: int = 0) -> np.ndarray:
    parts = [voice(f) for f in range(first, last)] + [np.zeros(F, np.int16)] * silent_after
    return np.concatenate(parts) if parts else np.zeros(0, np.int16)


# ------------------------------------------------------------------ the audio


def test_the_caller_is_recorded_from_the_end_of_the_beep_and_trailing_silence_is_cut():
    run = Run()
    run.board.talk[0] = talking(5, 160)  # speaks over the beep too, stops at frame 160
    record(run)
    [(mid, (relpath, channels, fmt))] = run.writer.opened.items()
    assert (relpath, channels, fmt) == (Path("1001/M001.wav"), 1, RecordFormat.PCM)
    run.frames(160 + 2 * 50 + 5)
    # The beep is what the caller heard first, from the very next frame.
    heard = np.concatenate([h[0] for h in run.board.heard[:BEEP_FRAMES]])
    assert np.array_equal(heard, beep(1000.0, 400))
    [ended] = run.ended()
    # Recording starts with the frame after the beep; the 2 s of silence after the last
    # word end it, and only half a second of that silence is kept.
    assert np.array_equal(run.writer.samples(mid), expected(BEEP_FRAMES, 160, TAIL_FRAMES))
    assert (ended.call_id, ended.reason, ended.message_id) == ("C1", MessageEnd.SILENCE, mid)
    assert ended.duration_s == pytest.approx((160 - BEEP_FRAMES + TAIL_FRAMES) / 50)
    # It ended when the silence ran out: 2 s after the end of frame 159.
    assert run.t == pytest.approx(T0 + 160 * 0.02 + 2.0)
    assert run.writer.closed == [mid]
    assert len(run.media.taps) == 0 and run.svc.next_deadline() is None


def test_audio_reaches_the_writer_in_one_second_pieces_never_frame_by_frame():
    run = Run()
    run.board.talk[0] = talking(0, 10_000)
    record(run)
    run.frames(BEEP_FRAMES + 5 * 50)
    sizes = {n for _, n in run.writer.writes}
    assert sizes == {HAND_FRAMES * 2 * F}
    assert len(run.writer.writes) == 4  # 250 frames taken, 6 always kept back
    run.do(StopMessage("C1", MessageEnd.HASH))
    assert len(run.writer.samples("M001")) == (5 * 50 - HASH_TRIM_FRAMES) * F


def test_hash_cuts_the_key_tone_off_the_end():
    run = Run()
    run.board.talk[0] = talking(0, 10_000)
    record(run)
    run.frames(100)
    [ended] = run.do(StopMessage("C1", MessageEnd.HASH))
    assert ended.reason is MessageEnd.HASH
    assert np.array_equal(run.writer.samples("M001"),
                          expected(BEEP_FRAMES, 100 - HASH_TRIM_FRAMES))
    assert ended.duration_s == pytest.approx((100 - BEEP_FRAMES - HASH_TRIM_FRAMES) / 50)


def test_hash_during_the_beep_stops_the_beep_and_keeps_nothing():
    run = Run()
    run.board.talk[0] = talking(0, 10_000)
    record(run)
    run.frames(5)
    [ended] = run.do(StopMessage("C1", MessageEnd.HASH))
    assert ended.duration_s == 0.0 and run.writer.samples("M001").size == 0
    run.frames(3)
    assert not run.board.heard[-1][0].any()  # the beep stopped with the message


def test_a_message_ends_at_its_max_length_with_exactly_that_much_audio():
    run = Run()
    run.board.talk[0] = talking(0, 10_000)
    record(run, max_s=3.0)
    run.frames(BEEP_FRAMES + 3 * 50 + 10)
    [ended] = run.ended()
    assert ended.reason is MessageEnd.MAX
    assert np.array_equal(run.writer.samples("M001"), expected(BEEP_FRAMES, BEEP_FRAMES + 150))
    assert ended.duration_s == 3.0


def test_a_caller_who_says_nothing_leaves_nothing():
    run = Run()
    record(run, silence_s=1.0)
    run.frames(BEEP_FRAMES + 60)
    [ended] = run.ended()
    assert (ended.reason, ended.duration_s) == (MessageEnd.SILENCE, 0.0)
    assert run.writer.samples("M001").size == 0


def test_a_quiet_pause_within_the_silence_limit_stays_in_the_message():
    run = Run()
    # Speech, 1.5 s of pause (under the 2 s limit), speech again.
    run.board.talk[0] = lambda f: voice(f) if f < 60 or 135 <= f < 150 else None
    record(run)
    run.frames(400)
    [ended] = run.ended()
    assert ended.reason is MessageEnd.SILENCE
    want = np.concatenate([expected(BEEP_FRAMES, 60), np.zeros(75 * F, np.int16),
                           expected(135, 150, TAIL_FRAMES)])
    assert np.array_equal(run.writer.samples("M001"), want)


def test_level_decides_silence_at_the_configured_dbm0():
    assert silence_threshold(-45.0) == pytest.approx((22700 / 2 ** 0.5 * 10 ** (-45 / 20)) ** 2)
    run = Run()
    run.board.talk[0] = talking(0, 10_000, level_dbm0=-50.0)  # below -45: silence
    run.board.talk[1] = talking(0, 10_000, level_dbm0=-40.0)  # above: speech
    record(run, line="trunk/1", call="C1")
    record(run, line="trunk/2", call="C2", mailbox="sales")
    run.frames(BEEP_FRAMES + 150)
    assert [(e.call_id, e.reason) for e in run.ended()] == [("C1", MessageEnd.SILENCE)]
    assert run.svc.next_deadline() is not None  # C2 goes on


def test_frames_the_tick_skipped_become_silence_so_the_message_keeps_time():
    run = Run()
    run.board.talk[0] = talking(0, 10_000)
    record(run)
    run.frames(BEEP_FRAMES + 10)
    run.media.skip(7)
    run.frames(10)
    run.do(StopMessage("C1", MessageEnd.STOPPED))
    got = run.writer.samples("M001")
    want = np.concatenate([expected(BEEP_FRAMES, BEEP_FRAMES + 10), np.zeros(7 * F, np.int16),
                           expected(BEEP_FRAMES + 17, BEEP_FRAMES + 27)])
    assert np.array_equal(got, want)


def test_two_callers_at_once_are_recorded_apart():
    run = Run()
    run.board.talk[0] = talking(0, 10_000, hz=440)
    run.board.talk[1] = talking(0, 10_000, hz=700)
    record(run, line="trunk/1", call="C1")
    run.frames(7)
    record(run, line="trunk/2", call="C2", mailbox="sales")
    run.frames(BEEP_FRAMES + 60)
    run.do(StopMessage("C1", MessageEnd.STOPPED))
    run.do(StopMessage("C2", MessageEnd.STOPPED))
    a, b = run.writer.samples("M001"), run.writer.samples("M002")
    assert np.array_equal(a, expected(BEEP_FRAMES, 7 + BEEP_FRAMES + 60))
    assert np.array_equal(b, np.concatenate([voice(f, hz=700) for f in
                                             range(7 + BEEP_FRAMES, 7 + BEEP_FRAMES + 60)]))
    assert run.writer.opened["M002"][0] == Path("sales/M002.wav")


def _ended_call(call_id: str, t: float) -> CallEnded:
    cdr = Cdr(uniqueid=call_id, linkedid=call_id, src="13900001111", dst="8000", clid="",
              start=t, answer=None, end=t, duration=0, billsec=0, disposition="NO ANSWER",
              direction="inbound")
    return CallEnded(call_id, t, Disposition.NO_ANSWER, 0, 0, "caller",
                     HangupCause.NORMAL_CLEARING, 16, cdr)


def test_the_hang_up_ends_the_message_keeping_everything():
    run = Run()
    run.board.talk[0] = talking(0, 10_000)
    record(run)
    run.frames(BEEP_FRAMES + 80)
    [ended] = run.do(_ended_call("C1", run.t))
    assert ended.reason is MessageEnd.HANGUP
    assert np.array_equal(run.writer.samples("M001"), expected(BEEP_FRAMES, BEEP_FRAMES + 80))
    assert run.do(StopMessage("C1", MessageEnd.STOPPED)) == []  # already over
    assert run.do(_ended_call("other", run.t)) == []


# ------------------------------------------------------------------ refusals


def test_a_box_that_does_not_exist_or_a_line_off_the_plane_is_an_error_at_once():
    run = Run()
    [e1] = run.do(RecordMessage("C1", "trunk/1", "nobody", "1"))
    [e2] = run.do(RecordMessage("C2", "trunk/9", "1001", "1"))
    assert (e1.reason, e2.reason) == (MessageEnd.ERROR, MessageEnd.ERROR)
    assert "no mailbox 'nobody'" in (e1.error or "")
    assert "no line trunk/9" in (e2.error or "")
    assert run.writer.opened == {} and run.svc.next_deadline() is None


def test_a_second_message_for_the_same_call_replaces_the_first():
    run = Run()
    record(run)
    run.frames(30)
    record(run, mailbox="sales")
    assert run.writer.closed == ["M001"]
    assert list(run.svc._by_call.items()) == [("C1", "M002")]


# ------------------------------------------------------------ filing the message


def test_a_closed_message_is_indexed_with_the_figures_of_its_file_then_announced():
    run = Run()
    run.board.talk[0] = talking(0, 10_000)
    record(run)
    run.frames(BEEP_FRAMES + 100)
    run.do(StopMessage("C1", MessageEnd.HASH))
    run.svc.closed("M001", _Summary(1.88, 30_124, "ab" * 32))
    run.feed_back()
    [row] = run.index.rows
    assert row == MessageRow("M001", "1001", "C1", "13900001111", "1001/M001.wav", T0, 1.88,
                             30_124, "ab" * 32)
    assert run.svc.messages == {}
    run.index.on_saved(row, 3)  # the index committed it
    [new] = run.feed_back()
    assert isinstance(new, VoicemailNew)
    assert (new.call_id, new.mailbox, new.message_id, new.caller, new.duration_s, new.file,
            new.owner, new.waiting) == ("C1", "1001", "M001", "13900001111", 1.88,
                                        "/var/vm/1001/M001.wav", "agent:1001", 3)
    assert new.name == "voicemail.new"


def test_a_message_shorter_than_min_s_is_deleted_not_indexed():
    run = Run()
    record(run)
    run.frames(30)
    run.do(_ended_call("C1", run.t))
    run.svc.closed("M001", _Summary(0.2, 44 + 3200, "00" * 32))
    assert run.feed_back() == []
    assert run.index.rows == [] and run.index.discarded == [Path("1001/M001.wav")]


def test_a_box_without_an_owner_announces_none():
    run = Run()
    record(run, mailbox="afterhours")
    run.do(StopMessage("C1", MessageEnd.HASH))
    run.svc.closed("M001", _Summary(5.0, 80_044, "cd" * 32))
    run.feed_back()
    run.index.on_saved(run.index.rows[0], 1)
    [new] = run.feed_back()
    assert new.owner is None and new.waiting == 1


def test_a_disk_that_refuses_the_file_ends_the_message_and_keeps_what_reached_it():
    run = Run()
    run.board.talk[0] = talking(0, 10_000)
    record(run)
    run.frames(BEEP_FRAMES + 150)
    run.svc.failed("M001", "No space left on device: /var/vm/1001/M001.wav",
                   _Summary(2.0, 32_044, "ef" * 32))
    [ended] = run.feed_back()
    assert (ended.reason, ended.error) == (
        MessageEnd.ERROR, "No space left on device: /var/vm/1001/M001.wav")
    assert run.svc.next_deadline() is None and len(run.media.taps) == 0
    assert [r.duration_s for r in run.index.rows] == [2.0]
    # The writer's later report for it (there is none, but a stale one) changes nothing.
    assert run.do(WriterClosed("M001", 2.0, 32_044, "ef" * 32)) == []


def test_a_file_that_could_not_even_be_created_leaves_no_row():
    run = Run()
    record(run)
    run.do(WriterFailed("M001", "Permission denied: /var/vm/1001/M001.wav"))
    assert [e.reason for e in run.ended()] == [MessageEnd.ERROR]
    assert run.index.rows == [] and run.index.discarded == [Path("1001/M001.wav")]


def test_a_failure_reported_after_the_end_still_keeps_a_long_enough_message():
    run = Run()
    record(run)
    run.do(StopMessage("C1", MessageEnd.HASH))
    run.do(WriterFailed("M001", "Input/output error: x", 4.0, 64_044, "aa" * 32))
    assert [r.size for r in run.index.rows] == [64_044]


def test_saved_rows_arrive_as_inputs_the_service_turns_into_events():
    run = Run()
    row = MessageRow("M9", "sales", "C9", "", "sales/M9.wav", T0, 3.0, 48_044, None)
    [new] = run.do(MessageSaved(row, 2))
    assert (new.owner, new.caller, new.file) == ("queue:sales", "", "/var/vm/sales/M9.wav")


class _Summary:
    def __init__(self, duration_s: float, size: int, sha256: str) -> None:
        self.duration_s, self.size, self.sha256 = duration_s, size, sha256


# ------------------------------------------------------------------ pieces


def test_the_beep_is_the_configured_tone_at_its_level_with_soft_edges():
    b = beep(1000.0, 400)
    assert b.dtype == np.int16 and len(b) == 3200 and not b.flags.writeable
    assert abs(int(b[0])) <= 1 and abs(int(b[-1])) <= 200
    assert int(np.abs(b).max()) == pytest.approx(DBM0_PEAK * 10 ** (BEEP_DBM0 / 20), abs=2)
    spectrum = np.abs(np.fft.rfft(b.astype(float)))
    assert np.argmax(spectrum) * 8000 / len(b) == pytest.approx(1000.0, abs=3)
    with pytest.raises(ValueError):
        beep(4500.0, 400)
    with pytest.raises(ValueError):
        beep(1000.0, 0)


def test_mailboxes_give_greetings_owners_and_refuse_folder_tricks():
    g = Path("/p/zh/vm.wav")
    own = Path("/p/zh/alice.wav")
    boxes = Mailboxes(VoicemailSettings(greeting=(g,), boxes=MappingProxyType({
        "1001": Mailbox("1001", owner="agent:1001", greeting=(own,)),
        "sales": Mailbox("sales", owner="queue:sales"),
        "..": Mailbox(".."),
    })))
    assert boxes.greeting("1001") == (own,)
    assert boxes.greeting("sales") == (g,)
    assert boxes.greeting("nobody") is None and boxes.greeting("..") is None
    assert boxes.names() == ["1001", "sales"]
    assert boxes.greeting_files() == [g, own]
    assert folder_problem(".") is not None and folder_problem("a.b") is None
    msg = missing_mailbox("sale", boxes.settings.boxes, source=Path("c.yaml"))
    assert msg is not None and "did you mean 'sales'?" in msg and "c.yaml" in msg
    assert missing_mailbox("sales", boxes.settings.boxes) is None
