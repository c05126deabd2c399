"""``switchd bench calls``: how many calls per second switchd sets up, answers, hangs up and records.

Two modes, because they answer two questions:

* **virtual** (default): the call core and the simulated board driver on the
  daemon's own shell and bus, in virtual time (:class:`~switchd.shell.Shell` on a
  :class:`~switchd.shell.VirtualClock`), CDRs collected from the bus. This is the
  ceiling of the sans-IO engines: no socket, no logging, no SQLite.
* **live** (``--live``): a real ``switchd run`` child process, driven over its CTI
  socket with pipelined ``SIM.CALL`` requests, bots answering at once and talking
  briefly, CDRs written to SQLite. After a clean SIGTERM the database is opened and
  every call the daemon accepted must have its CDR row. This is what an operator
  gets, logging at ``info`` included (the level users run with).

Both print one JSON object with ``--json`` (for scripts and CI), a small table otherwise.
The live target on a 2-core machine is >= 600 calls/s with zero errors and every CDR.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from switchd.cti.client import CtiClient, Response

__all__ = [
    "BenchError",
    "report",
    "LiveResult",
    "VirtualResult",
    "bench_live",
    "bench_virtual",
    "live_config",
    "run_bench",
]

#: First extension number of the bench board. Extensions are numbered upwards from here.
FIRST_EXTENSION = 1000
#: The outside prefix of the bench board: "0", because no extension number starts with it.
OUTSIDE_PREFIX = "0"
#: The number every bench caller dials; the catch-all route sends it to the hunt group.
DNIS = "8000"
#: Callers are numbered upwards from here, one number per call, so CDRs can be matched.
CALLER_BASE = 7_000_000_000
#: The CTI user the live bench logs in as, and its secret (a throw-away config only).
BENCH_USER = "bench"
BENCH_SECRET = "bench"

DEFAULT_VIRTUAL_CALLS = 100_000
DEFAULT_LIVE_CALLS = 6000

# Virtual mode: bots answer after 0.5 s and talk 1..3 s, so a call holds a trunk and an
# extension for at most 3.5 s. Arrivals are spread evenly so that at most this share
# of the lines is busy at once: the board is kept busy but never refuses a call.
_VIRTUAL_ANSWER_S = 0.5
_VIRTUAL_TALK_S = (1.0, 3.0)
_VIRTUAL_LOAD = 0.8

# Live mode: bots answer at once and talk briefly, so lines free up quickly and the
# in-flight window (not talk time) bounds the rate: with talk 0.1..0.3 s a window of W
# calls can reach at most W / 0.2 s calls/s, so the default window is 80 % of the lines
# (like the virtual load), leaving the daemon, not the window, as the limit.
_LIVE_ANSWER_S = 0.0
_LIVE_TALK_S = (0.1, 0.3)
_LIVE_RING_TIMEOUT_S = 20.0
_STARTUP_TIMEOUT_S = 20.0
_SHUTDOWN_TIMEOUT_S = 30.0


class BenchError(Exception):
    """The benchmark could not run (the daemon did not start, died, or refused the login)."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class VirtualResult:
    """Outcome of :func:`bench_virtual`. Times in seconds; ``virtual_s`` is simulated time."""

    calls: int
    answered: int
    cdrs: int
    errors: int
    wall_s: float
    calls_per_s: float
    lines: int
    virtual_s: float
    mode: str = "virtual"

    @property
    def passed(self) -> bool:
        """True when every call was accepted, answered, and has exactly one CDR."""
        return self.errors == 0 and self.cdrs == self.calls and self.answered == self.calls

    def as_dict(self) -> dict[str, Any]:
        """The JSON object printed by ``--json``, ``mode`` first."""
        d = asdict(self)
        return {"mode": d.pop("mode"), **d}


