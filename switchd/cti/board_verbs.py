"""``LINES``: the wallboard's view of the board — every trunk and extension, its state,
since when, its call, the tone it hears and the agent at it (REQUIREMENTS.md: "live
monitoring of every line and seat").

With ``AGENT.LIST`` (seats) and ``QUEUE.STATUS`` (queues) it is what a supervisor's
console or a reconnecting client reads to resync; ``line.state`` and ``agent.state``
events keep it current afterwards.
"""

from __future__ import annotations

from switchd.control import Control
from switchd.cti.codec import Request
from switchd.cti.server import Reply, Session
from switchd.cti.verbs import STAFF, Verb, only
from switchd.exceptions import ProtocolError

__all__ = ["BOARD_VERBS", "BoardVerbs"]

BOARD_VERBS: tuple[Verb, ...] = (
    Verb("LINES", STAFF, "LINES [kind=trunk|ext]",
         "every line now: state, since, call, tone, the agent at it (a wallboard)", "lines"),
)


class BoardVerbs:
    """Handlers of :data:`BOARD_VERBS`."""

    def __init__(self, control: Control) -> None:
        self.control = control

    async def lines(self, session: Session, req: Request) -> Reply:
        """LINES: one ITEM per line, trunks then extensions. Raises ProtocolError(bad_arg)
        for a ``kind`` other than trunk or ext."""
        only(req, "kind")
        kind = req.args.get("kind")
        if kind is not None and kind not in ("trunk", "ext"):
            raise ProtocolError("bad_arg", f"kind={kind!r}: use trunk or ext")
        items = self.control.lines()
        if kind is not None:
            items = [i for i in items if i["kind"] == kind]
        return Reply(items=items)
