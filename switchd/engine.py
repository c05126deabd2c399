"""The one engine protocol, and the one timer-heap type every engine uses.

Every engine (the call core, the simulated board, and the IVR and ACD engines to
come) is sans-IO (DESIGN §1): it takes an input plus ``now`` (epoch seconds,
float) and returns what happened; it asks for time rather than owning it
(aioquic's ``get_timer()``/``handle_timer(now)`` pattern)::

    handle(now, input) -> list[Output]     # an input happened
    next_deadline() -> float | None        # when it next needs to be woken
    handle_timer(now) -> list[Output]      # its deadline came

An output is either an :class:`~switchd.events.Event` (published on the bus) or an
:class:`Input` for another engine (a board driver's "ext/201 answers" is an input
of the core). The shell (``switchd.shell``) routes both, in order.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

__all__ = ["Engine", "Input", "Output", "TimerHeap"]


@dataclass(frozen=True, slots=True)
class Input:
    """Base of every engine input (frozen dataclasses such as ``Answer(line="ext/201")``)."""


#: What an engine returns: events for the bus, or inputs for another engine.
Output = Any


@runtime_checkable
class Engine(Protocol):
    """The protocol every sans-IO engine implements (DESIGN §1)."""

    def handle(self, now: float, item: Any) -> list[Output]:
        """Take one input (or a followed event) at epoch time ``now``; return what it caused."""
        ...

    def next_deadline(self) -> float | None:
        """Epoch seconds at which :meth:`handle_timer` must next run, or None."""
        ...

    def handle_timer(self, now: float) -> list[Output]:
        """Run what is due at ``now``; return what it caused."""
        ...


K = TypeVar("K", bound=Hashable)


class TimerHeap(Generic[K]):
    """Deadlines keyed by what they are for; re-arming a key replaces its deadline.

    A binary heap with lazy deletion: cancelling or re-arming only bumps the key's
    token, and stale entries are dropped when they reach the top, so every
    operation is O(log n) however many timers a long run arms. Ties fire in the
    order they were armed.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Any, Any]] = []
        self._live: dict[Any, int] = {}
        self._seq = 0

    def arm(self, key: K, deadline: float, payload: Any = None) -> None:
        """Fire ``key`` (with ``payload``) at ``deadline`` (epoch s), replacing an earlier arming."""
        self._seq += 1
        self._live[key] = self._seq
        heapq.heappush(self._heap, (deadline, self._seq, key, payload))

    def cancel(self, key: K) -> None:
        """Forget ``key``'s deadline (no error if it has none)."""
        self._live.pop(key, None)

    def armed(self, key: K) -> bool:
        """True when ``key`` has a deadline pending."""
        return key in self._live

    def next_deadline(self) -> float | None:
        """The earliest live deadline, or None."""
        heap = self._heap
        while heap:
            deadline, seq, key, _ = heap[0]
            if self._live.get(key) == seq:
                return deadline
            heapq.heappop(heap)
        return None

    def pop_due(self, now: float) -> tuple[K, Any] | None:
        """Remove and return ``(key, payload)`` of the earliest deadline ≤ ``now``, or None.

        One at a time, so the caller can act on it (and re-arm or cancel others)
        before the next is taken.
        """
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, key, payload = heapq.heappop(heap)
            if self._live.get(key) == seq:
                del self._live[key]
                return key, payload
        return None

    def __len__(self) -> int:
        return len(self._live)
