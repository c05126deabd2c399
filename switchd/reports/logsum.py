"""One pass over the queue_log: what each call's lines say, and each agent's figures.

A report needs a few facts per call (did it abandon, and after how long; was it refused
at a queue's door; did it ask for a callback; its first CONNECT's holdtime; did it
overflow; its wrap-up) and, per agent, counts, sums and time spans. :class:`LogSummary`
gathers them while the lines stream past, in file order (the ACD writes them in time
order), without building an object per line: a month of a busy centre is millions of
lines, and ``switchd report`` must stay within seconds (``switchd bench report``).

The definitions are those of :mod:`switchd.reports.figures` (module docstring); this
module only reads. A line is ``epoch|call_id|queue|agent|EVENT|data…``; a line with
fewer than five fields, an empty event or a time that is not a finite number is
malformed: skipped and counted (``skipped``), never fatal.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from switchd.reports.model import AgentFigures

__all__ = ["LogSummary", "covered", "summarize"]

_NONE = ("", "NONE")
_EXITS_ON = frozenset(("EXITWITHTIMEOUT", "EXITEMPTY", "EXITWITHKEY", "FULL", "JOINEMPTY"))
_TRANSFERS = ("BLINDTRANSFER", "ATTENDEDTRANSFER")   # their calltime: data[3], parts[8]
_INF = math.inf
#: The bulk lines that end busy time -> the index of their seconds in the split line
#: (summarize takes them inline; a transfer, rarer, ends talk in _Agents.line).
_BUSY_FIELD = {"COMPLETEAGENT": 6, "COMPLETECALLER": 6, "WRAPUPEND": 5}


def _num(parts: list[str], i: int) -> float | None:
    """Field ``i`` of a split line as a number, or None when missing or not finite."""
    if len(parts) <= i:
        return None
    try:
        x = float(parts[i])
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def covered(t0: np.ndarray, t1: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Seconds of the spans ``[t0[i], t1[i])`` (float64 epoch s; they may overlap) inside
    each ``[bounds[j], bounds[j+1])``: float64 array of ``len(bounds) - 1``.

    Vectorised: the time covered before t is C(t) = Σ_{t0<t}(t − t0) − Σ_{t1<t}(t − t1),
    so each interval gets C(end) − C(start) from two sorted searches per bound. Open
    spans (±inf) are cut a second outside the bounds."""
    if len(bounds) < 2:
        return np.zeros(0)
    if len(t0) == 0:
        return np.zeros(len(bounds) - 1)
    a = np.maximum(t0, bounds[0] - 1.0)
    b = np.minimum(t1, bounds[-1] + 1.0)
    keep = b > a

    def before(x: np.ndarray) -> np.ndarray:
        x = np.sort(x)
        k = np.searchsorted(x, bounds, side="left")
        prefix = np.concatenate(([0.0], np.cumsum(x)))
        return k * bounds - prefix[k]

    return np.diff(before(a[keep]) - before(b[keep]))


