"""``switchd bench cti``: event fan-out to many CTI clients with the board at full load.

A real ``switchd run`` child process (what operators run; its CPU is measured apart
from the clients') on a throw-away copy of the shipped ``config.yaml``: the demo
queues ``sales`` and ``support`` with their greetings, music, announcements and
recording, enough trunks, extensions and logged-in bot agents for the offered rate,
bots answering after 0.5 s and talking 1..3 s, wrap-up 1 s. A driver client offers
``SIM.CALL`` at a steady rate, alternately to each queue, so calls cycle through the
queues and agents for the whole run.

N clients log in (role ``crm``) and ``SUB`` to every event. All but a few are
*listeners*, in this one asyncio process on raw protocols (each counts its event lines
and keeps a CRC-32 of them; parsing every event of 500 connections would make the
bench, not the daemon, the limit). The others are *probes*, in a process of their own
(behind 500 listeners in one loop a reply would wait for the bench itself): subscribed
like the rest, they also send ``PING`` and ``QUEUE.STATUS`` at a steady rate (open
loop: a slow reply does not delay the next request), time each reply, and note how
late events reach them. After the measured window the traffic stops, every call ends,
the board goes quiet, and each client's event stream is compared with the longest one:
a client that kept reading must have every event, in the same order (same count and
CRC). CPU time comes from ``/proc``: the daemon's, the bench's own processes', and the
rest of the machine's (on a shared machine the figures say so).

Logging in: the bench user's secret is hashed at the production cost
(:data:`~switchd.passwords.DEFAULT_ITERATIONS`); the daemon's verification cache
makes the 2nd..Nth ``AUTH`` of the same user and secret free, as it does for a
crowd of reconnecting softphones, so N logins cost one PBKDF2 run, not N.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from switchd.bench import BenchError, _cpu_s, _wait_for_port, report

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = [
    "CtiBenchResult",
    "Latency",
    "bench_cti",
    "cti_bench_config",
    "run_cti_bench",
]

_ROOT = Path(__file__).resolve().parent.parent

#: The CTI users of the bench config: listeners log in as crm (every call, every event),
#: the driver as admin (SIM.CALL).
LISTEN_USER, LISTEN_SECRET = "bench", "bench-listener"
DRIVE_USER, DRIVE_SECRET = "driver", "bench-driver"
#: The numbers the driver dials: one route per queue, so calls cycle through both.
QUEUE_DNIS = {"6000": "sales", "6001": "support"}
#: Callers are numbered upwards from here, one number per call (no sticky routing).
CALLER_BASE = 5_000_000_000
#: Seconds of full load before the measured window, so the board is in steady state.
WARMUP_S = 3.0
#: p99 latency target of PING and QUEUE.STATUS, ms (issue 17).
TARGET_P99_MS = 20.0

_BOT_ANSWER_S = 0.5
_BOT_TALK_S = (1.0, 3.0)
_WRAPUP_S = 1.0
_STARTUP_TIMEOUT_S = 30.0
_SHUTDOWN_TIMEOUT_S = 30.0
#: Connections opened at once while the clients log in (the server's listen backlog is 100).
_CONNECT_BATCH = 50
#: The board is quiet when no client received an event for this long after the last call.
_QUIET_S = 2.0


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Latency:
    """Reply times of one verb, ms: ``n`` answered, ``unanswered`` still waiting at the end."""

    n: int
    p50: float | None
    p99: float | None
    max: float | None
    unanswered: int = 0

    @classmethod
    def of(cls, samples: list[float], unanswered: int = 0) -> Latency:
        """Summarise ``samples`` (seconds) in ms; nearest-rank percentiles."""
        if not samples:
            return cls(0, None, None, None, unanswered)
        s = sorted(samples)

        def rank(p: float) -> float:
            return round(s[max(0, math.ceil(p * len(s)) - 1)] * 1000, 2)

        return cls(len(s), rank(0.50), rank(0.99), round(s[-1] * 1000, 2), unanswered)


@dataclass(frozen=True, slots=True)
class CtiBenchResult:
    """Outcome of :func:`bench_cti`. Times in seconds unless the name says ms.

    ``events_per_s``: event lines delivered to all clients together per second of the
    measured window; ``events_per_client``: events the longest stream holds (the whole
    run); ``lost``: events missing, summed over clients that were not dropped;
    ``mismatched``: clients with every event counted but a different stream (order or
    content); ``dropped``: clients the daemon disconnected (``ERR overloaded``);
    ``events_per_read``: how many events the daemon wrote at once to a listener, on
    average (its batching); ``event_delay_ms``: from an event's ``time`` to its arrival
    at a probe (the first event with a time in each read, ms resolution);
    ``daemon_cpu``/``bench_cpu``/``other_cpu``: CPU time over the window of the daemon,
    of the bench's processes (listeners, probes) and of everything else on the machine,
    in cores; ``daemon_us_per_event``: the daemon's CPU µs per event delivered.
    """

    clients: int
    probes: int
    seconds: float
    calls_per_s: float
    lines: int
    calls_offered: int
    calls_ok: int
    calls_ended: int
    call_errors: dict[str, int]
    events_per_client: int
    events_per_s: float
    events_per_read: float
    lost: int
    mismatched: int
    dropped: int
    ping_ms: Latency
    queue_status_ms: Latency
    event_delay_ms: Latency
    daemon_cpu: float
    daemon_us_per_event: float
    bench_cpu: float
    other_cpu: float
    cores: int
    login_s: float
    daemon_exit: int | None
    daemon: str = "subprocess"
    auth_iterations: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        """True when no client that kept reading lost an event and p99 < 20 ms for both verbs."""
        return (self.lost == 0 and self.mismatched == 0 and self.dropped == 0
                and self.calls_ok > 0 and self.calls_ended == self.calls_ok
                and all(lat.p99 is not None and lat.p99 < TARGET_P99_MS and not lat.unanswered
                        for lat in (self.ping_ms, self.queue_status_ms)))

    def as_dict(self) -> dict[str, Any]:
        """The JSON object printed by ``--json`` (latencies as nested objects)."""
        d = asdict(self)
        d["notes"] = list(self.notes)
        d["passed"] = self.passed
        return d


# --------------------------------------------------------------------------- config


def cti_bench_config(calls_per_s: float, *, listen_hash: str, drive_hash: str,
                     outbound_queue: int = 1024) -> tuple[dict[str, Any], int]:
    """The daemon's config document for ``calls_per_s`` offered calls a second.

    The shipped ``config.yaml`` (flows, prompts and music by absolute path), with
    demo traffic off, routes 6000 → ``queue:sales`` and 6001 → ``queue:support``
    first, both queues' wrap-up at 1 s and no length limit, and ``lines`` trunks,
    extensions and logged-in agents (half in sales, a quarter in support, a quarter
    in both), where ``lines`` = 6 × ``calls_per_s`` (at least 16): a call holds an
    agent ~3.5 s, so about half of them are busy. Users: ``bench`` (crm) and
    ``driver`` (admin) with the given hashes. Returns (document, lines).

    Raises BenchError when the shipped config.yaml is not beside the package.
    """
    path = _ROOT / "config.yaml"
    if not path.is_file():
        raise BenchError(f"{path} not found: the bench runs the shipped demo config, "
                         "from a source checkout")
    cfg: dict[str, Any] = yaml.safe_load(path.read_text())
    lines = max(16, math.ceil(calls_per_s * 6))
    first = int(cfg["board"].get("first_extension", 201))
    cfg["board"]["trunks"] = lines
    cfg["board"]["extensions"] = lines
    agents = []
    for i in range(lines):
        queues = ({"sales": 0} if i % 4 < 2 else {"support": 0} if i % 4 == 2
                  else {"sales": 1, "support": 0})
        agents.append({"id": f"b{i + 1}", "extension": first + i, "queues": queues,
                       "login": True})
    cfg["agents"] = agents
    for name in ("sales", "support"):
        q = cfg["queues"][name]
        q["wrapup_s"] = _WRAPUP_S
        q["max_len"] = None
    cfg["routes"] = ([{"dnis": d, "to": f"queue:{q}"} for d, q in QUEUE_DNIS.items()]
                     + cfg["routes"])
    cfg["users"] = [{"name": LISTEN_USER, "role": "crm", "secret": listen_hash},
                    {"name": DRIVE_USER, "role": "admin", "secret": drive_hash}]
    cfg["cti"] = {"listen": "127.0.0.1:0", "outbound_queue": outbound_queue,
                  "max_line_bytes": cfg.get("cti", {}).get("max_line_bytes", 8192)}
    cfg["log"] = {"format": "json", "level": "info"}
    sim = cfg["sim"]
    sim["traffic"]["enabled"] = False
    sim["bots"] = {"mode": "auto", "answer_after_s": _BOT_ANSWER_S, "talk_s": list(_BOT_TALK_S)}
    cfg["ivr"]["flows_dir"] = str(_ROOT / "flows")
    cfg["media"]["prompts_dir"] = str(_ROOT / "prompts")
    cfg["media"]["moh_dir"] = str(_ROOT / "prompts" / "moh")
    return cfg, lines


# --------------------------------------------------------------------------- clients


def _event_epoch(line: bytes) -> float | None:
    """The ``time=`` of an event line as epoch seconds, or None."""
    i = line.find(b" time=")
    if i < 0:
        return None
    raw = line[i + 6:i + 29]  # 2025-01-01T10:00:00.123 (then Z)
    try:
        return datetime.fromisoformat(raw.decode()).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


class _Listener(asyncio.Protocol):
    """One client subscribed to every event: counts event lines and keeps their CRC-32.

    It sends ``AUTH`` and ``SUB`` at once (the server answers a connection's requests
    in order) and reads the greeting and both replies line by line; after that every
    line is an event, so a read is counted with ``bytes.count`` and checksummed whole.
    A probe (``probe=True``) keeps reading line by line: its tagged replies are timed,
    and while :attr:`delays` is set, the delay of the first timed event of each read.
    """

    def __init__(self, auth: bytes, probe: bool) -> None:
        self.auth = auth
        self.probe = probe
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.handshake = 3  # HELLO, OK (AUTH), OK (SUB)
        self.buf = b""
        self.live = False
        self.events = 0
        self.reads = 0
        self.crc = 0
        self.dropped = False
        self.closed = False
        self.last_rx = 0.0
        self.delays: list[float] | None = None
        # Probe state: tag -> (verb, perf_counter at send); verb -> reply times.
        self.pending: dict[str, tuple[str, float]] = {}
        self.replies: dict[str, list[float]] = {"PING": [], "QUEUE.STATUS": []}
        self.next_tag = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.auth)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(BenchError(f"a client lost its connection while logging "
                                                f"in: {exc or 'closed by the daemon'}"))

    def request(self, verb: str, text: str) -> None:
        """Send one tagged request (probes only) and note when it went."""
        if self.transport is None or self.closed:
            return
        self.next_tag += 1
        tag = f"p{self.next_tag}"
        self.pending[tag] = (verb, time.perf_counter())
        self.transport.write(f"#{tag} {text}\n".encode())

    def data_received(self, data: bytes) -> None:
        self.last_rx = time.time()
        self.reads += 1
        if not self.live or self.probe:
            self._lines(data, self.last_rx)
            return
        if self.buf:  # the rest of a line read during the handshake
            data, self.buf = self.buf + data, b""
        self.events += data.count(b"\n")
        self.crc = zlib.crc32(data, self.crc)
        if b"\nERR " in data or data.startswith(b"ERR "):
            self.dropped = True

    def _lines(self, data: bytes, now: float) -> None:
        buf = self.buf + data
        *lines, self.buf = buf.split(b"\n")
        sampled = self.delays is None
        for line in lines:
            if not self.live:
                self._handshake(line)
            elif line.startswith(b"EVENT "):
                self.events += 1
                self.crc = zlib.crc32(line + b"\n", self.crc)
                if not sampled:
                    t = _event_epoch(line)
                    if t is not None:
                        assert self.delays is not None
                        self.delays.append(now - t)
                        sampled = True
            elif line.startswith(b"#p"):
                self._reply(line)
            elif line.startswith(b"ERR "):
                self.dropped = True

    def _handshake(self, line: bytes) -> None:
        kind = line.split(b" ", 1)[0]
        if kind == b"ERR":
            if not self.ready.done():
                self.ready.set_exception(BenchError(f"login refused: {line.decode()}"))
            return
        self.handshake -= 1
        if self.handshake == 0:
            self.live = True
            if not self.ready.done():
                self.ready.set_result(None)

    def _reply(self, line: bytes) -> None:
        tag, _, rest = line[1:].partition(b" ")
        if rest.startswith(b"ITEM"):
            return
        entry = self.pending.pop(tag.decode(), None)
        if entry is not None and rest.startswith((b"OK", b"END")):
            self.replies[entry[0]].append(time.perf_counter() - entry[1])


async def _connect_all(port: int, clients: int, *, probe: bool) -> list[_Listener]:
    """Open, log in and subscribe ``clients`` connections, ``_CONNECT_BATCH`` at a time."""
    loop = asyncio.get_running_loop()
    auth = (f"AUTH user={LISTEN_USER} secret={LISTEN_SECRET}\nSUB\n").encode()
    out: list[_Listener] = []
    for start in range(0, clients, _CONNECT_BATCH):
        batch = [_Listener(auth, probe) for _ in range(start, min(clients, start + _CONNECT_BATCH))]
        out += batch
        try:
            await asyncio.gather(*(loop.create_connection(lambda p=p: p, "127.0.0.1", port)
                                   for p in batch))
            await asyncio.wait_for(asyncio.gather(*(p.ready for p in batch)), 60.0)
        except (OSError, TimeoutError) as exc:
            for p in out:
                if p.transport is not None:
                    p.transport.abort()
            raise BenchError(f"could not log {clients} clients in: {exc or 'timed out'}") from None
    return out


async def _probe(p: _Listener, interval: float, offset: float, stop: asyncio.Event,
                 phase: int) -> None:
    """Open-loop requests every ``interval`` s from ``offset`` s on: PING and QUEUE.STATUS in turn.

    Probes are staggered by their offsets so their requests do not queue behind each other.
    """
    queues = list(QUEUE_DNIS.values())
    t0 = time.perf_counter() + offset
    k = 0
    while not stop.is_set():
        delay = t0 + k * interval - time.perf_counter()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return
        n = k + phase
        if n % 2 == 0:
            p.request("PING", "PING")
        else:
            p.request("QUEUE.STATUS", f"QUEUE.STATUS queue={queues[(n // 2) % len(queues)]}")
        k += 1


def _probe_main(conn: Connection, port: int, probes: int, probe_rate: float) -> None:
    """The probes' process (see :func:`_probes`); talks with the bench over ``conn``."""
    asyncio.run(_probes(conn, port, probes, probe_rate))


