"""An agent: its state table and what the ACD tracks about it.

Every move goes through :data:`AGENT_TRANSITIONS` (h11 ``_state.py`` style): a pair
not in the table is refused, so no agent reaches a state by a side door. Every
state but logged_out/ready/not_ready has an exit that does not depend on the agent:
``reserved`` ends with the offer (the core times every offer out), ``on_call`` when
the phone is idle again (``line.state``), ``wrap_up`` by its timer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from switchd.acd.model import AgentInput, SeatClass
from switchd.events import AgentState

__all__ = ["AGENT_TRANSITIONS", "Agent", "AgentCounts"]

_S = AgentState
_I = AgentInput

#: (state, input) -> next state. Anything not listed is refused.
AGENT_TRANSITIONS: dict[tuple[AgentState, AgentInput], AgentState] = {
    (_S.LOGGED_OUT, _I.LOGIN_READY): _S.READY,
    (_S.LOGGED_OUT, _I.LOGIN_NOT_READY): _S.NOT_READY,
    (_S.READY, _I.LOGOUT): _S.LOGGED_OUT,
    (_S.NOT_READY, _I.LOGOUT): _S.LOGGED_OUT,
    (_S.WRAP_UP, _I.LOGOUT): _S.LOGGED_OUT,
    # The ringing offer is withdrawn as the agent leaves.
    (_S.RESERVED, _I.LOGOUT): _S.LOGGED_OUT,
    (_S.NOT_READY, _I.READY): _S.READY,
    (_S.WRAP_UP, _I.READY): _S.READY,
    (_S.READY, _I.NOT_READY): _S.NOT_READY,
    (_S.NOT_READY, _I.NOT_READY): _S.NOT_READY,  # a new reason
    (_S.WRAP_UP, _I.NOT_READY): _S.NOT_READY,
    (_S.RESERVED, _I.NOT_READY): _S.NOT_READY,
    (_S.READY, _I.OFFER): _S.RESERVED,
    (_S.RESERVED, _I.OFFER_END): _S.READY,
    (_S.RESERVED, _I.RONA): _S.NOT_READY,
    (_S.RESERVED, _I.ANSWER): _S.ON_CALL,
    (_S.READY, _I.DIRECT): _S.ON_CALL,
    # Wrap-up ended while the agent was on a call of its own.
    (_S.WRAP_UP, _I.DIRECT): _S.ON_CALL,
    # On a call of its own (reason direct: it dialled, a ring group rang its phone) an
    # agent may pause or leave; on a queue call the engine refuses (wrap-up follows).
    (_S.ON_CALL, _I.NOT_READY): _S.NOT_READY,
    (_S.ON_CALL, _I.LOGOUT): _S.LOGGED_OUT,
    (_S.ON_CALL, _I.CALL_END): _S.WRAP_UP,
    (_S.ON_CALL, _I.FREE): _S.READY,
    (_S.WRAP_UP, _I.WRAPUP_END): _S.READY,
}


@dataclass(slots=True)
class AgentCounts:
    """An agent's figures over a period: offers, answers, offers missed (rang out or
    declined), talk and wrap-up seconds, and seconds in each state."""

    offered: int = 0
    answered: int = 0
    missed: int = 0
    talk_s: float = 0.0
    wrapup_s: float = 0.0
    time_in: dict[AgentState, float] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class Agent:
    """One agent and what the ACD knows of it. Times are epoch seconds.

    ``line``: the phone it sits at (``ext/201``), None when it has none. ``queues``:
    queue -> penalty. ``call_id``/``queue``: the call it is reserved for or on, and
    that call's queue (None for a call of its own). ``order``: its place in member
    order (linear, round robin). ``version`` moves every time it becomes free or
    stops being free (pools drop stale entries by it).
    """

    agent_id: str
    order: int
    name: str | None = None
    line: str | None = None
    seat: SeatClass = SeatClass.NORMAL
    queues: dict[str, int] = field(default_factory=dict)
    wrapup_s: float | None = None
    weight: float = 1.0
    state: AgentState = AgentState.LOGGED_OUT
    reason: str = ""
    since: float = 0.0
    #: Up to when the time in the current state is in ``total``/``interval.time_in``.
    counted_to: float = 0.0
    call_id: str | None = None
    queue: str | None = None
    #: When the current offer started ringing / the current call was answered.
    offered_at: float = 0.0
    answered_at: float = 0.0
    #: When its last queue call ended (longest idle); its login time before any.
    last_call_end: float = 0.0
    #: The queue call whose wrap-up this is (queue_log WRAPUPEND), in wrap_up only.
    wrapup_call: str | None = None
    #: Offers in a row it did not answer (RONA).
    no_answer: int = 0
    version: int = 0
    free: bool = False
    #: Per queue: calls answered, talk seconds (fewest_calls, least_talk_time).
    answered_in: dict[str, int] = field(default_factory=dict)
    talk_in: dict[str, float] = field(default_factory=dict)
    #: Since start, and in the current statistics interval (time in each state is
    #: counted up to ``since``).
    total: AgentCounts = field(default_factory=lambda: AgentCounts())
    interval: AgentCounts = field(default_factory=lambda: AgentCounts())

    def count(self, name: str, amount: float = 1) -> None:
        """Add ``amount`` to counter ``name`` since start and in this interval."""
        for c in (self.total, self.interval):
            setattr(c, name, getattr(c, name) + amount)

    def next_state(self, what: AgentInput) -> AgentState | None:
        """The state ``what`` leads to from here, or None when the table refuses it."""
        return AGENT_TRANSITIONS.get((self.state, what))
