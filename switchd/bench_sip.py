"""``switchd bench sip``: N concurrent G.711 calls through the real SIP/RTP path over loopback.

The bench starts the daemon (``switchd run``) on the shipped config with
``board.driver: sip``, one carrier trunk at 127.0.0.1 with N channels and a route of
DNIS 7000 to a flow that plays a prompt over and over (so the switch sends RTP on
every call, as an IVR does). Its own load client, in this process, is the carrier: it
places N calls (INVITE with SDP, ACK) at ``--rate`` a second, then sends a 20 ms PCMU
frame per call every 20 ms (one UDP socket; the switch's lines are told apart by their
RTP port) for ``--seconds``, receiving the switch's RTP meanwhile, and hangs them all
up (BYE).

Figures: ``setup_per_s`` (calls established per second while placing them) and the
INVITE→200 time (``setup_ms``); ``rtf``: the daemon's CPU seconds per second of the
media window (all its work on one core: the 20 ms tick for every line, RTP in and out,
the jitter buffers, G.711), so 0.5 means half a core; ``frames_skipped``: media
frames the daemon could not run in time (``media_frames_skipped``: its tick fell
behind); at the client, per call, packets lost (by sequence number) and the RTP
interarrival jitter (RFC 3550), and the switch's own receive figures from each call's
CDR ``media`` column (lost, late). ``passed``: rtf ≤ 0.5, no frame skipped, nothing
lost either way, every call established and ended with a CDR.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from switchd.bench import _cpu_s
from switchd.bench_cti import Latency

__all__ = ["SipBenchResult", "add_sip_bench_parser", "bench_sip"]

_ROOT = Path(__file__).resolve().parents[1]
DNIS = "7000"
RTF_GOAL = 0.5
_FRAME_S = 0.02
_BENCH_FLOW = """\
# switchd bench sip: the switch talks on every call, as an IVR does: a menu that
# plays its prompt, waits a moment for a key nobody presses, and starts over.
timezone: Asia/Shanghai
start: talk
nodes:
  talk:
    type: menu
    prompt: zh/welcome
    choices: {"1": talk}
    timeout_s: 0.1
    retries: 20
    fallback: talk
"""


@dataclass(frozen=True, slots=True)
class SipBenchResult:
    """The figures of one run (module docstring); times in s unless named ms."""

    calls: int
    established: int
    setup_per_s: float
    setup_ms: Latency
    seconds: float
    rtf: float
    frames_skipped: int
    client_rx_packets: int
    client_lost: int
    client_jitter_ms_p50: float
    client_jitter_ms_max: float
    switch_rx_packets: int
    switch_lost: int
    switch_late: int
    switch_jitter_ms_max: float
    cdrs: int
    daemon_exit: int | None
    passed: bool
    notes: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


class BenchError(Exception):
    """The bench could not run (the daemon did not start, ports were taken)."""


def _config(calls: int, flows_dir: Path, rtp_port: int) -> dict[str, Any]:
    cfg: dict[str, Any] = yaml.safe_load((_ROOT / "config.yaml").read_text())
    cfg["board"]["driver"] = "sip"
    cfg["board"].pop("trunks", None)
    cfg["board"]["extensions"] = 8
    sip = cfg["sip"]
    sip["listen"] = "127.0.0.1:0"
    sip["rtp_port"] = rtp_port
    # The load client sends from any port of 127.0.0.1 (no phones here to tell apart).
    sip["trunks"] = {"load": {"host": "127.0.0.1", "allow": ["127.0.0.1"], "channels": calls,
                              "keepalive_s": 0}}
    cfg["routes"] = [{"dnis": DNIS, "to": "flow:bench"}]
    cfg["sim"]["traffic"]["enabled"] = False
    cfg["ivr"]["flows_dir"] = str(flows_dir)
    cfg["media"]["prompts_dir"] = str(_ROOT / "prompts")
    cfg["media"]["moh_dir"] = str(_ROOT / "prompts" / "moh")
    cfg["recording"]["mode"] = "off"
    cfg["log"] = {"format": "json", "level": "info"}
    return cfg


def _free_rtp_base(ports: int) -> int:
    """A port p with p..p+ports-1 free for UDP just now (the daemon binds them next)."""
    for base in range(30000, 60000 - ports, 2 * ports + 2):
        socks = []
        try:
            for p in range(base, base + ports):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise BenchError(f"no {ports} free UDP ports in a row between 30000 and 60000")


class _Client(asyncio.DatagramProtocol):
    """The carrier: SIP on one socket (this protocol), RTP on another (:class:`_Rtp`)."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[bytes]] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        call_id = _header(data, b"Call-ID")
        status = data[8:11] if data.startswith(b"SIP/2.0 ") else b""
        if data.startswith(b"BYE ") and self.transport is not None:
            self.transport.sendto(_ok_for(data), addr)
            return
        fut = self.waiting.get(call_id)
        if fut is not None and not fut.done() and status[:1] in (b"2", b"3", b"4", b"5", b"6"):
            fut.set_result(data)


