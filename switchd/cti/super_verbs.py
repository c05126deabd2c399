"""The supervisor's verbs on calls: ``SUPER.MONITOR`` (listen, whisper, barge) and
``SUPER.PICKUP`` (grab a call ringing elsewhere or waiting in a queue or IVR).

Both work from the supervisor's own phone (``users[].extension``) through the core's
:class:`~switchd.core.inputs.Monitor`, ``SetMonitorMode`` and ``Pickup``, so a monitor
started from the socket is the same to every engine (media plane, recorder, CDR) as
one started any other way. Who hears whom is the core's and the media plane's: a
listener is heard by nobody, a whisper only by the agent, a barge by everyone.

Scope: a supervisor with ``users[].queues`` may act only on calls whose queue (the
one the ACD put the call in, or last had it) is one of them; a supervisor without one
sees every call, and an admin is never scoped (``switchd check`` allows ``queues``
only on supervisors).
"""

from __future__ import annotations

import re
from typing import Any

from switchd.control import CallInfo, Control
from switchd.core.engine import CoreError
from switchd.core.inputs import Monitor, Pickup, SetMonitorMode
from switchd.cti.codec import Request
from switchd.cti.server import Reply, Session
from switchd.cti.verbs import (
    SUPERVISORS,
    VERBS,
    Verb,
    arg,
    calls_on,
    core_error,
    only,
    own_phone,
    refusal,
)
from switchd.events import MONITOR_ROLES, Role
from switchd.exceptions import ProtocolError

__all__ = ["SUPER_VERBS", "SuperVerbs"]

#: ``agent=``: an extension number or its line name.
_AGENT = re.compile(r"^(?:ext/)?([0-9]{1,9})$")

SUPER_VERBS: tuple[Verb, ...] = (
    Verb("SUPER.MONITOR", SUPERVISORS,
         "SUPER.MONITOR call=<id> [mode=listen|whisper|barge] [agent=<extension>]",
         "monitor a call from your phone (it rings; answer to join), or change the mode "
         "of the call you monitor", "super_monitor"),
    Verb("SUPER.PICKUP", SUPERVISORS, "SUPER.PICKUP call=<id>",
         "take a call ringing on another phone or waiting in a queue or IVR onto your phone",
         "super_pickup"),
)


class SuperVerbs:
    """Handlers of :data:`SUPER_VERBS` (methods named after each verb's ``handler``)."""

    def __init__(self, control: Control) -> None:
        self.control = control

    async def super_monitor(self, session: Session, req: Request) -> Reply:
        """SUPER.MONITOR: start monitoring ``call`` from the user's phone, or switch the
        mode live when the phone already monitors it (or its monitor offer still rings).

        Reply ``OK call= line= mode=``. Raises ProtocolError: bad_arg (mode, agent, other
        keys; an agent not in the call), missing_arg, forbidden (no phone; a call outside
        the user's queues), not_found (no such call), wrong_state (the phone is in
        another call; the call is not connected; the core's reason), busy (the phone is
        off the hook).
        """
        only(req, "call", "mode", "agent")
        call_id = arg(req, "call")
        mode = _mode(req)
        agent = _agent(req)
        line = f"ext/{own_phone(self.control, session, req.verb)}"
        self._in_scope(session, req.verb, self._call(call_id))
        other = self._phone_call(line)
        if other == call_id:
            if agent is not None:
                raise ProtocolError("bad_arg", f"{line} already monitors call {call_id}; the "
                                    "agent a whisper goes to is chosen when monitoring starts: "
                                    "hang up and SUPER.MONITOR again with agent= to coach "
                                    "another")
            self._submit(SetMonitorMode(line, mode))
        elif other is not None:
            raise ProtocolError("wrong_state", f"your phone {line} is in call {other}; hang it "
                                f"up first (CALL.HANGUP) to monitor call {call_id}")
        else:
            self._submit(Monitor(line, call_id, mode, agent))
        return Reply({"call": call_id, "line": line, "mode": mode.value})

    async def super_pickup(self, session: Session, req: Request) -> Reply:
        """SUPER.PICKUP: the user's phone takes ``call``, which rings on another phone or
        waits in the switch (a queue, an IVR flow); the phones that rang stop.

        Reply ``OK call= line=``. Raises ProtocolError: missing_arg, bad_arg, forbidden
        (no phone; a call outside the user's queues), not_found (no such call),
        wrong_state (the phone is in a call; the call neither rings a phone nor waits),
        busy (the phone is off the hook).
        """
        only(req, "call")
        call_id = arg(req, "call")
        line = f"ext/{own_phone(self.control, session, req.verb)}"
        self._in_scope(session, req.verb, self._call(call_id))
        other = self._phone_call(line)
        if other is not None:
            what = "it is already yours" if other == call_id else "hang it up first (CALL.HANGUP)"
            raise ProtocolError("wrong_state", f"your phone {line} is in call {other}; {what}")
        self._submit(Pickup(line, call_id))
        return Reply({"call": call_id, "line": line})

    # ------------------------------------------------------------ helpers

    def _call(self, call_id: str) -> CallInfo:
        """The live call ``call_id``. Raises ProtocolError(not_found)."""
        try:
            return self.control.call_info(call_id)
        except CoreError as exc:
            raise core_error(exc) from None

    def _in_scope(self, session: Session, verb: str, call: CallInfo) -> None:
        """Refuse (forbidden) a call outside a scoped supervisor's queues."""
        user = self.control.user(session.user or "")
        if user is None or user.role != "supervisor" or user.queues is None:
            return
        if call.queue in user.queues:
            return
        where = f"it is in queue {call.queue}" if call.queue else "it reached no queue"
        raise ProtocolError("forbidden", f"call {call.call_id} is not in your queues "
                            f"({', '.join(user.queues)}); {where}, so {verb} may not act on it")

    def _phone_call(self, line: str) -> str | None:
        """The call ``line`` is part of (connected, ringing or monitoring), or None."""
        mine = calls_on(self.control, line)
        return mine[0] if mine else None

    def _submit(self, item: Any) -> None:
        """Hand the core ``item``. Raises ProtocolError with the core's code when it refuses
        at once, wrong_state with its reason when the line refuses (``line.error``)."""
        try:
            events = self.control.submit(item)
        except CoreError as exc:
            raise core_error(exc) from None
        refusal(events)


def _mode(req: Request) -> Role:
    """``mode=`` as a monitor role (default listen). Raises ProtocolError(bad_arg)."""
    raw = req.args.get("mode")
    if raw is None:
        return Role.LISTEN
    try:
        mode = Role(raw.lower())
    except ValueError:
        mode = None
    if mode not in MONITOR_ROLES:
        raise ProtocolError("bad_arg", f"mode={raw!r}: use listen, whisper or barge; usage: "
                            f"{VERBS[req.verb].usage}")
    assert mode is not None
    return mode


def _agent(req: Request) -> str | None:
    """``agent=`` as a line (``201`` and ``ext/201`` are ``ext/201``), or None when absent.
    Raises ProtocolError(bad_arg)."""
    raw = req.args.get("agent")
    if raw is None:
        return None
    m = _AGENT.match(raw)
    if m is None:
        raise ProtocolError("bad_arg", f"agent={raw!r}: give the extension of the agent a "
                            f"whisper goes to (201 or ext/201); usage: {VERBS[req.verb].usage}")
    return f"ext/{int(m.group(1))}"