@dataclass(frozen=True, slots=True)
class LiveResult:
    """Outcome of :func:`bench_live`.

    ``ok``: SIM.CALL requests the daemon accepted; ``errors``: ERR replies by code;
    ``ended``/``answered``: ``call.ended`` events received (all / ANSWERED) for our
    calls; ``cdrs``: accepted calls found in the ``cdr`` table after shutdown,
    ``missing_cdrs`` the accepted ones not found; ``wall_s``: seconds from the first
    SIM.CALL sent to the last ``call.ended`` received; ``daemon_exit``: the daemon's
    exit code after SIGTERM (None if it had to be killed). ``daemon_cpu_s``: the
    daemon's CPU time (all its threads: the loop, the CDR and recording writers) while
    the calls ran, and ``daemon_cpu_ms_per_call`` that over the calls ended — the
    switch's own cost per call set-up, answer and hang-up with its CDR (from /proc;
    0 where there is none). The rate is bounded by the window over the call's length
    (bots answer and talk for a fraction of a second), not only by the daemon.
    """

    calls: int
    ok: int
    errors: dict[str, int]
    ended: int
    answered: int
    cdrs: int
    missing_cdrs: int
    wall_s: float
    calls_per_s: float
    daemon_exit: int | None
    lines: int
    log_level: str
    window: int | None
    rate: float | None
    timed_out: bool
    dispositions: dict[str, int] = field(default_factory=dict)
    daemon_cpu_s: float = 0.0
    daemon_cpu_ms_per_call: float = 0.0
    #: Every call recorded to WAV as well (``--record``).
    recorded: bool = False
    mode: str = "live"

    @property
    def passed(self) -> bool:
        """True with no ERR, every call ended, every CDR on disk and a clean exit 0."""
        return (not self.errors and not self.timed_out and self.ok == self.calls
                and self.ended == self.calls and self.missing_cdrs == 0
                and self.daemon_exit == 0)

    def as_dict(self) -> dict[str, Any]:
        """The JSON object printed by ``--json``, ``mode`` first."""
        d = asdict(self)
        return {"mode": d.pop("mode"), **d}


# --------------------------------------------------------------------------- virtual


def bench_virtual(calls: int = DEFAULT_VIRTUAL_CALLS, lines: int = 200, *,
                  seed: int = 1) -> VirtualResult:
    """Run ``calls`` inbound calls through the core and simulated board in virtual time.

    The board has ``lines`` trunks and ``lines`` extensions in one hunt group that a
    catch-all route points at. Bots answer after 0.5 s and talk 1..3 s (uniform,
    ``seed``-ed); arrivals are evenly spaced so that at most 80 % of the lines are in
    use. Wall time (``time.perf_counter``) covers the whole run, CDR collection
    included. Raises ValueError for ``calls`` or ``lines`` < 1.
    """
    from switchd.acd.engine import Acd
    from switchd.acd.inputs import ACD_INPUTS
    from switchd.acd.model import AcdSettings, RingGroup, RingStrategy
    from switchd.bus import Bus
    from switchd.core.engine import CoreError, SwitchCore
    from switchd.core.inputs import Incoming
    from switchd.core.routing import CoreConfig, Route, Target, TargetKind
    from switchd.drivers.sim.board import AgentMode, BotSettings, SimSettings, TrafficSettings
    from switchd.drivers.sim.driver import SimDriver
    from switchd.engine import Input
    from switchd.events import CallEnded, Cdr, Event
    from switchd.shell import Shell, VirtualClock

    if calls < 1 or lines < 1:
        raise ValueError(f"calls and lines must be at least 1, got {calls} and {lines}")
    exts = tuple(range(FIRST_EXTENSION, FIRST_EXTENSION + lines))
    core = SwitchCore(CoreConfig(
        trunks=lines, extensions=exts, outside_prefix=OUTSIDE_PREFIX,
        ring_timeout_s=_LIVE_RING_TIMEOUT_S,
        routes=(Route(Target(TargetKind.GROUP, "bench")),),
    ))
    # The hunt group is a queue with no waiting: the ACD rings it, as in the daemon.
    acd = Acd(AcdSettings(groups={"bench": RingGroup("bench", RingStrategy.HUNT, exts,
                                                     _LIVE_RING_TIMEOUT_S)},
                          ring_timeout_s=_LIVE_RING_TIMEOUT_S))
    settings = SimSettings(bots=BotSettings(AgentMode.AUTO, _VIRTUAL_ANSWER_S, _VIRTUAL_TALK_S),
                           traffic=TrafficSettings(enabled=False))
    driver = SimDriver(settings, exts, list(core.lines))
    driver.board.rng = random.Random(seed)
    # The daemon's wiring on a virtual clock: the same shell, core and board driver.
    bus = Bus()
    cdrs: list[Cdr] = []
    rejected: list[Exception] = []

    def keep(ev: Event) -> None:
        assert isinstance(ev, CallEnded)
        cdrs.append(ev.cdr)

    bus.on(CallEnded.name, keep)
    clock = VirtualClock()
    shell = Shell(bus, clock, log_events=False, refusals=(CoreError,),
                  on_refused=lambda _item, exc: rejected.append(exc))
    shell.add(core, takes=(Input,))
    shell.add(acd, takes=ACD_INPUTS, follows=Acd.FOLLOWS)
    shell.add(driver, follows=driver.FOLLOWS)
    hold_max_s = _VIRTUAL_ANSWER_S + _VIRTUAL_TALK_S[1]
    interval_s = hold_max_s / (lines * _VIRTUAL_LOAD)
    t0 = clock.now()
    started = time.perf_counter()
    for i in range(calls):
        shell.run_until(t0 + i * interval_s)
        try:
            shell.submit(Incoming(str(CALLER_BASE + i), DNIS))
        except CoreError as exc:
            rejected.append(exc)
    # Each remaining call needs a handful of steps (answer, hang-up, stale timers).
    shell.run_idle(limit=50 * lines + 1000)
    wall_s = time.perf_counter() - started
    ours = {str(CALLER_BASE + i) for i in range(calls)}
    with_cdr = {c.src for c in cdrs if c.src in ours}
    answered = sum(1 for c in cdrs if c.src in ours and c.disposition == "ANSWERED")
    return VirtualResult(
        calls=calls, answered=answered, cdrs=len(with_cdr), errors=len(rejected),
        wall_s=round(wall_s, 4), calls_per_s=round(calls / wall_s, 1) if wall_s > 0 else 0.0,
        lines=lines, virtual_s=round(clock.now() - t0, 3),
    )