class _Rtp(asyncio.DatagramProtocol):
    """Every call's RTP from the switch, told apart by the switch line's source port."""

    def __init__(self) -> None:
        self.stats: dict[int, list[float]] = {}   # port -> [count, base_seq, max_seq, jitter, transit]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) < 12:
            return
        _, _, seq, ts = struct.unpack_from("!BBHI", data)
        now = time.perf_counter()
        st = self.stats.get(addr[1])
        transit = now * 8000.0 - ts
        if st is None:
            self.stats[addr[1]] = [1, seq, seq, 0.0, transit]
            return
        st[0] += 1
        delta = (seq - int(st[2])) & 0xFFFF
        if delta < 0x8000:
            st[2] += delta
        d = abs(transit - st[4])
        st[3] += (d - st[3]) / 16.0
        st[4] = transit


def _header(data: bytes, name: bytes) -> str:
    for line in data.split(b"\r\n"):
        if line[:len(name) + 1].lower() == name.lower() + b":":
            return line[len(name) + 1:].strip().decode()
    return ""


def _ok_for(req: bytes) -> bytes:
    head = req.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    keep = [ln for ln in head[1:] if ln.split(b":", 1)[0].strip().lower()
            in (b"via", b"from", b"to", b"call-id", b"cseq")]
    return b"\r\n".join([b"SIP/2.0 200 OK", *keep, b"Content-Length: 0", b"", b""])


