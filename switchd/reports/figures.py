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
  answered within T = the caller's wait ≤ T: the CDR's ``wait_s`` (its whole time in queues, to
  the millisecond; with ``queue=Q``, the holdtime of its first CONNECT in Q, whole seconds
  rounded half-up as the queue_log writes them); answered = queue calls a person answered;
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

``busiest_hour``: with ``by="hour"`` the label of the hour interval with most offered calls, else
the local hour of day "HH:00" with most offered calls over the period (earliest on a tie); None
without traffic.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from operator import attrgetter

import numpy as np

from switchd.reports.intervals import intervals, zone
from switchd.reports.model import (
    AgentFigures,
    CallRow,
    Figures,
    Interval,
    QueueLogRow,
    Report,
    ReportSettings,
)

__all__ = ["compute", "merge_calls"]

_EXITS_ON = ("EXITWITHTIMEOUT", "EXITEMPTY", "EXITWITHKEY", "FULL", "JOINEMPTY")
_REFUSED = ("FULL", "JOINEMPTY")
_NONE = ("", "NONE")
_BY_TIME = attrgetter("time")


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _num(text: str | None) -> float | None:
    """A queue_log number field, or None when it is missing or not a finite number."""
    if text is None:
        return None
    try:
        x = float(text)
    except ValueError:
        return None
    return x if x == x and abs(x) != float("inf") else None


def _field(row: QueueLogRow, i: int) -> float | None:
    return _num(row.data[i]) if len(row.data) > i else None


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


@dataclass
class _CallFacts:
    """What the queue_log says about one call (filtered to the reported queue)."""

    entered: bool = False
    first_enter: float | None = None
    abandon_wait: float | None = None
    abandoned: bool = False
    refused: bool = False
    callback: bool = False
    connect_hold: float | None = None
    connect_time: float | None = None
    exits: list[tuple[float, str]] = field(default_factory=list)
    enters: list[tuple[float, str]] = field(default_factory=list)
    wrapups: list[float] = field(default_factory=list)


def _facts(log: Sequence[QueueLogRow], queue: str | None) -> dict[str, _CallFacts]:
    out: dict[str, _CallFacts] = {}
    for row in sorted(log, key=_BY_TIME):
        if row.call_id in _NONE:
            continue
        f = out.get(row.call_id)
        if f is None:
            f = out[row.call_id] = _CallFacts()
        if row.event == "ENTERQUEUE":
            f.enters.append((row.time, row.queue))  # every queue: an overflow's destination
        if queue is not None and row.queue != queue:
            continue
        if row.event == "ENTERQUEUE":
            f.entered = True
            if f.first_enter is None:
                f.first_enter = row.time
        elif row.event == "ABANDON":
            f.abandoned = True
            f.abandon_wait = _field(row, 2)
        elif row.event in _REFUSED:
            f.refused = True
        elif row.event == "CALLBACK":
            f.callback = True
        elif row.event == "CONNECT" and f.connect_time is None:
            f.connect_hold = _field(row, 0)
            f.connect_time = row.time
        elif row.event == "WRAPUPEND":
            f.wrapups.append(_field(row, 0) or 0.0)
        if row.event in _EXITS_ON:
            f.exits.append((row.time, row.queue))
    return out


def _overflowed(f: _CallFacts, call: CallRow | None) -> bool:
    for at, q in f.exits:
        if any(t >= at and eq != q for t, eq in f.enters):
            return True
        if call is not None and call.answer is not None and call.answer >= at:
            return True
    return False


@dataclass
class _Acc:
    """The calls of one interval, as (call, facts) pairs."""

    calls: list[tuple[CallRow | None, _CallFacts]] = field(default_factory=list)


