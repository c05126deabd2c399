"""The softphone's toolbar beyond the handset: ``CALL.TRANSFER``, ``CALL.CONSULT``,
``CALL.COMPLETE``, ``CALL.CANCEL``, ``CALL.CONFERENCE``, ``CALL.DIAL`` and ``CALL.DTMF``.

Each works the user's own phone (its user entry's ``extension``) through the core's
inputs, exactly as the phone itself would: a blind transfer is
:class:`~switchd.core.inputs.BlindTransfer` (an extension or an outside number) or a
:class:`~switchd.core.inputs.Redirect` with the phone's line (a queue, a flow, a
voicemail box); a consultation is ``Consult`` then ``Complete`` / ``Cancel`` /
``Conference``; click-to-dial is ``Originate`` (the phone rings first, then a trunk is
seized). So a call handled from the socket and one handled on the handset are the
same call to the ACD, the recorder and the CDR.

Permissions (issue 17 item 5): ``call=`` is optional, and when given it must be on
the user's phone (``forbidden`` otherwise, whether or not the call exists). Only
``CALL.DIAL`` acts for someone else: a supervisor, CRM or admin names ``agent=``
(click-to-dial from the CRM rings that agent's phone); an agent may name only itself.
"""

from __future__ import annotations

from collections.abc import Callable

from switchd.control import Control
from switchd.core.engine import CoreError, new_call_id
from switchd.core.inputs import (
    BlindTransfer,
    Cancel,
    Complete,
    Conference,
    Consult,
    Originate,
    Redirect,
)
from switchd.core.routing import NUMBER_RE, Target, TargetKind
from switchd.cti.codec import Request
from switchd.cti.server import Reply, Session
from switchd.cti.verbs import (
    ALL_ROLES,
    STAFF,
    VERBS,
    Verb,
    arg,
    core_error,
    float_arg,
    only,
    own_phone,
    phone_call,
    refusal,
)
from switchd.engine import Input
from switchd.exceptions import ProtocolError

__all__ = ["CALL_VERBS", "CallVerbs", "parse_to"]

CALL_VERBS: tuple[Verb, ...] = (
    Verb("CALL.TRANSFER", ALL_ROLES,
         "CALL.TRANSFER to=<extension>|number:<digits>|queue:<name>|flow:<name>|"
         "voicemail:<box> [call=<id>]",
         "blind transfer: send the other party of your call elsewhere and leave",
         "call_transfer"),
    Verb("CALL.CONSULT", ALL_ROLES, "CALL.CONSULT to=<extension>|number:<digits> [call=<id>]",
         "hold the other party and ring someone to talk to first (then COMPLETE, CANCEL "
         "or CONFERENCE)", "call_consult"),
    Verb("CALL.COMPLETE", ALL_ROLES, "CALL.COMPLETE [call=<id>]",
         "attended transfer: join the held party with the one you consulted, and leave",
         "call_complete"),
    Verb("CALL.CANCEL", ALL_ROLES, "CALL.CANCEL [call=<id>]",
         "end the consultation (ringing or answered) and go back to the held party",
         "call_cancel"),
    Verb("CALL.CONFERENCE", ALL_ROLES, "CALL.CONFERENCE [call=<id>]",
         "three-way: join the held party, the one you consulted and yourself",
         "call_conference"),
    Verb("CALL.DIAL", ALL_ROLES,
         "CALL.DIAL number=<digits> [agent=<id>] [ring_s=<seconds>] [dial_s=<seconds>]",
         "click-to-dial: ring your phone (or agent's), and when it answers dial number "
         "on a trunk", "call_dial"),
    Verb("CALL.DTMF", ALL_ROLES, "CALL.DTMF digits=<0-9*#A-D> [call=<id>]",
         "send keys from your phone to the party you talk with (an outside IVR)",
         "call_dtmf"),
)

#: Longest key string CALL.DTMF sends at once (32 keys = 5 s of tones).
_DTMF_MAX = 32


