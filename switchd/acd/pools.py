"""Free agents of one queue at one penalty level, ordered for the queue's strategy.

A queue keeps one :class:`Pool` per penalty level its members have. An agent is in
the pools of every queue it belongs to while it is free (ready, phone idle); picking
never scans the queue's members (a 1000-agent centre would pay for it on every
call): the heap strategies pop stale entries lazily, round robin bisects a sorted
list, random draws by index.

An agent's *metric* (last call end, calls answered, talk time, member order) only
changes while it is busy, so it is fixed for as long as it sits in a pool; an entry
carries the agent's ``version`` at insertion and is stale once the agent left the
pool (:attr:`~switchd.acd.agents.Agent.version` moves on every change of freedom).
"""

from __future__ import annotations

import bisect
import heapq
import random
from collections.abc import Callable
from typing import Protocol

from switchd.acd.agents import Agent
from switchd.acd.model import Strategy

__all__ = ["Pool", "make_pool"]


class Pool(Protocol):
    """The free agents of one (queue, penalty level)."""

    def add(self, agent: Agent) -> None:
        """``agent`` became free (its version was just moved on)."""
        ...

    def discard(self, agent: Agent) -> None:
        """``agent`` is no longer free (lazy pools may keep a stale entry)."""
        ...

    def pick(self) -> Agent | None:
        """The agent the strategy chooses, without taking it out (None: none free)."""
        ...

    def all(self) -> list[Agent]:
        """Every free agent (ringall), in no particular order."""
        ...

    def rung(self, agent: Agent) -> None:
        """``agent`` was offered a call (round robin remembers it)."""
        ...


class _HeapPool:
    """Lowest metric first (longest idle, fewest calls, least talk, linear, skills)."""

    __slots__ = ("_heap", "_free", "_metric", "_seq")

    def __init__(self, metric: Callable[[Agent], float]) -> None:
        self._metric = metric
        self._heap: list[tuple[float, int, Agent, int]] = []
        self._free: dict[str, Agent] = {}
        self._seq = 0

    def add(self, agent: Agent) -> None:
        self._free[agent.agent_id] = agent
        self._seq += 1
        heapq.heappush(self._heap, (self._metric(agent), self._seq, agent, agent.version))

    def discard(self, agent: Agent) -> None:
        self._free.pop(agent.agent_id, None)

    def pick(self) -> Agent | None:
        heap = self._heap
        while heap:
            _, _, agent, version = heap[0]
            if version == agent.version and agent.agent_id in self._free:
                return agent
            heapq.heappop(heap)
        return None

    def all(self) -> list[Agent]:
        return list(self._free.values())

    def rung(self, agent: Agent) -> None:
        pass


class _RoundRobinPool:
    """The next free agent after the one rung last, in member order (Asterisk rrmemory)."""

    __slots__ = ("_order", "_free", "_last", "_by_order")

    def __init__(self) -> None:
        self._order: list[int] = []          # member order numbers of free agents, sorted
        self._by_order: dict[int, Agent] = {}
        self._free: dict[str, int] = {}
        self._last = -1

    def add(self, agent: Agent) -> None:
        if agent.agent_id in self._free:
            return
        n = agent.order
        self._free[agent.agent_id] = n
        self._by_order[n] = agent
        bisect.insort(self._order, n)

    def discard(self, agent: Agent) -> None:
        n = self._free.pop(agent.agent_id, None)
        if n is not None:
            del self._by_order[n]
            del self._order[bisect.bisect_left(self._order, n)]

    def pick(self) -> Agent | None:
        if not self._order:
            return None
        i = bisect.bisect_right(self._order, self._last)
        return self._by_order[self._order[i if i < len(self._order) else 0]]

    def all(self) -> list[Agent]:
        return list(self._by_order.values())

    def rung(self, agent: Agent) -> None:
        self._last = agent.order


class _RandomPool:
    """A free agent at random; weighted by ``weight`` when ``weighted``."""

    __slots__ = ("_agents", "_index", "_rng", "_weighted")

    def __init__(self, rng: random.Random, weighted: bool) -> None:
        self._agents: list[Agent] = []
        self._index: dict[str, int] = {}
        self._rng = rng
        self._weighted = weighted

    def add(self, agent: Agent) -> None:
        if agent.agent_id not in self._index:
            self._index[agent.agent_id] = len(self._agents)
            self._agents.append(agent)

    def discard(self, agent: Agent) -> None:
        i = self._index.pop(agent.agent_id, None)
        if i is None:
            return
        last = self._agents.pop()
        if last is not agent:
            self._agents[i] = last
            self._index[last.agent_id] = i

    def pick(self) -> Agent | None:
        if not self._agents:
            return None
        if self._weighted and len(self._agents) > 1:
            # Proportional to weight; O(free agents), only over those free at this level.
            return self._rng.choices(self._agents, [a.weight for a in self._agents])[0]
        return self._agents[self._rng.randrange(len(self._agents))]

    def all(self) -> list[Agent]:
        return list(self._agents)

    def rung(self, agent: Agent) -> None:
        pass


def make_pool(strategy: Strategy, queue: str, rng: random.Random) -> Pool:
    """A pool ordered for ``strategy`` in ``queue`` (metrics per queue where they are)."""
    if strategy in (Strategy.LONGEST_IDLE, Strategy.SKILLS, Strategy.RINGALL):
        return _HeapPool(lambda a: a.last_call_end)
    if strategy is Strategy.FEWEST_CALLS:
        return _HeapPool(lambda a: a.answered_in.get(queue, 0))
    if strategy is Strategy.LEAST_TALK_TIME:
        return _HeapPool(lambda a: a.talk_in.get(queue, 0.0))
    if strategy is Strategy.LINEAR:
        return _HeapPool(lambda a: a.order)
    if strategy is Strategy.ROUND_ROBIN:
        return _RoundRobinPool()
    if strategy is Strategy.RANDOM:
        return _RandomPool(rng, weighted=False)
    if strategy is Strategy.WEIGHTED_RANDOM:
        return _RandomPool(rng, weighted=True)
    raise AssertionError(f"no pool for strategy {strategy}")
