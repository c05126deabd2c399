"""The report facts, folded as the queue_log is written: what ``switchd report`` needs of
the queue_log, kept in the database so a month of a busy centre is not re-read line by
line for every report.

Why: the queue_log of a million calls is 3.6 M lines; reading them back in CPython costs
~1.5 µs each (``switchd bench report``), most of a report's time. The facts a report
takes from the log are few per call and per agent and quarter hour, and they are known
the moment a line is written. So the daemon (and ``switchd sim --records``, ``switchd
bench report``) feeds every line it appends to the file to :class:`FactsFold` too,
and writes what it folded to three tables (:mod:`switchd.store.schema`, migration 7):

* ``call_facts``: one row per call and queue (``queue = ''``: all the call's queues),
  the per-call facts of :class:`switchd.reports.logsum.LogSummary` — first ENTERQUEUE,
  ABANDON and its waittime, FULL/JOINEMPTY (refused), CALLBACK, the first CONNECT's
  holdtime, the first exit and whether the call overflowed after it, WRAPUPEND seconds
  and count;
* ``agent_time``: per agent, queue (``''``: all) and quarter hour (:data:`BUCKET_S`,
  epoch seconds of its start): the events that list an agent, calls handled, talk,
  hold, wrap-up, RONA, busy and logged-in seconds (spans cut at the quarter hours),
  and ``agent_not_ready`` the not-ready seconds per reason;
* ``agent_open``: the logged-in and paused spans still open (since when), so a report
  counts them up to its end, and a restart (QUEUESTART) closes them at its time.

Every definition is that of :mod:`switchd.reports.figures` as :mod:`switchd.reports.logsum`
implements it over the file (the same lines, the same order), with three differences
where the file's window (a day either side of the range) cannot see: a call's lines
count whatever their distance from the range, a call counts as handled by an agent at
its first CONNECT to that agent, and an agent logged in or paused since more than a day
before the range counts so in it even with no line of its own there. Spans longer than
a day (:data:`LONG_SPAN_S`) are stored whole (``agent_spans``), not cut. Local hours, days and months of
every time zone in use begin on a quarter hour (UTC offsets are whole quarter hours), so
any report whose bounds are whole quarter hours sums whole buckets and is exact.

Pure: no I/O, no clock; :meth:`FactsFold.take` hands over what changed since the last
take as a :class:`FactsBatch` for the store to write in one transaction.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from switchd.reports.logsum import _BUSY_FIELD, _EXITS_ON, _NONE, _num
from switchd.reports.logsum import _TRANSFERS as _TRANSFER_EVENTS

__all__ = ["AGENT_FIELDS", "BUCKET_S", "LONG_SPAN_S", "CallFact", "FactsBatch", "FactsFold", "OpenSpan"]

#: Length of an agent-time bucket (s): a quarter hour, so local hours of every zone in use
#: (UTC offsets are whole quarter hours: +05:45, +08:45, −09:30 …) are whole buckets.
BUCKET_S = 900

#: The summed columns of an ``agent_time`` row, in order.
AGENT_FIELDS = ("events", "handled", "talk_s", "hold_s", "wrapup_s", "busy_s", "logged_s",
                "rona")
_EVENTS, _HANDLED, _TALK, _HOLD, _WRAP, _BUSY, _LOGGED, _RONA = range(len(AGENT_FIELDS))

#: The queue_log format as the file fold reads it (the same lines must mean the same).
_TRANSFERS = frozenset(_TRANSFER_EVENTS)

#: A call's state is forgotten this long (s) after its last line (every line of a call
#: comes within its life and its agents' wrap-up), or when more than
#: :data:`MAX_CALLS` are kept: memory stays bounded at any call rate. A line of a call
#: forgotten still folds right (the store merges rows: first join and first CONNECT
#: kept, wrap-up added); only an overflow after it or a second CONNECT to the same
#: agent would go unseen.
KEEP_CALL_S = 3600.0
MAX_CALLS = 100_000
#: A logged-in or paused span longer than this (s) is stored whole (``agent_spans``)
#: rather than cut into quarter hours: an agent left logged in over a weekend, or the
#: days a stopped switch's last logins run until its next start, are a few rows, not
#: thousands written in one loop turn.
LONG_SPAN_S = 86400.0


@dataclass(eq=False)   # hashed by identity: kept in a set of changed facts
class CallFact:
    """The facts of one call in one queue (``queue == ''``: in all its queues).

    Times are epoch s; ``abandon_wait``/``connect_hold`` NaN when the line's number was
    unreadable (the flag still set); ``first_exit`` None without an exit. ``wrapup_s``
    and ``wrapups`` are what was added since the last take (the store adds them up)."""

    uniqueid: str
    queue: str
    first_enter: float | None = None
    abandoned: bool = False
    abandon_wait: float = math.nan
    refused: bool = False
    callback: bool = False
    connected: bool = False
    connect_hold: float = math.nan
    first_exit: float | None = None
    overflow: bool = False
    wrapup_s: float = 0.0
    wrapups: int = 0
    #: Not stored: the queues it left (overflow), the agents it was connected to.
    exit_queues: set[str] = field(default_factory=set)
    agents: set[str] = field(default_factory=set)
    last: float = 0.0

    def take_row(self) -> tuple[object, ...]:
        """:meth:`row`, holding the wrap-up added since the last take; this fact's own
        count restarts at zero."""
        out = self.row()
        self.wrapup_s, self.wrapups = 0.0, 0
        return out

    def row(self) -> tuple[object, ...]:
        """The ``call_facts`` row (:data:`switchd.store.schema.SQL_UPSERT_CALL_FACT`'s
        order); NaN becomes NULL."""
        def num(x: float) -> float | None:
            return None if math.isnan(x) else x

        return (self.uniqueid, self.queue, self.first_enter, int(self.abandoned),
                num(self.abandon_wait), int(self.refused), int(self.callback),
                int(self.connected), num(self.connect_hold), self.first_exit,
                int(self.overflow), self.wrapup_s, self.wrapups)


@dataclass(frozen=True)
class OpenSpan:
    """An agent's logged-in (``kind == 'logged'``) or paused (``'paused'``, with its
    ``reason``) span in ``queue`` (``''``: any queue) open since ``since`` (epoch s)."""

    agent: str
    queue: str
    kind: str
    since: float
    reason: str = ""


@dataclass
class FactsBatch:
    """What changed since the last :meth:`FactsFold.take`: ``calls`` rows to upsert
    (:meth:`CallFact.row`); ``agent_time`` increments per (agent, queue, bucket) in
    :data:`AGENT_FIELDS` order; ``not_ready`` increments per (agent, queue, bucket,
    reason) in seconds; ``opened`` spans to store, ``closed`` (agent, queue, kind) keys
    to delete (a key is in one of the two at most)."""

    calls: list[tuple[object, ...]] = field(default_factory=list)
    agent_time: dict[tuple[str, str, int], list[float]] = field(default_factory=dict)
    not_ready: dict[tuple[str, str, int, str], float] = field(default_factory=dict)
    opened: list[OpenSpan] = field(default_factory=list)
    closed: list[tuple[str, str, str]] = field(default_factory=list)
    #: When the facts begin (epoch s), to store once: set in the first batch of new facts.
    since: float | None = None
    #: Spans stored whole: (agent, queue, kind, reason, t0, t1) epoch s.
    long_spans: list[tuple[str, str, str, str, float, float]] = field(default_factory=list)
    #: The last line folded: its time (epoch s) and how many lines in a row, up to it,
    #: had that time (None before the first): the file's tail must match them.
    last: tuple[float, int] | None = None

    def __bool__(self) -> bool:
        return bool(self.calls or self.agent_time or self.not_ready or self.opened
                    or self.closed or self.since is not None or self.long_spans)


class _AgentState:
    """One agent in one queue key: logged in since, paused since (and why)."""

    __slots__ = ("login_at", "paused", "queues")

    def __init__(self) -> None:
        self.queues: set[str] | None = set()   # None: logged in before the facts began
        self.login_at: float | None = None
        self.paused: tuple[float, str] | None = None


def _buckets(t0: float, t1: float) -> Iterator[tuple[int, float]]:
    """(bucket start, seconds of [t0, t1) in it) for each quarter hour the span touches."""
    b = int(math.floor(t0 / BUCKET_S)) * BUCKET_S
    while b < t1:
        nxt = b + BUCKET_S
        secs = min(t1, nxt) - max(t0, b)
        if secs > 0:
            yield b, secs
        b = nxt


class FactsFold:
    """The report facts of the queue_log lines fed to it, in the order written.

    ``origin`` (epoch s): when the facts begin; None: they begin now, at the first
    line's whole second (the next :meth:`take` carries it as ``since``, to be stored;
    ``fresh``: as 0, nothing having come before). ``opened``: the spans a previous run
    left open (``agent_open``), so the QUEUESTART of this run closes them as the file
    fold does. An agent seen without its ADDMEMBER counts as logged in since
    ``run_start`` (default: this run's first line).
    """

    def __init__(self, origin: float | None, opened: Iterable[OpenSpan] = (), *,
                 fresh: bool = False, run_start: float | None = None) -> None:
        self.origin = -math.inf if origin is None else origin
        self._new_origin = origin is None
        # A new database and no queue_log yet: nothing came before these facts, so they
        # cover every report (stored as since 0); spans still start at the first line.
        self._fresh = fresh
        self._calls: dict[str, dict[str, CallFact]] = {}
        self._agents: dict[tuple[str, str], _AgentState] = {}
        self._dirty: set[CallFact] = set()
        self._time: dict[tuple[str, str, int], list[float]] = {}
        self._not_ready: dict[tuple[str, str, int, str], float] = {}
        self._open: dict[tuple[str, str, str], OpenSpan | None] = {}
        self._seen: set[tuple[str, str, tuple[str, ...]]] = set()
        self._seen_at = -math.inf
        self._latest = -math.inf
        self._run_start = self.origin if run_start is None else run_start
        self._run_start_given = run_start is not None
        self._long: list[tuple[str, str, str, str, float, float]] = []
        self._last_t = math.nan
        self._last_n = 0
        for span in opened:
            st = self._agent(span.agent, span.queue)
            if span.kind == "logged":
                st.login_at = span.since
                st.queues = None if span.queue == "" else {span.queue}
            elif span.kind == "paused":
                st.paused = (span.since, span.reason)

    # ------------------------------------------------------------------ input

    def feed(self, line: str) -> None:
        """Fold one queue_log line (``epoch|call_id|queue|agent|EVENT|data…``, no line
        end). A malformed line (fewer than five fields, no event, a time that is not a
        finite number) is passed over as the file's readers pass it over, never raised."""
        parts = line.split("|")
        if len(parts) < 5 or not parts[4]:
            return
        try:
            t = float(parts[0])
        except ValueError:
            return
        if not math.isfinite(t):
            return
        if t == self._last_t:
            self._last_n += 1
        else:
            self._last_t, self._last_n = t, 1
        if self._latest == -math.inf:
            # This run's first line: an agent seen without its ADDMEMBER was logged in
            # since then (never earlier: a span is never spread over unknown time).
            if not self._run_start_given:
                self._run_start = float(math.floor(t))
            if self._new_origin:
                self.origin = self._run_start
        self._latest = max(self._latest, t)
        cid, q, a, ev = parts[1], parts[2], parts[3], parts[4]
        keys = ("",) if q in _NONE else ("", q)
        if ev == "QUEUESTART":
            self._restart(t)
            return
        if cid not in _NONE:
            self._call_line(t, cid, q, ev, parts, keys)
        if a not in _NONE:
            for key in keys:
                self._agent_line(t, cid, key, a, ev, parts)

    @property
    def latest(self) -> float:
        """The latest line time folded (epoch s; -inf before any)."""
        return self._latest

    def feed_all(self, lines: Iterable[str]) -> None:
        """:meth:`feed` each of ``lines``."""
        for line in lines:
            self.feed(line)

    # ------------------------------------------------------------------ calls

    def _fact(self, cid: str, key: str, t: float) -> CallFact:
        per = self._calls.get(cid)
        if per is None:
            per = self._calls[cid] = {}
        f = per.get(key)
        if f is None:
            f = per[key] = CallFact(cid, key)
        f.last = t
        self._dirty.add(f)
        return f

    def _call_line(self, t: float, cid: str, q: str, ev: str, parts: list[str],
                   keys: tuple[str, ...]) -> None:
        if ev == "ENTERQUEUE":
            # An overflow's destination: a join after leaving other queue(s).
            for f in self._calls.get(cid, {}).values():
                ex = f.exit_queues
                if ex and (len(ex) > 1 or q not in ex) and not f.overflow:
                    f.overflow = True
                    self._dirty.add(f)
            for key in keys:
                f = self._fact(cid, key, t)
                if f.first_enter is None:
                    f.first_enter = t
            return
        if ev == "CONNECT":
            for key in keys:
                f = self._fact(cid, key, t)
                if not f.connected:
                    f.connected = True
                    h = _num(parts, 5)
                    f.connect_hold = math.nan if h is None else h
            return
        if ev == "WRAPUPEND":
            secs = _num(parts, 5) or 0.0
            for key in keys:
                f = self._fact(cid, key, t)
                f.wrapup_s += secs
                f.wrapups += 1
            return
        if ev == "ABANDON":
            w = _num(parts, 7)
            for key in keys:
                f = self._fact(cid, key, t)
                f.abandoned = True
                f.abandon_wait = math.nan if w is None else w
        elif ev == "CALLBACK":
            for key in keys:
                self._fact(cid, key, t).callback = True
        if ev in _EXITS_ON:
            for key in keys:
                f = self._fact(cid, key, t)
                if ev == "FULL" or ev == "JOINEMPTY":
                    f.refused = True
                if f.first_exit is None:
                    f.first_exit = t
                f.exit_queues.add(q)

    # ----------------------------------------------------------------- agents

    def _agent(self, a: str, key: str) -> _AgentState:
        st = self._agents.get((a, key))
        if st is None:
            st = self._agents[(a, key)] = _AgentState()
        return st

    def _row(self, a: str, key: str, t: float) -> list[float]:
        """The ``agent_time`` increments of ``a`` in ``key`` for the quarter hour of ``t``."""
        k = (a, key, int(t // BUCKET_S) * BUCKET_S)
        row = self._time.get(k)
        if row is None:
            row = self._time[k] = [0.0] * len(AGENT_FIELDS)
        return row

    def _add(self, a: str, key: str, t: float, col: int, value: float) -> None:
        self._row(a, key, t)[col] += value

    def _spread(self, a: str, key: str, t0: float, t1: float, col: int) -> None:
        """Add the seconds of [t0, t1) to column ``col`` of each quarter hour it covers."""
        t0 = max(t0, self.origin)
        if t1 <= t0:
            return
        if t0 // BUCKET_S == t1 // BUCKET_S or t1 % BUCKET_S == 0 and (t1 - t0) <= BUCKET_S:
            self._row(a, key, t0)[col] += t1 - t0      # within one quarter hour
            return
        for b, secs in _buckets(t0, t1):
            self._row(a, key, b)[col] += secs

    def _set_open(self, span: OpenSpan | None, a: str, key: str, kind: str) -> None:
        self._open[(a, key, kind)] = span

    def _first_seen(self, a: str, key: str, st: _AgentState, ev: str) -> None:
        """Agent ``a``'s first line in ``key``: logged in since the facts began unless
        that line is its ADDMEMBER (as the file fold: logged in before the log read)."""
        if ev != "ADDMEMBER":
            st.queues = None
            st.login_at = self._run_start
            self._set_open(OpenSpan(a, key, "logged", self._run_start), a, key, "logged")

    def _close_pause(self, a: str, key: str, st: _AgentState, at: float) -> None:
        p = st.paused
        if p is None:
            return
        st.paused = None
        self._set_open(None, a, key, "paused")
        t0 = max(p[0], self.origin)
        if at - t0 > LONG_SPAN_S:
            self._long.append((a, key, "paused", p[1], t0, at))
            return
        for b, secs in _buckets(t0, at):
            k = (a, key, b, p[1])
            self._not_ready[k] = self._not_ready.get(k, 0.0) + secs

    def _log_out(self, a: str, key: str, st: _AgentState, t: float) -> None:
        start = st.login_at if st.login_at is not None else t
        if t - max(start, self.origin) > LONG_SPAN_S:
            self._long.append((a, key, "logged", "", max(start, self.origin), t))
        else:
            self._spread(a, key, start, t, _LOGGED)
        st.login_at = None
        st.queues = set()
        self._set_open(None, a, key, "logged")

    def _restart(self, t: float) -> None:
        """QUEUESTART: nobody is logged in or paused any more (the file fold's restart)."""
        for (a, key), st in self._agents.items():
            self._close_pause(a, key, st, t)
            if st.queues is None or st.queues or st.login_at is not None:
                self._log_out(a, key, st, t)

    def _agent_line(self, t: float, cid: str, key: str, a: str, ev: str,
                    parts: list[str]) -> None:
        phone = "/" in a   # a ring group's phone (ext/N): no agent, never logged in
        known = (a, key) in self._agents
        st = self._agent(a, key)
        if not phone and not known:
            self._first_seen(a, key, st, ev)
        if ev == "CONNECT":
            row = self._row(a, key, t)
            row[_EVENTS] += 1.0
            if cid not in _NONE:
                f = self._calls[cid][key]
                if a not in f.agents:
                    f.agents.add(a)
                    row[_HANDLED] += 1.0
            return
        field_no = _BUSY_FIELD.get(ev)
        if field_no is not None or ev in _TRANSFERS:
            secs = _num(parts, 8 if field_no is None else field_no) or 0.0
            row = self._row(a, key, t)
            row[_WRAP if ev == "WRAPUPEND" else _TALK] += secs
            row[_EVENTS] += 1.0
            if not phone:
                self._spread(a, key, t - secs, t, _BUSY)
            return
        if not phone:
            if ev == "ADDMEMBER" and st.queues is not None:
                if not st.queues:
                    st.login_at = t
                    self._set_open(OpenSpan(a, key, "logged", t), a, key, "logged")
                st.queues.add(parts[2])
            elif ev == "REMOVEMEMBER" and (st.queues is None or parts[2] in st.queues):
                if st.queues is not None:
                    st.queues.discard(parts[2])
                if st.queues is None or not st.queues:
                    self._log_out(a, key, st, t)
        if ev in ("PAUSE", "UNPAUSE", "REMOVEMEMBER"):
            if t != self._seen_at:
                self._seen.clear()
                self._seen_at = t
            dedupe = (a, key + "|" + ev, tuple(parts[5:]))
            if dedupe in self._seen:
                return   # the same change, written once per queue of the agent
            self._seen.add(dedupe)
            self._close_pause(a, key, st, t)
            if ev == "PAUSE":
                reason = parts[5] if len(parts) > 5 else ""
                st.paused = (t, reason)
                self._set_open(OpenSpan(a, key, "paused", t, reason), a, key, "paused")
                self._add(a, key, t, _EVENTS, 1.0)
            return
        if ev == "UNHOLD":
            self._add(a, key, t, _HOLD, _num(parts, 5) or 0.0)
            self._add(a, key, t, _EVENTS, 1.0)
        elif ev == "RINGNOANSWER":
            self._add(a, key, t, _RONA, 1.0)
            self._add(a, key, t, _EVENTS, 1.0)

    # ----------------------------------------------------------------- output

    def take(self) -> FactsBatch:
        """What changed since the last take (and forget calls idle for
        :data:`KEEP_CALL_S`)."""
        out = FactsBatch(calls=[f.take_row() for f in self._dirty],
                         agent_time=self._time, not_ready=self._not_ready,
                         long_spans=self._long,
                         last=None if self._last_n == 0 else (self._last_t, self._last_n))
        self._long = []
        for (a, key, kind), span in self._open.items():
            if span is None:
                out.closed.append((a, key, kind))
            else:
                out.opened.append(span)
        if self._new_origin and self.origin > -math.inf:
            out.since = 0.0 if self._fresh else self.origin
            self._new_origin = False
        self._dirty, self._time, self._not_ready, self._open = set(), {}, {}, {}
        # Forget the oldest calls (first line first: dict order) once idle or too many.
        horizon = self._latest - KEEP_CALL_S
        calls = self._calls
        extra = len(calls) - MAX_CALLS
        stale = []
        for cid, per in calls.items():
            if len(stale) >= extra and max(f.last for f in per.values()) >= horizon:
                break
            stale.append(cid)
        for cid in stale:
            del calls[cid]
        return out
