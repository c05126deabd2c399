"""The voicemail service: the daemon's side of ``RecordMessage`` (the edge, DESIGN §1).

The IVR interpreter decides *when* a message is taken (a ``voicemail`` node, a
``voicemail:BOX`` route or queue overflow) and plays the greeting; this engine under
the shell does the rest for it:

1. ``RecordMessage``: the beep (a generated tone) on the caller's line, a media tap on
   that line (:class:`~switchd.recorder.vm_tap.MessageTap`: the caller's inbound only,
   from the frame the beep ends), and a mono 16-bit PCM WAV opened through the
   crash-safe :class:`~switchd.recorder.writer.RecordingWriter` at
   ``<voicemail dir>/<box>/<message id>.wav``;
2. the end: ``StopMessage`` (the caller pressed ``#``; the key's tone is cut off), the
   caller's hang-up (``call.ended``), or this engine's own timers: ``silence_s`` after
   the last sound (the trailing silence is cut to half a second) or ``max_s`` after the
   beep. It closes the file and answers the interpreter with ``MessageEnded``;
3. the writer's report (``on_closed``/``on_error``, run on the loop): a message shorter
   than ``min_s`` (a caller who hung up at the beep) is deleted; any other is indexed
   (:class:`~switchd.recorder.vm_index.MessageIndex`, figures from the file) and, once
   its row is committed, announced with ``voicemail.new`` (``owner``, ``waiting``).

A disk that refuses the file ends the message at once (``MessageEnded`` reason
``error``; the flow goes on) and what reached the disk is indexed if long enough.

Each message is a small state machine (:class:`MsgState`, table :data:`TRANSITIONS`
keyed by (state, :class:`MsgInput`)). Reports from the writer and the index arrive
as inputs too (:class:`WriterClosed`, :class:`WriterFailed`, :class:`MessageSaved`,
through ``submit``), so every output — ``MessageEnded`` for the interpreter,
``voicemail.new`` for the bus — comes out of :meth:`VoicemailService.handle`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import structlog

from switchd.core.ids import CallIds
from switchd.engine import Input
from switchd.events import CallEnded, VoicemailNew
from switchd.ivr.inputs import MessageEnd, MessageEnded, RecordMessage, StopMessage
from switchd.lines.media import MediaPlane
from switchd.lines.tones import DBM0_PEAK
from switchd.recorder.mailboxes import Mailboxes
from switchd.recorder.model import RecordFormat
from switchd.recorder.vm_index import MessageIndex, MessageRow
from switchd.recorder.vm_tap import FRAME, FRAMES_PER_S, Capture, MessageTap, Trim
from switchd.recorder.wav import FileSummary

__all__ = [
    "BEEP_DBM0",
    "TRANSITIONS",
    "MessageSaved",
    "MsgInput",
    "MsgState",
    "VoicemailService",
    "WriterClosed",
    "WriterFailed",
    "beep",
]

log = structlog.get_logger("switchd")

RATE = 8000
#: The beep's level (dBm0): clearly audible, well below the tones' -10 dBm0 peaks.
BEEP_DBM0 = -12.0
#: Rise and fall of the beep (s): no click at its edges.
BEEP_RAMP_S = 0.005


def beep(hz: float, ms: int) -> np.ndarray:
    """The beep before a message: a ``hz`` sine of ``ms`` milliseconds at
    :data:`BEEP_DBM0` with raised-cosine edges; int16 1-D at 8 kHz, read-only.
    Raises ValueError unless 0 < ``hz`` < 4000 (below Nyquist) and ``ms`` > 0."""
    if not (0 < hz < RATE / 2) or ms <= 0:
        raise ValueError(f"a beep needs 0 < hz < 4000 and ms > 0, got {hz} Hz, {ms} ms")
    n = max(1, round(RATE * ms / 1000))
    t = np.arange(n) / RATE
    amp = DBM0_PEAK * 10.0 ** (BEEP_DBM0 / 20.0)
    wave = amp * np.sin(2 * np.pi * hz * t)
    ramp = min(n // 2, round(RATE * BEEP_RAMP_S))
    if ramp:
        edge = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
        wave[:ramp] *= edge
        wave[n - ramp:] *= edge[::-1]
    out = np.round(wave).astype(np.int16)
    out.flags.writeable = False
    return out


class MessageWriter(Protocol):
    """What the service needs of :class:`~switchd.recorder.writer.RecordingWriter`."""

    def open(self, rec_id: str, relpath: Path, channels: int, fmt: RecordFormat) -> None:
        """Queue the creation of the file (never blocks)."""
        ...

    def write(self, rec_id: str, data: bytes) -> None:
        """Queue audio (never blocks)."""
        ...

    def close(self, rec_id: str) -> None:
        """Queue the close; ``on_closed``/``on_error`` reports it."""
        ...

    async def stop(self, timeout_s: float) -> int:
        """Close what is open (each reported), end the thread; returns what was left."""
        ...


# ----------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class WriterClosed(Input):
    """The writer closed message ``message_id``'s file: figures from the file."""

    message_id: str
    duration_s: float
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class WriterFailed(Input):
    """The writer could not write message ``message_id`` (``reason``: what the OS said and
    the file); ``duration_s``/``size``/``sha256`` describe what reached the disk (None:
    nothing usable)."""

    message_id: str
    reason: str
    duration_s: float | None = None
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class MessageSaved(Input):
    """The index committed ``row``; its box holds ``waiting`` unheard messages."""

    row: MessageRow
    waiting: int