async def _probes(conn: Connection, port: int, probes: int, probe_rate: float) -> None:
    """``probes`` subscribed clients that also time requests, in a process of their own.

    Beside 500 listeners in one process, a reply would wait for that process to read
    every other socket first: its own lag, not the daemon's. Steps, each on a message
    from the bench: connect (answers ``ready``), ``measure``, ``stop`` (answers the
    reply times and event delays), ``final`` (answers each stream's count and CRC).
    """
    loop = asyncio.get_running_loop()

    async def recv() -> Any:
        return await loop.run_in_executor(None, conn.recv)

    try:
        ps = await _connect_all(port, probes, probe=True)
    except BenchError as exc:
        conn.send(("error", str(exc)))
        return
    conn.send(("ready",))
    await recv()
    conn.send(("measuring", sum(p.events for p in ps)))
    delays: list[float] = []
    for p in ps:
        p.delays = delays
    stop = asyncio.Event()
    interval = probes / probe_rate
    tasks = [asyncio.create_task(_probe(p, interval, i * interval / probes, stop, i))
             for i, p in enumerate(ps)]
    await recv()
    events = sum(p.events for p in ps)
    stop.set()
    await asyncio.gather(*tasks)
    for p in ps:
        p.delays = None
    # Replies still on their way get a moment before they count as unanswered.
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(p.pending for p in ps):
        await asyncio.sleep(0.05)
    replies = {verb: [x for p in ps for x in p.replies[verb]] for verb in ("PING", "QUEUE.STATUS")}
    pending = dict(Counter(v for p in ps for v, _ in p.pending.values()))
    conn.send(("latency", events, replies, pending, delays))
    await recv()
    conn.send(("streams", [(p.events, p.crc, p.dropped, p.last_rx) for p in ps]))
    for p in ps:
        if p.transport is not None:
            p.transport.abort()


