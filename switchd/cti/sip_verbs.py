"""``SIP.REGS``: the SIP board's registered phones and its carriers, for supervisors,
admins and ``switchctl SIP.REGS`` (issue 19, operations)."""

from __future__ import annotations

from switchd.control import Control
from switchd.cti.codec import Request
from switchd.cti.server import Reply, Session
from switchd.cti.verbs import STAFF, Verb, only
from switchd.exceptions import ProtocolError

__all__ = ["SIP_VERBS", "SipVerbs"]

SIP_VERBS: tuple[Verb, ...] = (
    Verb("SIP.REGS", STAFF, "SIP.REGS",
         "the SIP board's registered phones (one ITEM per contact) and carriers", "sip_regs"),
)


class SipVerbs:
    """Handlers of :data:`SIP_VERBS`."""

    def __init__(self, control: Control) -> None:
        self.control = control

    async def sip_regs(self, session: Session, req: Request) -> Reply:
        """SIP.REGS: ``ITEM kind=phone line=… contact=… source=… transport=… expires_s=…``
        per registered contact, then ``ITEM kind=trunk trunk=… host=… lines=… reachable=…
        register=… registered=… reason=…`` per carrier, then END. Raises ProtocolError:
        bad_arg (any argument), not_found (the board is not the SIP one)."""
        only(req)
        status = self.control.sip_status()
        if status is None:
            raise ProtocolError("not_found", "SIP.REGS needs the SIP board (board.driver: sip)")
        regs, trunks = status
        return Reply(items=[{"kind": "phone", **r} for r in regs]
                     + [{"kind": "trunk", **t} for t in trunks])
