"""What goes into and out of the IVR interpreter besides core events.

Into the interpreter: :class:`PromptDone` (from the media side), :class:`RouteReply`
(from the CRM over CTI), :class:`MessageEnded` (from the voicemail service). Out of
it, to whatever plays audio (the media plane in the daemon, a virtual player in
``switchd flows try`` and the tests): :class:`PlayPrompt` and :class:`StopPrompt`;
to whatever records a voicemail message (``switchd.recorder.voicemail`` in the
daemon, :class:`~switchd.ivr.vplayer.VirtualRecorder` in a trial):
:class:`RecordMessage` and :class:`StopMessage`. The core inputs it returns
(``SwitchAnswer`` is the core's own doing; ``Route``, ``Release``, ``Annotate``) are
in ``switchd.core.inputs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from switchd.engine import Input

__all__ = ["MessageEnd", "MessageEnded", "PlayPrompt", "PromptDone", "RecordMessage",
           "RouteReply", "StopMessage", "StopPrompt"]


@dataclass(frozen=True, slots=True)
class PlayPrompt(Input):
    """Play ``files`` back to back to ``line`` (the caller of ``call_id``).

    ``token`` identifies this play in the :class:`PromptDone` that answers it.
    ``barge_in``: a key press stops it (the interpreter also sends :class:`StopPrompt`).
    ``loop``: start over at the end (hold prompts while waiting); a looped play never
    reports done. A new play on a line replaces what played there.
    """

    call_id: str
    line: str
    token: int
    files: tuple[Path, ...]
    barge_in: bool = True
    loop: bool = False


@dataclass(frozen=True, slots=True)
class StopPrompt(Input):
    """Stop whatever prompt plays to ``line`` for ``call_id`` (no ``PromptDone`` follows)."""

    call_id: str
    line: str


@dataclass(frozen=True, slots=True)
class PromptDone(Input):
    """Play ``token`` of ``call_id`` reached its end. ``error``: it could not be played at
    all (the text says which file and why); the interpreter reports it and goes on."""

    call_id: str
    token: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RouteReply(Input):
    """The CRM's answer to ``ivr.route_request``: ``ROUTE.REPLY call=… next=… [var=value …]``.

    ``next``: the node to go to (None = the node's ``next``); ``vars``: (name, value)
    pairs to set. The interpreter raises :class:`~switchd.ivr.interpreter.RouteReplyError`
    (code, message) for a call that is not waiting or a reply it cannot use, after
    sending the call to its fallback for an unusable reply.
    """

    call_id: str
    next: str | None = None
    vars: tuple[tuple[str, str], ...] = ()


class MessageEnd(StrEnum):
    """Why a voicemail message ended (``MessageEnded.reason``)."""

    HASH = "hash"          #: the caller pressed ``#``
    SILENCE = "silence"    #: the caller said nothing for the box's ``silence_s``
    MAX = "max"            #: the message reached ``max_s``
    HANGUP = "hangup"      #: the caller hung up
    #: The flow stopped it: the interpreter left the node for another reason (the
    #: recorder did not report in time, an internal error).
    STOPPED = "stopped"
    #: Nothing (more) could be recorded: no such box, no media channel for the line, or
    #: the disk refused the file (``MessageEnded.error`` says which).
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class RecordMessage(Input):
    """Take a message for ``mailbox`` from the caller of ``call_id`` on ``line``: beep,
    then record what the caller says until ``#`` (:class:`StopMessage`), silence, the
    longest message, or the hang-up; the recorder answers with :class:`MessageEnded`.

    ``caller``: the caller's number, for the message index. ``max_s``/``silence_s``:
    this node's limits in seconds (None = the voicemail settings').
    """

    call_id: str
    line: str
    mailbox: str
    caller: str
    max_s: float | None = None
    silence_s: float | None = None


@dataclass(frozen=True, slots=True)
class StopMessage(Input):
    """End the message being recorded for ``call_id`` now, for ``reason`` (the caller
    pressed ``#``, or the flow stops it). Ignored when none is being recorded."""

    call_id: str
    reason: MessageEnd = MessageEnd.HASH


@dataclass(frozen=True, slots=True)
class MessageEnded(Input):
    """The message of ``call_id`` ended for ``reason``: the call goes on (or hangs up).

    ``message_id``: the message (None when nothing was recorded at all);
    ``duration_s``: seconds of audio kept (the trimmed end included); ``error``: what
    went wrong, for ``reason`` ``error``. Whether the message is kept (at least
    ``min_s``) and indexed is decided when the file is closed: ``voicemail.new``
    announces it.
    """

    call_id: str
    reason: MessageEnd
    message_id: str | None = None
    duration_s: float = 0.0
    error: str | None = None
