"""``CALL.NOTE``: the agent's note on a call, kept with the call's CDR and shown on the
caller's next screen pop (``call.offered``'s ``last_note``; issue 17 items 1 and 4).

A live call takes the note through the core (``Annotate(note=…)``), so the CDR is
written with it; a call that has ended has its stored CDR updated, after the CDR writer
has written the calls that just ended (a note typed during wrap-up, the usual case,
lands). A later note replaces the earlier one: the CDR keeps one note, the last.

Permissions (issue 17 item 5): staff note any call; an agent notes only a call that is
on its phone now, or an ended call its phone took (the CDR's ``extension``) or the agent
logged in at its phone answered (the CDR's ``agent``). Every other call id, existing or
not, gets the same ``forbidden``, so ids cannot be probed.
"""

from __future__ import annotations

from typing import Any

from switchd.control import Control
from switchd.core.engine import CoreError
from switchd.core.inputs import Annotate
from switchd.cti.codec import Request
from switchd.cti.server import Reply, Session
from switchd.cti.verbs import ALL_ROLES, VERBS, Verb, arg, only, own_phone
from switchd.exceptions import ProtocolError

__all__ = ["NOTE_MAX", "NOTE_VERBS", "NoteVerbs"]

#: Longest note, in characters (Unicode code points): a few sentences, not a document.
NOTE_MAX = 1000

NOTE_VERBS: tuple[Verb, ...] = (
    Verb("CALL.NOTE", ALL_ROLES, "CALL.NOTE call=<id> text=<text>",
         "note on a live or ended call, kept with its CDR and shown on the caller's next "
         "screen pop (a later note replaces it)", "call_note"),
)


def _note_text(req: Request) -> str:
    """``text=`` as given, 1..NOTE_MAX characters. Raises ProtocolError: missing_arg
    (absent), bad_arg (empty or too long)."""
    text = req.args.get("text")
    if text is None:
        raise ProtocolError("missing_arg", f"CALL.NOTE needs text=; usage: "
                            f"{VERBS['CALL.NOTE'].usage}")
    if not 1 <= len(text) <= NOTE_MAX:
        raise ProtocolError("bad_arg", f"text= must be 1 to {NOTE_MAX} characters, got "
                            f"{len(text)}; put a longer text in the CRM")
    if not text.strip():
        raise ProtocolError("bad_arg", "text= is only blanks; write the note")
    bad = next((c for c in text if (ord(c) < 32 and c not in "\t\n") or 127 <= ord(c) < 160),
               None)
    if bad is not None:
        # A note is shown on screens (pops, switchctl, reports): no terminal controls.
        raise ProtocolError("bad_arg", f"text= holds the control character {bad!r}; only "
                            "tabs and line breaks are allowed")
    return text


class NoteVerbs:
    """Handlers of :data:`NOTE_VERBS`."""

    def __init__(self, control: Control) -> None:
        self.control = control

    async def call_note(self, session: Session, req: Request) -> Reply:
        """CALL.NOTE: store the note with the call's CDR; ``OK call=<id> note=<text>``."""
        only(req, "call", "text")
        call_id = arg(req, "call")
        text = _note_text(req)
        agent = session.role == "agent"
        extension = own_phone(self.control, session, "CALL.NOTE") if agent else None
        try:
            live = self.control.call_info(call_id)
        except CoreError:
            live = None
        if live is not None:
            # Its phone is in the call, or was (it transferred the call and notes it in
            # its wrap-up while the call goes on).
            if agent and session.agent_line not in (*live.lines, *live.former_lines):
                raise self._not_yours(session, call_id)
            # Synchronous from the check: the call cannot end in between.
            self.control.submit(Annotate(call_id, note=text))
            return Reply({"call": call_id, "note": text})
        try:
            cdr = await self.control.stored_cdr(call_id)
        except ProtocolError as exc:
            if not agent or exc.code != "busy":
                raise
            # The same answer whether or not the call exists (and whether or not it is
            # the agent's): the writer's backlog is the switch's state, not the call's.
            raise ProtocolError("forbidden", f"call {call_id} is not one of yours, or its "
                                "record is not written yet (the database is slow); try again "
                                "in a moment") from None
        if agent and (cdr is None or not self._took(session, extension, cdr)):
            raise self._not_yours(session, call_id)
        if cdr is None or not await self.control.set_stored_note(call_id, text):
            raise ProtocolError("not_found", f"no call {call_id}, live or ended; CALLS lists "
                                "the live calls, CDR.QUERY the ended ones")
        return Reply({"call": call_id, "note": text})

    def _took(self, session: Session, extension: int | None, cdr: dict[str, Any]) -> bool:
        """True when the ended call ``cdr`` was the agent's: its phone took it last, or the
        agent logged in at its phone answered it from a queue."""
        if extension is not None and cdr.get("extension") == extension:
            return True
        answered_by = cdr.get("agent")
        return (answered_by is not None and session.agent_line is not None
                and self.control.agent_at(session.agent_line) == answered_by)

    @staticmethod
    def _not_yours(session: Session, call_id: str) -> ProtocolError:
        # One answer for another's call and for no call at all: ids cannot be probed.
        return ProtocolError("forbidden", f"call {call_id} is not one of yours: an agent "
                             f"notes the calls on its phone ({session.agent_line}) and those "
                             "it took that have ended")
