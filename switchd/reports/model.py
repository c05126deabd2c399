"""Plain data types shared by the report loader, the figure computation and the renderers.

All times are epoch seconds (UTC, float); all durations are seconds. Every type is a frozen
dataclass so a `Report` can be passed around and rendered without being changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class CallRow:
    """One CDR (one row of the `cdr` table; one per call, never per leg).

    `start`, `answer` and `end` are epoch seconds; `answer` is None when no person answered.
    `wait_s` is the queue wait in seconds (0 when the call never reached a queue), `billsec` the
    talk time in whole seconds.
    """

    uniqueid: str
    start: float
    answer: float | None
    end: float
    direction: str
    disposition: str
    queue: str | None
    agent: str | None
    extension: int | None
    wait_s: float
    ivr_path: str | None
    blocked_reason: str | None
    billsec: int
    hangup_by: str | None


@dataclass(frozen=True)
class ReportSettings:
    """Report thresholds in seconds: the service-level threshold T and the short-abandon limit."""

    sl_threshold_s: float = 20.0
    short_abandon_s: float = 5.0


@dataclass(frozen=True)
class Interval:
    """One reporting interval [start, end) in epoch seconds, labelled in local time.

    Labels: "2026-12-07 13:00" (hour; a repeated fall-back hour carries its UTC offset,
    "2026-11-01 01:00-04:00"), "2026-12-07" (day), "2026-W49" (ISO week), "2026-12" (month).
    """

    start: float
    end: float
    label: str


@dataclass(frozen=True)
class Figures:
    """The figures of one interval (or of the whole period). Definitions: `switchd.reports.figures`.

    Counts are ints; `*_s` values are seconds (None when there is nothing to average); rates
    are fractions 0..1 (None when the denominator is 0).
    """

    offered: int = 0
    answered: int = 0
    unanswered: int = 0
    connection_rate: float | None = None
    abandoned: int = 0
    short_abandoned: int = 0
    abandon_rate: float | None = None
    blocked: int = 0
    loss_rate: float | None = None
    refused: int = 0
    overflowed: int = 0
    callbacks: int = 0
    ivr_only: int = 0
    queue_calls: int = 0
    avg_wait_s: float | None = None
    max_wait_s: float | None = None
    asa_s: float | None = None
    avg_talk_s: float | None = None
    avg_wrapup_s: float | None = None
    occupancy: float | None = None
    sl1: float | None = None
    sl2: float | None = None
    sl3: float | None = None

    def as_dict(self) -> dict[str, int | float | str | None]:
        """Return the figures as a dict in the fixed field order above (rates as fractions)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class AgentFigures:
    """Per-agent figures over the whole period.

    `talk_s` is total talk seconds (hold included), `hold_s` the time it held its callers,
    `wrapup_s` its wrap-up time, `not_ready_s` pairs (pause reason, seconds) sorted by reason,
    `rona` the number of RINGNOANSWER events, `aht_s` the average handle time
    ((talk + wrap-up) / calls_handled), None when the agent handled no call, and `occupancy`
    (talk + wrap-up) / logged-in time in the period, None when it was never logged in.
    """

    agent: str
    calls_handled: int = 0
    talk_s: float = 0.0
    not_ready_s: tuple[tuple[str, float], ...] = field(default_factory=tuple)
    rona: int = 0
    aht_s: float | None = None
    hold_s: float = 0.0
    wrapup_s: float = 0.0
    occupancy: float | None = None

    def as_dict(self) -> dict[str, int | float | str | None]:
        """Return the figures as a flat dict; pause reasons become `not_ready_<reason>_s` keys."""
        out: dict[str, int | float | str | None] = {
            "agent": self.agent,
            "calls_handled": self.calls_handled,
            "talk_s": self.talk_s,
            "hold_s": self.hold_s,
            "wrapup_s": self.wrapup_s,
            "rona": self.rona,
            "aht_s": self.aht_s,
            "occupancy": self.occupancy,
            "not_ready_s": sum(s for _, s in self.not_ready_s),
        }
        for reason, secs in self.not_ready_s:
            out[f"not_ready_{reason or 'none'}_s"] = secs
        return out


@dataclass(frozen=True)
class Report:
    """A computed report: per-interval figures, the total, per-agent figures, the busiest hour,
    and the daily and monthly traffic tables.

    `by` is hour|day|week|month, `tz` the IANA zone the intervals are labelled in, and
    `busiest_hour` the label of the interval with the most offered calls when `by` is "hour"
    (otherwise the local hour of day "HH:00" with the most offered calls), None without traffic.
    """

    settings: ReportSettings
    tz: str
    by: str
    intervals: tuple[tuple[Interval, Figures], ...]
    total: Figures
    agents: tuple[AgentFigures, ...] = ()
    busiest_hour: str | None = None
    #: The daily and monthly traffic tables (REQUIREMENTS.md): the same figures per local
    #: calendar day and month of the period, whatever ``by`` is.
    daily: tuple[tuple[Interval, Figures], ...] = ()
    monthly: tuple[tuple[Interval, Figures], ...] = ()
    #: Where the queue_log's facts came from: "report_facts" (stored beside the CDRs as
    #: the queue_log was written) or "queue_log" (the file read).
    source: str = "queue_log"