async def _run(calls: int, rate: float, seconds: float, sip: tuple[str, int],
               pid: int) -> tuple[list[float], int, float, float, _Rtp, dict[str, Any]]:
    loop = asyncio.get_running_loop()
    client = _Client()
    sig, _ = await loop.create_datagram_endpoint(lambda: client, local_addr=("127.0.0.1", 0))
    client.transport = sig
    rtp_proto = _Rtp()
    rtp, _ = await loop.create_datagram_endpoint(lambda: rtp_proto,
                                                 local_addr=("127.0.0.1", 0))
    for s in (sig, rtp):
        sock = s.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    my_sip = sig.get_extra_info("sockname")[1]
    my_rtp = rtp.get_extra_info("sockname")[1]
    sdp = (f"v=0\r\no=load 1 1 IN IP4 127.0.0.1\r\ns=load\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           f"m=audio {my_rtp} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
           f"a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=sendrecv\r\n").encode()
    up: dict[str, tuple[int, bytes, bytes]] = {}    # call-id -> (switch rtp port, to, contact)
    setup: list[float] = []

    async def place(i: int) -> None:
        cid = f"load{i}-{os.getpid()}"
        fut: asyncio.Future[bytes] = loop.create_future()
        client.waiting[cid] = fut
        head = (f"INVITE sip:{DNIS}@{sip[0]}:{sip[1]} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{my_sip};branch=z9hG4bKload{i};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:1390000{i:04d}@127.0.0.1>;tag=l{i}\r\n"
                f"To: <sip:{DNIS}@{sip[0]}>\r\nCall-ID: {cid}\r\nCSeq: 1 INVITE\r\n"
                f"Contact: <sip:load@127.0.0.1:{my_sip}>\r\nContent-Type: application/sdp\r\n"
                f"Content-Length: {len(sdp)}\r\n\r\n").encode() + sdp
        t0 = time.perf_counter()
        sig.sendto(head, sip)
        try:
            resp = await asyncio.wait_for(fut, 30)
        except TimeoutError:
            return
        if not resp.startswith(b"SIP/2.0 200"):
            return
        setup.append(time.perf_counter() - t0)
        body = resp.split(b"\r\n\r\n", 1)[1]
        port = int(body.split(b"m=audio ", 1)[1].split(b" ", 1)[0])
        to = _header(resp, b"To").encode()
        contact = _header(resp, b"Contact").strip("<>").encode()
        sig.sendto(b"ACK " + contact + b" SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;"
                   b"branch=z9hG4bKack%d;rport\r\nMax-Forwards: 70\r\nFrom: <sip:1390000%04d@"
                   b"127.0.0.1>;tag=l%d\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 1 ACK\r\n"
                   b"Content-Length: 0\r\n\r\n" % (my_sip, i, i, i, to, cid.encode()), sip)
        up[cid] = (port, to, contact)

    t_place = time.perf_counter()
    tasks = []
    for i in range(calls):
        tasks.append(asyncio.ensure_future(place(i)))
        await asyncio.sleep(1.0 / rate)
    await asyncio.gather(*tasks)
    place_s = time.perf_counter() - t_place
    # Media: one PCMU frame (a soft 1 kHz tone) per call every 20 ms.
    t = np.arange(160) / 8000.0
    from switchd.lines.g711 import ulaw_encode
    payload = ulaw_encode((3000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)).tobytes()
    ports = [p for p, _, _ in up.values()]
    cpu0 = _cpu_s(pid)
    t0 = time.perf_counter()
    n = 0
    while True:
        target = t0 + n * _FRAME_S
        now = time.perf_counter()
        if now - t0 >= seconds:
            break
        if target > now:
            await asyncio.sleep(target - now)
        hdr = struct.pack("!BBHII", 0x80, 0, n & 0xFFFF, (n * 160) & 0xFFFFFFFF, 0)
        for k, p in enumerate(ports):
            rtp.sendto(hdr[:8] + struct.pack("!I", k + 1) + payload, ("127.0.0.1", p))
        n += 1
    window = time.perf_counter() - t0
    cpu = _cpu_s(pid) - cpu0
    for i, (cid, (_, to, contact)) in enumerate(up.items()):
        sig.sendto(b"BYE " + contact + b" SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;"
                   b"branch=z9hG4bKbye%d;rport\r\nMax-Forwards: 70\r\nFrom: <sip:load@127.0.0.1>"
                   b";tag=l%s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 2 BYE\r\nContent-Length: 0"
                   b"\r\n\r\n" % (my_sip, i, cid.split("-")[0][4:].encode(), to, cid.encode()),
                   sip)
        if i % 50 == 49:
            await asyncio.sleep(0.01)
    await asyncio.sleep(1.0)
    sig.close()
    rtp.close()
    return setup, len(up), place_s, cpu / window if window else 0.0, rtp_proto, {"window": window}


