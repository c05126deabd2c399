"""``switchd sim``: a call centre in virtual time, on the production engines, against Erlang.

The daemon's wiring on a :class:`~switchd.shell.VirtualClock`: the same
:class:`~switchd.shell.Shell`, the call core (:class:`~switchd.core.engine.SwitchCore`,
one trunk per caller in the system, one extension per agent, every call routed
``to: queue:q``) and the ACD (:class:`~switchd.acd.engine.Acd`, one queue, every agent
logged in and ready at start). What the people do is :class:`Population`, a sans-IO
engine like the others:

* callers arrive as a Poisson process (``Incoming``) until ``hours`` have passed;
  one refused by the core because every trunk is busy is *blocked*;
* an agent answers the instant its phone rings (it follows ``call.ringing``), talks
  for an exponential (or lognormal, same mean, coefficient of variation 1) time and
  hangs up;
* a caller gives up after an exponential patience (``--patience``; none = waits
  forever): it hangs up unless an agent answered first.

After the last arrival the run goes on until every caller has left (and every
wrap-up has ended).

``--records DIR`` keeps what the daemon would have stored: every call's CDR and the
ACD's queue_log lines (the agents' logins at the start included) are written to a new
state directory (``switchd.db`` and ``queue_log``, :mod:`switchd.store.offline`) when
the run ends, so ``switchd report --state-dir DIR --from … --to …`` (the bounds are in
the JSON's ``records``: the arrival period) reports on the same calls. Arrivals the board
refused (every trunk busy) never became calls and have no CDR. The queue figures are the ACD's own exact statistics
(:class:`~switchd.acd.stats.QueueStats`), so a run also validates them; offered and
blocked are counted here. :mod:`switchd.acd.erlang` gives the theory they are
compared with (Erlang B, C, A, or the M/M/n/K+M chain they are cases of).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from switchd.acd.erlang import QueueFigures, queue_figures
from switchd.acd.model import AcdSettings, AgentSettings, QueueSettings, Strategy
from switchd.core.inputs import Answer, Hangup, Incoming
from switchd.engine import TimerHeap
from switchd.events import (
    AgentState,
    CallAnswered,
    CallEnded,
    CallRinging,
    CallRouted,
    Cdr,
    Event,
    QueueLogEntry,
)

__all__ = [
    "JSON_KEYS",
    "Population",
    "SimError",
    "SimOptions",
    "SimResult",
    "Talk",
    "Theory",
    "options_from_args",
    "run_sim",
    "simulate",
    "theory_for",
]

#: The queue every simulated caller is routed to.
QUEUE = "q"
#: The number every simulated caller dials.
DNIS = "8000"
#: First agent extension; agents sit at FIRST_EXTENSION, FIRST_EXTENSION + 1, …
FIRST_EXTENSION = 1000
#: Trunks the core starts with when they are unlimited (grown by doubling when full).
_START_TRUNKS = 64
#: Progress is reported this many times over the arrival period.
_PROGRESS_STEPS = 200
#: The keys ``--json`` always prints (issue 15, item 6), in this order.
JSON_KEYS = ("offered", "blocked", "answered", "abandoned", "p_block", "p_wait",
             "service_level", "asa_s", "mean_wait_s", "p_abandon", "occupancy", "sim_hours",
             "wall_s")


class SimError(Exception):
    """A simulation that cannot run (bad options) or that went wrong (an engine failed)."""


class Talk(StrEnum):
    """Distribution of talk times (both with mean ``aht_s``)."""

    EXPONENTIAL = "exponential"
    #: Lognormal with coefficient of variation 1 (σ² = ln 2): same mean and variance as
    #: the exponential, a heavier right tail, rarely very short calls.
    LOGNORMAL = "lognormal"


@dataclass(frozen=True, slots=True)
class SimOptions:
    """One run. Times in seconds; ``erlangs`` = arrivals per second × ``aht_s``.

    ``trunks`` None: unlimited (nobody is blocked); ``patience_s`` None: callers wait
    forever; ``seed`` None: a random one (reported in the result).
    """

    agents: int
    erlangs: float
    aht_s: float = 180.0
    trunks: int | None = None
    patience_s: float | None = None
    wrapup_s: float = 0.0
    target_s: float = 20.0
    hours: float = 1.0
    seed: int | None = None
    strategy: Strategy = Strategy.LONGEST_IDLE
    talk: Talk = Talk.EXPONENTIAL

    def check(self) -> None:
        """Raise SimError naming the option (as on the command line) that is wrong."""
        def bad(option: str, what: str, value: Any) -> SimError:
            return SimError(f"{option} must be {what}, got {value!r}")

        if isinstance(self.agents, bool) or not isinstance(self.agents, int) or self.agents < 1:
            raise bad("--agents", "a whole number >= 1", self.agents)
        if self.trunks is not None and (isinstance(self.trunks, bool)
                                        or not isinstance(self.trunks, int) or self.trunks < 1):
            raise bad("--trunks", "a whole number >= 1 (omit it for unlimited)", self.trunks)
        for option, value, zero in (("--erlangs/--calls-per-hour", self.erlangs, False),
                                    ("--aht", self.aht_s, False),
                                    ("--wrapup", self.wrapup_s, True),
                                    ("--target", self.target_s, True),
                                    ("--hours", self.hours, False)):
            if not (math.isfinite(value) and (value >= 0 if zero else value > 0)):
                raise bad(option, f"a number {'>=' if zero else '>'} 0", value)
        if self.patience_s is not None and not (math.isfinite(self.patience_s)
                                                and self.patience_s > 0):
            raise bad("--patience", "a number > 0 (omit it for callers who never hang up)",
                      self.patience_s)

    @property
    def calls_per_hour(self) -> float:
        """Mean arrivals per hour."""
        return self.erlangs / self.aht_s * 3600.0


@dataclass(frozen=True, slots=True)
class Theory:
    """What queueing theory predicts for a run, and which model says so."""

    model: str
    figures: QueueFigures
    occupancy: float
    #: False when the model only approximates the run (wrap-up, lognormal talk).
    exact: bool


@dataclass(frozen=True, slots=True)
class SimResult:
    """Outcome of :func:`simulate`. Shares are over the callers not blocked (the queue's
    ``joined``); times in seconds; a share or mean over no calls is None. ``sim_hours``: simulated time from start until the
    last caller left and the last wrap-up ended. ``occupancy``: the agents' time on
    calls and in wrap-up over the arrival period (``hours``; the drain after it is not
    the steady state), from the ACD's time per agent state. See :data:`JSON_KEYS`."""

    offered: int
    blocked: int
    answered: int
    abandoned: int
    p_block: float | None
    p_wait: float | None
    service_level: float | None
    asa_s: float | None
    mean_wait_s: float | None
    p_abandon: float | None
    occupancy: float
    sim_hours: float
    wall_s: float
    seed: int
    options: SimOptions
    theory: Theory | None
    #: Most trunks ever in use at once (the core's size needed, with unlimited trunks).
    peak_calls: int
    #: ``--records``: the state directory written and the arrival period [from, to) as
    #: epoch seconds, for ``switchd report``; None without ``--records``.
    records: tuple[str, float, float] | None = None

    @property
    def calls_per_wall_s(self) -> float:
        """Simulated calls per wall-clock second."""
        return self.offered / self.wall_s if self.wall_s > 0 else math.inf

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` object: :data:`JSON_KEYS`, then the options, the seed, the
        speed, and ``erlang`` (the theory's figures, or None when none applies)."""
        out: dict[str, Any] = {k: getattr(self, k) for k in JSON_KEYS}
        out["calls_per_wall_s"] = round(self.calls_per_wall_s, 1)
        out["seed"] = self.seed
        out["peak_calls"] = self.peak_calls
        if self.records is not None:
            folder, t_from, t_to = self.records
            out["records"] = {"dir": folder, "from": _iso(t_from), "to": _iso(t_to)}
        o = self.options
        out["options"] = {"agents": o.agents, "erlangs": o.erlangs, "calls_per_hour":
                          o.calls_per_hour, "aht_s": o.aht_s, "trunks": o.trunks,
                          "patience_s": o.patience_s, "wrapup_s": o.wrapup_s,
                          "target_s": o.target_s, "hours": o.hours,
                          "strategy": o.strategy.value, "talk": o.talk.value}
        th = self.theory
        if th is None:
            out["erlang"] = None
        else:
            f = th.figures
            out["erlang"] = {"model": th.model, "exact": th.exact, "p_block": f.p_block,
                             "p_wait": f.p_wait, "service_level": f.service_level,
                             "asa_s": _finite(f.asa_s), "mean_wait_s": _finite(f.mean_wait_s),
                             "p_abandon": f.p_abandon, "occupancy": th.occupancy}
        return out


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _iso(epoch_s: float) -> str:
    """An instant as ISO-8601 UTC (``2025-11-24T16:00:00Z``), as ``switchd report --from``
    takes it."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def check_records_dir(folder: Path) -> None:
    """Raise SimError unless ``folder`` is new or an empty folder: a simulation's records
    must never mix with a real switch's."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise SimError(f"--records {folder}: give a new or empty folder (the simulated "
                       "CDRs and queue_log must not mix with other records)")


# ---------------------------------------------------------------------- the people


class Population:
    """Callers and agents as a sans-IO engine (``switchd.engine`` protocol).

    Its timers make the arrivals (``Incoming``), the agents' hang-ups at the end of
    talk (``Hangup`` of the extension) and the callers' hang-ups when patience runs
    out (``Hangup`` of the trunk); it follows the core's :attr:`FOLLOWS` events to
    answer ringing phones (``Answer`` at the same instant), start talk, and cancel the
    patience of a caller who was answered or left. ``offered``/``blocked`` count the
    arrivals and those the core refused (the shell's ``on_refused`` calls
    :meth:`refused`). ``reserve(n)``, when given, is called before an arrival that
    would make ``n`` calls in the system more than ever before (unlimited trunks: the
    simulator grows the core); it returns the new capacity.
    """

    FOLLOWS: tuple[type, ...] = (CallRouted, CallRinging, CallAnswered, CallEnded)

    def __init__(self, *, start: float, rate_per_s: float, aht_s: float, until: float,
                 rng: random.Random, patience_s: float | None = None,
                 talk: Talk = Talk.EXPONENTIAL,
                 reserve: Callable[[int], int] | None = None, capacity: int = 0) -> None:
        """``rate_per_s``: Poisson arrival rate; arrivals stop at epoch ``until``."""
        self.rate = rate_per_s
        self.aht_s = aht_s
        self.until = until
        self.rng = rng
        self.patience_s = patience_s
        self.reserve = reserve
        self.capacity = capacity
        if talk is Talk.LOGNORMAL:
            sigma2 = math.log(2.0)  # cv² = e^σ² − 1 = 1
            self._ln = (math.log(aht_s) - sigma2 / 2.0, math.sqrt(sigma2))
        else:
            self._ln = None
        self.offered = 0
        self.blocked = 0
        #: Calls in the system (admitted, not ended) and the most there ever were.
        self.in_system = 0
        self.peak = 0
        self.arrivals_done = False
        #: key -> what happens: "" next arrival, a call id its caller's patience,
        #: an extension line its agent's hang-up (talk over).
        self._timers: TimerHeap[str] = TimerHeap()
        self._handlers: dict[type, Callable[[float, Any], list[Any]]] = {
            CallRinging: self._on_ringing, CallAnswered: self._on_answered,
            CallRouted: self._on_routed, CallEnded: self._on_ended,
        }
        self._next_arrival(start)

    # ---------------------------------------------------------- engine protocol

    def handle(self, now: float, item: Any) -> list[Any]:
        """Take a followed core event; return the people's reaction (``Answer``)."""
        return self._handlers[type(item)](now, item)

    def next_deadline(self) -> float | None:
        """The next arrival, hang-up or lost patience."""
        return self._timers.next_deadline()

    def handle_timer(self, now: float) -> list[Any]:
        """Arrivals and hang-ups due at ``now``."""
        out: list[Any] = []
        timers = self._timers
        while (due := timers.pop_due(now)) is not None:
            key, payload = due
            if key:
                out.append(payload)     # a Hangup (talk over, or patience out)
                continue
            n = self.in_system + 1
            if n > self.capacity and self.reserve is not None:
                self.capacity = self.reserve(n)
            self.offered += 1
            self.in_system = n
            if n > self.peak:
                self.peak = n
            out.append(Incoming(str(self.offered), DNIS))
            self._next_arrival(now)
        return out

    def refused(self, item: Any, exc: Exception) -> bool:
        """The shell's ``on_refused``: an arrival the core refused (every trunk busy) is
        blocked. Returns False for anything else (the simulator treats it as a failure)."""
        if isinstance(item, Incoming):
            self.blocked += 1
            self.in_system -= 1
            return True
        return False

    @property
    def done(self) -> bool:
        """True when arrivals have stopped and every admitted caller has left."""
        return self.arrivals_done and self.in_system == 0

    # ---------------------------------------------------------------- reactions

    def _next_arrival(self, now: float) -> None:
        t = now + self.rng.expovariate(self.rate)
        if t < self.until:
            self._timers.arm("", t)
        else:
            self.arrivals_done = True

    def _on_ringing(self, now: float, ev: CallRinging) -> list[Any]:
        if ev.line.startswith("ext/"):
            return [Answer(ev.line)]
        return []

    def _on_routed(self, now: float, ev: CallRouted) -> list[Any]:
        if self.patience_s is not None:
            self._timers.arm(ev.call_id, now + self.rng.expovariate(1.0 / self.patience_s),
                             Hangup(ev.line))
        return []

    def _on_answered(self, now: float, ev: CallAnswered) -> list[Any]:
        line = ev.line
        if line.startswith("ext/"):
            if self._ln is None:
                talk = self.rng.expovariate(1.0 / self.aht_s)
            else:
                talk = self.rng.lognormvariate(*self._ln)
            self._timers.arm(line, now + talk, Hangup(line))
            if self.patience_s is not None:
                self._timers.cancel(ev.call_id)
        return []

    def _on_ended(self, now: float, ev: CallEnded) -> list[Any]:
        self.in_system -= 1
        if self.patience_s is not None:
            self._timers.cancel(ev.call_id)
        return []


# ------------------------------------------------------------------------ the run


class _FailFast:
    """The shell's logger in a simulation: an engine that fails makes the figures
    meaningless, so the run stops with the error instead of logging and going on."""

    def exception(self, event: str, **kw: Any) -> None:
        exc = sys.exc_info()[1]
        raise SimError(f"{event} {kw}: {exc!r}") from exc

    def error(self, event: str, **kw: Any) -> None:
        raise SimError(f"{event} {kw}")

    def warning(self, event: str, **kw: Any) -> None:
        pass

    info = debug = warning


def theory_for(o: SimOptions) -> Theory | None:
    """The queueing model of a run: Erlang B (trunks <= agents), Erlang C (unlimited
    trunks, no patience), Erlang A (patience), M/M/n/K(+M) otherwise. With wrap-up the
    agents' handle time is talk + wrap-up (an approximation: not exponential); lognormal
    talk only approximates (Erlang B excepted: it is insensitive). None when the run
    has no stationary figures (overload with infinite patience and unlimited trunks)."""
    handle_s = o.aht_s + o.wrapup_s
    if o.trunks is not None and o.trunks <= o.agents:
        # A trunk is held for the talk only; with wrap-up a caller may still wait for an
        # agent (more agents than trunks but some in wrap-up): then it is approximate.
        f = queue_figures(o.agents, o.erlangs, o.aht_s, trunks=o.trunks, target_s=o.target_s)
        model = f"Erlang B ({o.trunks} trunks)"
        exact = o.wrapup_s == 0
    else:
        f = queue_figures(o.agents, o.erlangs * handle_s / o.aht_s, handle_s,
                          patience_s=o.patience_s, trunks=o.trunks, target_s=o.target_s)
        if not f.stable:
            return None
        base = "Erlang C" if o.patience_s is None else "Erlang A"
        model = base if o.trunks is None else f"M/M/{o.agents}/{o.trunks}" + (
            "" if o.patience_s is None else "+M")
        exact = o.wrapup_s == 0 and o.talk is Talk.EXPONENTIAL
    carried = o.erlangs / o.aht_s * (1 - f.p_block) * (1 - f.p_abandon) * handle_s
    return Theory(model, f, carried / o.agents, exact)


def simulate(o: SimOptions, *, progress: Callable[[float], None] | None = None,
             records: Path | None = None) -> SimResult:
    """Run ``o`` on the production shell, core and ACD in virtual time.

    ``progress(share)`` is called now and then with the share of the arrival period
    simulated (0..1). ``records``: a new or empty folder to write the run's CDRs and
    queue_log to (module docstring). Raises SimError for bad options, a ``records``
    folder that holds files or cannot be written, or an engine failure.
    """
    from switchd.acd.engine import Acd
    from switchd.bus import Bus
    from switchd.core.engine import CoreError, SwitchCore
    from switchd.core.inputs import CORE_INPUTS
    from switchd.core.routing import CoreConfig, Route, Target, TargetKind
    from switchd.shell import Shell, VirtualClock

    o.check()
    if records is not None:
        check_records_dir(records)
    started = time.perf_counter()
    seed = o.seed if o.seed is not None else random.SystemRandom().randrange(2**32)
    exts = tuple(range(FIRST_EXTENSION, FIRST_EXTENSION + o.agents))
    trunks = o.trunks if o.trunks is not None else max(_START_TRUNKS, 2 * o.agents)
    core = SwitchCore(CoreConfig(trunks=trunks, extensions=exts,
                                 routes=(Route(Target(TargetKind.QUEUE, QUEUE)),)))
    qs = QueueSettings(QUEUE, strategy=o.strategy, wrapup_s=o.wrapup_s,
                       service_level_s=o.target_s, music=False, rona_after=0)
    members = MappingProxyType({QUEUE: 0})
    acd = Acd(AcdSettings(
        queues=MappingProxyType({QUEUE: qs}),
        agents=tuple(AgentSettings(str(e), extension=e, queues=members, login=True)
                     for e in exts),
        stats_interval_s=0.0,
    ), rng=random.Random(seed ^ 0x5EED))

    def grow(n: int) -> int:
        # Unlimited trunks: double the board before it could refuse anyone.
        size = core.config.trunks
        while size < n:
            size *= 2
        if size != core.config.trunks:
            core.reconfigure(dataclasses.replace(core.config, trunks=size))
        return size

    clock = VirtualClock()
    t0 = clock.now()
    until = t0 + o.hours * 3600.0
    people = Population(start=t0, rate_per_s=o.erlangs / o.aht_s, aht_s=o.aht_s, until=until,
                        rng=random.Random(seed), patience_s=o.patience_s, talk=o.talk,
                        reserve=grow if o.trunks is None else None,
                        capacity=trunks if o.trunks is None else 0)
    failures: list[str] = []

    def refused(item: Any, exc: Exception) -> None:
        if not people.refused(item, exc):
            failures.append(f"{type(item).__name__} refused: {exc}")

    bus = Bus()
    cdrs: list[Cdr] = []
    log_lines: list[str] = []
    if records is not None:
        bus.on(CallEnded.name, lambda ev: cdrs.append(ev.cdr))
        bus.on(QueueLogEntry.name, lambda ev: log_lines.append(ev.line()))
    shell = Shell(bus, clock, log_events=False, refusals=(CoreError,), on_refused=refused)
    shell.log = _FailFast()  # type: ignore[assignment]
    shell.add(core, takes=CORE_INPUTS)
    shell.add(acd, takes=Acd.TAKES, follows=Acd.FOLLOWS)
    shell.add(people, follows=Population.FOLLOWS)
    for out in acd.start(t0):
        # Agents logging in (events only); no call exists yet to act on.
        if not isinstance(out, Event):
            raise SimError(f"the ACD asked for {out!r} at start")
        if isinstance(out, QueueLogEntry) and records is not None:
            log_lines.append(out.line())   # ADDMEMBER: the agents' logged-in time
    span = until - t0
    for i in range(1, _PROGRESS_STEPS + 1):
        shell.run_until(t0 + span * i / _PROGRESS_STEPS)
        if failures:
            raise SimError(failures[0])
        if progress is not None:
            progress(i / _PROGRESS_STEPS)
    # Occupancy over the arrival period: the drain after it (load falling to 0) is not
    # the stationary state the theory describes.
    busy = 0.0
    for a in acd.agent_status(clock.now()):
        t = dict(a.total.time_in)
        busy += t.get(AgentState.ON_CALL.value, 0.0) + t.get(AgentState.WRAP_UP.value, 0.0)
    while not people.done:
        if not shell.step():
            raise SimError(f"{people.in_system} callers still in the system and nothing "
                           "left to happen")
    last_left = clock.now()
    if o.wrapup_s > 0:
        shell.run_until(last_left + o.wrapup_s)   # every wrap-up started has ended
    if failures:
        raise SimError(failures[0])
    end = max(last_left + o.wrapup_s, until)
    wall_s = time.perf_counter() - started

    st = acd.stats[QUEUE]
    joined = st.joined
    if joined != people.offered - people.blocked or st.left != joined:
        raise SimError(f"the ACD counted {joined} callers joined and {st.left} left; "
                       f"{people.offered - people.blocked} were let in")

    def share(x: float) -> float | None:
        return x / joined if joined else None

    kept: tuple[str, float, float] | None = None
    if records is not None:
        from switchd.exceptions import StorageError
        from switchd.store.offline import write_state

        try:
            write_state(records, cdrs, log_lines, facts_since=math.floor(t0))
        except (OSError, sqlite3.Error, StorageError) as exc:
            raise SimError(f"--records {records}: cannot write the records: {exc}") from exc
        kept = (str(records), t0, until)

    return SimResult(
        offered=people.offered, blocked=people.blocked, answered=st.answered,
        abandoned=st.abandoned,
        p_block=people.blocked / people.offered if people.offered else None,
        p_wait=share(st.waited), service_level=share(st.answered_within_sl),
        asa_s=st.asa_s, mean_wait_s=share(st.wait_sum_all),
        p_abandon=share(st.abandoned), occupancy=busy / (o.agents * span),
        sim_hours=(end - t0) / 3600.0, wall_s=wall_s, seed=seed, options=o,
        theory=theory_for(o), peak_calls=people.peak, records=kept,
    )


# ---------------------------------------------------------------------------- CLI


def options_from_args(args: argparse.Namespace) -> SimOptions:
    """The :class:`SimOptions` of ``switchd sim``'s arguments (parsed by
    ``switchd.__main__``). Raises SimError naming a bad option."""
    if args.erlangs is not None:
        erlangs = args.erlangs
        if not (math.isfinite(erlangs) and erlangs > 0):
            raise SimError(f"--erlangs must be a number > 0, got {erlangs!r}")
    else:
        cph = args.calls_per_hour
        if not (math.isfinite(cph) and cph > 0):
            raise SimError(f"--calls-per-hour must be a number > 0, got {cph!r}")
        if not (math.isfinite(args.aht) and args.aht > 0):
            raise SimError(f"--aht must be a number > 0, got {args.aht!r}")
        erlangs = cph * args.aht / 3600.0
    try:
        strategy = Strategy(args.strategy)
    except ValueError:
        raise SimError(f"--strategy must be one of {', '.join(s.value for s in Strategy)}, "
                       f"got {args.strategy!r}") from None
    try:
        talk = Talk(args.talk)
    except ValueError:
        raise SimError(f"--talk must be one of {', '.join(t.value for t in Talk)}, "
                       f"got {args.talk!r}") from None
    o = SimOptions(agents=args.agents, erlangs=erlangs, aht_s=args.aht, trunks=args.trunks,
                   patience_s=args.patience, wrapup_s=args.wrapup, target_s=args.target,
                   hours=args.hours, seed=args.seed, strategy=strategy, talk=talk)
    o.check()
    return o


def run_sim(args: argparse.Namespace) -> int:
    """``switchd sim``: exit 0 after a run, 2 for bad options, 1 when the run failed."""
    records = Path(args.records) if getattr(args, "records", None) else None
    try:
        o = options_from_args(args)
        if records is not None:
            check_records_dir(records)
    except SimError as exc:
        sys.stderr.write(f"switchd sim: {exc}\n")
        return 2
    try:
        if args.json:
            result = simulate(o, records=records)
        else:
            result = _with_progress(o, records)
    except SimError as exc:
        sys.stderr.write(f"switchd sim: the run failed: {exc}\n")
        return 1
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        _print_table(result)
    return 0


def _with_progress(o: SimOptions, records: Path | None = None) -> SimResult:
    """:func:`simulate` with a rich progress bar on stderr, shown once a run has taken
    more than a second (short runs print nothing but their table)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        return simulate(o, records=records)
    started = time.perf_counter()
    bar: Progress | None = None
    task = None

    def tick(share: float) -> None:
        nonlocal bar, task
        if bar is None:
            if time.perf_counter() - started < 1.0:
                return
            # Refreshed from here, not by rich's thread: a refresh thread would take the
            # GIL from the simulation several times a second.
            bar = Progress("simulating", BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
                           console=console, transient=True, auto_refresh=False)
            bar.start()
            task = bar.add_task("sim", total=1.0)
        assert task is not None
        bar.update(task, completed=share, refresh=True)

    try:
        return simulate(o, progress=tick, records=records)
    finally:
        if bar is not None:
            bar.stop()


def _print_table(r: SimResult) -> None:
    from rich.console import Console
    from rich.table import Table

    o = r.options
    th = r.theory
    # Two short lines: a title rich would wrap mid-phrase at 80 columns.
    title = (f"{o.agents} agents, {o.erlangs:g} Erlangs ({o.calls_per_hour:,.0f} calls/h), "
             f"AHT {o.aht_s:g} s\ntrunks {o.trunks or 'unlimited'}, patience "
             f"{'infinite' if o.patience_s is None else f'{o.patience_s:g} s'}, wrap-up "
             f"{o.wrapup_s:g} s, {o.strategy.value}, {o.hours:g} h, seed {r.seed}")
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("simulated", justify="right")
    theory_head = "theory" if th is None else th.model + ("" if th.exact else " (approx.)")
    table.add_column(theory_head, justify="right")

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.2f} %"

    def secs(x: float | None) -> str:
        return "-" if x is None or not math.isfinite(x) else f"{x:.2f} s"

    f = th.figures if th is not None else None
    rows: list[tuple[str, str, str]] = [
        ("offered calls", f"{r.offered:,}", ""),
        ("blocked (all trunks busy)", f"{r.blocked:,}", ""),
        ("answered", f"{r.answered:,}", ""),
        ("abandoned", f"{r.abandoned:,}", ""),
        ("P(block)", pct(r.p_block), pct(f.p_block) if f else "-"),
        ("P(wait > 0)", pct(r.p_wait), pct(f.p_wait) if f else "-"),
        (f"service level (answered <= {o.target_s:g} s)", pct(r.service_level),
         pct(f.service_level) if f else "-"),
        ("ASA (answered)", secs(r.asa_s), secs(f.asa_s) if f else "-"),
        ("mean wait (all)", secs(r.mean_wait_s), secs(f.mean_wait_s) if f else "-"),
        ("P(abandon)", pct(r.p_abandon), pct(f.p_abandon) if f else "-"),
        ("occupancy", pct(r.occupancy), pct(th.occupancy) if th else "-"),
    ]
    for row in rows:
        table.add_row(*row)
    console = Console()
    console.print(table)
    console.print(f"simulated {r.sim_hours:.2f} h in {r.wall_s:.2f} s wall "
                  f"({r.calls_per_wall_s:,.0f} calls/s); shares are over callers not blocked",
                  highlight=False)
    if th is None and o.patience_s is None and o.trunks is None and o.erlangs >= o.agents:
        console.print(f"no theory: {o.erlangs:g} Erlangs on {o.agents} agents with callers "
                      "who never give up has no steady state (the queue grows without bound "
                      "as long as calls come); add --patience or --trunks, or more agents",
                      highlight=False)
    elif th is not None and not th.exact:
        console.print(f"{th.model} (approx.): the model assumes exponential handle times "
                      "without wrap-up; with --wrapup or --talk lognormal it is a guide, not "
                      "the exact figure", highlight=False)
    if r.records is not None:
        folder, t_from, t_to = r.records
        sl = "" if o.target_s == 20.0 else f" --sl-threshold {o.target_s:g}"
        console.print(f"records written to {folder}: switchd report --state-dir {folder} "
                      f"--from {_iso(t_from)} --to {_iso(t_to)} --by hour{sl}", highlight=False)
