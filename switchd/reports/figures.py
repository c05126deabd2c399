"""Report figures from stored CDRs and the queue_log (pure: no I/O, no clock).

Every call counts once (CDR rows sharing a ``uniqueid`` are one call: a transferred call is never
counted per leg) and counts in the interval of its ``start``. A queue_log event of a call counts
in the interval of that call's CDR start (and only when the call is in the reported set); an
event of a call without a CDR (still in progress, or its CDR outside the range) counts at the
call's first ENTERQUEUE in the log, else at the event's own time. Agent figures (PAUSE, UNPAUSE,
RINGNOANSWER, CONNECT, COMPLETE*, *TRANSFER) count at the event's own time.

Figures of one interval (``Figures``); times in seconds, rates fractions 0..1 or None when the
denominator is 0:

* ``offered``: inbound calls (``direction == "inbound"``). With ``queue=Q``: calls whose CDR queue
  is Q or that have an ENTERQUEUE in Q in the queue_log (so joins refused at the door count),
  whatever their direction. With ``agent=A``: only calls whose CDR agent is A.
* ``answered``: offered calls a person answered (``disposition == "ANSWERED"`` and ``answer`` set;
  the CDR's answer is a person's, never the switch's/IVR's).
* ``unanswered`` = offered − answered; ``connection_rate`` = answered / offered.
* ``abandoned``: offered calls with an ABANDON event (``ABANDON|pos|origpos|waittime``; in Q with
  ``queue=Q``); ``short_abandoned``: those with waittime < ``short_abandon_s`` (shown apart,
  still included in ``abandoned``); ``abandon_rate`` = abandoned / offered.
* ``blocked``: offered calls with a ``blocked_reason``, or with disposition BUSY or CONGESTION.
* ``loss_rate`` = (blocked + abandoned) / offered.
* ``refused``: offered calls with a FULL or JOINEMPTY event (a join refused at the door).
* ``overflowed``: the ACD writes no overflow event to the queue_log (its overflow is the bus
  event ``queue.overflow``), so: offered calls that left a queue by EXITWITHTIMEOUT, EXITEMPTY,
  EXITWITHKEY, FULL or JOINEMPTY and went on somewhere: a later ENTERQUEUE of the call in
  another queue, or a person answered the call after that exit. A caller sent to an IVR
  target who then hung up unanswered is not counted (the stored records do not show it).
* ``callbacks``: offered calls with a CALLBACK event (a callback asked for).
* ``ivr_only``: offered calls the switch alone handled: ``ivr_path`` set, no person answered,
  no ABANDON in a queue, not blocked.
* ``queue_calls``: offered calls that reached a queue (CDR queue set, or any ENTERQUEUE).
* ``avg_wait_s`` / ``max_wait_s``: mean / maximum CDR ``wait_s`` of offered calls whose CDR queue is
  set (the CDR's wait is the time spent in queues; a refused join has no CDR queue).
* ``asa_s``: mean CDR ``wait_s`` of answered calls whose CDR queue is set.
* ``avg_talk_s``: mean ``billsec`` of answered calls.
* ``avg_wrapup_s``: mean ``wrapup_s`` of the WRAPUPEND lines of the interval's calls (the ACD
  writes one as each agent's wrap-up after a queue call ends, however it ends).
* ``occupancy``: the agents' busy time over their logged-in time within the interval (with
  ``agent=A`` that agent's), across all their queues, as the ACD's live figure: busy = talk on
  queue calls (from COMPLETEAGENT / COMPLETECALLER / *TRANSFER: the calltime before it) plus
  wrap-up (WRAPUPEND: the wrapup_s before it); logged in from ADDMEMBER to REMOVEMEMBER (an
  agent whose first line read is not ADDMEMBER was logged in before the log read starts, one
  day before the report). Ring-group phones (logged as their line, ``ext/N``) are not agents
  and have no logged-in time.
* Service levels with T = ``sl_threshold_s``, over queue calls (REFERENCE, as switchd.acd.stats):
  answered within T = a queue agent took the call (a CONNECT) and the caller's wait ≤ T: the
  CDR's ``wait_s`` (its whole time in queues, to the millisecond; with ``queue=Q``, the holdtime
  of its first CONNECT in Q, whole seconds rounded half-up as the queue_log writes them); answered = queue calls a person answered;
  abandoned as above, "abandoned after T" = ABANDON waittime > T.
  SL1 = within T / (answered + abandoned); SL2 = within T / (answered + abandoned after T);
  SL3 = within T / queue_calls.

Averages are exact means over the interval, never moving averages.

Agent figures (``AgentFigures``, whole period, agents sorted by id): ``calls_handled`` = distinct
calls with a CONNECT naming the agent; ``talk_s`` = sum of calltime of COMPLETEAGENT /
COMPLETECALLER (data[1]) and BLINDTRANSFER / ATTENDEDTRANSFER (data[3]); ``hold_s`` = sum of
UNHOLD hold_s; ``wrapup_s`` = sum of WRAPUPEND wrapup_s; ``rona`` = RINGNOANSWER events naming
the agent; ``not_ready_s`` = time from each PAUSE|reason to the next UNPAUSE, REMOVEMEMBER,
PAUSE or the end of the period, per reason (the ACD writes one line per queue of the agent:
repeated lines at the same instant count once); ``aht_s`` = (talk_s + wrapup_s) /
calls_handled (hold is part of talk); ``occupancy`` as above over the whole period.

With ``queue=Q`` the agent figures and occupancy are those of Q's lines: the agents' time as
members of Q (ADDMEMBER/REMOVEMEMBER and PAUSE/UNPAUSE of Q; the ACD writes them per queue),
Q's calls and their wrap-up.

``busiest_hour``: with ``by="hour"`` the label of the hour interval with most offered calls, else
the local hour of day "HH:00" with most offered calls over the period (earliest on a tie); None
without traffic.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import repeat
from typing import Protocol

import numpy as np

from switchd.events import QueueLogEntry
from switchd.reports.intervals import intervals, zone
from switchd.reports.logsum import LogSummary, summarize
from switchd.reports.model import (
    AgentFigures,
    CallColumns,
    CallFacts,
    CallRow,
    Figures,
    Interval,
    Report,
    ReportSettings,
)

__all__ = ["AgentTime", "compute", "compute_columns", "compute_facts", "facts_of_summary",
           "merge_calls"]


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def merge_calls(calls: Sequence[CallRow]) -> dict[str, CallRow]:
    """One row per ``uniqueid``: rows sharing one are legs of the same call.

    The merged call has the earliest start, the earliest answer, the latest end, the largest
    wait_s and billsec, and the first non-empty queue, agent, extension, ivr_path,
    blocked_reason and hangup_by in start order; direction and disposition of the earliest row
    (disposition ANSWERED when any row was answered).
    """
    unique = {c.uniqueid: c for c in calls}
    if len(unique) == len(calls):
        return unique  # one row per call, as switchd writes them: nothing to merge
    groups: dict[str, list[CallRow]] = defaultdict(list)
    for c in calls:
        groups[c.uniqueid].append(c)
    out: dict[str, CallRow] = {}
    for uid, rows in groups.items():
        if len(rows) == 1:
            out[uid] = rows[0]
            continue
        rows.sort(key=lambda r: r.start)
        first = rows[0]
        answers = [r.answer for r in rows if r.answer is not None]

        def pick(name: str, rows: list[CallRow] = rows) -> str | None:
            return next((getattr(r, name) for r in rows if getattr(r, name)), None)

        out[uid] = CallRow(
            uniqueid=uid, start=first.start, answer=min(answers) if answers else None,
            end=max(r.end for r in rows), direction=first.direction,
            disposition="ANSWERED" if answers else first.disposition,
            queue=pick("queue"), agent=pick("agent"),
            extension=next((r.extension for r in rows if r.extension is not None), None),
            wait_s=max(r.wait_s for r in rows), ivr_path=pick("ivr_path"),
            blocked_reason=pick("blocked_reason"), billsec=max(r.billsec for r in rows),
            hangup_by=pick("hangup_by"),
        )
    return out


def _log_lines(log: Sequence[QueueLogEntry]) -> list[str]:
    """Entries as queue_log lines in time order (a stable sort: lines of one instant keep
    their order), for :func:`switchd.reports.logsum.summarize`. Unlike
    :meth:`QueueLogEntry.line` (the file's whole seconds) a time keeps its fractions."""
    rows = sorted(log, key=lambda r: r.time)
    return ["|".join((repr(r.time), r.call_id, r.queue, r.agent, r.event, *r.data))
            for r in rows]


def compute(calls: Sequence[CallRow], log: Sequence[QueueLogEntry], *, start: float, end: float,
            tz: str, by: str, settings: ReportSettings | None = None,
            queue: str | None = None, agent: str | None = None) -> Report:
    """Figures per interval of ``[start, end)`` (epoch seconds) in zone ``tz``, and in total,
    from CDR rows and the ACD's queue_log entries (:func:`compute_columns` on their
    columns and summary).

    ``calls`` and ``log`` may hold records outside the range (they are ignored), and rows
    sharing a uniqueid (:func:`merge_calls`); ``queue`` and ``agent`` restrict the report as
    the module docstring says. Zero-traffic intervals are included with zero counts and
    None rates. Raises ValueError for an unknown ``by`` or ``tz`` or ``end < start`` (from
    `switchd.reports.intervals.intervals`).
    """
    cols = CallColumns.from_rows(list(merge_calls(calls).values()))
    summary = summarize(_log_lines(log), start=start, end=end,
                        window=(-np.inf, np.inf), queue=queue, agent=agent)
    return compute_columns(cols, summary, start=start, end=end, tz=tz, by=by,
                           settings=settings, queue=queue, agent=agent)


@dataclass(frozen=True)
class _Calls:
    """The chosen calls of a report as aligned arrays (CDR calls, then the calls the
    queue_log knows without a CDR yet)."""

    at: np.ndarray          # when each counts: CDR start, else first ENTERQUEUE
    answered: np.ndarray
    blocked: np.ndarray
    abandoned: np.ndarray
    short: np.ndarray
    abandoned_after: np.ndarray
    refused: np.ndarray
    callback: np.ndarray
    overflowed: np.ndarray
    ivr_only: np.ndarray
    in_queue: np.ndarray
    within: np.ndarray
    has_queue: np.ndarray
    wait_s: np.ndarray
    billsec: np.ndarray
    wrap_sum: np.ndarray
    wrap_n: np.ndarray


def facts_of_summary(cols: CallColumns, log: LogSummary, *, queue: str | None,
                     agent: str | None,
                     elsewhere: Callable[[set[str]], Collection[str]] | None = None
                     ) -> CallFacts:
    """The queue_log summary's per-call facts aligned with ``cols``, then the calls the
    log knows without a CDR among ``cols`` (counted at their first join; not with
    ``agent``; ``elsewhere`` drops those whose CDR starts outside the range)."""
    n = len(cols)
    index = dict(zip(cols.uid, range(n), strict=True))
    get = index.get

    def rows_of(keys: Iterable[str]) -> np.ndarray:
        # Row of each call id (-1: no such call), looked up in C (map), not a Python loop.
        return np.fromiter(map(get, keys, repeat(-1)), dtype=np.int64)

    nan = np.nan
    fe = log.first_enter
    entered = np.zeros(n, dtype=bool)
    if queue is None:
        # Without --queue a call's joins matter only where its CDR names no queue (whether
        # it reached one; its first CONNECT for the service level): a few rows, not all.
        noq = np.flatnonzero(~cols.has_queue)
        noq_ids = [cols.uid[i] for i in noq.tolist()]
        entered[noq] = np.fromiter(map(fe.__contains__, noq_ids), dtype=bool, count=len(noq))
        unknown = fe.keys() - index.keys()
    else:
        at_enter = rows_of(fe)
        entered[at_enter[at_enter >= 0]] = True
        unknown = set() if (at_enter >= 0).all() else fe.keys() - index.keys()
    if agent is None and unknown and elsewhere is not None:
        unknown -= set(elsewhere(unknown))
    extra_id: list[str] = []
    extra_at: list[float] = []
    if agent is None and unknown:
        for cid, t in fe.items():
            if cid in unknown:
                extra_id.append(cid)
                extra_at.append(t)
        index.update(zip(extra_id, range(n, n + len(extra_id)), strict=True))
    m = n + len(extra_id)

    def flags(keys: Iterable[str]) -> np.ndarray:
        out = np.zeros(m, dtype=bool)
        r = rows_of(keys)
        out[r[r >= 0]] = True
        return out

    def values(d: dict[str, float]) -> np.ndarray:
        out = np.full(m, nan)
        r = rows_of(d)
        ok = r >= 0
        out[r[ok]] = np.fromiter(d.values(), dtype=np.float64, count=len(d))[ok]
        return out

    if queue is None:
        hold = np.full(m, nan)
        ch = log.connect_hold
        hold[noq] = np.fromiter(map(ch.get, noq_ids, repeat(nan)), dtype=np.float64,
                                count=len(noq))
    else:
        hold = values(log.connect_hold)
    overflow = flags(log.overflow_enter)
    wrap_sum = np.zeros(m)
    wrap_n = np.zeros(m, dtype=np.int64)
    r = rows_of(log.wrapup)
    ok = r >= 0
    wrap_sum[r[ok]] = np.fromiter(log.wrapup.values(), dtype=np.float64,
                                  count=len(log.wrapup))[ok]
    wrap_n[r[ok]] = np.fromiter(map(log.wrapups.__getitem__, log.wrapup), dtype=np.int64,
                                count=len(log.wrapup))[ok]
    return CallFacts(
        entered=np.concatenate((entered, np.ones(len(extra_id), dtype=bool))),
        abandoned=flags(log.abandon_wait), abandon_wait=values(log.abandon_wait),
        refused=flags(log.refused), callback=flags(log.callback),
        connected=flags(log.connect_hold), connect_hold=hold,
        exited=flags(log.first_exit), first_exit=values(log.first_exit), overflow=overflow,
        wrap_sum=wrap_sum, wrap_n=wrap_n, extra_at=np.asarray(extra_at, dtype=np.float64))


def _choose(cols: CallColumns, f: CallFacts, s: ReportSettings, *, start: float, end: float,
            queue: str | None, agent: str | None) -> _Calls:
    """The calls the report counts (module docstring) with their facts, as arrays."""
    n_extra = len(f.extra_at)

    def pad(x: np.ndarray, fill: object) -> np.ndarray:
        return np.concatenate((x, np.full(n_extra, fill, dtype=x.dtype)))

    at = np.concatenate((cols.start, f.extra_at))
    has_queue = pad(cols.has_queue, False)
    entered = f.entered
    if queue is not None:
        pick = (cols.queue == queue) | entered[:len(cols)]
    else:
        pick = cols.inbound.copy()
    if agent is not None:
        pick &= cols.agent == agent
    pick = pad(pick, True) & (at >= start) & (at < end)
    answer = pad(cols.answer, np.nan)
    with np.errstate(invalid="ignore"):
        # It left a queue and went on: into another queue, or a person answered it after.
        overflowed = f.exited & (f.overflow | (answer >= f.first_exit))
    abandoned, ab_wait = f.abandoned, f.abandon_wait
    answered = pad(cols.answered, False)
    blocked = pad(cols.blocked, False)
    wait_s = pad(cols.wait_s, 0.0)
    in_queue = entered | has_queue
    # The caller's wait: the CDR's (ms, whole time in queues); per queue, its first CONNECT.
    # Either way a queue agent took it (a CONNECT): a caller who left the queue (a key, a
    # timeout) and was answered elsewhere was not answered by the queue (switchd.acd.stats).
    if queue is None:
        waited = np.where(has_queue & f.connected, wait_s, f.connect_hold)
    else:
        waited = f.connect_hold
    with np.errstate(invalid="ignore"):
        within = in_queue & answered & (waited <= s.sl_threshold_s)
        short = abandoned & (ab_wait < s.short_abandon_s)
        after = abandoned & ~(ab_wait <= s.sl_threshold_s)
    ivr = pad(cols.ivr, False)
    keep = np.flatnonzero(pick)
    order = keep[np.argsort(at[keep], kind="stable")]
    return _Calls(
        at=at[order], answered=answered[order], blocked=blocked[order],
        abandoned=abandoned[order], short=short[order], abandoned_after=after[order],
        refused=f.refused[order], callback=f.callback[order], overflowed=overflowed[order],
        ivr_only=(ivr & ~answered & ~abandoned & ~blocked)[order], in_queue=in_queue[order],
        within=within[order], has_queue=has_queue[order], wait_s=wait_s[order],
        billsec=pad(cols.billsec, 0.0)[order], wrap_sum=f.wrap_sum[order],
        wrap_n=f.wrap_n[order])


class AgentTime(Protocol):
    """The agents' side of a report: their figures over the period, and the occupancy of
    any interval (:class:`switchd.reports.logsum.LogSummary` from the file, or
    :class:`switchd.reports.stored.StoredAgents` from the report facts)."""

    @property
    def agents(self) -> tuple[AgentFigures, ...]:
        """Per-agent figures over the whole period, sorted by agent."""
        ...

    def occupancy(self, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(busy s, logged-in s) of the agents in each interval of ``bounds`` (float64
        epoch s, increasing): two float64 arrays of ``len(bounds) - 1``."""
        ...


def _table(ivs: Sequence[Interval], c: _Calls, log: AgentTime
           ) -> tuple[tuple[Interval, Figures], ...]:
    """The figures of each interval of ``ivs`` (in time order): each call in the interval
    of its start, the agents' occupancy clipped to each interval."""
    k_n = len(ivs)
    if k_n == 0:
        return ()
    bounds = np.array([iv.start for iv in ivs] + [ivs[-1].end], dtype=np.float64)
    k = np.searchsorted(bounds, c.at, side="right") - 1
    inside = (k >= 0) & (k < k_n)
    k = k[inside]

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(k[mask[inside]], minlength=k_n)

    def total(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        sel = mask[inside]
        return np.bincount(k[sel], weights=values[inside][sel], minlength=k_n)

    everyone = np.ones(len(c.at), dtype=bool)
    offered = count(everyone)
    answered = count(c.answered)
    abandoned = count(c.abandoned)
    blocked = count(c.blocked)
    q_answered = count(c.in_queue & c.answered)
    within = count(c.within)
    after = count(c.abandoned_after)
    waited = count(c.has_queue)
    wait_sum = total(c.wait_s, c.has_queue)
    ans_waited = count(c.has_queue & c.answered)
    ans_wait_sum = total(c.wait_s, c.has_queue & c.answered)
    talk_sum = total(c.billsec, c.answered)
    wrap_n = np.bincount(k, weights=c.wrap_n[inside], minlength=k_n)
    wrap_sum = np.bincount(k, weights=c.wrap_sum[inside], minlength=k_n)
    max_wait = np.full(k_n, -np.inf)
    sel = c.has_queue[inside]
    np.maximum.at(max_wait, k[sel], c.wait_s[inside][sel])
    counts = {name: count(getattr(c, name)) for name in (
        "short", "refused", "overflowed", "callback", "ivr_only", "in_queue")}
    busy, logged = log.occupancy(bounds)
    rows = []
    for j, iv in enumerate(ivs):
        o, a, ab, bl = int(offered[j]), int(answered[j]), int(abandoned[j]), int(blocked[j])
        w, qa, aft = int(within[j]), int(q_answered[j]), int(after[j])
        nw, naw, nwr = int(waited[j]), int(ans_waited[j]), int(wrap_n[j])
        rows.append((iv, Figures(
            offered=o, answered=a, unanswered=o - a, connection_rate=_ratio(a, o),
            abandoned=ab, short_abandoned=int(counts["short"][j]),
            abandon_rate=_ratio(ab, o), blocked=bl, loss_rate=_ratio(bl + ab, o),
            refused=int(counts["refused"][j]), overflowed=int(counts["overflowed"][j]),
            callbacks=int(counts["callback"][j]), ivr_only=int(counts["ivr_only"][j]),
            queue_calls=int(counts["in_queue"][j]),
            avg_wait_s=_ratio(float(wait_sum[j]), nw),
            max_wait_s=float(max_wait[j]) if nw else None,
            asa_s=_ratio(float(ans_wait_sum[j]), naw),
            avg_talk_s=_ratio(float(talk_sum[j]), a),
            avg_wrapup_s=_ratio(float(wrap_sum[j]), nwr),
            occupancy=_ratio(float(busy[j]), float(logged[j])),
            sl1=_ratio(w, qa + ab), sl2=_ratio(w, qa + aft),
            sl3=_ratio(w, int(counts["in_queue"][j])),
        )))
    return tuple(rows)


def compute_columns(cols: CallColumns, log: LogSummary, *, start: float, end: float, tz: str,
                    by: str, settings: ReportSettings | None = None, queue: str | None = None,
                    agent: str | None = None,
                    elsewhere: Callable[[set[str]], Collection[str]] | None = None) -> Report:
    """:func:`compute` on the calls' columns (one entry per call) and the queue_log's
    summary (:func:`switchd.reports.logsum.summarize`, made with the same range,
    ``queue`` and ``agent``): what ``switchd report`` runs over the queue_log file.
    ``elsewhere(ids)``: asked only when the queue_log names calls without a CDR among
    the columns, it returns those of ``ids`` whose CDR starts outside the range
    (:func:`switchd.reports.data.stored_elsewhere`): they are not counted as calls
    without a CDR. Raises ValueError as :func:`compute`, and what ``elsewhere`` raises."""
    facts = facts_of_summary(cols, log, queue=queue, agent=agent, elsewhere=elsewhere)
    return compute_facts(cols, facts, log, start=start, end=end, tz=tz, by=by,
                         settings=settings, queue=queue, agent=agent)


def compute_facts(cols: CallColumns, facts: CallFacts, agents: AgentTime, *, start: float,
                  end: float, tz: str, by: str, settings: ReportSettings | None = None,
                  queue: str | None = None, agent: str | None = None) -> Report:
    """The report of [start, end) from the calls' columns, their queue_log facts aligned
    with them (:class:`~switchd.reports.model.CallFacts`: from the file's summary, or the
    stored report facts) and the agents' side. Raises ValueError as :func:`compute`."""
    s = settings or ReportSettings()
    ivs = intervals(start, end, tz, by)
    c = _choose(cols, facts, s, start=start, end=end, queue=queue, agent=agent)
    log = agents
    rows = _table(ivs, c, log)
    daily = rows if by == "day" else _table(intervals(start, end, tz, "day"), c, log)
    monthly = rows if by == "month" else _table(intervals(start, end, tz, "month"), c, log)
    [(_, total)] = _table([Interval(start, end, "total")], c, log) or [(None, Figures())]

    busiest: str | None = None
    if by == "hour":
        best = max(rows, key=lambda r: r[1].offered, default=None)
        if best is not None and best[1].offered:
            # max() keeps the first of equals: the earliest hour wins a tie.
            busiest = best[0].label
    elif len(c.at):
        # The local hour of day with most calls: count per hour interval (DST-correct),
        # then add the hours sharing an hour of day.
        hours = intervals(start, end, tz, "hour")
        bounds = np.array([iv.start for iv in hours] + [hours[-1].end], dtype=np.float64)
        per = np.bincount(np.searchsorted(bounds, c.at, side="right") - 1,
                          minlength=len(hours))
        z = zone(tz)
        per_hour: dict[int, int] = defaultdict(int)
        for iv, n in zip(hours, per, strict=False):
            if n:
                per_hour[datetime.fromtimestamp(iv.start, z).hour] += int(n)
        if per_hour:
            h = min(per_hour, key=lambda x: (-per_hour[x], x))
            busiest = f"{h:02d}:00"
    return Report(settings=s, tz=tz, by=by, intervals=rows, total=total,
                  agents=log.agents, busiest_hour=busiest, daily=daily, monthly=monthly)