# ------------------------------------------------------------------ the machine


class MsgState(StrEnum):
    """Where one message is."""

    #: The beep sounds or the caller's line is being taken.
    RECORDING = "recording"
    #: Ended; the writer is closing the file (its report decides: indexed or deleted).
    CLOSING = "closing"


class MsgInput(StrEnum):
    """What can happen to a message."""

    END = "end"          #: StopMessage, the hang-up, or a silence/max timer
    CLOSED = "closed"    #: the writer closed the file
    FAILED = "failed"    #: the writer could not write it


#: (state, input) -> the method that handles it; anything else is a stale report for a
#: message already done (ignored). A message leaves the table once its file is settled.
TRANSITIONS: dict[tuple[MsgState, MsgInput], str] = {
    (MsgState.RECORDING, MsgInput.END): "_end",
    (MsgState.RECORDING, MsgInput.FAILED): "_fail_while_recording",
    # The writer closed it on its own (switchd stopping): the message ends where it is.
    (MsgState.RECORDING, MsgInput.CLOSED): "_closed_while_recording",
    (MsgState.CLOSING, MsgInput.CLOSED): "_file",
    (MsgState.CLOSING, MsgInput.FAILED): "_file_failed",
}


@dataclass(eq=False, slots=True)
class _Message:
    """One message: who left it where, its limits, and its capture."""

    message_id: str
    call_id: str
    line: str
    mailbox: str
    caller: str
    relpath: Path
    #: When RecordMessage came (epoch s): the message's ``received`` time.
    received: float
    #: When the beep ends and recording starts (epoch s).
    start: float
    silence_s: float
    max_s: float
    beep_play: int | None
    capture: Capture
    state: MsgState = MsgState.RECORDING
    #: What the interpreter was told (its duration, s).
    kept_s: float = 0.0
    error: str | None = field(default=None)

    def deadline(self) -> float:
        """When the message ends by itself: ``max_s`` after the beep, or ``silence_s``
        after the last sound (after the beep when there was none)."""
        sound = self.capture.sound_at
        quiet_since = self.start if sound is None else max(sound, self.start)
        return min(self.start + self.max_s, quiet_since + self.silence_s)