class _ProbeProcess:
    """The bench's end of :func:`_probe_main`."""

    def __init__(self, port: int, probes: int, probe_rate: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_probe_main, args=(child, port, probes, probe_rate),
                                daemon=True)
        self.proc.start()
        child.close()

    async def ask(self, message: str | None, timeout: float = 60.0) -> Any:
        """Send ``message`` (None: nothing) and wait for the answer. Raises BenchError."""
        if message is not None:
            self.conn.send(message)
        loop = asyncio.get_running_loop()
        ready = await loop.run_in_executor(None, self.conn.poll, timeout)
        if not ready:
            raise BenchError(f"the probes' process did not answer within {timeout:g} s")
        answer = self.conn.recv()
        if answer[0] == "error":
            raise BenchError(answer[1])
        return answer

    def cpu_s(self) -> float:
        """CPU seconds the probes' process has used so far."""
        return _cpu_s(self.proc.pid) if self.proc.pid is not None else 0.0

    def stop(self) -> None:
        """End the process (it ends by itself after ``final``)."""
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


@dataclass(slots=True)
class _Calls:
    """What the driver saw of its calls."""

    offered: int = 0
    ok: set[str] = field(default_factory=set)
    ended: set[str] = field(default_factory=set)
    errors: Counter[str] = field(default_factory=Counter)