# --------------------------------------------------------------------------- live


def live_config(lines: int, secret_hash: str, *, log_level: str = "info",
                record: bool = False) -> dict[str, Any]:
    """The config document of the live bench's daemon (to dump as YAML).

    ``lines`` trunks and extensions (from :data:`FIRST_EXTENSION`), one hunt group of
    every extension behind a catch-all route, bots in auto mode answering at once and
    talking 0.1..0.3 s, demo traffic off, one admin user :data:`BENCH_USER` whose
    secret hash is ``secret_hash``; every call recorded to WAV when ``record``, else
    none (the call path alone: set-up, answer, hang-up and the CDR).
    """
    exts = list(range(FIRST_EXTENSION, FIRST_EXTENSION + lines))
    return {
        "board": {"driver": "sim", "trunks": lines, "extensions": lines,
                  "first_extension": FIRST_EXTENSION},
        "dialplan": {"outside_prefix": OUTSIDE_PREFIX, "ring_timeout_s": _LIVE_RING_TIMEOUT_S,
                     "tone_timeout_s": 10.0},
        "ring_groups": {"bench": {"strategy": "hunt", "members": exts,
                                  "ring_timeout_s": _LIVE_RING_TIMEOUT_S}},
        "routes": [{"to": "group:bench"}],
        "users": [{"name": BENCH_USER, "role": "admin", "secret": secret_hash}],
        # Two lines per call in flight (OK, call.ended) must never look like a slow client.
        "cti": {"listen": "127.0.0.1:0", "outbound_queue": max(1024, 4 * lines)},
        "log": {"format": "json", "level": log_level},
        "recording": {"mode": "on_answer" if record else "off"},
        "state_dir": "state",
        "sim": {
            "bots": {"mode": "auto", "answer_after_s": _LIVE_ANSWER_S,
                     "talk_s": list(_LIVE_TALK_S)},
            "traffic": {"enabled": False},
        },
    }


@dataclass(slots=True)
class _Tally:
    """What the client saw; mutated by the reader task, read after a timeout too."""

    calls: int
    in_flight: int = 0
    ok_ids: list[str] = field(default_factory=list)
    pending: set[str] = field(default_factory=set)
    ended_early: set[str] = field(default_factory=set)
    errors: Counter[str] = field(default_factory=Counter)
    dispositions: Counter[str] = field(default_factory=Counter)
    finished: int = 0  # calls settled: refused with ERR, or ended
    first_send: float | None = None
    last_end: float | None = None


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system, every thread) of process ``pid``; 0.0 without /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields_ = stat.rsplit(")", 1)[1].split()
    return (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-limit:].strip()


