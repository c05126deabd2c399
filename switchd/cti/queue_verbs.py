"""The ``QUEUE.*`` verbs: the ACD's queues as the CTI socket shows them.

``QUEUE.LIST`` gives one line per queue (a wallboard); ``QUEUE.STATUS`` one queue in
full: every exact counter and derived figure of ``switchd.acd.stats.QueueStats``,
then its waiting callers in queue order and its logged-in members. They read
snapshots through :class:`~switchd.control.Control` (``queue_status``,
``agent_status``) and change nothing. Figures that have no calls yet (a ratio over
zero) are null, so the field is left out of the line, as everywhere on the wire.
"""

from __future__ import annotations

from typing import Any

from switchd.acd.engine import QueueStatus
from switchd.control import Control
from switchd.cti.codec import Request
from switchd.cti.server import Reply, Session
from switchd.cti.verbs import ALL_ROLES, STAFF, Verb, arg, only
from switchd.exceptions import ProtocolError
from switchd.timefmt import iso_utc

__all__ = ["QUEUE_VERBS", "QueueVerbs"]

_PERIODS = ("total", "interval", "previous")

QUEUE_VERBS: tuple[Verb, ...] = (
    Verb("QUEUE.LIST", ALL_ROLES, "QUEUE.LIST",
         "list the queues: callers waiting, agents, today's main figures", "queue_list"),
    Verb("QUEUE.STATUS", STAFF, "QUEUE.STATUS queue=<name> [period=total|interval|previous]",
         "one queue in full: exact statistics, its waiting callers and its agents",
         "queue_status"),
)


def _agents_by_state(status: QueueStatus) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _aid, _penalty, state in status.agents:
        counts[state] = counts.get(state, 0) + 1
    return counts


class QueueVerbs:
    """Handlers of :data:`QUEUE_VERBS` (methods named after each verb's ``handler``)."""

    def __init__(self, control: Control) -> None:
        self.control = control

    async def queue_list(self, session: Session, req: Request) -> Reply:
        """QUEUE.LIST: one ITEM per queue, in config order; figures since start."""
        only(req)
        items = []
        for name in self.control.queue_names():
            st = self.control.queue_status(name)
            by_state = _agents_by_state(st)
            total = st.total
            items.append({
                "queue": st.name, "strategy": st.strategy, "waiting": len(st.callers),
                "longest_wait_s": st.longest_wait_s, "logged_in": len(st.agents),
                "ready": by_state.get("ready", 0), "on_call": by_state.get("on_call", 0),
                "offered": total.offered, "answered": total.answered,
                "abandoned": total.abandoned, "sl1": total.sl1,
            })
        return Reply(items=items)

    async def queue_status(self, session: Session, req: Request) -> Reply:
        """QUEUE.STATUS: the queue's statistics as the first ITEM (``kind=queue``), then
        one ITEM per waiting caller (``kind=caller``) and per member (``kind=agent``)."""
        only(req, "queue", "period")
        name = arg(req, "queue")
        period = req.args.get("period", "total").lower()
        if period not in _PERIODS:
            raise ProtocolError("bad_arg", f"period={req.args['period']!r}: use total (since "
                                "switchd started), interval (the current statistics "
                                "interval) or previous (the last completed one)")
        st = self.control.queue_status(name)
        if period == "previous" and (st.previous is None or st.previous_span is None):
            raise ProtocolError("not_found", f"queue {name}: no statistics interval has "
                                "completed yet (intervals are 15 minutes on the clock); "
                                "use period=interval for the current one")
        stats = {"total": st.total, "interval": st.interval}.get(period) or st.previous
        assert stats is not None
        by_state = _agents_by_state(st)
        head: dict[str, Any] = {
            "kind": "queue", "queue": st.name, "strategy": st.strategy, "period": period,
            "since": (iso_utc(st.interval_start) if period == "interval" else
                      iso_utc(st.previous_span[0]) if period == "previous" and st.previous_span
                      else None),
            "until": (iso_utc(st.previous_span[1]) if period == "previous" and st.previous_span
                      else None),
            "waiting": len(st.callers), "longest_wait_s": st.longest_wait_s,
            "logged_in": len(st.agents), "ready": by_state.get("ready", 0),
            "reserved": by_state.get("reserved", 0), "on_call": by_state.get("on_call", 0),
            "wrap_up": by_state.get("wrap_up", 0), "not_ready": by_state.get("not_ready", 0),
        }
        head.update(stats.as_dict())
        agents = {a.agent_id: a for a in self.control.agent_status()}
        # An agent's figures are kept since start and for the current interval only.
        figures = {} if period == "previous" else {
            aid: (a.total if period == "total" else a.interval) for aid, a in agents.items()}
        # The queue's occupancy: its members' time on calls and in wrap-up over their
        # logged-in time, in the period (agents in several queues count in each).
        busy = logged = 0.0
        for agent_id, _penalty, _state in st.agents:
            f = figures.get(agent_id)
            if f is not None:
                t = dict(f.time_in)
                logged += sum(v for k, v in t.items() if k != "logged_out")
                busy += t.get("on_call", 0.0) + t.get("wrap_up", 0.0)
        head["occupancy"] = round(busy / logged, 4) if logged > 0 else None
        items: list[dict[str, Any]] = [head]
        for call_id, number, position, priority, waited, ringing, cstate in st.callers:
            items.append({"kind": "caller", "call": call_id, "caller": number or None,
                          "position": position, "priority": priority, "wait_s": waited,
                          "ringing": ",".join(ringing) or None, "state": cstate})
        for agent_id, penalty, state in st.agents:
            a = agents.get(agent_id)
            f = figures.get(agent_id)
            item: dict[str, Any] = {
                "kind": "agent", "agent": agent_id, "penalty": penalty, "state": state,
                "reason": (a.reason if a is not None else "") or None,
                "line": a.line if a is not None else None}
            if f is not None:
                occ = f.occupancy
                item.update(offered=f.offered, answered=f.answered, missed=f.missed,
                            talk_s=round(f.talk_s, 3), wrapup_s=round(f.wrapup_s, 3),
                            occupancy=round(occ, 4) if occ is not None else None)
            items.append(item)
        return Reply(items=items)
