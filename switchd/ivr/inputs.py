"""What goes into and out of the IVR interpreter besides core events.

Into the interpreter: :class:`PromptDone` (from the media side), :class:`RouteReply`
(from the CRM over CTI). Out of it, to whatever plays audio (the media plane in the
daemon, a virtual player in ``switchd flows try`` and the tests): :class:`PlayPrompt`
and :class:`StopPrompt`. The core inputs it returns (``SwitchAnswer`` is the core's
own doing; ``Route``, ``Release``, ``Annotate``) are in ``switchd.core.inputs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from switchd.engine import Input

__all__ = ["PlayPrompt", "PromptDone", "RouteReply", "StopPrompt"]


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