def _wait_for_port(proc: subprocess.Popen[bytes], log_path: Path, err_path: Path,
                   fixed_port: int | None, timeout_s: float) -> int:
    """Wait for the daemon's ``cti_listening`` log line (or, below info, for the port to answer)."""
    deadline = time.monotonic() + timeout_s
    seen = 0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"the daemon exited with code {proc.returncode} before listening; "
                             f"its stderr:\n{_tail(err_path) or '(empty)'}\n"
                             f"its log:\n{_tail(log_path) or '(empty)'}")
        if fixed_port is not None:
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", fixed_port), timeout=0.2):
                return fixed_port
        else:
            with contextlib.suppress(OSError), log_path.open("rb") as f:
                f.seek(seen)
                chunk = f.read()
                # Only whole lines; a partly written one is read again next time.
                end = chunk.rfind(b"\n") + 1
                seen += end
                for raw in chunk[:end].splitlines():
                    with contextlib.suppress(ValueError):
                        rec = json.loads(raw)
                        if isinstance(rec, dict) and rec.get("event") == "cti_listening":
                            return int(rec["port"])
        time.sleep(0.05)
    raise BenchError(f"the daemon did not listen within {timeout_s:g} s; its stderr:\n"
                     f"{_tail(err_path) or '(empty)'}")


async def _login(client: CtiClient) -> None:
    """Log in as the bench user and subscribe to ``call.ended``; raises BenchError if refused."""
    from switchd.cti.client import ReplyError

    try:
        await client.auth(BENCH_USER, BENCH_SECRET)
        await client.sub("call.ended")
    except ReplyError as exc:
        raise BenchError(f"{exc.verb} refused: {exc.code}: {exc.msg}") from None


def _settle(tally: _Tally, wake: asyncio.Event, finished: asyncio.Event) -> None:
    """One call is over (refused, or ended): free its window slot."""
    tally.in_flight -= 1
    tally.finished += 1
    wake.set()
    if tally.finished >= tally.calls:
        finished.set()


def _on_reply(tally: _Tally, wake: asyncio.Event, finished: asyncio.Event,
              future: asyncio.Future[Response]) -> None:
    """Done-callback of one SIM.CALL: note the call id, or count the ERR."""
    from switchd.cti.client import ConnectionLost, ReplyError

    if future.cancelled():
        return
    exc = future.exception()
    if isinstance(exc, ReplyError):
        tally.errors[exc.code] += 1
        _settle(tally, wake, finished)
        return
    if isinstance(exc, ConnectionLost):
        return  # the event reader reports the lost connection
    if exc is not None:
        tally.errors["internal"] += 1
        _settle(tally, wake, finished)
        return
    call_id = str(future.result().get("call", ""))
    tally.ok_ids.append(call_id)
    if call_id in tally.ended_early:
        # The server sends OK before the events of that call; kept in case.
        tally.ended_early.discard(call_id)
        tally.last_end = time.perf_counter()
        _settle(tally, wake, finished)
    else:
        tally.pending.add(call_id)


async def _read_events(client: CtiClient, tally: _Tally, wake: asyncio.Event,
                       finished: asyncio.Event) -> None:
    """Count ``call.ended`` events of our calls until the run is over."""
    from switchd.cti.client import ConnectionLost

    try:
        async for event in client.events():
            call_id = str(event.fields.get("call", ""))
            tally.dispositions[str(event.fields.get("disposition", "?"))] += 1
            if call_id in tally.pending:
                tally.pending.discard(call_id)
                tally.last_end = time.perf_counter()
                _settle(tally, wake, finished)
            else:
                tally.ended_early.add(call_id)
    except ConnectionLost as exc:
        raise BenchError(f"the daemon closed the connection in the middle of the run: "
                         f"{exc.reason}") from None
    raise BenchError("the daemon closed the connection in the middle of the run")


async def _send_calls(client: CtiClient, tally: _Tally, wake: asyncio.Event,
                      finished: asyncio.Event, window: int | None, rate: float | None) -> None:
    """Offer the calls: at most ``window`` in flight, or ``rate`` per second."""

    def on_reply(future: asyncio.Future[Response]) -> None:
        _on_reply(tally, wake, finished, future)

    sent = 0
    while sent < tally.calls:
        if rate is not None:
            if tally.first_send is None:
                n = 1
            else:
                elapsed = time.perf_counter() - tally.first_send
                n = min(int(elapsed * rate) + 1, tally.calls) - sent
                if n <= 0:
                    await asyncio.sleep(max(0.0, sent / rate - elapsed))
                    continue
        else:
            assert window is not None
            n = min(window - tally.in_flight, tally.calls - sent)
            if n <= 0:
                wake.clear()
                await wake.wait()
                continue
        if tally.first_send is None:
            tally.first_send = time.perf_counter()
        # Pipelined: n requests go out in one write, each reply finds its call by tag.
        for i in range(sent, sent + n):
            future = client.submit("SIM.CALL", caller=CALLER_BASE + i, dnis=DNIS)
            future.add_done_callback(on_reply)
        tally.in_flight += n
        sent += n
        await client.drain()