@dataclass(frozen=True)
class CallColumns:
    """The calls of a report as columns (one entry per call, same order in each): what
    :mod:`switchd.reports.figures` needs of each CDR, as numpy arrays so that a month of
    a million calls is counted in a few vectorised passes.

    ``uid``: uniqueid per call; ``start``/``answer``: epoch s (float64; answer NaN when
    no person answered); ``inbound``/``answered`` (disposition ANSWERED with an answer
    time)/``ivr`` (an ivr_path)/``blocked`` (a blocked_reason, or BUSY/CONGESTION):
    bool arrays; ``queue``/``agent``: object arrays of str or None; ``wait_s``,
    ``billsec``: float64 seconds; ``has_queue``: bool, the CDR names a queue (``queue``
    and ``agent`` may be all None when the report does not filter by them: the loader
    leaves out what is not needed).
    """

    uid: list[str]
    start: Any
    answer: Any
    inbound: Any
    answered: Any
    queue: Any
    agent: Any
    wait_s: Any
    billsec: Any
    ivr: Any
    blocked: Any
    has_queue: Any

    @classmethod
    def from_rows(cls, rows: Sequence[CallRow]) -> CallColumns:
        """The columns of ``rows`` (one row per call)."""
        import numpy as np

        nan = float("nan")
        return cls(
            uid=[c.uniqueid for c in rows],
            start=np.array([c.start for c in rows], dtype=np.float64),
            answer=np.array([nan if c.answer is None else c.answer for c in rows],
                            dtype=np.float64),
            inbound=np.array([c.direction == "inbound" for c in rows], dtype=bool),
            answered=np.array([c.disposition == "ANSWERED" and c.answer is not None
                               for c in rows], dtype=bool),
            queue=_objects([c.queue for c in rows]),
            agent=_objects([c.agent for c in rows]),
            wait_s=np.array([c.wait_s for c in rows], dtype=np.float64),
            billsec=np.array([c.billsec for c in rows], dtype=np.float64),
            ivr=np.array([bool(c.ivr_path) for c in rows], dtype=bool),
            blocked=np.array([bool(c.blocked_reason) or c.disposition in ("BUSY", "CONGESTION")
                              for c in rows], dtype=bool),
            has_queue=np.array([bool(c.queue) for c in rows], dtype=bool),
        )

    def __len__(self) -> int:
        return len(self.uid)


def _objects(values: list[Any]) -> Any:
    """A 1-D numpy object array of ``values`` (never a 2-D one, whatever they are)."""
    import numpy as np

    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


@dataclass(frozen=True)
class CallFacts:
    """What the queue_log says of each call of a report, as arrays aligned with its
    :class:`CallColumns` and then its calls without a CDR (same order, one entry per
    call; :mod:`switchd.reports.figures` defines each fact).

    ``entered``: a join (ENTERQUEUE; in the report's queue with ``--queue``);
    ``abandoned`` with ``abandon_wait`` (float64 s, NaN unreadable); ``refused``,
    ``callback``, ``connected`` (a CONNECT) with ``connect_hold`` (its holdtime, float64
    s, NaN unknown); ``exited`` (EXIT*/FULL/JOINEMPTY) with ``first_exit`` (epoch s) and
    ``overflow`` (a join elsewhere after it); ``wrap_sum`` (float64 s) and ``wrap_n``
    (int64) of its WRAPUPEND lines. ``extra_at``: the epoch s each call without a CDR
    counts at (its first join), float64 of that many."""

    entered: Any
    abandoned: Any
    abandon_wait: Any
    refused: Any
    callback: Any
    connected: Any
    connect_hold: Any
    exited: Any
    first_exit: Any
    overflow: Any
    wrap_sum: Any
    wrap_n: Any
    extra_at: Any

    @classmethod
    def none(cls, n: int, extra_at: Any = None) -> CallFacts:
        """Facts of ``n`` calls (and of the extra calls at ``extra_at``) that the queue_log
        says nothing of."""
        import numpy as np

        extra = np.zeros(0) if extra_at is None else np.asarray(extra_at, dtype=np.float64)
        m = n + len(extra)
        no = np.zeros(m, dtype=bool)
        nan = np.full(m, np.nan)
        return cls(entered=no, abandoned=no, abandon_wait=nan, refused=no, callback=no,
                   connected=no, connect_hold=nan, exited=no, first_exit=nan, overflow=no,
                   wrap_sum=np.zeros(m), wrap_n=np.zeros(m, dtype=np.int64), extra_at=extra)

