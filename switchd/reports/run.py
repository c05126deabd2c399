"""One report from a state directory: which records it reads, read, then computed.

``switchd report``, the ``REPORT`` verb and ``switchd bench report`` all run
:func:`compute_report`. The CDRs come from the database; the queue_log's facts from the
report facts stored beside them when they cover the report exactly
(:func:`switchd.reports.stored.usable`), else from the queue_log file
(:func:`switchd.reports.data.summarize_queue_log`): the same figures either way, the
stored ones in a fraction of the time (``switchd bench report``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from switchd.reports.intervals import intervals
from switchd.reports.logsum import LogSummary
from switchd.reports.model import Report, ReportSettings

__all__ = ["ReportJob", "ReportTimes", "compute_report", "report_bounds"]


@dataclass
class ReportTimes:
    """Where a report's time went (s, perf_counter) and which path it took."""

    stored: bool = False
    load_log_s: float = 0.0
    load_calls_s: float = 0.0
    compute_s: float = 0.0
    marks: list[float] = field(default_factory=list)


def report_bounds(start: float, end: float, tz: str, by: str) -> list[float]:
    """Every interval bound a report of [start, end) by ``by`` in ``tz`` sums over (its
    intervals, the daily and monthly tables, the total), sorted. Raises ValueError as
    :func:`switchd.reports.intervals.intervals`."""
    out = {start, end}
    for kind in {by, "day", "month"}:
        for iv in intervals(start, end, tz, kind):
            out.add(iv.start)
    return sorted(out)


class ReportJob:
    """One report being read and computed. Making it decides where the queue_log's facts
    come from and starts reading the CDRs in a forked child (make it before any thread,
    such as a progress bar's), raising ValueError for a bad ``tz`` or ``by``;
    :meth:`finish` reads the rest and computes, :meth:`cancel` stops the CDR reader (call
    it in a ``finally``; harmless after :meth:`finish`)."""

    def __init__(self, db: Path, *, start: float, end: float, tz: str, by: str, now: float,
                 file_summary: Callable[[], LogSummary],
                 settings: ReportSettings | None = None, queue: str | None = None,
                 agent: str | None = None, stored: bool | None = None) -> None:
        import time

        from switchd.reports import stored as facts
        from switchd.reports.data import start_call_columns

        self.db, self.start, self.end, self.tz, self.by = db, start, end, tz, by
        self.settings, self.queue, self.agent = settings, queue, agent
        self.file_summary = file_summary
        self.times = ReportTimes()
        # ``stored`` False: the file whatever (a bench, a check); True is never forced.
        self.times.stored = stored is not False and facts.usable(
            db, report_bounds(start, end, tz, by), now=now)
        self._t0 = time.perf_counter()
        self.reader = start_call_columns(
            db, start, end, names=queue is not None or agent is not None,
            rowids=self.times.stored)

    def cancel(self) -> None:
        """Stop and reap the CDR reader if it still runs."""
        self.reader.cancel()

    def finish(self, stage: Callable[[str], None] | None = None) -> Report:
        """Read the queue_log's facts (stored, or the file's summary) and the CDRs, and
        compute. ``stage(text)`` is told as each step begins. Raises as
        :func:`compute_report`."""
        import time

        from switchd.reports import figures, stored
        from switchd.reports.data import stored_elsewhere

        say = stage or (lambda text: None)
        t = self.times
        db, start, end, queue, agent = self.db, self.start, self.end, self.queue, self.agent
        try:
            extra = None
            if t.stored:
                say("reading the report facts (and the CDRs beside)")
                rows = stored.facts_rows(db, start, end, queue or "")
                agents: figures.AgentTime = stored.StoredAgents(
                    db, start=start, end=end, queue=queue, agent=agent)
                if agent is None:
                    extra = stored.extra_calls(db, start, end, queue or "")
            else:
                say("reading the queue_log (and the CDRs beside)")
                summary = self.file_summary()
                agents = summary
            t1 = time.perf_counter()
            say("reading CDRs")
            calls, _ = self.reader.result()
        finally:
            self.reader.cancel()
        t2 = time.perf_counter()
        say("computing figures")
        kw = dict(start=start, end=end, tz=self.tz, by=self.by, settings=self.settings,
                  queue=queue, agent=agent)
        if t.stored:
            calls, facts = stored.align_facts(rows, calls)
            if extra is not None and len(extra.extra_at):
                facts = stored.with_extra(facts, extra)
            rep = figures.compute_facts(calls, facts, agents, **kw)  # type: ignore[arg-type]
        else:
            rep = figures.compute_columns(calls, summary, **kw,  # type: ignore[arg-type]
                                          elsewhere=lambda ids: stored_elsewhere(db, ids))
        t3 = time.perf_counter()
        t.load_log_s, t.load_calls_s, t.compute_s = t1 - self._t0, t2 - t1, t3 - t2
        return replace(rep, source="report_facts" if t.stored else "queue_log")


def compute_report(db: Path, *, start: float, end: float, tz: str, by: str, now: float,
                   file_summary: Callable[[], LogSummary],
                   settings: ReportSettings | None = None, queue: str | None = None,
                   agent: str | None = None, stage: Callable[[str], None] | None = None,
                   times: ReportTimes | None = None, stored: bool | None = None) -> Report:
    """The report of [start, end) (epoch s) from ``db`` and its stored report facts, or
    from ``file_summary()`` (the queue_log file's summary for this report) when the
    stored facts do not cover it. ``now``: epoch s (an end at or after it need not be a
    quarter hour). ``stage(text)`` is told as each step begins (a progress bar);
    ``times`` gets the time of each step; ``stored`` False reads the file even when the
    stored facts would do. The CDRs are read by a forked child meanwhile
    (:func:`switchd.reports.data.start_call_columns`). Raises FileNotFoundError,
    sqlite3.Error, OSError, MemoryError as the readers do, ValueError as
    :func:`switchd.reports.figures.compute`, and what ``file_summary`` raises."""
    job = ReportJob(db, start=start, end=end, tz=tz, by=by, now=now,
                    file_summary=file_summary, settings=settings, queue=queue, agent=agent,
                    stored=stored)
    try:
        rep = job.finish(stage)
    finally:
        job.cancel()
    if times is not None:
        times.__dict__.update(job.times.__dict__)
    return rep
