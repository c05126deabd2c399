"""A prompt player and a voicemail recorder for virtual time: ``switchd flows try`` and
the interpreter tests.

:class:`VirtualPlayer` is an engine (DESIGN §1) that takes the interpreter's
:class:`~switchd.ivr.inputs.PlayPrompt` / :class:`~switchd.ivr.inputs.StopPrompt`
and answers :class:`~switchd.ivr.inputs.PromptDone` when the audio would have
ended: ``now`` + the files' durations. No audio moves; on a
:class:`~switchd.shell.VirtualClock` a 30 s prompt takes no wall time, while
timeouts and type-ahead behave exactly as on a line. It keeps a log of what played
and what was stopped, for tests and traces. :class:`VirtualRecorder` answers
:class:`~switchd.ivr.inputs.RecordMessage` the way the daemon's voicemail service would
for a caller who says nothing after the beep.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from switchd.engine import TimerHeap
from switchd.events import CallEnded
from switchd.ivr.inputs import (
    MessageEnd,
    MessageEnded,
    PlayPrompt,
    PromptDone,
    RecordMessage,
    StopMessage,
    StopPrompt,
)

__all__ = ["VirtualPlayer", "VirtualRecorder"]


class VirtualPlayer:
    """Plays prompts in virtual time.

    ``duration(path)``: seconds of audio in a file (a dict lookup in tests, the
    decoded length in ``flows try``); when it raises (OSError, KeyError, ValueError)
    the play is answered at once with ``PromptDone(error=…)`` naming the file, as the
    daemon's playout does for a prompt it cannot play.

    One play per line: a new play replaces the one there (no ``PromptDone`` for the
    replaced one); ``StopPrompt`` and the call's end cancel it; a looped play never
    ends by itself.
    """

    TAKES: tuple[type, ...] = (PlayPrompt, StopPrompt)
    #: The caller's hang-up ends its play even if nobody sends StopPrompt.
    FOLLOWS: tuple[type, ...] = (CallEnded,)

    def __init__(self, duration: Callable[[Path], float]) -> None:
        self.duration = duration
        #: (time, call id, files) of every play, in order.
        self.played: list[tuple[float, str, tuple[Path, ...]]] = []
        #: (time, call id) of every play stopped before its end.
        self.stopped: list[tuple[float, str]] = []
        #: line -> (call id, token) of the play there
        self._playing: dict[str, tuple[str, int]] = {}
        #: line -> when its play ends (payload: call id, token, error)
        self._timers: TimerHeap[str] = TimerHeap()

    def handle(self, now: float, item: Any) -> list[PromptDone]:
        """Start or stop a play (or forget an ended call's). Returns nothing: ends come by timer."""
        if isinstance(item, PlayPrompt):
            self.played.append((now, item.call_id, item.files))
            self._playing[item.line] = (item.call_id, item.token)
            try:
                length = sum(self.duration(f) for f in item.files)
                error = None
            except (OSError, KeyError, ValueError) as exc:
                length, error = 0.0, f"cannot play {', '.join(map(str, item.files))}: {exc!r}"
            if item.loop and error is None:
                self._timers.cancel(item.line)  # hold music: plays until stopped
            else:
                self._timers.arm(item.line, now + length, (item.call_id, item.token, error))
        elif isinstance(item, StopPrompt):
            current = self._playing.get(item.line)
            if current is not None and current[0] == item.call_id:
                self._stop(now, item.line)
        elif isinstance(item, CallEnded):
            for line, (call_id, _) in list(self._playing.items()):
                if call_id == item.call_id:
                    self._stop(now, line)
        return []

    def _stop(self, now: float, line: str) -> None:
        call_id, _ = self._playing.pop(line)
        self._timers.cancel(line)
        self.stopped.append((now, call_id))

    def next_deadline(self) -> float | None:
        """When the earliest play ends, or None."""
        return self._timers.next_deadline()

    def handle_timer(self, now: float) -> list[PromptDone]:
        """``PromptDone`` for every play that ended by ``now``."""
        out: list[PromptDone] = []
        while (due := self._timers.pop_due(now)) is not None:
            line, (call_id, token, error) = due
            self._playing.pop(line, None)
            out.append(PromptDone(call_id, token, error))
        return out

    def busy(self) -> bool:
        """True while any play (looped or not) is going on."""
        return bool(self._playing)


class VirtualRecorder:
    """Takes voicemail messages in virtual time from callers who say nothing.

    A message starts ``beep_s`` after :class:`RecordMessage`; with no sound ever, it
    ends by silence ``silence_s`` after that, or at ``max_s`` if that comes first
    (each the message's own when it gives one), as the daemon's service would end it.
    ``StopMessage`` ends it at once (``#``: the audio until then is the message).
    The caller's hang-up ends it without a report (the flow is gone). No audio is
    written: :attr:`messages` keeps (call id, mailbox, reason, duration s).
    """

    TAKES: tuple[type, ...] = (RecordMessage, StopMessage)
    FOLLOWS: tuple[type, ...] = (CallEnded,)

    def __init__(self, *, silence_s: float = 5.0, max_s: float = 120.0,
                 beep_s: float = 0.4) -> None:
        self.silence_s = silence_s
        self.max_s = max_s
        self.beep_s = beep_s
        #: (call id, mailbox, reason, duration s) of every message, in order.
        self.messages: list[tuple[str, str, MessageEnd, float]] = []
        #: call id -> (mailbox, when recording started)
        self._open: dict[str, tuple[str, float]] = {}
        #: call id -> when its message ends by itself (payload: the reason)
        self._timers: TimerHeap[str] = TimerHeap()

    def handle(self, now: float, item: Any) -> list[MessageEnded]:
        """Start or stop a message (or forget an ended call's)."""
        if isinstance(item, RecordMessage):
            start = now + self.beep_s
            silence = item.silence_s if item.silence_s is not None else self.silence_s
            longest = item.max_s if item.max_s is not None else self.max_s
            self._open[item.call_id] = (item.mailbox, start)
            reason = MessageEnd.SILENCE if silence < longest else MessageEnd.MAX
            self._timers.arm(item.call_id, start + min(silence, longest), reason)
            return []
        if isinstance(item, StopMessage):
            if item.call_id not in self._open:
                return []
            return [self._end(now, item.call_id, item.reason)]
        if isinstance(item, CallEnded) and item.call_id in self._open:
            self._end(now, item.call_id, MessageEnd.HANGUP)
        return []

    def _end(self, now: float, call_id: str, reason: MessageEnd) -> MessageEnded:
        mailbox, start = self._open.pop(call_id)
        self._timers.cancel(call_id)
        # Silence at the end is trimmed, as the daemon does: a silent caller left nothing.
        duration = 0.0 if reason is MessageEnd.SILENCE else round(max(0.0, now - start), 3)
        self.messages.append((call_id, mailbox, reason, duration))
        return MessageEnded(call_id, reason, None, duration)

    def next_deadline(self) -> float | None:
        """When the earliest message ends by itself, or None."""
        return self._timers.next_deadline()

    def handle_timer(self, now: float) -> list[MessageEnded]:
        """``MessageEnded`` for every message that ended by ``now``."""
        out: list[MessageEnded] = []
        while (due := self._timers.pop_due(now)) is not None:
            call_id, reason = due
            if call_id in self._open:
                out.append(self._end(now, call_id, reason))
        return out