async def _drive(port: int, rate: float, stop: asyncio.Event, calls: _Calls) -> None:
    """Offer SIM.CALL at ``rate`` per second, alternating the queues, until ``stop``;
    then wait (up to 60 s) for every accepted call to end."""
    from switchd.cti.client import CtiClient, ReplyError

    client = await CtiClient.connect("127.0.0.1", port, timeout=10.0, max_events=1_000_000)
    async with client:
        await client.auth(DRIVE_USER, DRIVE_SECRET)
        await client.sub("call.ended")

        async def ended() -> None:
            async for ev in client.events():
                calls.ended.add(str(ev.fields.get("call", "")))

        def done(fut: asyncio.Future[Any]) -> None:
            if fut.cancelled():
                return
            exc = fut.exception()
            if exc is None:
                calls.ok.add(str(fut.result().get("call", "")))
            else:
                calls.errors[exc.code if isinstance(exc, ReplyError) else "lost"] += 1

        reader = asyncio.create_task(ended())
        dnis = list(QUEUE_DNIS)
        t0 = time.perf_counter()
        try:
            while not stop.is_set():
                due = int((time.perf_counter() - t0) * rate) + 1
                while calls.offered < due:
                    fut = client.submit("SIM.CALL", caller=CALLER_BASE + calls.offered,
                                        dnis=dnis[calls.offered % len(dnis)])
                    fut.add_done_callback(done)
                    calls.offered += 1
                await client.drain()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, (due / rate) - (
                        time.perf_counter() - t0)))
            # Every accepted call ends by itself (bots hang up); wait for them all.
            deadline = time.monotonic() + 60.0
            while time.monotonic() < deadline and (
                    len(calls.ok) + sum(calls.errors.values()) < calls.offered
                    or not calls.ok <= calls.ended):
                await asyncio.sleep(0.1)
        finally:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader


