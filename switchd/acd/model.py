"""The ACD's settings and vocabulary: queues, agents, strategies, agent states, as plain data.

``switchd.config`` builds :class:`AcdSettings` from the ``queues:`` and ``agents:``
sections; the ACD engine (``switchd.acd.engine``) and ``switchd sim`` take it as is.
Nothing here does I/O; prompt files are already resolved to paths.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path
from types import MappingProxyType

from switchd.core.routing import Target, TargetKind
from switchd.events import AgentState, QueueExit

__all__ = [
    "OVERFLOW_KINDS",
    "AcdSettings",
    "CallbackSettings",
    "AgentInput",
    "AgentSettings",
    "AgentState",
    "PenaltyRule",
    "QueueExit",
    "QueueSettings",
    "RingGroup",
    "RingStrategy",
    "SeatClass",
    "Strategy",
]


class Strategy(StrEnum):
    """How a queue chooses among the agents free for a caller (all of them respect
    penalty: the lowest penalty level in the caller's range that has a free agent)."""

    #: Ring every free agent of that level at once; the first to answer takes the call.
    RINGALL = "ringall"
    #: The agent whose last call ended longest ago (Asterisk ``leastrecent``).
    LONGEST_IDLE = "longest_idle"
    #: The next free agent after the one rung last, in member order, wrapping round
    #: (Asterisk ``rrmemory``).
    ROUND_ROBIN = "round_robin"
    #: The agent who answered the fewest calls of this queue.
    FEWEST_CALLS = "fewest_calls"
    #: The agent with the least talk time in this queue.
    LEAST_TALK_TIME = "least_talk_time"
    #: The first free agent in member order (config order) (Asterisk ``linear``).
    LINEAR = "linear"
    #: A free agent at random.
    RANDOM = "random"
    #: A free agent at random, with probability proportional to the agent's ``weight``.
    WEIGHTED_RANDOM = "weighted_random"
    #: Penalty is a skill level: lowest first (longest idle within a level), the
    #: caller's range widening by the queue's ``penalty_rules``.
    SKILLS = "skills"


class SeatClass(StrEnum):
    """What kind of seat an agent has (shown in status; supervisors may pick up calls)."""

    NORMAL = "normal"
    EXPERT = "expert"
    SUPERVISOR = "supervisor"


class AgentInput(Enum):
    """What moves an agent (the keys of ``AGENT_TRANSITIONS`` in ``switchd.acd.agents``)."""

    LOGIN_READY = "login_ready"
    LOGIN_NOT_READY = "login_not_ready"
    LOGOUT = "logout"
    READY = "ready"
    NOT_READY = "not_ready"
    #: An offer starts ringing the agent's phone.
    OFFER = "offer"
    #: The offer ended unanswered (withdrawn, taken elsewhere, caller gone).
    OFFER_END = "offer_end"
    #: The offer rang out / was declined and the agent reached the RONA limit.
    RONA = "rona"
    #: The agent answered the offer.
    ANSWER = "answer"
    #: The agent's phone went busy with a call the ACD did not offer.
    DIRECT = "direct"
    #: The agent's phone is idle again after a queue call (wrap-up follows).
    CALL_END = "call_end"
    #: The agent's phone is idle again after a direct call, or wrap-up is 0.
    FREE = "free"
    WRAPUP_END = "wrapup_end"


#: Kinds a queue's overflow / exit-key target may be. A voicemail box is redirected to
#: like a flow or a queue (the IVR takes the message).
OVERFLOW_KINDS = frozenset({TargetKind.QUEUE, TargetKind.FLOW, TargetKind.EXTENSION,
                            TargetKind.VOICEMAIL})


@dataclass(frozen=True, slots=True)
class PenaltyRule:
    """From ``after_s`` seconds of waiting, the caller may be offered to agents whose
    penalty in the queue is within [``min_penalty``, ``max_penalty``] (inclusive)
    (Asterisk ``queuerules.conf``, with absolute bounds)."""

    after_s: float
    min_penalty: int = 0
    max_penalty: int = 2**31 - 1


@dataclass(frozen=True, slots=True)
class CallbackSettings:
    """Callback in queue: a waiting caller presses ``key``, hears ``confirm`` ("press 1 to
    be called back on this number, or enter another number and #") and has
    ``confirm_timeout_s`` to do so; then it hears ``done`` and is hung up after
    ``goodbye_s``, keeping its place. When its turn comes an agent's phone rings first,
    then the number is dialled (rung ``ring_timeout_s``). A failed attempt (no answer,
    busy) is tried again after ``retry_after_s``, ``retries`` more times. Times in s."""

    key: str
    confirm: tuple[Path, ...] = ()
    done: tuple[Path, ...] = ()
    confirm_timeout_s: float = 15.0
    goodbye_s: float = 5.0
    retries: int = 2
    retry_after_s: float = 120.0
    ring_timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """One queue. Times are seconds.

    ``penalty_rules``: sorted by ``after_s``; before the first one applies every
    penalty is allowed. ``max_wait_s``/``max_len`` None = no limit. ``overflow``: where
    a caller goes after ``max_wait_s``, when refused at join, or when the queue
    empties (None: the caller is released). ``vip_priority``: the priority a VIP
    caller gets (a caller's priority is the larger of it and what the IVR set).
    ``sticky_wait_s``: how long a returning caller waits for the agent of its last
    call (0 = off). ``rona_after``: unanswered offers in a row before the agent goes
    not_ready ``rona`` (0 = never). ``service_level_s``: the SL threshold T.
    """

    name: str
    strategy: Strategy = Strategy.LONGEST_IDLE
    ring_timeout_s: float = 15.0
    wrapup_s: float = 0.0
    max_wait_s: float | None = None
    max_len: int | None = None
    overflow: Target | None = None
    join_empty: bool = True
    leave_empty: bool = False
    vip_priority: int = 10
    sticky_wait_s: float = 0.0
    rona_after: int = 2
    service_level_s: float = 20.0
    penalty_rules: tuple[PenaltyRule, ...] = ()
    music: bool = True
    greeting: tuple[Path, ...] = ()
    #: Seconds between position announcements (None = never). ``position_files[i]``:
    #: what is played to the caller at position i + 1 ("you are caller number 3 in
    #: line"); a caller further back hears the last entry.
    announce_position_every_s: float | None = None
    position_files: tuple[tuple[Path, ...], ...] = ()
    #: With the position, the estimated wait: ``wait_files[m - 1]`` says "about m
    #: minutes" (empty: not announced). The estimate is exact arithmetic on this
    #: queue's own figures: position × mean handle time (talk + wrap-up) / agents staffed.
    wait_files: tuple[tuple[Path, ...], ...] = ()
    periodic: tuple[Path, ...] = ()
    periodic_every_s: float | None = None
    exit_key: str | None = None
    exit_to: Target | None = None
    callback: CallbackSettings | None = None

    def penalty_range(self, waited_s: float) -> tuple[int, int]:
        """The (min, max) penalty a caller who has waited ``waited_s`` may be offered to."""
        lo, hi = 0, 2**31 - 1
        for rule in self.penalty_rules:
            if rule.after_s > waited_s:
                break
            lo, hi = rule.min_penalty, rule.max_penalty
        return lo, hi

    def next_rule_after(self, waited_s: float) -> float | None:
        """The wait (s) at which the next penalty rule applies, or None."""
        for rule in self.penalty_rules:
            if rule.after_s > waited_s:
                return rule.after_s
        return None


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """One agent: ``agent_id`` is what CDRs, queue_log and CTI name it by; it sits at
    ``extension`` (None: not at a phone until it logs in at one). ``queues``: queue
    name -> penalty (0 = first). ``wrapup_s`` None = each queue's. ``login``: logged
    in (and ready) when switchd starts (the simulated board's bots)."""

    agent_id: str
    name: str | None = None
    extension: int | None = None
    seat: SeatClass = SeatClass.NORMAL
    queues: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    wrapup_s: float | None = None
    weight: float = 1.0
    login: bool = False

    def __post_init__(self) -> None:
        if not (self.weight > 0 and math.isfinite(self.weight)):
            raise ValueError(f"agent {self.agent_id}: weight must be > 0, got {self.weight}")


class RingStrategy(Enum):
    """How a ring group rings its members."""

    #: Ring every idle member at once; the first to answer gets the call.
    RINGALL = "ringall"
    #: Ring idle members one at a time in list order, ``ring_timeout_s`` each.
    HUNT = "hunt"


@dataclass(frozen=True, slots=True)
class RingGroup:
    """A named set of extensions rung together (ringall) or in turn (hunt): a queue with
    no waiting whose members are phones, not agents (a phone is rung when it is idle,
    whatever its agent's state; the caller is not answered by the switch and hears
    ringback). The ACD rings it (``call.routed target=group:NAME``); its figures and
    queue_log lines are those of a queue named ``group:NAME``.

    ``members``: extension numbers, in hunt order. ``ring_timeout_s``: seconds; the
    whole ring time for ringall, the time per member for hunt; None means the
    dial plan's ``ring_timeout_s``.
    """

    name: str
    strategy: RingStrategy
    members: tuple[int, ...]
    ring_timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class AcdSettings:
    """Every queue, ring group and agent. ``stats_interval_s``: length of a statistics
    interval; ``ring_timeout_s``: the dial plan's ring time, for groups without one."""

    queues: Mapping[str, QueueSettings] = field(default_factory=lambda: MappingProxyType({}))
    agents: tuple[AgentSettings, ...] = ()
    stats_interval_s: float = 900.0
    groups: Mapping[str, RingGroup] = field(default_factory=lambda: MappingProxyType({}))
    ring_timeout_s: float = 20.0
