"""The report of hand-built records through the stored report facts: the CDRs and the
queue_log written to a state directory as the daemon leaves them (``write_state``: the
facts folded as the lines are written), then ``switchd report``'s runner, which must take
the stored path. Tests run their hand-computed fixtures through both paths with it."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from pathlib import Path

from switchd.events import Cdr, QueueLogEntry
from switchd.reports.figures import _log_lines, merge_calls
from switchd.reports.logsum import LogSummary
from switchd.reports.model import CallRow, Report, ReportSettings
from switchd.reports.run import ReportTimes, compute_report
from switchd.store.offline import write_state

_count = itertools.count()


def _cdr(c: CallRow) -> Cdr:
    return Cdr(uniqueid=c.uniqueid, linkedid=c.uniqueid, src="100", dst="200", clid="",
               start=c.start, answer=c.answer, end=c.end, duration=int(c.end - c.start),
               billsec=c.billsec, disposition=c.disposition, direction=c.direction,
               extension=c.extension, agent=c.agent, queue=c.queue, wait_s=c.wait_s,
               ivr_path=c.ivr_path, blocked_reason=c.blocked_reason, hangup_by=c.hangup_by)


def compute_stored(folder: Path, calls: Sequence[CallRow], log: Sequence[QueueLogEntry], *,
                   start: float, end: float, tz: str, by: str,
                   settings: ReportSettings | None = None, queue: str | None = None,
                   agent: str | None = None) -> Report:
    """:func:`switchd.reports.figures.compute`'s report of ``calls`` and ``log``, read
    from the stored facts of a new state directory under ``folder`` (AssertionError if
    the runner read the file instead)."""
    state = folder / f"state{next(_count)}"
    write_state(state, [_cdr(c) for c in merge_calls(calls).values()], _log_lines(log),
                facts_since=start)
    times = ReportTimes()

    def no_file() -> LogSummary:
        raise AssertionError("the report read the queue_log file, not the stored facts")

    rep = compute_report(state / "switchd.db", start=start, end=end, tz=tz, by=by,
                         now=time.time(), file_summary=no_file, settings=settings,
                         queue=queue, agent=agent, times=times)
    assert times.stored
    return rep


def reports_by_both_paths(folder: Path, cdrs: Sequence[Cdr], log: Sequence[QueueLogEntry], *,
                          queue: str | None = None, agent: str | None = None,
                          by: str = "hour") -> tuple[Report, Report]:
    """Write ``cdrs`` and the queue_log lines of ``log`` (as the daemon writes them, whole
    seconds) to a new state directory under ``folder``, with the report facts; return the
    report of the whole quarter hours they span read from the queue_log file, and read
    from the stored facts."""
    from switchd.reports.data import summarize_queue_log

    state = folder / f"state{next(_count)}"
    lines = [e.line() for e in sorted(log, key=lambda e: e.time)]
    times = [e.time for e in log] + [c.start for c in cdrs] + [c.end for c in cdrs]
    start = (min(times) // 900) * 900 if times else 0.0
    end = (max(times) // 900 + 2) * 900 if times else 900.0
    write_state(state, list(cdrs), lines, facts_since=start)
    out = []
    for stored in (False, True):
        t = ReportTimes()
        out.append(compute_report(
            state / "switchd.db", start=start, end=end, tz="UTC", by=by, now=time.time(),
            file_summary=lambda: summarize_queue_log(state / "queue_log", start=start,
                                                     end=end, margin_s=86400.0,
                                                     queue=queue, agent=agent),
            queue=queue, agent=agent, times=t, stored=None if stored else False))
        assert t.stored is stored
    return out[0], out[1]