def _machine_busy_s() -> float:
    """CPU seconds all cores of this machine spent busy since boot (/proc/stat); 0.0 without it."""
    try:
        head = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return 0.0
    ticks = [int(x) for x in head[1:9]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@dataclass(slots=True)
class _Run:
    """Figures gathered by :func:`_measure`. Streams: (events, crc, dropped) per client."""

    streams: list[tuple[int, int, bool]]
    calls: _Calls
    login_s: float
    window_s: float
    delivered: int
    heard: int
    reads: int
    daemon_cpu: float
    bench_cpu: float
    other_cpu: float
    replies: dict[str, list[float]]
    pending: dict[str, int]
    delays: list[float]


async def _measure(port: int, pid: int, clients: int, probes: int, seconds: float,
                   rate: float, probe_rate: float) -> _Run:
    t = time.perf_counter()
    prober = _ProbeProcess(port, probes, probe_rate) if probes else None
    listeners: list[_Listener] = []
    stop_calls = asyncio.Event()
    calls = _Calls()
    driver: asyncio.Task[None] | None = None
    try:
        listeners = await _connect_all(port, clients - probes, probe=False)
        if prober is not None:
            await prober.ask(None)
        login_s = time.perf_counter() - t
        driver = asyncio.create_task(_drive(port, rate, stop_calls, calls))
        await asyncio.sleep(WARMUP_S)
        if driver.done():
            driver.result()
        count0, reads0 = sum(p.events for p in listeners), sum(p.reads for p in listeners)
        heard0 = count0
        if prober is not None:
            count0 += (await prober.ask("measure"))[1]
        probe_cpu0 = prober.cpu_s() if prober is not None else 0.0
        cpu0, own0, all0, t0 = _cpu_s(pid), _own_cpu_s(), _machine_busy_s(), time.perf_counter()
        await asyncio.sleep(seconds)
        count1, reads1 = sum(p.events for p in listeners), sum(p.reads for p in listeners)
        heard = count1 - heard0  # by the listeners alone, who read it in reads1 - reads0
        probe_cpu1 = prober.cpu_s() if prober is not None else 0.0
        cpu1, own1, all1, t1 = _cpu_s(pid), _own_cpu_s(), _machine_busy_s(), time.perf_counter()
        replies: dict[str, list[float]] = {"PING": [], "QUEUE.STATUS": []}
        pending: dict[str, int] = {}
        delays: list[float] = []
        if prober is not None:
            _, probed, replies, pending, delays = await prober.ask("stop")
            count1 += probed
        stop_calls.set()
        await driver
        # Quiet: nothing arrived anywhere for _QUIET_S (the agents' wrap-up has ended).
        probe_streams: list[tuple[int, int, bool, float]] = []
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            newest = max((p.last_rx for p in listeners), default=0.0)
            if time.time() - newest >= _QUIET_S:
                break
            await asyncio.sleep(0.2)
        if prober is not None:
            _, probe_streams = await prober.ask("final")
    finally:
        stop_calls.set()
        if driver is not None and not driver.done():
            driver.cancel()
        if driver is not None:
            with contextlib.suppress(BaseException):
                await driver
        for p in listeners:
            if p.transport is not None:
                p.transport.abort()
        if prober is not None:
            prober.stop()
    window = t1 - t0
    daemon_cpu = (cpu1 - cpu0) / window
    bench_cpu = (own1 - own0 + probe_cpu1 - probe_cpu0) / window
    other = max(0.0, (all1 - all0) / window - daemon_cpu - bench_cpu)
    streams = [(e, c, d) for e, c, d, _ in probe_streams]
    streams += [(p.events, p.crc, p.dropped) for p in listeners]
    return _Run(streams, calls, login_s, window, count1 - count0, heard, reads1 - reads0,
                daemon_cpu, bench_cpu, other, replies, pending, delays)


# --------------------------------------------------------------------------- the run


def _raise_fd_limit(need: int) -> None:
    """Raise this process's open-file limit (inherited by the daemon) to fit ``need`` fds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < need:
            raise BenchError(f"{need} open files needed, the hard limit is {hard}; "
                             "raise it (ulimit -Hn) or use fewer --clients")


def bench_cti(clients: int = 500, *, seconds: float = 20.0, calls_per_s: float = 20.0,
              probes: int = 4, probe_rate: float = 40.0, outbound_queue: int = 1024,
              python_args: tuple[str, ...] = ()) -> CtiBenchResult:
    """Run the benchmark described in the module docstring and return its figures.

    ``clients`` subscribed connections (``probes`` of them, in a process of their own,
    also time ``PING`` and ``QUEUE.STATUS``, ``probe_rate`` requests a second between
    them), ``seconds`` of measured window after :data:`WARMUP_S` of load,
    ``calls_per_s`` calls offered a second. ``python_args`` go between the interpreter
    and ``-m switchd`` (e.g. ``("-m", "cProfile", "-o", "cti.prof")`` to profile the
    daemon).

    Raises ValueError for clients < 1, probes outside 0..clients, or a non-positive
    seconds, rate or probe_rate; BenchError when the daemon does not start, refuses a
    login or a connection fails.
    """
    from switchd.passwords import hash_secret

    if clients < 1 or not 0 <= probes <= clients:
        raise ValueError(f"need clients >= 1 and 0 <= probes <= clients, got {clients} "
                         f"and {probes}")
    if seconds <= 0 or calls_per_s <= 0 or probe_rate <= 0:
        raise ValueError("seconds, calls per second and probe rate must be > 0")
    _raise_fd_limit(2 * clients + 256)
    tmp = Path(tempfile.mkdtemp(prefix="switchd-bench-cti-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        doc, lines = cti_bench_config(calls_per_s, listen_hash=hash_secret(LISTEN_SECRET),
                                      drive_hash=hash_secret(DRIVE_SECRET),
                                      outbound_queue=outbound_queue)
        cfg_path = tmp / "config.yaml"
        cfg_path.write_text(yaml.safe_dump(doc, sort_keys=False))
        log_path, err_path = tmp / "daemon.log", tmp / "daemon.err"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH")) if p)
        cmd = [sys.executable, *python_args, "-m", "switchd", "run", "-c", str(cfg_path),
               "--state-dir", str(tmp / "state"), "--cti-listen", "127.0.0.1:0",
               "--log-format", "json"]
        with log_path.open("wb") as out, err_path.open("wb") as err:
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    cwd=tmp, env=env)
        port = _wait_for_port(proc, log_path, err_path, None, _STARTUP_TIMEOUT_S)
        run = asyncio.run(_measure(port, proc.pid, clients, probes, seconds, calls_per_s,
                                   probe_rate))
        proc.send_signal(signal.SIGTERM)
        try:
            daemon_exit: int | None = proc.wait(timeout=_SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            daemon_exit = None
        overloaded = sum(1 for x in log_path.read_bytes().splitlines()
                         if b'"cti_client_overloaded"' in x)
        return _result(run, clients, probes, calls_per_s, lines, daemon_exit, overloaded)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def _result(run: _Run, clients: int, probes: int, rate: float, lines: int,
            daemon_exit: int | None, overloaded: int) -> CtiBenchResult:
    from switchd.passwords import DEFAULT_ITERATIONS

    kept = [(e, c) for e, c, dropped in run.streams if not dropped]
    most = max((e for e, _ in kept), default=0)
    # The reference stream: the most common checksum among the longest streams.
    ref_crc = Counter(c for e, c in kept if e == most).most_common(1)
    crc = ref_crc[0][0] if ref_crc else 0
    notes = []
    if run.bench_cpu > 0.9:
        notes.append("the clients' processes used a whole core: they may be the limit")
    if run.other_cpu > 0.25:
        notes.append(f"other processes used {run.other_cpu:.2f} of a core meanwhile: the "
                     "figures are of a shared machine")
    return CtiBenchResult(
        clients=clients, probes=probes, seconds=round(run.window_s, 3), calls_per_s=rate,
        lines=lines, calls_offered=run.calls.offered, calls_ok=len(run.calls.ok),
        calls_ended=len(run.calls.ok & run.calls.ended),
        call_errors=dict(sorted(run.calls.errors.items())),
        events_per_client=most, events_per_s=round(run.delivered / run.window_s, 1),
        events_per_read=round(run.heard / run.reads, 2) if run.reads else 0.0,
        lost=sum(most - e for e, _ in kept),
        mismatched=sum(1 for e, c in kept if e == most and c != crc),
        dropped=max(overloaded, sum(1 for *_, dropped in run.streams if dropped)),
        ping_ms=Latency.of(run.replies["PING"], run.pending.get("PING", 0)),
        queue_status_ms=Latency.of(run.replies["QUEUE.STATUS"],
                                   run.pending.get("QUEUE.STATUS", 0)),
        event_delay_ms=Latency.of([max(0.0, d) for d in run.delays]),
        daemon_cpu=round(run.daemon_cpu, 3), bench_cpu=round(run.bench_cpu, 3),
        other_cpu=round(run.other_cpu, 3), cores=os.cpu_count() or 1,
        daemon_us_per_event=(round(run.daemon_cpu * 1e6 * run.window_s / run.delivered, 2)
                             if run.delivered else 0.0),
        login_s=round(run.login_s, 3), daemon_exit=daemon_exit,
        auth_iterations=DEFAULT_ITERATIONS, notes=tuple(notes))


# --------------------------------------------------------------------------- CLI


def _table(r: CtiBenchResult) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"switchd bench cti: {r.clients} clients, {r.calls_per_s:g} calls/s",
                  show_header=False)
    table.add_column("figure", style="bold")
    table.add_column("value", justify="right")
    for key, value in r.as_dict().items():
        if key == "passed":
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
        elif isinstance(value, list):
            value = "; ".join(value) or "none"
        table.add_row(key, str(value))
    table.add_row("verdict", "[green]PASS[/green]" if r.passed else "[red]FAIL[/red]")
    Console().print(table)


def run_cti_bench(args: argparse.Namespace) -> int:
    """CLI entry of ``switchd bench cti``: 0 passed, 1 failed or could not run, 2 bad arguments."""
    return report("cti", lambda: bench_cti(
        args.clients, seconds=args.seconds, calls_per_s=args.calls_per_s,
        probes=min(args.probes, args.clients)), _table, json_out=bool(args.json))
