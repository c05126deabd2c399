"""The ``AGENT.*`` verbs and ``SUPER.AGENT``: an agent's softphone logs in and out and says
ready or not ready; a team leader sees every agent and sets their state.

Each acts on the agent at the user's own phone (the ``extension`` of its user entry):
the agent configured there, or the one named with ``agent=`` at ``AGENT.LOGIN``. They
hand the ACD its :mod:`switchd.acd.inputs` (``Login``, ``Logout``, ``Ready``,
``NotReady``) through :class:`~switchd.control.Control` and read its snapshot back; the
ACD refuses what does not fit the agent's state (:class:`~switchd.acd.engine.AcdError`,
before anything changed), and the result is an ``agent.state`` event like any other.

Permissions (issue 17 item 5): a user logs in only at its own phone, and an agent user
only as the agent configured there (or an agent configured nowhere: a hot desk); another
agent's id is ``forbidden``, naming it.
"""

from __future__ import annotations

from typing import Any

from switchd.acd.engine import AcdError, AgentStatus
from switchd.acd.inputs import Login, Logout, NotReady, Ready
from switchd.control import Control
from switchd.cti.codec import Request
from switchd.cti.server import Reply, Session
from switchd.cti.verbs import (
    ALL_ROLES,
    STAFF,
    SUPERVISORS,
    VERBS,
    Verb,
    arg,
    bool_arg,
    only,
    own_phone,
)
from switchd.exceptions import ProtocolError
from switchd.timefmt import iso_utc

__all__ = ["AGENT_VERBS", "AgentVerbs", "agent_item"]

#: SUPER.AGENT's states.
_SUPER_STATES = ("ready", "not_ready", "logout")

AGENT_VERBS: tuple[Verb, ...] = (
    Verb("AGENT.LOGIN", ALL_ROLES,
         "AGENT.LOGIN [agent=<id>] [queues=<queue>[:<penalty>],...] [ready=true|false]",
         "log in at your phone (default: the agent configured there, its queues, ready)",
         "agent_login"),
    Verb("AGENT.LOGOUT", ALL_ROLES, "AGENT.LOGOUT",
         "log the agent at your phone out (not while it is on a call)", "agent_logout"),
    Verb("AGENT.READY", ALL_ROLES, "AGENT.READY",
         "ready for calls (from not ready; ends wrap-up early)", "agent_ready"),
    Verb("AGENT.NOTREADY", ALL_ROLES, "AGENT.NOTREADY [reason=<text>]",
         "not ready for calls, with a reason (default break)", "agent_not_ready"),
    Verb("AGENT.STATUS", ALL_ROLES, "AGENT.STATUS",
         "the state and today's figures of the agent at your phone", "agent_status"),
    Verb("AGENT.LIST", STAFF, "AGENT.LIST",
         "every agent: state, reason, since, call, queues and figures (a wallboard)",
         "agent_list"),
    Verb("SUPER.AGENT", SUPERVISORS,
         "SUPER.AGENT agent=<id> state=ready|not_ready|logout [reason=<text>]",
         "set an agent's state: make it ready, not ready (reason, default supervisor) or "
         "log it out", "super_agent"),
)

#: Longest reason text (it goes into events, queue_log PAUSE lines and reports).
_REASON_MAX = 64


def agent_item(st: AgentStatus) -> dict[str, Any]:
    """An agent as ``AGENT.*`` replies show it: state, reason, since (ISO UTC), its call,
    queues as ``name:penalty``, and its figures since start (seconds, counts)."""
    total = st.total
    occupancy = total.occupancy
    return {
        "agent": st.agent_id, "name": st.name, "line": st.line, "seat": st.seat,
        "state": st.state, "reason": st.reason or None, "since": iso_utc(st.since),
        "call": st.call_id,
        "queues": ",".join(f"{q}:{p}" for q, p in st.queues) or None,
        "offered": total.offered, "answered": total.answered, "missed": total.missed,
        "talk_s": round(total.talk_s, 1), "wrapup_s": round(total.wrapup_s, 1),
        "occupancy": None if occupancy is None else round(occupancy, 3),
    }


def _reason(reason: str) -> str:
    """A not-ready reason as given. Raises ProtocolError(bad_arg) unless 1-64 printable
    characters."""
    if not reason or len(reason) > _REASON_MAX or not reason.isprintable():
        raise ProtocolError("bad_arg", f"reason= must be 1-{_REASON_MAX} printable "
                            "characters, e.g. reason=lunch")
    return reason


def _queues(raw: str) -> tuple[tuple[str, int], ...]:
    """``sales:0,support:1`` (penalty 0 when left out) as (queue, penalty) pairs.
    Raises ProtocolError(bad_arg) naming the part that is wrong."""
    out: list[tuple[str, int]] = []
    for part in (p.strip() for p in raw.split(",")):
        # The penalty is what follows the last ':' (a queue name may hold one itself).
        name, colon, penalty = part.rpartition(":")
        if not colon or not penalty.lstrip("-").isdigit():
            name, penalty = part, ""
        if not name:
            raise ProtocolError("bad_arg", f"queues={raw!r}: give queue names, each with an "
                                "optional :penalty, e.g. queues=sales:0,support:1")
        try:
            level = int(penalty) if penalty else 0
        except ValueError:
            level = -1
        if level < 0:
            raise ProtocolError("bad_arg", f"queues={raw!r}: the penalty of {name!r} must be a "
                                "whole number >= 0")
        out.append((name, level))
    return tuple(out)