def _figures(acc: _Acc, s: ReportSettings, by_queue: bool) -> Figures:
    offered = len(acc.calls)
    answered = abandoned = short = blocked = refused = overflowed = callbacks = 0
    ivr_only = queue_calls = q_answered = within = abandoned_after = 0
    waits: list[float] = []
    answered_waits: list[float] = []
    talks: list[float] = []
    wrapups: list[float] = []
    for c, f in acc.calls:
        if f.wrapups:
            wrapups.extend(f.wrapups)
        is_answered = c is not None and c.answer is not None and c.disposition == "ANSWERED"
        is_blocked = c is not None and (bool(c.blocked_reason)
                                        or c.disposition in ("BUSY", "CONGESTION"))
        in_queue = f.entered or (c is not None and bool(c.queue))
        answered += is_answered
        blocked += is_blocked
        if f.abandoned:
            abandoned += 1
            w = f.abandon_wait
            if w is not None and w < s.short_abandon_s:
                short += 1
            if w is None or w > s.sl_threshold_s:
                abandoned_after += 1
        refused += f.refused
        callbacks += f.callback
        if f.exits:
            overflowed += _overflowed(f, c)
        if (c is not None and c.ivr_path and not is_answered and not f.abandoned
                and not is_blocked):
            ivr_only += 1
        if is_answered and c is not None:
            talks.append(float(c.billsec))
        if in_queue:
            queue_calls += 1
            if is_answered:
                q_answered += 1
                waited = (c.wait_s if not by_queue and c is not None and c.queue
                          else f.connect_hold)
                if waited is not None and waited <= s.sl_threshold_s:
                    within += 1
        if c is not None and c.queue:
            waits.append(c.wait_s)
            if is_answered:
                answered_waits.append(c.wait_s)
    return Figures(
        offered=offered, answered=answered, unanswered=offered - answered,
        connection_rate=_ratio(answered, offered), abandoned=abandoned, short_abandoned=short,
        abandon_rate=_ratio(abandoned, offered),
        blocked=blocked, loss_rate=_ratio(blocked + abandoned, offered), refused=refused,
        overflowed=overflowed, callbacks=callbacks, ivr_only=ivr_only, queue_calls=queue_calls,
        avg_wait_s=_mean(waits), max_wait_s=max(waits) if waits else None,
        asa_s=_mean(answered_waits), avg_talk_s=_mean(talks), avg_wrapup_s=_mean(wrapups),
        sl1=_ratio(within, q_answered + abandoned),
        sl2=_ratio(within, q_answered + abandoned_after),
        sl3=_ratio(within, queue_calls),
    )


def _covered(spans: list[tuple[float, float]], bounds: np.ndarray) -> np.ndarray:
    """Seconds of ``spans`` (``[t0, t1)`` pairs, epoch s, may overlap each other) inside
    each ``[bounds[i], bounds[i+1])``: float64 array of len(bounds) - 1.

    Vectorised: the time covered before t is C(t) = Σ_{t0<t}(t − t0) − Σ_{t1<t}(t − t1), so
    each interval gets C(end) − C(start) with two sorted searches per bound."""
    if not spans or len(bounds) < 2:
        return np.zeros(max(len(bounds) - 1, 0))
    arr = np.asarray(spans, dtype=np.float64)
    # Open spans (logged in before the log read, still logged in after it) end a second
    # outside the bounds: only time between the bounds is measured.
    t0 = np.maximum(arr[:, 0], bounds[0] - 1.0)
    t1 = np.minimum(arr[:, 1], bounds[-1] + 1.0)
    keep = t1 > t0

    def before(x: np.ndarray) -> np.ndarray:
        # F(t) = Σ_{x<t} (t − x) at every bound.
        x = np.sort(x)
        k = np.searchsorted(x, bounds, side="left")
        prefix = np.concatenate(([0.0], np.cumsum(x)))
        return k * bounds - prefix[k]

    return np.diff(before(t0[keep]) - before(t1[keep]))