def parse_to(raw: str, *, consult: bool) -> Target:
    """The target of ``CALL.TRANSFER`` / ``CALL.CONSULT`` ``to=``: a bare extension
    number, ``extension:<n>``, ``number:<digits>`` (an outside number, rung on a trunk),
    and for a transfer also ``queue:``, ``flow:`` or ``voicemail:``. Raises
    ProtocolError(bad_arg) naming the forms accepted."""
    forms = ("an extension (to=202), number:<digits> for an outside number"
             + ("" if consult else ", queue:<name>, flow:<name> or voicemail:<box>"))
    text = raw.strip()
    if text.isascii() and text.isdigit():
        text = f"extension:{text}"
    try:
        target = Target.parse(text)
    except ValueError as exc:
        raise ProtocolError("bad_arg", f"to={raw!r}: {exc}; give {forms}") from None
    allowed = {TargetKind.EXTENSION, TargetKind.NUMBER}
    if not consult:
        allowed |= {TargetKind.QUEUE, TargetKind.FLOW, TargetKind.VOICEMAIL}
    if target.kind not in allowed:
        raise ProtocolError("bad_arg", f"to={raw!r}: cannot "
                            f"{'consult' if consult else 'transfer to'} a {target.kind.value}; "
                            f"give {forms}")
    return target