class VoicemailService:
    """Takes voicemail messages on the media plane (see the module docstring).

    ``mailboxes``: the boxes and the ``voicemail:`` settings in force (shared with the
    IVR and the index; a reload reconfigures it). ``media``: the plane whose lines the
    callers are on. ``submit``: hands an input to the shell (``Shell.submit``), for the
    writer's and the index's reports, which come from outside any engine call. ``ids``:
    ``now -> message id`` (time-sortable ULIDs by default). Wire the writer and the
    index with :meth:`attach` before the first message.
    """

    TAKES: tuple[type, ...] = (RecordMessage, StopMessage, WriterClosed, WriterFailed,
                               MessageSaved)
    FOLLOWS: tuple[type, ...] = (CallEnded,)

    def __init__(self, mailboxes: Mailboxes, media: MediaPlane, *,
                 submit: Callable[[Input], object],
                 ids: Callable[[float], str] | None = None) -> None:
        self.mailboxes = mailboxes
        self.media = media
        self.submit = submit
        self.ids = ids or CallIds()
        self.writer: MessageWriter | None = None
        self.index: MessageIndex | None = None
        self.tap = MessageTap(self._write, mailboxes.settings.silence_dbm0)
        #: message id -> the message (recording or closing)
        self.messages: dict[str, _Message] = {}
        #: call id -> the id of the message being recorded for it
        self._by_call: dict[str, str] = {}
        self._beep_key: tuple[float, int] | None = None
        self._beep: np.ndarray | None = None
        self._handlers: dict[type, Callable[[float, Any], list[Any]]] = {
            RecordMessage: self._record, StopMessage: self._stop, CallEnded: self._hangup,
            WriterClosed: self._writer_closed, WriterFailed: self._writer_failed,
            MessageSaved: self._saved,
        }
        self._transitions: dict[tuple[MsgState, MsgInput], Callable[..., list[Any]]] = {
            key: getattr(self, name) for key, name in TRANSITIONS.items()}

    def attach(self, *, writer: MessageWriter, index: MessageIndex) -> None:
        """Use ``writer`` for the files (its ``on_closed``/``on_error`` must be
        :meth:`closed`/:meth:`failed`) and ``index`` for the rows (its ``on_saved`` is set
        to :meth:`saved` here)."""
        self.writer = writer
        self.index = index
        index.on_saved = self.saved

    def reconfigure(self) -> None:
        """The mailboxes' settings changed (a reload): the silence level applies from the
        next frame; limits, greetings and the beep to the next message."""
        self.tap.set_level(self.mailboxes.settings.silence_dbm0)

    # ----------------------------------------------------- the writer's callbacks

    def closed(self, message_id: str, summary: FileSummary) -> None:
        """``RecordingWriter(on_closed=…)``: run on the loop (``call_soon_threadsafe``)."""
        self.submit(WriterClosed(message_id, summary.duration_s, summary.size, summary.sha256))

    def failed(self, message_id: str, reason: str, summary: FileSummary | None) -> None:
        """``RecordingWriter(on_error=…)``: run on the loop."""
        if summary is None:
            self.submit(WriterFailed(message_id, reason))
        else:
            self.submit(WriterFailed(message_id, reason, summary.duration_s, summary.size,
                                     summary.sha256))

    def saved(self, row: MessageRow, waiting: int) -> None:
        """``MessageIndex(on_saved=…)``: the row is committed (set by :meth:`attach`)."""
        self.submit(MessageSaved(row, waiting))

    async def close(self, timeout_s: float) -> int:
        """At shutdown, after the calls ended (so every message was ended and its file
        closing): stop the writer (each file reported), let its last reports in (they
        come through ``call_soon``), then close the index, each within ``timeout_s``
        seconds. Returns the files and rows left unfinished (0: all done)."""
        left = await self.writer.stop(timeout_s) if self.writer is not None else 0
        for _ in range(3):
            await asyncio.sleep(0)
        if self.index is not None:
            left += await self.index.close(timeout_s)
        return left

    # ------------------------------------------------------------ engine protocol

    def handle(self, now: float, item: Any) -> list[Any]:
        """Take a RecordMessage/StopMessage, a writer or index report, or ``call.ended``.
        Returns ``MessageEnded`` for the interpreter and ``voicemail.new`` events.
        Raises TypeError for anything else."""
        handler = self._handlers.get(type(item))
        if handler is None:
            raise TypeError(f"the voicemail service takes "
                            f"{', '.join(t.__name__ for t in self.TAKES)}, not {item!r}")
        return handler(now, item)

    def next_deadline(self) -> float | None:
        """When the earliest message ends by silence or length (epoch s), or None.

        The silence deadline moves later each time the caller speaks (the tap writes
        ``sound_at``): a timer armed earlier fires early and finds nothing due."""
        best: float | None = None
        for msg_id in self._by_call.values():
            d = self.messages[msg_id].deadline()
            if best is None or d < best:
                best = d
        return best

    def handle_timer(self, now: float) -> list[Any]:
        """End the messages whose silence or length ran out by ``now``."""
        out: list[Any] = []
        for msg_id in list(self._by_call.values()):
            m = self.messages[msg_id]
            if m.deadline() <= now:
                reason = MessageEnd.MAX if m.start + m.max_s <= now else MessageEnd.SILENCE
                out += self._input(now, m, MsgInput.END, reason)
        return out

    # ------------------------------------------------------------------ inputs

    def _record(self, now: float, item: RecordMessage) -> list[Any]:
        out: list[Any] = []
        old = self._by_call.get(item.call_id)
        if old is not None:
            # A second message for the same call (a flow that came round): the first ends
            # here; the interpreter asked for the new one, so it hears only of that one.
            self._input(now, self.messages[old], MsgInput.END, MessageEnd.STOPPED)
        settings = self.mailboxes.settings
        box = self.mailboxes.get(item.mailbox)
        if box is None:
            return out + [MessageEnded(item.call_id, MessageEnd.ERROR, error=(
                f"no mailbox {item.mailbox!r} (a reload may have removed it)"))]
        channel = self.media.channel_of.get(item.line)
        if channel is None:
            return out + [MessageEnded(item.call_id, MessageEnd.ERROR,
                                       error=f"no line {item.line} on the media plane")]
        if self.writer is None:
            return out + [MessageEnded(item.call_id, MessageEnd.ERROR,
                                       error="the voicemail writer is not running")]
        message_id = self.ids(now)
        relpath = Path(box.name) / f"{message_id}.wav"
        self.writer.open(message_id, relpath, 1, RecordFormat.PCM)
        tone = self._beep_samples(settings.beep_hz, settings.beep_ms)
        play = self.media.play(item.line, tone, loop=False, barge_in=False)
        beep_frames = math.ceil(len(tone) / FRAME)
        max_s = item.max_s if item.max_s is not None else settings.max_s
        silence_s = item.silence_s if item.silence_s is not None else settings.silence_s
        # The beep plays from the next frame: recording starts the frame after its end.
        capture = Capture(message_id, start_frame=self.media.frames + beep_frames,
                          max_frames=round(max_s * FRAMES_PER_S))
        m = _Message(message_id, item.call_id, item.line, box.name, item.caller, relpath,
                     received=now, start=now + beep_frames / FRAMES_PER_S,
                     silence_s=silence_s, max_s=max_s, beep_play=play, capture=capture)
        self.messages[message_id] = m
        self._by_call[item.call_id] = message_id
        self.tap.add(capture)
        self.media.taps.add(message_id, channel, self.tap)
        return out

    def _stop(self, now: float, item: StopMessage) -> list[Any]:
        msg_id = self._by_call.get(item.call_id)
        if msg_id is None:
            return []  # none being recorded (ended already, or never started)
        return self._input(now, self.messages[msg_id], MsgInput.END, item.reason)

    def _hangup(self, now: float, ev: CallEnded) -> list[Any]:
        msg_id = self._by_call.get(ev.call_id)
        if msg_id is None:
            return []
        return self._input(now, self.messages[msg_id], MsgInput.END, MessageEnd.HANGUP)

    def _writer_closed(self, now: float, item: WriterClosed) -> list[Any]:
        m = self.messages.get(item.message_id)
        return [] if m is None else self._input(now, m, MsgInput.CLOSED, item)

    def _writer_failed(self, now: float, item: WriterFailed) -> list[Any]:
        m = self.messages.get(item.message_id)
        return [] if m is None else self._input(now, m, MsgInput.FAILED, item)

    def _saved(self, now: float, item: MessageSaved) -> list[Any]:
        row = item.row
        box = self.mailboxes.get(row.mailbox)
        directory = self.index.directory if self.index is not None else \
            self.mailboxes.settings.directory
        return [VoicemailNew(row.call_id, now, row.mailbox, row.id, row.caller,
                             round(row.duration_s, 3), str(directory / row.file),
                             box.owner if box is not None else None, item.waiting)]

    def _input(self, now: float, m: _Message, what: MsgInput, arg: Any) -> list[Any]:
        action = self._transitions.get((m.state, what))
        if action is None:
            return []  # a stale report (e.g. a second close report): nothing to do
        result: list[Any] = action(now, m, arg)
        return result

    # ------------------------------------------------------------- transitions

    def _end(self, now: float, m: _Message, reason: MessageEnd) -> list[Any]:
        """Stop taking the caller's line, hand the last bytes over (cut as ``reason``
        says) and close the file; the interpreter hears of it at once."""
        self._detach(m)
        trim = {MessageEnd.SILENCE: Trim.SILENCE, MessageEnd.HASH: Trim.HASH}.get(
            reason, Trim.NONE)
        data, kept = m.capture.finish(trim)
        assert self.writer is not None
        if data:
            self.writer.write(m.message_id, data)
        self.writer.close(m.message_id)
        m.state = MsgState.CLOSING
        m.kept_s = kept / FRAMES_PER_S
        return [MessageEnded(m.call_id, reason, m.message_id, round(m.kept_s, 3))]

    def _fail_while_recording(self, now: float, m: _Message, item: WriterFailed) -> list[Any]:
        """The disk refused the file: the message ends now (the flow goes on) and what
        reached the disk is kept if long enough."""
        self._detach(m)
        m.capture.finish(Trim.NONE)  # nothing more can be written
        assert self.writer is not None
        self.writer.close(m.message_id)  # ignored by the writer: it reported the failure
        m.state = MsgState.CLOSING
        out: list[Any] = [MessageEnded(m.call_id, MessageEnd.ERROR, m.message_id,
                                       round(item.duration_s or 0.0, 3), item.reason)]
        return out + self._file_failed(now, m, item)

    def _closed_while_recording(self, now: float, m: _Message, item: WriterClosed) -> list[Any]:
        self._detach(m)
        m.capture.finish(Trim.NONE)
        m.state = MsgState.CLOSING
        out: list[Any] = [MessageEnded(m.call_id, MessageEnd.STOPPED, m.message_id,
                                       round(item.duration_s, 3),
                                       "the voicemail writer closed the file (stopping)")]
        return out + self._file(now, m, item)

    def _file(self, now: float, m: _Message, item: WriterClosed) -> list[Any]:
        """The file is closed: index it, or delete it when shorter than ``min_s``."""
        self._settle(m, item.duration_s, item.size, item.sha256)
        return []

    def _file_failed(self, now: float, m: _Message, item: WriterFailed) -> list[Any]:
        log.error("voicemail_failed", message=m.message_id, mailbox=m.mailbox,
                  call_id=m.call_id, reason=item.reason)
        if item.duration_s is None or item.size is None:
            self._forget(m)
            if self.index is not None:
                self.index.discard(m.relpath)  # a header at most
            return []
        self._settle(m, item.duration_s, item.size, item.sha256)
        return []

    # ----------------------------------------------------------------- helpers

    def _settle(self, m: _Message, duration_s: float, size: int, sha256: str | None) -> None:
        self._forget(m)
        if self.index is None:
            return
        if duration_s < self.mailboxes.settings.min_s:
            log.info("voicemail_discarded", message=m.message_id, mailbox=m.mailbox,
                     call_id=m.call_id, duration_s=round(duration_s, 3),
                     min_s=self.mailboxes.settings.min_s)
            self.index.discard(m.relpath)
            return
        self.index.save(MessageRow(m.message_id, m.mailbox, m.call_id, m.caller,
                                   m.relpath.as_posix(), m.received, duration_s, size, sha256))

    def _detach(self, m: _Message) -> None:
        """The line is no longer taken for ``m`` (tap removed, the beep stopped)."""
        self.media.taps.remove(m.message_id)
        self.tap.remove(m.message_id)
        self._by_call.pop(m.call_id, None)
        if m.beep_play is not None and m.line in self.media.channel_of:
            self.media.stop(m.line, m.beep_play)  # still beeping: a # at once, a hang-up
            m.beep_play = None

    def _forget(self, m: _Message) -> None:
        self.messages.pop(m.message_id, None)

    def _write(self, message_id: str, data: bytes) -> None:
        """The tap's hand-off (about once a second per message)."""
        if self.writer is not None:
            self.writer.write(message_id, data)

    def _beep_samples(self, hz: float, ms: int) -> np.ndarray:
        if self._beep is None or self._beep_key != (hz, ms):
            self._beep, self._beep_key = beep(hz, ms), (hz, ms)
        return self._beep
