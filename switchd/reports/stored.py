"""Reading a report's queue_log facts from the database (:mod:`switchd.reports.facts`)
instead of the queue_log file: the same figures, in a fraction of the time.

``switchd report`` (and ``REPORT``) take this path when :func:`usable` says the stored
facts cover the report exactly: the database has them (schema 7), they began before the
report's start (``facts_since``: a daemon upgraded mid-month has the file only before),
no gap overlaps it (``facts_gaps``: lines the queue_log has and the facts never got,
found at a start by :func:`switchd.store.facts_writer.start_facts`),
and every interval bound is a whole quarter hour (``--from``/``--to`` given to the
minute off a quarter hour, or a zone whose offset is not whole quarter hours, use the
file), except the end when it is now or later (nothing after it is stored yet; within
:data:`NOW_SLACK_S`).

The CDRs' own columns are read by the forked reader of
:func:`switchd.reports.data.start_call_columns` while this process reads their facts
(``cdr LEFT JOIN call_facts``, aligned by rowid), the calls known only from the facts
(still in progress: no CDR at all; a small partial index) and the agents' sums.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from switchd.reports.data import WAIT_TALK_SQL
from switchd.reports.facts import BUCKET_S
from switchd.reports.logsum import covered
from switchd.reports.model import AgentFigures, CallColumns, CallFacts
from switchd.timefmt import iso_utc

__all__ = ["FACTS_COLUMNS_SQL", "StoredAgents", "align_facts", "extra_calls", "facts_from_rows",
           "facts_rows", "usable", "with_extra"]

#: The facts of a CDR row (``f`` = its call_facts row, possibly none): flags packed in one
#: integer (bit 0 entered, 1 abandoned, 2 refused, 3 callback, 4 connected, 5 exited,
#: 6 overflow), then abandon_wait, connect_hold, first_exit, wrapup_s, wrapups.
FACTS_COLUMNS_SQL = (
    "(f.first_enter IS NOT NULL) | (coalesce(f.abandoned, 0) << 1) | "
    "(coalesce(f.refused, 0) << 2) | (coalesce(f.callback, 0) << 3) | "
    "(coalesce(f.connected, 0) << 4) | ((f.first_exit IS NOT NULL) << 5) | "
    "(coalesce(f.overflow, 0) << 6), "
    "f.abandon_wait, f.connect_hold, f.first_exit, coalesce(f.wrapup_s, 0.0), "
    "coalesce(f.wrapups, 0)"
)


#: The per-call arrays of a CallFacts (every field but ``extra_at``).
_PER_CALL = tuple(f.name for f in fields(CallFacts) if f.name != "extra_at")

#: An end this close to now (s) counts as "now": a report "up to now" (no ``--to``) sums
#: its last quarter hour whole, with what the seconds it took to start added.
NOW_SLACK_S = 60.0


def _connect(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{Path(db).absolute().as_uri()}?mode=ro", uri=True)


def usable(db: Path, bounds: Sequence[float], *, now: float) -> bool:
    """Whether the stored facts of ``db`` serve a report whose interval bounds are
    ``bounds`` (epoch s, increasing: first the start, last the end) exactly (module
    docstring). Never raises: a database it cannot read that way means no."""
    if not bounds:
        return False
    inner, last = bounds[:-1], bounds[-1]
    if any(b % BUCKET_S for b in inner) or (last % BUCKET_S and last < now - NOW_SLACK_S):
        return False
    try:
        conn = _connect(db)
        try:
            row = conn.execute(
                "SELECT value FROM report_meta WHERE key = 'facts_since'").fetchone()
            gap = conn.execute("SELECT 1 FROM facts_gaps WHERE t0 < ? AND t1 > ? LIMIT 1",
                               (bounds[-1], bounds[0])).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False       # before schema 7, or not readable: the file it is
    return row is not None and float(row[0]) <= bounds[0] and gap is None


def facts_from_rows(packed: Sequence[int], ab_wait: Sequence[object],
                    hold: Sequence[object], first_exit: Sequence[object],
                    wrap_sum: Sequence[object], wrap_n: Sequence[int],
                    extra_at: np.ndarray | None = None) -> CallFacts:
    """:class:`CallFacts` of query columns in :data:`FACTS_COLUMNS_SQL` order (one entry
    per call: the CDR rows, then the calls without a CDR at ``extra_at``)."""
    flags = np.array(packed, dtype=np.int64)

    def bit(k: int) -> np.ndarray:
        return ((flags >> k) & 1).astype(bool)

    return CallFacts(
        entered=bit(0), abandoned=bit(1),
        abandon_wait=np.array(ab_wait, dtype=np.float64), refused=bit(2), callback=bit(3),
        connected=bit(4), connect_hold=np.array(hold, dtype=np.float64), exited=bit(5),
        first_exit=np.array(first_exit, dtype=np.float64), overflow=bit(6),
        wrap_sum=np.array(wrap_sum, dtype=np.float64),
        wrap_n=np.array(wrap_n, dtype=np.int64),
        extra_at=np.zeros(0) if extra_at is None else extra_at)


def facts_rows(db: Path, start: float, end: float, key: str) -> list[tuple[object, ...]]:
    """The stored facts in queue ``key`` ('' all) of the CDRs starting in [start, end):
    rows of (the CDR's rowid, its wait and talk seconds, then :data:`FACTS_COLUMNS_SQL`),
    for :func:`align_facts`.
    Read here while the forked reader fetches the CDRs' own columns (one query of a
    million rows and 14 columns costs about twice one of 8: on two cores each takes
    half). Raises sqlite3.Error."""
    conn = _connect(db)
    try:
        return conn.execute(
            f"SELECT c.rowid, {WAIT_TALK_SQL}, {FACTS_COLUMNS_SQL} FROM cdr c "
            "LEFT JOIN call_facts f "
            "ON f.uniqueid = c.uniqueid AND f.queue = ? WHERE c.start >= ? AND c.start < ?",
            (key, iso_utc(start), iso_utc(end))).fetchall()
    finally:
        conn.close()


def align_facts(rows: Sequence[Sequence[object]], calls: CallColumns
                ) -> tuple[CallColumns, CallFacts]:
    """``calls`` (read with rowids: :func:`switchd.reports.data.start_call_columns`) with
    their wait and talk seconds, and their facts, from :func:`facts_rows` ``rows`` put in
    the order of the calls' rowids (``calls.uid``). A CDR written between the two reads
    has no row here: no wait, no talk, no facts (the next report counts it whole)."""
    rowids = np.asarray(calls.uid, dtype=np.int64)
    n = len(rowids)
    if not rows:
        return calls, CallFacts.none(n)
    cols = list(zip(*rows, strict=True))
    got = np.array(cols[0], dtype=np.int64)
    wait = np.array(cols[1], dtype=np.float64)
    talk = np.array(cols[2], dtype=np.float64)
    facts = facts_from_rows(*cols[3:9])  # type: ignore[arg-type]
    if len(got) == n and np.array_equal(got, rowids):
        # The same rows in the same order (the usual case: one index, one order).
        return replace(calls, wait_s=wait, billsec=talk), facts
    order = np.argsort(got, kind="stable")
    pos = np.minimum(np.searchsorted(got[order], rowids), len(got) - 1)
    found = got[order][pos] == rowids
    take = np.where(found, order[pos], 0)
    none = CallFacts.none(n)
    out = {name: np.where(found, getattr(facts, name)[take], getattr(none, name))
           for name in _PER_CALL}
    return (replace(calls, wait_s=np.where(found, wait[take], 0.0),
                    billsec=np.where(found, talk[take], 0.0)),
            CallFacts(**out, extra_at=np.zeros(0)))


def extra_calls(db: Path, start: float, end: float, key: str) -> CallFacts:
    """The calls the facts know in queue ``key`` ('' all) with a first join in
    [start, end) and no CDR at all (in progress): their facts, ``extra_at`` their first
    joins (epoch s, float64). Raises sqlite3.Error."""
    conn = _connect(db)
    try:
        rows = conn.execute(
            f"SELECT f.first_enter, {FACTS_COLUMNS_SQL} FROM call_facts f "
            "WHERE f.queue = ? AND f.has_cdr = 0 AND f.first_enter >= ? AND f.first_enter < ? "
            "ORDER BY f.first_enter",
            (key, start, end)).fetchall()
    finally:
        conn.close()
    at = np.array([r[0] for r in rows], dtype=np.float64)
    cols = list(zip(*rows, strict=True)) if rows else [()] * 7
    return facts_from_rows(*cols[1:7], extra_at=at)  # type: ignore[arg-type]


class StoredAgents:
    """The agents' side of a report from ``agent_time``, ``agent_not_ready`` and
    ``agent_open`` (:class:`switchd.reports.figures.AgentTime`): per-agent figures over
    [start, end) and the occupancy of intervals whose bounds are whole quarter hours.

    Open spans (logged in or paused now) count up to the report's end, as the file fold
    counts them. Raises sqlite3.Error when the tables cannot be read."""

    def __init__(self, db: Path, *, start: float, end: float, queue: str | None,
                 agent: str | None) -> None:
        key = queue or ""
        where = "queue = ? AND bucket >= ? AND bucket < ?"
        params: list[object] = [key, start, end]
        if agent is not None:
            where += " AND agent = ?"
            params.append(agent)
        conn = _connect(db)
        try:
            # Summed by SQLite (a month of 80 agents is 200 000 quarter hours per queue):
            # per agent over the period, and per quarter hour over the agents.
            sum_rows = conn.execute(
                "SELECT agent, sum(events), sum(handled), sum(talk_s), sum(hold_s), "
                "sum(wrapup_s), sum(busy_s), sum(logged_s), sum(rona) FROM agent_time "
                f"WHERE {where} GROUP BY agent", params).fetchall()
            bucket_rows = conn.execute(
                "SELECT bucket, sum(busy_s), sum(logged_s) FROM agent_time "
                f"WHERE {where} GROUP BY bucket", params).fetchall()
            pause_rows = conn.execute(
                f"SELECT agent, reason, sum(seconds) FROM agent_not_ready WHERE {where} "
                "GROUP BY agent, reason", params).fetchall()
            only = [key] + ([agent] if agent is not None else [])
            who = " AND agent = ?" if agent is not None else ""
            open_rows = conn.execute(
                f"SELECT agent, kind, since, reason FROM agent_open WHERE queue = ?{who}",
                only).fetchall()
            long_rows = conn.execute(
                "SELECT agent, kind, reason, t0, t1 FROM agent_spans WHERE queue = ? "
                f"AND t1 > ? AND t0 < ?{who}",
                [key, start, end] + ([agent] if agent is not None else [])).fetchall()
        finally:
            conn.close()
        cols = list(zip(*bucket_rows, strict=True)) if bucket_rows else [()] * 3
        self._bucket = np.array(cols[0], dtype=np.float64)
        self._busy = np.array(cols[1], dtype=np.float64)
        self._logged = np.array(cols[2], dtype=np.float64)
        period = np.array([start, end], dtype=np.float64)
        logged_open = [(a, since) for a, kind, since, _ in open_rows if kind == "logged"]
        # Logged-in spans not in the quarter hours: those still open (to the report's
        # end, as the file fold counts them) and those longer than a day, whole.
        spans = [(since, np.inf) for _, since in logged_open] + [
            (t0, t1) for _, kind, _, t0, t1 in long_rows if kind == "logged"]
        self._span_t0 = np.array([x for x, _ in spans], dtype=np.float64)
        self._span_t1 = np.array([y for _, y in spans], dtype=np.float64)
        sums = {a: list(values) for a, *values in sum_rows}
        not_ready: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for a, reason, secs in pause_rows:
            if secs > 0:
                not_ready[a][reason] += secs
        for a, kind, since, reason in open_rows:
            if kind == "paused":
                secs = end - max(since, start)
                if secs > 0:
                    not_ready[a][reason] += secs
        open_logged: dict[str, float] = defaultdict(float)
        for a, since in logged_open:
            open_logged[a] += float(covered(np.array([since]), np.array([np.inf]),
                                            period)[0])
        for a, kind, reason, t0, t1 in long_rows:
            secs = float(covered(np.array([t0]), np.array([t1]), period)[0])
            if secs <= 0:
                continue
            if kind == "logged":
                open_logged[a] += secs
            else:
                not_ready[a][reason] += secs
        figures = []
        for a in sorted(set(sums) | set(not_ready) | set(open_logged)):
            events, handled, talk, hold, wrap, busy, logged, rona = sums.get(a, [0.0] * 8)
            logged += open_logged.get(a, 0.0)
            if not (events or logged > 0 or a in not_ready):
                continue
            n = int(handled)
            figures.append(AgentFigures(
                agent=a, calls_handled=n, talk_s=talk,
                not_ready_s=tuple(sorted(not_ready.get(a, {}).items())), rona=int(rona),
                aht_s=(talk + wrap) / n if n else None, hold_s=hold, wrapup_s=wrap,
                occupancy=busy / logged if logged > 0 else None))
        self._agents = tuple(figures)

    @property
    def agents(self) -> tuple[AgentFigures, ...]:
        """Per-agent figures over the period, sorted by agent."""
        return self._agents

    def occupancy(self, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(busy s, logged-in s) of the agents in each interval of ``bounds`` (float64
        epoch s; whole quarter hours but the last, which may be now): float64 arrays of
        ``len(bounds) - 1``."""
        k_n = len(bounds) - 1
        if k_n < 1:
            return np.zeros(0), np.zeros(0)
        k = np.searchsorted(bounds, self._bucket, side="right") - 1
        ok = (k >= 0) & (k < k_n)
        busy = np.bincount(k[ok], weights=self._busy[ok], minlength=k_n).astype(np.float64)
        logged = np.bincount(k[ok], weights=self._logged[ok], minlength=k_n).astype(np.float64)
        logged += covered(self._span_t0, self._span_t1, bounds)
        return busy, logged


def with_extra(facts: CallFacts, extra: CallFacts) -> CallFacts:
    """The facts of the CDR calls followed by those of the calls without a CDR."""
    joined = {n: np.concatenate((getattr(facts, n), getattr(extra, n))) for n in _PER_CALL}
    return CallFacts(**joined, extra_at=extra.extra_at)
