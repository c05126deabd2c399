"""The softphone's own-phone verbs: ``CALL.ANSWER``, ``CALL.HANGUP``, ``CALL.HOLD``,
``CALL.RETRIEVE``.

Each works the user's own phone (the ``extension`` of its user entry) the way its
handset would: the core's :class:`~switchd.core.inputs.Answer`, ``Hangup``, ``Hold``
and ``Retrieve`` on ``ext/<extension>``, so a call answered from the socket and one
answered on the handset are the same call to every engine. ``call=`` is optional;
given, it must be the call on the user's phone (``forbidden`` otherwise, whether or not
the call exists: a user never acts on, nor probes for, someone else's call). The core refuses what the line
cannot do now (``line.error``) and the verb answers ``wrong_state`` with its reason.
"""

from __future__ import annotations

from typing import Any

from switchd.control import Control
from switchd.core.engine import CoreError
from switchd.core.inputs import Answer, Hangup, Hold, Retrieve
from switchd.cti.codec import Request
from switchd.cti.server import Reply, Session
from switchd.cti.verbs import ALL_ROLES, Verb, core_error, only, phone_call, refusal

__all__ = ["PHONE_VERBS", "PhoneVerbs"]

PHONE_VERBS: tuple[Verb, ...] = (
    Verb("CALL.ANSWER", ALL_ROLES, "CALL.ANSWER [call=<id>]",
         "answer the call ringing on your phone", "call_answer"),
    Verb("CALL.HANGUP", ALL_ROLES, "CALL.HANGUP [call=<id>]",
         "hang up your phone (leave its call)", "call_hangup"),
    Verb("CALL.HOLD", ALL_ROLES, "CALL.HOLD [call=<id>]",
         "put the other party of your call on hold (it hears music on hold)", "call_hold"),
    Verb("CALL.RETRIEVE", ALL_ROLES, "CALL.RETRIEVE [call=<id>]",
         "take the held party of your call back", "call_retrieve"),
)

_INPUTS: dict[str, type[Any]] = {"CALL.ANSWER": Answer, "CALL.HANGUP": Hangup,
                                 "CALL.HOLD": Hold, "CALL.RETRIEVE": Retrieve}


class PhoneVerbs:
    """Handlers of :data:`PHONE_VERBS` (methods named after each verb's ``handler``)."""

    def __init__(self, control: Control) -> None:
        self.control = control

    async def call_answer(self, session: Session, req: Request) -> Reply:
        """CALL.ANSWER: the user's phone answers."""
        return self._act(session, req)

    async def call_hangup(self, session: Session, req: Request) -> Reply:
        """CALL.HANGUP: the user's phone hangs up."""
        return self._act(session, req)

    async def call_hold(self, session: Session, req: Request) -> Reply:
        """CALL.HOLD: the user's phone holds the other party."""
        return self._act(session, req)

    async def call_retrieve(self, session: Session, req: Request) -> Reply:
        """CALL.RETRIEVE: the user's phone takes the held party back."""
        return self._act(session, req)

    def _act(self, session: Session, req: Request) -> Reply:
        """Check the phone and the call, then hand the core the input; ``OK call= line=``.
        Raises ProtocolError: forbidden (no phone; a call not on it), wrong_state (the
        phone cannot do it now: the core's reason)."""
        only(req, "call")
        line, call_id = phone_call(self.control, session, req.verb, req.args.get("call"))
        try:
            events = self.control.submit(_INPUTS[req.verb](line))
        except CoreError as exc:
            raise core_error(exc) from None
        refusal(events)
        return Reply({"call": call_id, "line": line})