class CallVerbs:
    """Handlers of :data:`CALL_VERBS` (methods named after each verb's ``handler``)."""

    def __init__(self, control: Control) -> None:
        self.control = control

    # ------------------------------------------------------------ transfer, consult

    async def call_transfer(self, session: Session, req: Request) -> Reply:
        """CALL.TRANSFER: blind transfer of the other party; ``OK call= line= to=``.

        Raises ProtocolError: bad_arg (a ``to`` of another form), not_found (no such
        extension, queue, flow or mailbox), busy (the extension is in use, no trunk is
        idle), wrong_state (no connected two-party call on the phone), forbidden (no
        phone; a call not on it)."""
        only(req, "to", "call")
        target = parse_to(arg(req, "to"), consult=False)
        line, call_id = self._busy_phone(session, req)
        item: Input
        if target.kind in (TargetKind.EXTENSION, TargetKind.NUMBER):
            item = BlindTransfer(line, target.value or "",
                                 outside=target.kind is TargetKind.NUMBER)
        else:
            self._check_app(target)
            item = Redirect(call_id, target, line=line)
        self._submit(item, target)
        return Reply({"call": call_id, "line": line, "to": str(target)})

    async def call_consult(self, session: Session, req: Request) -> Reply:
        """CALL.CONSULT: hold the other party and ring ``to``; ``OK call= line= to=``.

        Raises ProtocolError as :meth:`call_transfer` (``to`` is an extension or an
        outside number only)."""
        only(req, "to", "call")
        target = parse_to(arg(req, "to"), consult=True)
        line, call_id = self._busy_phone(session, req)
        self._submit(Consult(line, target.value or "",
                             outside=target.kind is TargetKind.NUMBER), target)
        return Reply({"call": call_id, "line": line, "to": str(target)})

    async def call_complete(self, session: Session, req: Request) -> Reply:
        """CALL.COMPLETE: attended transfer; the user's phone leaves the call.
        Raises ProtocolError: wrong_state (not consulting, or the consulted party has not
        answered), forbidden."""
        return self._consult_step(session, req, Complete)

    async def call_cancel(self, session: Session, req: Request) -> Reply:
        """CALL.CANCEL: end the consultation; back with the held party.
        Raises ProtocolError: wrong_state (not consulting), forbidden."""
        return self._consult_step(session, req, Cancel)

    async def call_conference(self, session: Session, req: Request) -> Reply:
        """CALL.CONFERENCE: the held party, the consulted party and the user talk.
        Raises ProtocolError: wrong_state (not consulting, or not answered), forbidden."""
        return self._consult_step(session, req, Conference)

    # ------------------------------------------------------------ dial, keys

    async def call_dial(self, session: Session, req: Request) -> Reply:
        """CALL.DIAL: ring a phone, then dial ``number`` on a trunk when it answers;
        ``OK call= line= number= agent=``.

        Raises ProtocolError: bad_arg (number, ring_s, dial_s), forbidden (an agent naming
        another agent; no phone), not_found (no such agent), wrong_state (the phone is not
        idle; the agent is logged out), busy (switchd is shutting down)."""
        only(req, "number", "agent", "ring_s", "dial_s")
        number = arg(req, "number")
        if not NUMBER_RE.fullmatch(number):
            raise ProtocolError("bad_arg", f"number={number!r}: give 1-32 digits (0-9, *, #) "
                                "as the trunk dials them, without the outside prefix or '+'; "
                                f"usage: {VERBS[req.verb].usage}")
        ring_s = float_arg(req, "ring_s", 1.0, 300.0) or self.control.ring_timeout_s
        dial_s = float_arg(req, "dial_s", 1.0, 300.0)
        agent, line = self._dial_line(session, req)
        try:
            events = self.control.submit(Originate(line, number, ring_s, dial_s))
        except CoreError as exc:
            raise core_error(exc) from None
        refusal(events)
        return Reply({"call": new_call_id(events), "line": line, "number": number,
                      "agent": agent})

    async def call_dtmf(self, session: Session, req: Request) -> Reply:
        """CALL.DTMF: the user's phone sends ``digits`` to whoever hears it; ``OK call=
        line= digits= to=<lines that heard them>``.

        Raises ProtocolError: bad_arg (not 1-32 DTMF keys), wrong_state (no conversation,
        or nobody hears the phone), forbidden (no phone; a call not on it)."""
        only(req, "digits", "call")
        digits = arg(req, "digits")
        if len(digits) > _DTMF_MAX:
            raise ProtocolError("bad_arg", f"digits= has {len(digits)} keys; send at most "
                                f"{_DTMF_MAX} at once")
        line, call_id = self._busy_phone(session, req)
        heard = self.control.send_keys(line, digits)
        return Reply({"call": call_id, "line": line, "digits": digits, "to": ",".join(heard)})

    # ------------------------------------------------------------ helpers

    def _busy_phone(self, session: Session, req: Request) -> tuple[str, str]:
        """The user's phone and the call on it. Raises ProtocolError: forbidden (no phone,
        a call not on it), wrong_state (the phone has no call)."""
        line, call_id = phone_call(self.control, session, req.verb, req.args.get("call"))
        if call_id is None:
            raise ProtocolError("wrong_state", f"your phone {line} has no call; {req.verb} "
                                "acts on the call you are in")
        return line, call_id

    def _consult_step(self, session: Session, req: Request,
                      step: Callable[[str], Input]) -> Reply:
        only(req, "call")
        line, call_id = self._busy_phone(session, req)
        self._submit(step(line))
        return Reply({"call": call_id, "line": line})

    def _check_app(self, target: Target) -> None:
        """Refuse a queue, flow or mailbox that does not exist, before the agent leaves its
        caller (the caller would be lost in an application that is not there)."""
        names = {TargetKind.QUEUE: lambda: [q for q in self.control.queue_names()
                                            if ":" not in q],  # not the ring groups
                 TargetKind.FLOW: self.control.flow_names,
                 TargetKind.VOICEMAIL: self.control.mailbox_names}[target.kind]()
        if target.value not in names:
            raise ProtocolError("not_found", f"no {target.kind.value} {target.value!r}; there "
                                f"are: {', '.join(names) or '(none)'}")

    def _submit(self, item: Input, target: Target | None = None) -> None:
        """Hand the core ``item``; a refusal before anything changed is the verb's error."""
        try:
            events = self.control.submit(item)
        except CoreError as exc:
            err = core_error(exc)
            if (exc.code == "not_found" and target is not None
                    and target.kind is TargetKind.EXTENSION):
                err = ProtocolError("not_found", f"{exc.msg}; an outside number is "
                                    f"to=number:{target.value}")
            raise err from None
        refusal(events)

    def _dial_line(self, session: Session, req: Request) -> tuple[str | None, str]:
        """The agent (if any) and the phone ``CALL.DIAL`` rings: ``agent=``'s phone for
        staff, else the user's own. Raises ProtocolError: forbidden (an agent naming
        another agent; no phone), not_found (no such agent), wrong_state (logged out)."""
        name = req.args.get("agent")
        own_agent = self._agent_at(session)
        if name is None:
            line = f"ext/{own_phone(self.control, session, req.verb)}"
            return own_agent, line
        if session.role not in STAFF and name != own_agent:
            raise ProtocolError("forbidden", f"agent={name}: an agent places calls only from "
                                "its own phone; leave agent= out")
        agent = next((a for a in self.control.agent_status() if a.agent_id == name), None)
        if agent is None:
            raise ProtocolError("not_found", f"no agent {name!r}; AGENT.LIST shows the agents")
        if agent.line is None or agent.state == "logged_out":
            raise ProtocolError("wrong_state", f"agent {name} is logged out: it has no phone "
                                "to ring (AGENT.LOGIN first)")
        return agent.agent_id, agent.line

    def _agent_at(self, session: Session) -> str | None:
        """The agent logged in at the user's phone, or None."""
        user = self.control.user(session.user or "")
        if user is None or user.extension is None:
            return None
        return self.control.agent_at(f"ext/{user.extension}")