async def _drive(port: int, tally: _Tally, window: int | None, rate: float | None,
                 timeout_s: float) -> bool:
    """Log in, offer the calls, wait for them to end. Returns True when it timed out.

    Raises BenchError when the daemon cannot be reached, refuses the login, or closes
    the connection before every call has ended.
    """
    from switchd.cti.client import CtiClient, CtiError

    try:
        client = await CtiClient.connect("127.0.0.1", port, timeout=10.0)
    except (OSError, TimeoutError, CtiError) as exc:
        raise BenchError(f"cannot talk to the daemon on port {port}: {exc}") from None
    async with client:
        try:
            await asyncio.wait_for(_login(client), 10.0)
        except (TimeoutError, CtiError) as exc:
            raise BenchError(f"login to the daemon failed: {exc or 'timed out'}") from None
        wake, finished = asyncio.Event(), asyncio.Event()
        tasks = [asyncio.create_task(_read_events(client, tally, wake, finished)),
                 asyncio.create_task(_send_calls(client, tally, wake, finished, window, rate)),
                 asyncio.create_task(finished.wait())]
        try:
            await asyncio.wait_for(_until_finished(tasks, finished), timeout_s)
        except TimeoutError:
            return True
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return False


async def _until_finished(tasks: list[asyncio.Task[Any]], finished: asyncio.Event) -> None:
    """Wait until every call is settled; re-raise the first failure of a task meanwhile."""
    waiting = set(tasks)
    while not finished.is_set():
        done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            t.result()  # the reader only ever ends by raising; the sender ends when all are sent


def _count_cdrs(db: Path, call_ids: Sequence[str]) -> int:
    """How many of ``call_ids`` have a row in the ``cdr`` table of ``db``."""
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        stored = {row[0] for row in conn.execute("SELECT uniqueid FROM cdr")}
    finally:
        conn.close()
    return sum(1 for c in call_ids if c in stored)


#: Lines of the live bench's board by default: 640 calls in flight, so that the daemon's
#: own speed, not the window over the calls' fraction of a second, bounds the rate.
DEFAULT_LIVE_LINES = 800