def bench_sip(calls: int, *, rate: float = 100.0, seconds: float = 10.0) -> SipBenchResult:
    """Run the bench (module docstring). Raises ValueError for nonsense arguments and
    BenchError when the daemon does not start."""
    if calls < 1 or rate <= 0 or seconds <= 0:
        raise ValueError("need --calls >= 1, --rate > 0 and --seconds > 0")
    tmp = Path(tempfile.mkdtemp(prefix="switchd-bench-sip-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        flows = tmp / "flows"
        flows.mkdir()
        (flows / "bench.yaml").write_text(_BENCH_FLOW)
        lines = calls + 8
        cfg = _config(calls, flows, _free_rtp_base(2 * lines))
        (tmp / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        log_path = tmp / "daemon.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH")) if p)
        with log_path.open("wb") as out, (tmp / "daemon.err").open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "switchd", "run", "-c", str(tmp / "config.yaml"),
                 "--state-dir", str(tmp / "state"), "--cti-listen", "127.0.0.1:0",
                 "--log-format", "json"], stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                cwd=tmp, env=env)
        port = 0
        deadline = time.monotonic() + 60
        while not port:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError("the daemon did not start: "
                                 + (tmp / "daemon.err").read_text()[-2000:])
            for line in log_path.read_text().splitlines():
                if '"sip_listening"' in line:
                    port = json.loads(line)["port"]
            time.sleep(0.05)
        time.sleep(0.5)
        setup, established, place_s, rtf, rx, extra = asyncio.run(
            _run(calls, rate, seconds, ("127.0.0.1", port), proc.pid))
        proc.send_signal(signal.SIGTERM)
        try:
            daemon_exit: int | None = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon_exit = None
        log = log_path.read_text().splitlines()
        skipped = sum(json.loads(x).get("frames", 0) for x in log
                      if '"media_frames_skipped"' in x)
        con = sqlite3.connect(tmp / "state" / "switchd.db")
        media = [r[0] for r in con.execute("SELECT media FROM cdr") if r[0]]
        cdrs = con.execute("SELECT count(*) FROM cdr").fetchone()[0]
        con.close()
        s_rx = s_lost = s_late = 0
        s_jit = 0.0
        for text in media:
            for part in text.split("; "):
                figures = dict(kv.split("=") for kv in part.split(" ", 1)[1].split())
                s_rx += int(figures["rx"])
                s_lost += int(figures["lost"])
                s_late += int(figures["late"])
                s_jit = max(s_jit, float(figures["jitter_ms"]))
        stats = list(rx.stats.values())
        c_rx = int(sum(s[0] for s in stats))
        c_lost = int(sum(max(0, s[2] - s[1] + 1 - s[0]) for s in stats))
        jit = sorted(s[3] / 8.0 for s in stats) or [0.0]
        notes = []
        if os.cpu_count() == 1:
            notes.append("one core: the load client and the daemon shared it")
        passed = (established == calls and rtf <= RTF_GOAL and skipped == 0 and c_lost == 0
                  and s_lost == 0 and cdrs >= calls)
        return SipBenchResult(
            calls=calls, established=established,
            setup_per_s=round(established / place_s, 1) if place_s else 0.0,
            setup_ms=Latency.of(setup), seconds=round(extra["window"], 2), rtf=round(rtf, 3),
            frames_skipped=skipped, client_rx_packets=c_rx, client_lost=c_lost,
            client_jitter_ms_p50=round(jit[len(jit) // 2], 2),
            client_jitter_ms_max=round(jit[-1], 2), switch_rx_packets=s_rx,
            switch_lost=s_lost, switch_late=s_late, switch_jitter_ms_max=s_jit, cdrs=cdrs,
            daemon_exit=daemon_exit, passed=passed, notes=tuple(notes))
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def run_sip_bench(args: argparse.Namespace) -> int:
    """The CLI: print the figures (a table, or one JSON object); exit 0 when passed."""
    try:
        r = bench_sip(args.calls, rate=args.rate, seconds=args.seconds)
    except (ValueError, BenchError) as e:
        print(f"switchd bench sip: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(r.as_dict()))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"switchd bench sip: {r.calls} calls", show_header=False)
        table.add_column("figure", style="bold")
        table.add_column("value", justify="right")
        for k, v in r.as_dict().items():
            table.add_row(k, str(v))
        Console().print(table)
    return 0 if r.passed else 1


def add_sip_bench_parser(bsub: Any) -> argparse.ArgumentParser:
    """``switchd bench sip``."""
    p = bsub.add_parser("sip", help="N concurrent G.711 calls through the SIP/RTP path "
                        "over loopback")
    p.add_argument("--calls", type=int, default=100, help="concurrent calls (default 100)")
    p.add_argument("--rate", type=float, default=100.0,
                   help="calls placed per second (default 100)")
    p.add_argument("--seconds", type=float, default=10.0,
                   help="seconds of media once every call is up (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_sip_bench)
    return p