@dataclass
class LogSummary:
    """What the queue_log read says, for one report (its range, ``queue`` and ``agent``).

    Per call (by call id; with ``queue`` only that queue's lines, but ENTERQUEUE of any
    queue for overflow): ``first_enter`` (its first ENTERQUEUE), ``abandon_wait`` (calls
    with an ABANDON → its waittime, NaN when unreadable), ``refused`` (FULL/JOINEMPTY),
    ``callback``, ``connect_hold`` (first CONNECT's holdtime, NaN when unreadable), ``first_exit`` (earliest
    EXIT*/FULL/JOINEMPTY), ``overflow_enter`` (calls that entered another queue after
    such an exit), ``wrapup``/``wrapups`` (its WRAPUPEND seconds in all, and how many). Agents: ``agents`` (whole
    period, sorted by id) and every agent's busy and logged-in spans (float64 arrays of
    epoch s) for the occupancy of any interval. ``lines``/``skipped``: lines read and
    malformed lines skipped.
    """

    first_enter: dict[str, float] = field(default_factory=dict)
    abandon_wait: dict[str, float] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)
    callback: set[str] = field(default_factory=set)
    connect_hold: dict[str, float] = field(default_factory=dict)
    first_exit: dict[str, float] = field(default_factory=dict)
    exit_queues: dict[str, set[str]] = field(default_factory=dict)
    overflow_enter: set[str] = field(default_factory=set)
    wrapup: dict[str, float] = field(default_factory=dict)
    wrapups: dict[str, int] = field(default_factory=dict)
    agents: tuple[AgentFigures, ...] = ()
    busy: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))
    logged: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))
    lines: int = 0
    skipped: int = 0

    def occupancy(self, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(busy seconds, logged-in seconds) of all agents in each interval of ``bounds``."""
        return covered(*self.busy, bounds), covered(*self.logged, bounds)


class _Agents:
    """The agent half of the pass (figures.py: agent figures, occupancy)."""

    def __init__(self, start: float, end: float) -> None:
        self.start, self.end = start, end
        self.handled: dict[str, set[str]] = defaultdict(set)
        self.talk: dict[str, float] = defaultdict(float)
        self.hold: dict[str, float] = defaultdict(float)
        self.wrap: dict[str, float] = defaultdict(float)
        self.rona: dict[str, int] = defaultdict(int)
        self.paused: dict[str, tuple[float, str]] = {}
        self.not_ready: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.seen: set[tuple[float, str, str, tuple[str, ...]]] = set()
        self.names: set[str] = set()
        #: agent -> its queues while logged in (None: logged in before the log, queues unknown)
        self.member: dict[str, set[str] | None] = {}
        self.login_at: dict[str, float] = {}
        #: busy spans [t0, t1) of every agent (who): flat lists, arrays at the end
        self.busy_t0: list[float] = []
        self.busy_t1: list[float] = []
        self.busy_who: list[int] = []
        #: agent name -> its number in busy_who
        self.number: dict[str, int] = {}
        self.logged: dict[str, list[tuple[float, float]]] = defaultdict(list)

    def first_seen(self, a: str, ev: str) -> set[str] | None:
        """Start tracking agent ``a`` (its first line is ``ev``): logged in before the log
        read unless that line is its ADDMEMBER. Returns its queue set (None: unknown)."""
        queues = self.member[a] = set() if ev == "ADDMEMBER" else None
        if queues is None:
            self.login_at[a] = -_INF
        return queues

    def restart(self, t: float) -> None:
        """The switch started at ``t`` (QUEUESTART): nobody is logged in or paused any
        more — it wrote no REMOVEMEMBER as it stopped; the agents who log in again get
        ADDMEMBER lines."""
        for a in list(self.paused):
            self._close_pause(a, min(t, self.end))
        for a, queues in self.member.items():
            if queues is None or queues:
                self.logged[a].append((self.login_at.pop(a, -_INF), t))
            self.member[a] = set()
        self.login_at.clear()

    def _close_pause(self, a: str, at: float) -> None:
        p = self.paused.pop(a, None)
        if p is not None:
            t0 = max(p[0], self.start)
            if at > t0:
                self.not_ready[a][p[1]] += at - t0

    def line(self, t: float, cid: str, q: str, a: str, ev: str, parts: list[str]) -> None:
        start, end = self.start, self.end
        if "/" not in a:
            # Logged-in time (a ring group's phone, ext/N, is no agent: it never logs in).
            queues = self.member[a] if a in self.member else self.first_seen(a, ev)
            if ev == "ADDMEMBER" and queues is not None:
                if not queues:
                    self.login_at[a] = t
                queues.add(q)
            elif ev == "REMOVEMEMBER" and (queues is None or q in queues):
                if queues is not None:
                    queues.discard(q)
                if queues is None or not queues:
                    self.logged[a].append((self.login_at.pop(a, t), t))
                    self.member[a] = set()
        if ev in _TRANSFERS:
            # The agent's talk ended as it passed the call on: its calltime was busy time.
            secs = _num(parts, 8) or 0.0
            if "/" not in a:
                self.busy_t0.append(t - secs)
                self.busy_t1.append(t)
                self.busy_who.append(self.number.setdefault(a, len(self.number)))
            if start <= t < end:
                self.talk[a] += secs
                self.names.add(a)
            return
        if t >= end:
            return
        if ev in ("PAUSE", "UNPAUSE", "REMOVEMEMBER"):
            key = (t, a, ev, tuple(parts[5:]))
            if key in self.seen:
                return  # the same change, written once per queue of the agent
            self.seen.add(key)
            self._close_pause(a, t)
            if ev == "PAUSE":
                self.paused[a] = (t, parts[5] if len(parts) > 5 else "")
                if t >= start:
                    self.names.add(a)
            return
        if t < start:
            return
        if ev == "UNHOLD":
            self.hold[a] += _num(parts, 5) or 0.0
        elif ev == "RINGNOANSWER":
            self.rona[a] += 1
        else:
            return
        self.names.add(a)

    def finish(self, out: LogSummary) -> None:
        start, end = self.start, self.end
        for a in list(self.paused):
            self._close_pause(a, end)

        def spans(pairs: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
            arr = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
            return arr[:, 0], arr[:, 1]

        for a, t0 in self.login_at.items():
            self.logged[a].append((t0, _INF))
        period = np.array([start, end], dtype=np.float64)
        # Every agent logged in during the period is in the table, an idle one too.
        on_duty = {a for a, pairs in self.logged.items()
                   if covered(*spans(pairs), period)[0] > 0}
        names = self.names | set(self.not_ready) | on_duty

        b0 = np.asarray(self.busy_t0, dtype=np.float64)
        b1 = np.asarray(self.busy_t1, dtype=np.float64)
        # Each agent's busy spans: the flat lists grouped by agent (a stable sort).
        who = np.asarray(self.busy_who, dtype=np.int64)
        order = np.argsort(who, kind="stable")
        numbers = who[order]
        agents = []
        for a in sorted(names):
            n = len(self.handled.get(a, ()))
            k = self.number.get(a, -1)
            mine = order[np.searchsorted(numbers, k, side="left"):
                         np.searchsorted(numbers, k, side="right")]
            busy = float(covered(b0[mine], b1[mine], period)[0])
            logged = float(covered(*spans(self.logged.get(a, [])), period)[0])
            talk, wrap = self.talk.get(a, 0.0), self.wrap.get(a, 0.0)
            agents.append(AgentFigures(
                agent=a, calls_handled=n, talk_s=talk,
                not_ready_s=tuple(sorted(self.not_ready.get(a, {}).items())),
                rona=self.rona.get(a, 0), aht_s=(talk + wrap) / n if n else None,
                hold_s=self.hold.get(a, 0.0), wrapup_s=wrap,
                occupancy=busy / logged if logged > 0 else None))
        out.agents = tuple(agents)
        out.busy = (b0, b1)
        out.logged = spans([x for v in self.logged.values() for x in v])


class _Other:
    """Every line of the report's queue (the caller checked) but the bulk ones, which
    :func:`summarize` takes inline (ENTERQUEUE, CONNECT, COMPLETE*, WRAPUPEND), in order: the per-call facts they carry and the agent figures
    (:class:`_Agents`)."""

    def __init__(self, out: LogSummary, ag: _Agents, agent: str | None) -> None:
        self.out, self.ag, self.agent = out, ag, agent

    def line(self, t: float, cid: str, q: str, a: str, ev: str, parts: list[str]) -> None:
        out = self.out
        if cid not in _NONE:
            if ev == "ABANDON":
                w = _num(parts, 7)
                out.abandon_wait[cid] = math.nan if w is None else w
            elif ev == "CALLBACK":
                out.callback.add(cid)
            if ev in _EXITS_ON:
                if ev == "FULL" or ev == "JOINEMPTY":
                    out.refused.add(cid)
                if cid not in out.first_exit:
                    out.first_exit[cid] = t
                out.exit_queues.setdefault(cid, set()).add(q)
        if a not in _NONE and (self.agent is None or a == self.agent):
            self.ag.line(t, cid, q, a, ev, parts)


def summarize(lines: Iterable[str], *, start: float, end: float, window: tuple[float, float],
              queue: str | None = None, agent: str | None = None) -> LogSummary:
    """Read queue_log ``lines`` (each without its line end, CR included; blank ones
    ignored) in time order into a :class:`LogSummary` for a report of [start, end) (epoch s).

    Only lines with a time in ``window`` (the report's range and a margin, so a call's
    late ABANDON and an agent's earlier PAUSE are seen) are used. ``queue``/``agent``
    restrict the facts as :mod:`switchd.reports.figures` says. Never raises for bad
    lines: they are counted in ``skipped``.
    """
    out = LogSummary()
    ag = _Agents(start, end)
    other = _Other(out, ag, agent).line
    w0, w1 = window
    first_enter, connect_hold = out.first_enter, out.connect_hold
    exit_queues, overflow_enter = out.exit_queues, out.overflow_enter
    handled, talk, names, member = ag.handled, ag.talk, ag.names, ag.member
    wrap, wrapup, wrapups = ag.wrap, out.wrapup, out.wrapups
    b0, b1, bwho, number = ag.busy_t0, ag.busy_t1, ag.busy_who, ag.number
    isfinite = math.isfinite
    n = skipped = blank = 0
    for line in lines:
        if not line:
            continue
        n += 1
        parts = line.split("|")
        if len(parts) < 5 or not parts[4]:
            if line.isspace():
                blank += 1          # not a line at all (nor the CR of a CRLF file's blank)
            else:
                skipped += 1
            continue
        try:
            t = float(parts[0])
        except ValueError:
            skipped += 1
            continue
        if t - t:
            # inf - inf and nan - nan are nan (true); a finite time gives 0.0.
            skipped += 1
            continue
        if not w0 <= t < w1:
            continue
        cid, q, a, ev = parts[1], parts[2], parts[3], parts[4]
        mine = queue is None or q == queue
        # The lines of nearly every queue call first, inline: they are most of the log
        # (ENTERQUEUE, CONNECT, COMPLETE*, WRAPUPEND); the rest take _Other.line.
        if ev == "ENTERQUEUE":
            if cid not in _NONE:
                if exit_queues:
                    # Every queue: an overflow's destination.
                    ex = exit_queues.get(cid)
                    if ex is not None and (len(ex) > 1 or q not in ex):
                        overflow_enter.add(cid)
                if mine and cid not in first_enter:
                    first_enter[cid] = t
            if mine and a not in _NONE and (agent is None or a == agent):
                ag.line(t, cid, q, a, ev, parts)    # one naming an agent (not switchd's)
            continue
        if ev == "QUEUESTART":
            ag.restart(t)           # whatever --queue: it is the switch's, not a queue's
            continue
        if not mine:
            continue
        if ev == "CONNECT":
            if cid not in _NONE and cid not in connect_hold:
                try:
                    h = float(parts[5])
                    if not isfinite(h):
                        h = math.nan
                except (ValueError, IndexError):
                    h = math.nan
                connect_hold[cid] = h
            if a not in _NONE and (agent is None or a == agent):
                if a not in member and "/" not in a:
                    ag.first_seen(a, ev)
                if start <= t < end:
                    handled[a].add(cid)
                    names.add(a)
            continue
        field_no = _BUSY_FIELD.get(ev)
        if field_no is not None:
            # COMPLETE* (calltime) and WRAPUPEND (wrapup_s): the seconds before t were busy.
            try:
                secs = float(parts[field_no])
                if not isfinite(secs):
                    secs = 0.0
            except (ValueError, IndexError):
                secs = 0.0
            wrapping = field_no == 5
            if wrapping and cid not in _NONE:
                wrapup[cid] = wrapup.get(cid, 0.0) + secs
                wrapups[cid] = wrapups.get(cid, 0) + 1
            if a not in _NONE and (agent is None or a == agent):
                if "/" not in a:
                    if a not in member:
                        ag.first_seen(a, ev)
                    b0.append(t - secs)
                    b1.append(t)
                    bwho.append(number.setdefault(a, len(number)))
                if start <= t < end:
                    (wrap if wrapping else talk)[a] += secs
                    names.add(a)
            continue
        other(t, cid, q, a, ev, parts)
    out.lines, out.skipped = n - blank, skipped
    ag.finish(out)
    return out
