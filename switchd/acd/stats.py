"""Exact queue statistics: counters and sums over a period, never moving averages.

Asterisk keeps an exponential moving average of hold time ((3·old + new)/4) and
counts timeouts and key exits as abandons; here every caller is counted once, by
what happened to it, and averages are sums over counts (REFERENCE.md, service
levels). Service levels use the queue's threshold T (``service_level_s``):

* SL1 = answered within T / (answered + abandoned)
* SL2 = answered within T / (answered + abandoned after T)   (short abandons excluded)
* SL3 = answered within T / offered (offered = joined + refused at join)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["QueueStats"]


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


@dataclass(slots=True)
class QueueStats:
    """Counters for one queue over one period. Waits and times are seconds."""

    offered: int = 0
    joined: int = 0
    answered: int = 0
    answered_within_sl: int = 0
    abandoned: int = 0
    abandoned_within_sl: int = 0
    timed_out: int = 0
    refused_full: int = 0
    refused_joinempty: int = 0
    exited_empty: int = 0
    exited_key: int = 0
    overflowed: int = 0
    #: Callers who left (any way) after waiting more than 0 s.
    waited: int = 0
    #: Callers who left the queue (every way), with the sum of their waits.
    left: int = 0
    wait_sum_all: float = 0.0
    wait_sum_answered: float = 0.0
    wait_max: float = 0.0
    talk_sum: float = 0.0
    talk_count: int = 0
    wrapup_sum: float = 0.0
    wrapup_count: int = 0
    #: Offers that rang out or were declined.
    ring_no_answer: int = 0
    #: Callbacks asked for; attempts that failed; callbacks given up after every retry.
    callbacks: int = 0
    callbacks_failed: int = 0
    callbacks_lost: int = 0
    #: Callers the switch took out (shutdown, a call released elsewhere): neither
    #: answered nor abandoned.
    system_exits: int = 0

    @property
    def asa_s(self) -> float | None:
        """Average speed of answer: mean wait of answered callers, s."""
        return _ratio(self.wait_sum_answered, self.answered)

    @property
    def avg_wait_s(self) -> float | None:
        """Mean wait of every caller who left (abandoned ones up to their abandon), s."""
        return _ratio(self.wait_sum_all, self.left)

    @property
    def avg_talk_s(self) -> float | None:
        """Mean talk time of the queue's completed calls, s."""
        return _ratio(self.talk_sum, self.talk_count)

    @property
    def avg_wrapup_s(self) -> float | None:
        """Mean wrap-up time after the queue's calls, s."""
        return _ratio(self.wrapup_sum, self.wrapup_count)

    @property
    def sl1(self) -> float | None:
        """Answered within T / (answered + abandoned)."""
        return _ratio(self.answered_within_sl, self.answered + self.abandoned)

    @property
    def sl2(self) -> float | None:
        """Answered within T / (answered + abandoned after T)."""
        return _ratio(self.answered_within_sl,
                      self.answered + self.abandoned - self.abandoned_within_sl)

    @property
    def sl3(self) -> float | None:
        """Answered within T / offered."""
        return _ratio(self.answered_within_sl, self.offered)

    def as_dict(self) -> dict[str, Any]:
        """Counters and derived figures (None where a ratio has no calls), for status and JSON."""
        out = asdict(self)
        for name in ("asa_s", "avg_wait_s", "avg_talk_s", "avg_wrapup_s", "sl1", "sl2", "sl3"):
            out[name] = getattr(self, name)
        return out