def bench_live(calls: int = DEFAULT_LIVE_CALLS, lines: int = DEFAULT_LIVE_LINES, *, rate: float | None = None,
               window: int | None = None, log_level: str = "info", timeout_s: float = 120.0,
               python_args: Sequence[str] = (), record: bool = False) -> LiveResult:
    """Start a real daemon, drive ``calls`` calls through its CTI socket, check CDRs on disk.

    Without ``rate`` at most ``window`` calls (default 80 % of ``lines``) are in flight
    (sent, ``call.ended`` not yet received); with ``rate`` (calls/s) requests are sent
    on that schedule whatever the daemon does. ``timeout_s`` bounds the driving phase.
    ``python_args`` go between the interpreter and ``-m switchd`` (e.g. ``("-m",
    "cProfile", "-o", "out.prof")`` to profile the daemon). The daemon runs in a
    temporary directory that is removed afterwards; it is always killed on failure.

    Raises BenchError when the daemon does not start or refuses the login, and
    ValueError for calls or lines < 1, lines > 10000, or rate/window <= 0.
    """
    from switchd.passwords import hash_secret

    if calls < 1 or not 1 <= lines <= 10_000:
        raise ValueError(f"need calls >= 1 and 1 <= lines <= 10000, got {calls} and {lines}")
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be > 0 calls/s, got {rate}")
    if rate is None:
        window = window if window is not None else max(1, lines * 4 // 5)
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
    else:
        window = None
    tmp = Path(tempfile.mkdtemp(prefix="switchd-bench-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        cfg_path = tmp / "config.yaml"
        doc = live_config(lines, hash_secret(BENCH_SECRET, iterations=1000), log_level=log_level,
                          record=record)
        cfg_path.write_text(yaml.safe_dump(doc, sort_keys=False))
        # Below info the cti_listening line is not logged: pick the port ourselves.
        fixed_port = None if log_level in ("debug", "info") else _free_port()
        listen = f"127.0.0.1:{fixed_port or 0}"
        log_path, err_path = tmp / "daemon.log", tmp / "daemon.err"
        env = dict(os.environ)
        pkg_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH")) if p)
        cmd = [sys.executable, *python_args, "-m", "switchd", "run", "-c", str(cfg_path),
               "--state-dir", str(tmp / "state"), "--cti-listen", listen, "--log-format", "json"]
        with log_path.open("wb") as out, err_path.open("wb") as err:
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    cwd=tmp, env=env)
        port = _wait_for_port(proc, log_path, err_path, fixed_port, _STARTUP_TIMEOUT_S)
        tally = _Tally(calls=calls)
        cpu0 = _cpu_s(proc.pid)
        timed_out = asyncio.run(_drive(port, tally, window, rate, timeout_s))
        cpu = _cpu_s(proc.pid) - cpu0
        proc.send_signal(signal.SIGTERM)
        try:
            daemon_exit: int | None = proc.wait(timeout=_SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            daemon_exit = None
        cdrs = _count_cdrs(tmp / "state" / "switchd.db", tally.ok_ids)
        ended = sum(tally.dispositions.values())
        wall_s = ((tally.last_end - tally.first_send)
                  if tally.first_send is not None and tally.last_end is not None else 0.0)
        return LiveResult(
            calls=calls, ok=len(tally.ok_ids), errors=dict(sorted(tally.errors.items())),
            ended=ended, answered=tally.dispositions.get("ANSWERED", 0), cdrs=cdrs,
            missing_cdrs=len(tally.ok_ids) - cdrs, wall_s=round(wall_s, 4),
            calls_per_s=round(ended / wall_s, 1) if wall_s > 0 else 0.0,
            daemon_exit=daemon_exit, lines=lines, log_level=log_level, window=window, rate=rate,
            timed_out=timed_out, dispositions=dict(sorted(tally.dispositions.items())),
            daemon_cpu_s=round(cpu, 3),
            daemon_cpu_ms_per_call=round(cpu * 1000 / ended, 3) if ended else 0.0,
            recorded=record,
        )
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- CLI


def _table(result: VirtualResult | LiveResult) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"switchd bench calls ({result.mode})", show_header=False)
    table.add_column("figure", style="bold")
    table.add_column("value", justify="right")
    for key, value in result.as_dict().items():
        if key == "mode":
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
        table.add_row(key, str(value))
    table.add_row("verdict", "[green]PASS[/green]" if result.passed else "[red]FAIL[/red]")
    Console().print(table)


def run_bench(args: argparse.Namespace) -> int:
    """Run the benchmark named by ``args.bench`` (only ``calls``) and print its figures.

    Returns 0 when the run passed (virtual: every call answered with its CDR; live:
    no ERR reply, every CDR on disk, daemon exit 0), 1 when it did not or could not
    run, 2 for bad arguments.
    """
    if args.bench != "calls":
        sys.stderr.write(f"switchd bench: unknown benchmark {args.bench!r}; try `calls`\n")
        return 2
    live = bool(args.live)
    calls = args.calls if args.calls is not None else (
        DEFAULT_LIVE_CALLS if live else DEFAULT_VIRTUAL_CALLS)
    if not live and args.rate is not None:
        sys.stderr.write("switchd bench: --rate applies to --live only; ignored\n")

    lines = args.lines if args.lines is not None else (DEFAULT_LIVE_LINES if live else 200)

    def run() -> VirtualResult | LiveResult:
        if live:
            return bench_live(calls, lines, rate=args.rate, record=bool(args.record))
        return bench_virtual(calls, lines)

    return report("calls", run, _table, json_out=bool(args.json))


def report(name: str, run: Callable[[], Any], table: Callable[[Any], None], *,
           json_out: bool) -> int:
    """Run a live benchmark and print its result (one JSON object with ``json_out``,
    else ``table``); the exit code of every ``switchd bench``: 0 passed, 1 failed or
    could not run (:class:`BenchError`), 2 bad arguments (ValueError). ``run`` returns
    a result with ``as_dict()`` and ``passed``."""
    try:
        result = run()
    except ValueError as exc:
        sys.stderr.write(f"switchd bench {name}: {exc}\n")
        return 2
    except BenchError as exc:
        sys.stderr.write(f"switchd bench {name}: {exc}\n")
        return 1
    if json_out:
        sys.stdout.write(json.dumps(result.as_dict()) + "\n")
        sys.stdout.flush()
    else:
        table(result)
    return 0 if result.passed else 1