@dataclass
class _AgentTime:
    """Logged-in and busy spans per agent, read from the whole log (clipped later)."""

    logged: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: defaultdict(list))
    busy: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: defaultdict(list))

    def occupancy(self, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(busy seconds, logged-in seconds) of all agents per interval of ``bounds``."""
        busy = _covered([x for v in self.busy.values() for x in v], bounds)
        logged = _covered([x for v in self.logged.values() for x in v], bounds)
        return busy, logged


_INF = float("inf")


def _agents(log: Sequence[QueueLogRow], start: float, end: float,
            agent: str | None) -> tuple[tuple[AgentFigures, ...], _AgentTime]:
    handled: dict[str, set[str]] = defaultdict(set)
    talk: dict[str, float] = defaultdict(float)
    hold: dict[str, float] = defaultdict(float)
    wrapup: dict[str, float] = defaultdict(float)
    rona: dict[str, int] = defaultdict(int)
    paused: dict[str, tuple[float, str]] = {}
    not_ready: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    seen: set[tuple[float, str, str, tuple[str, ...]]] = set()
    names: set[str] = set()
    spans = _AgentTime()
    #: agent -> its queues while logged in (None: logged in before the log, queues unknown)
    member: dict[str, set[str] | None] = {}
    login_at: dict[str, float] = {}

    def close(a: str, at: float) -> None:
        p = paused.pop(a, None)
        if p is not None:
            t0 = max(p[0], start)
            if at > t0:
                not_ready[a][p[1]] += at - t0

    for row in sorted(log, key=_BY_TIME):
        a = row.agent
        if a in _NONE or (agent is not None and a != agent):
            continue
        ev = row.event
        t = row.time
        if "/" not in a:
            # Logged-in time (a ring group's phone, ext/N, is no agent: it never logs in).
            queues = member.get(a, ...)
            if queues is ...:
                queues = member[a] = set() if ev == "ADDMEMBER" else None
                if queues is None:
                    login_at[a] = -_INF
            if ev == "ADDMEMBER" and queues is not None:
                if not queues:
                    login_at[a] = t
                queues.add(row.queue)
            elif ev == "REMOVEMEMBER" and (queues is None or row.queue in queues):
                if queues is not None:
                    queues.discard(row.queue)
                if queues is None or not queues:
                    spans.logged[a].append((login_at.pop(a, t), t))
                    member[a] = set()
        if ev in ("COMPLETEAGENT", "COMPLETECALLER", "BLINDTRANSFER", "ATTENDEDTRANSFER"):
            secs = _field(row, 1 if ev.startswith("COMPLETE") else 3) or 0.0
            if "/" not in a:
                spans.busy[a].append((t - secs, t))
            if start <= t < end:
                talk[a] += secs
                names.add(a)
            continue
        if ev == "WRAPUPEND":
            secs = _field(row, 0) or 0.0
            spans.busy[a].append((t - secs, t))
            if start <= t < end:
                wrapup[a] += secs
                names.add(a)
            continue
        if t >= end:
            continue
        if ev in ("PAUSE", "UNPAUSE", "REMOVEMEMBER"):
            key = (t, a, ev, row.data)
            if key in seen:
                continue  # the same change, written once per queue of the agent
            seen.add(key)
            close(a, t)
            if ev == "PAUSE":
                paused[a] = (t, row.data[0] if row.data else "")
                if t >= start:
                    names.add(a)
            continue
        if t < start:
            continue
        if ev == "CONNECT":
            handled[a].add(row.call_id)
        elif ev == "UNHOLD":
            hold[a] += _field(row, 0) or 0.0
        elif ev == "RINGNOANSWER":
            rona[a] += 1
        else:
            continue
        names.add(a)
    for a in list(paused):
        close(a, end)
    for a, t0 in login_at.items():
        spans.logged[a].append((t0, _INF))
    names |= set(not_ready)
    bounds = np.array([start, end], dtype=np.float64)
    out = []
    for a in sorted(names):
        n = len(handled.get(a, ()))
        busy = float(_covered(spans.busy.get(a, []), bounds)[0])
        logged = float(_covered(spans.logged.get(a, []), bounds)[0])
        out.append(AgentFigures(
            agent=a, calls_handled=n, talk_s=talk.get(a, 0.0),
            not_ready_s=tuple(sorted(not_ready.get(a, {}).items())),
            rona=rona.get(a, 0),
            aht_s=_ratio(talk.get(a, 0.0) + wrapup.get(a, 0.0), n),
            hold_s=hold.get(a, 0.0), wrapup_s=wrapup.get(a, 0.0),
            occupancy=_ratio(busy, logged)))
    return tuple(out), spans


def _table(ivs: Sequence[Interval], chosen: Sequence[tuple[float, CallRow | None, _CallFacts]],
           s: ReportSettings, by_queue: bool,
           spans: _AgentTime) -> tuple[tuple[Interval, Figures], ...]:
    """The figures of each interval of ``ivs`` (in time order) from the chosen calls (in
    start order, each counted in the interval of its start) and the agents' spans."""
    accs = [_Acc() for _ in ivs]
    i = 0
    for at, c, f in chosen:
        while i < len(ivs) and at >= ivs[i].end:
            i += 1
        if i < len(ivs):
            accs[i].calls.append((c, f))
    bounds = np.array([iv.start for iv in ivs] + ([ivs[-1].end] if ivs else []),
                      dtype=np.float64)
    busy, logged = spans.occupancy(bounds)
    return tuple(
        (iv, replace(_figures(acc, s, by_queue), occupancy=_ratio(float(b), float(lg))))
        for iv, acc, b, lg in zip(ivs, accs, busy, logged, strict=True))


def compute(calls: Sequence[CallRow], log: Sequence[QueueLogRow], *, start: float, end: float,
            tz: str, by: str, settings: ReportSettings | None = None,
            queue: str | None = None, agent: str | None = None) -> Report:
    """Figures per interval of ``[start, end)`` (epoch seconds) in zone ``tz``, and in total.

    ``calls`` and ``log`` may hold records outside the range (they are ignored); ``queue`` and
    ``agent`` restrict the report as the module docstring says. Zero-traffic intervals are
    included with zero counts and None rates. Raises ValueError for an unknown ``by`` or
    ``tz`` or ``end < start`` (from `switchd.reports.intervals.intervals`).
    """
    s = settings or ReportSettings()
    ivs = intervals(start, end, tz, by)
    z = zone(tz)
    merged = merge_calls(calls)
    facts = _facts(log, queue)
    chosen: list[tuple[float, CallRow | None, _CallFacts]] = []
    for uid, c in merged.items():
        f = facts.get(uid) or _CallFacts()
        if queue is not None:
            if c.queue != queue and not f.entered:
                continue
        elif c.direction != "inbound":
            continue
        if agent is not None and c.agent != agent:
            continue
        chosen.append((c.start, c, f))
    if agent is None:
        # Calls the queue_log knows and the CDRs do not (yet): counted at their first join.
        for uid, f in facts.items():
            if uid not in merged and f.entered and f.first_enter is not None:
                chosen.append((f.first_enter, None, f))
    chosen = [x for x in chosen if start <= x[0] < end]
    chosen.sort(key=lambda x: x[0])

    total = _Acc(calls=[(c, f) for _at, c, f in chosen])
    agents, spans = _agents(log, start, end, agent)
    by_queue = queue is not None
    rows = _table(ivs, chosen, s, by_queue, spans)
    daily = rows if by == "day" else _table(intervals(start, end, tz, "day"), chosen, s,
                                            by_queue, spans)
    monthly = rows if by == "month" else _table(intervals(start, end, tz, "month"), chosen, s,
                                                by_queue, spans)
    total_busy, total_logged = (float(x[0]) for x in spans.occupancy(
        np.array([start, end], dtype=np.float64)))

    busiest: str | None = None
    if by == "hour":
        best = max(rows, key=lambda r: r[1].offered, default=None)
        if best is not None and best[1].offered:
            # max() keeps the first of equals: the earliest hour wins a tie.
            busiest = best[0].label
    else:
        per_hour: dict[int, int] = defaultdict(int)
        for at, _c, _f in chosen:
            per_hour[datetime.fromtimestamp(at, z).hour] += 1
        if per_hour:
            h = min(per_hour, key=lambda k: (-per_hour[k], k))
            busiest = f"{h:02d}:00"
    return Report(settings=s, tz=tz, by=by, intervals=rows,
                  total=replace(_figures(total, s, by_queue),
                                occupancy=_ratio(total_busy, total_logged)),
                  agents=agents, busiest_hour=busiest, daily=daily, monthly=monthly)