class AgentVerbs:
    """Handlers of :data:`AGENT_VERBS` (methods named after each verb's ``handler``)."""

    def __init__(self, control: Control) -> None:
        self.control = control

    # ------------------------------------------------------------ the verbs

    async def agent_login(self, session: Session, req: Request) -> Reply:
        """AGENT.LOGIN: the agent logs in at the user's phone; ``OK`` with its state."""
        only(req, "agent", "queues", "ready")
        ext = self._extension(session, req)
        line = f"ext/{ext}"
        agents = self.control.agent_status()
        given = req.args.get("agent")
        if given == "":
            raise ProtocolError("bad_arg", f"agent= is empty; usage: {VERBS[req.verb].usage}")
        if given is None:
            here = [a for a in agents if a.line == line]
            if not here:
                raise ProtocolError("missing_arg", f"no agent is configured at {line}; give "
                                    f"agent=<id>; usage: {VERBS[req.verb].usage}")
            given = here[0].agent_id
        elif session.role == "agent":
            known = next((a for a in agents if a.agent_id == given), None)
            if known is not None and known.line not in (None, line):
                raise ProtocolError("forbidden", f"agent {given} sits at {known.line}, not at "
                                    f"your phone {line}; you log in only as the agent of "
                                    "your own phone (ask a supervisor)")
        queues = _queues(req.args["queues"]) if "queues" in req.args else None
        ready = bool_arg(req, "ready")
        self._ask(Login(given, extension=ext, queues=queues,
                        ready=True if ready is None else ready))
        return Reply(agent_item(self._status(given)))

    async def agent_logout(self, session: Session, req: Request) -> Reply:
        """AGENT.LOGOUT: the agent at the user's phone logs out."""
        only(req)
        st = self._at_phone(session, req)
        self._ask(Logout(st.agent_id))
        return Reply(agent_item(self._status(st.agent_id)))

    async def agent_ready(self, session: Session, req: Request) -> Reply:
        """AGENT.READY: the agent at the user's phone is ready."""
        only(req)
        st = self._at_phone(session, req)
        self._ask(Ready(st.agent_id))
        return Reply(agent_item(self._status(st.agent_id)))

    async def agent_not_ready(self, session: Session, req: Request) -> Reply:
        """AGENT.NOTREADY: the agent at the user's phone is not ready, for ``reason``."""
        only(req, "reason")
        reason = _reason(req.args.get("reason", "break"))
        st = self._at_phone(session, req)
        self._ask(NotReady(st.agent_id, reason))
        return Reply(agent_item(self._status(st.agent_id)))

    async def agent_status(self, session: Session, req: Request) -> Reply:
        """AGENT.STATUS: the agent at the user's phone (logged in, else configured there)."""
        only(req)
        line = f"ext/{self._extension(session, req)}"
        here = [a for a in self.control.agent_status() if a.line == line]
        if not here:
            raise ProtocolError("not_found", f"no agent at {line}; AGENT.LOGIN agent=<id> "
                                "logs one in")
        live = [a for a in here if a.state != "logged_out"]
        return Reply(agent_item((live or here)[0]))

    async def agent_list(self, session: Session, req: Request) -> Reply:
        """AGENT.LIST: one ITEM per agent (config order, then agents logged in by CTI)."""
        only(req)
        return Reply(items=[agent_item(st) for st in self.control.agent_status()])

    async def super_agent(self, session: Session, req: Request) -> Reply:
        """SUPER.AGENT: a team leader makes agent ``agent`` ready, not ready or logged out."""
        only(req, "agent", "state", "reason")
        agent_id = arg(req, "agent")
        state = arg(req, "state").lower()
        if state not in _SUPER_STATES:
            raise ProtocolError("bad_arg", f"state={req.args['state']!r}: use ready, "
                                f"not_ready or logout; usage: {VERBS[req.verb].usage}")
        if "reason" in req.args and state != "not_ready":
            raise ProtocolError("bad_arg", "reason= goes with state=not_ready only")
        reason = _reason(req.args.get("reason", "supervisor"))
        if not any(a.agent_id == agent_id for a in self.control.agent_status()):
            raise ProtocolError("not_found", f"no agent {agent_id!r}; AGENT.LIST lists them")
        item: Any = (Ready(agent_id) if state == "ready" else Logout(agent_id)
                     if state == "logout" else NotReady(agent_id, reason))
        self._ask(item)
        return Reply(agent_item(self._status(agent_id)))

    # ------------------------------------------------------------ helpers

    def _extension(self, session: Session, req: Request) -> int:
        return own_phone(self.control, session, req.verb)

    def _at_phone(self, session: Session, req: Request) -> AgentStatus:
        """The agent logged in at the user's phone. Raises ProtocolError(wrong_state)."""
        line = f"ext/{self._extension(session, req)}"
        for a in self.control.agent_status():
            if a.line == line and a.state != "logged_out":
                return a
        raise ProtocolError("wrong_state", f"no agent is logged in at {line}; AGENT.LOGIN "
                            "first")

    def _status(self, agent_id: str) -> AgentStatus:
        return next(a for a in self.control.agent_status() if a.agent_id == agent_id)

    def _ask(self, item: Any) -> None:
        try:
            self.control.submit(item)
        except AcdError as exc:
            raise ProtocolError(exc.code, exc.msg) from None
