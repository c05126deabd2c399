"""The SIP board in the real daemon over real UDP: a phone registers and calls the IVR, a
carrier's call rings a registered agent phone and audio flows both ways (read back from
the samples each side received), RFC 4733 keys reach the IVR once, the CDR is written,
and strangers get nowhere."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import numpy as np
import pytest

from switchd.drivers.sip.digest import ha1_line
from tests.daemon import Daemon, make_config, running
from tests.sip_ua import Ua, power_at, tone

PASSWORD = "s3cret"
CARRIER_HOST = "127.0.0.2"


def _sip_config(**extra: object) -> dict:
    rtp = 30000 + 64 * random.randrange(400)
    cfg = make_config(flows=True, **{
        "board.driver": "sip", "board.trunks": 2, "sip.listen": "127.0.0.1:0",
        "sip.rtp_port": rtp,
        "sip.extensions": {n: {"password": ha1_line(str(n), "switchd", PASSWORD)}
                           for n in (201, 202)},
        # The carrier's calls come from 127.0.0.2 (CARRIER_HOST), the phones' from 127.0.0.1.
        "sip.trunks": {"carrier": {"host": CARRIER_HOST, "allow": [CARRIER_HOST], "channels": 2,
                                   "dids": {"4930123": "8200"}, "keepalive_s": 0}},
        **extra})
    # Two carrier channels are the board's trunks: the shipped night-line route (trunk 8) goes.
    cfg["routes"] = [r for r in cfg["routes"] if "trunk" not in r]
    return cfg


@contextmanager
def _daemon(tmp: Path, cfg: dict) -> Iterator[tuple[Daemon, tuple[str, int]]]:
    with running(tmp, cfg) as d:
        port = 0
        deadline = time.monotonic() + 10
        while not port and time.monotonic() < deadline:
            for line in d.log_lines():
                if '"sip_listening"' in line:
                    port = json.loads(line)["port"]
            time.sleep(0.02)
        assert port, "the daemon did not log sip_listening"
        yield d, ("127.0.0.1", port)


def _to_202() -> dict:
    """The SIP config with DNIS 8200 (the carrier's DID 4930123) ringing extension 202."""
    cfg = _sip_config()
    cfg["routes"].insert(0, {"dnis": "8200", "to": "extension:202"})
    return cfg


@asynccontextmanager
async def _agent_and_caller(sw: tuple[str, int], *, agent_voice: np.ndarray | None = None,
                            caller_voice: np.ndarray | None = None
                            ) -> AsyncIterator[tuple[Ua, Ua]]:
    """Extension 202's phone, registered, and a carrier's caller on CARRIER_HOST."""
    agent = await Ua("202", sw, PASSWORD, voice=agent_voice).start()
    caller = await Ua("13900000000", sw, voice=caller_voice, host=CARRIER_HOST).start()
    try:
        assert (await agent.register()).status == 200
        yield agent, caller
    finally:
        agent.close()
        caller.close()


def _cdrs(d: Daemon) -> list[sqlite3.Row]:
    con = sqlite3.connect(d.db)
    con.row_factory = sqlite3.Row
    try:
        return con.execute("SELECT * FROM cdr ORDER BY start").fetchall()
    finally:
        con.close()


async def _wait_cdr(d: Daemon, n: int = 1, timeout: float = 10.0) -> list[sqlite3.Row]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            rows = _cdrs(d)
        except sqlite3.OperationalError:
            rows = []
        if len(rows) >= n:
            return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"no CDR within {timeout} s")


def test_a_phone_registers_calls_the_ivr_hears_the_prompt_and_its_keys_arrive_once(tmp_path: Path) -> None:
    async def run(sw: tuple[str, int], d: Daemon) -> None:
        phone = await Ua("201", sw, PASSWORD).start()
        try:
            assert (await phone.register()).status == 200
            resp, call = await phone.dial("8000")
            assert resp.status == 200
            await asyncio.sleep(1.5)
            prompt = phone.heard()
            assert len(prompt) > 8000 and float(abs(prompt.astype(float)).mean()) > 300
            phone.press("9")
            await asyncio.sleep(1.0)
            assert (await phone.hang_up(call)).status == 200
            [cdr] = await _wait_cdr(d)
            # The phone's own call (not a carrier's): extension 201 placed it.
            assert cdr["src"] == "201" and cdr["dst"] == "8000" and cdr["extension"] == 201
            assert cdr["trunk"] is None
        finally:
            phone.close()

    with _daemon(tmp_path, _sip_config()) as (d, sw):
        asyncio.run(run(sw, d))
        digits = [json.loads(ln) for ln in d.log_lines() if '"call.dtmf"' in ln]
        assert [x["digit"] for x in digits] == ["9"]


def test_a_carriers_call_rings_a_registered_phone_and_both_hear_each_other(tmp_path: Path) -> None:
    async def run(sw: tuple[str, int], d: Daemon) -> None:
        async with _agent_and_caller(sw, agent_voice=tone(600, 1.0),
                                     caller_voice=tone(1000, 1.0)) as (agent, caller):
            resp, call = await caller.dial("4930123")
            assert resp.status == 200      # DID 4930123 → DNIS 8200 → extension 202
            ringing = await asyncio.wait_for(agent.incoming.get(), 5)
            await asyncio.wait_for(ringing.established.wait(), 5)
            await asyncio.sleep(1.5)
            heard_by_agent, heard_by_caller = agent.heard(), caller.heard()
            assert power_at(heard_by_agent[-6000:], 1000) > 0.8
            assert power_at(heard_by_caller[-6000:], 600) > 0.8
            assert (await agent.hang_up(ringing)).status == 200
            await asyncio.wait_for(call.ended.wait(), 5)     # the switch BYEs the caller
            [cdr] = await _wait_cdr(d)
            assert cdr["disposition"] == "ANSWERED" and cdr["src"] == "13900000000"
            # What each side's RTP receiver saw is in the CDR: both lines, nothing lost.
            media = dict(part.split(" ", 1) for part in cdr["media"].split("; "))
            assert set(media) == {"trunk/1", "ext/202"}
            for figures in media.values():
                f = dict(kv.split("=") for kv in figures.split())
                assert int(f["rx"]) > 50 and int(f["lost"]) == 0 and float(f["jitter_ms"]) < 20

    with _daemon(tmp_path, _to_202()) as (d, sw):
        asyncio.run(run(sw, d))


def test_a_stranger_cannot_call_out_and_a_register_flood_is_rate_limited(tmp_path: Path) -> None:
    async def run(sw: tuple[str, int], d: Daemon) -> None:
        phone = await Ua("201", sw, PASSWORD).start()
        scanner = await Ua("100", sw, "guess").start()
        try:
            assert (await phone.register()).status == 200
            # A stranger dialling an outside number (the outside prefix 9 and a
            # premium-rate number): challenged, its guess refused, no call made.
            resp, _ = await scanner.dial("90900123456")
            assert resp.status == 401
            assert _cdrs(d) == [] and not any('"call.new"' in ln for ln in d.log_lines())
            for _ in range(12):
                try:
                    r = await scanner.register(timeout=1.0)
                except TimeoutError:
                    break               # blocked: no answer at all
                assert r.status == 401
            # The scanner is blocked; the phone registered from its own address is not.
            with pytest.raises(TimeoutError):
                await scanner.register(timeout=1.0)
            assert (await phone.register()).status == 200
        finally:
            phone.close()
            scanner.close()

    cfg = _sip_config(**{"sip.auth_fail_limit": 5})
    with _daemon(tmp_path, cfg) as (d, sw):
        asyncio.run(run(sw, d))
        fails = [json.loads(ln) for ln in d.log_lines() if '"sip.auth_failed"' in ln]
        assert fails and fails[-1]["reason"] == "rate_limited"


def test_a_phone_registers_and_is_answered_over_tcp(tmp_path: Path) -> None:
    from switchd.drivers.sip.message import StreamFramer, parse
    from tests.sip_phone import Phone

    async def run(sw: tuple[str, int]) -> None:
        reader, writer = await asyncio.open_connection(*sw)
        framer = StreamFramer()
        here = writer.get_extra_info("sockname")[:2]
        phone = Phone("201", password=PASSWORD, addr=here)

        async def exchange(data: bytes):
            writer.write(data.replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
            while True:
                for m in framer.feed(await asyncio.wait_for(reader.read(65536), 5)):
                    msg = parse(m, stream=True)
                    if msg.status >= 200:
                        return msg

        import tests.sip_phone as sp
        sp.SWITCH = f"{sw[0]}:{sw[1]}"
        challenge = await exchange(phone.register().to_bytes())
        assert challenge.status == 401
        ok = await exchange(phone.register(challenge=challenge).to_bytes())
        assert ok.status == 200 and "expires=" in ok.get("Contact")
        writer.write(b"\r\n\r\n")              # a keep-alive is ignored
        writer.write(b"GARBAGE WITHOUT A LENGTH\r\n\r\n")   # the stream cannot be framed
        assert await asyncio.wait_for(reader.read(65536), 5) == b""     # the switch hangs up
        writer.close()

    with _daemon(tmp_path, _sip_config()) as (d, sw):
        asyncio.run(run(sw))
        assert any('"sip.registration"' in ln and '"ext/201"' in ln for ln in d.log_lines())


def test_lines_calls_and_sip_regs_show_registrations_and_media(tmp_path: Path) -> None:
    from tests.daemon import admin, fields

    async def run(sw: tuple[str, int], port: int) -> None:
        c = await admin(port)
        async with _agent_and_caller(sw, caller_voice=tone(1000, 1.0)) as (phone, caller):
            regs = [fields(x) for x in (await c.cmd("SIP.REGS"))[:-1]]
            assert [(r["kind"], r.get("line"), r.get("trunk")) for r in regs] == [
                ("phone", "ext/202", None), ("trunk", None, "carrier")]
            assert regs[0]["transport"] == "UDP" and 0 < int(regs[0]["expires_s"]) <= 300
            resp, call = await caller.dial("4930123")
            await asyncio.sleep(1.0)
            lines = {f["line"]: f for f in (fields(x) for x in (await c.cmd("LINES"))[:-1])}
            assert lines["ext/202"]["registered"] == "1" and lines["ext/201"]["registered"] == "0"
            assert "rx=" in lines["trunk/1"]["media"] and "rx=" in lines["ext/202"]["media"]
            [live] = [fields(x) for x in (await c.cmd("CALLS"))[:-1]]
            assert "trunk/1 rx=" in live["media"] and "ext/202 rx=" in live["media"]
            await caller.hang_up(call)

    with _daemon(tmp_path, _to_202()) as (d, sw):
        asyncio.run(run(sw, d.port))


def test_call_dtmf_reaches_a_sip_peer_as_rfc_4733_events_once_per_key(tmp_path: Path) -> None:
    from tests.daemon import Client

    async def run(sw: tuple[str, int], port: int) -> None:
        agent = await Client.connect(port)
        await agent.ok("AUTH user=agent2 secret=demo")       # the agent at extension 202
        async with _agent_and_caller(sw) as (_, caller):
            resp, call = await caller.dial("4930123")
            assert resp.status == 200
            await asyncio.sleep(0.5)
            await agent.ok("CALL.DTMF digits=1#")
            await asyncio.sleep(1.5)
            assert caller.keys == ["1", "#"]
            # Sent as events in place of audio: no in-band tones reached the caller.
            from switchd.lines.dtmf import detect_digits
            assert detect_digits(caller.heard()) == ""
            await caller.hang_up(call)

    with _daemon(tmp_path, _to_202()) as (d, sw):
        asyncio.run(run(sw, d.port))


def test_a_queue_call_skips_an_agent_whose_phone_is_unregistered_and_a_sip_agent_takes_it(
        tmp_path: Path) -> None:
    from tests.daemon import admin, fields

    agents = [{"id": "a1", "extension": 201, "queues": {"q": 0}, "login": True},
              {"id": "a2", "extension": 202, "queues": {"q": 0}, "login": True}]
    q = {"strategy": "linear", "ring_timeout_s": 10, "wrapup_s": 0, "music": True}
    cfg = make_config(queues={"q": q}, agents=agents, queue_routes={"6000": "q"}, **{
        "board.driver": "sip", "board.trunks": 2, "sip.listen": "127.0.0.1:0",
        "sip.rtp_port": 30000 + 64 * random.randrange(400),
        "sip.extensions": {n: {"password": ha1_line(str(n), "switchd", PASSWORD)}
                           for n in (201, 202)},
        "sip.trunks": {"carrier": {"host": CARRIER_HOST, "allow": [CARRIER_HOST], "channels": 2,
                                   "dids": {"4930600": "6000"}, "keepalive_s": 0}}})
    cfg["routes"] = [r for r in cfg["routes"] if "trunk" not in r]

    async def run(sw: tuple[str, int], port: int, d: Daemon) -> None:
        c = await admin(port)
        agent = await Ua("202", sw, PASSWORD, voice=tone(600, 1.0)).start()
        caller = await Ua("139", sw, voice=tone(1000, 1.0), host=CARRIER_HOST).start()
        try:
            assert (await agent.register()).status == 200
            t0 = time.monotonic()
            resp, call = await caller.dial("4930600")
            assert resp.status == 200                    # the queue answers the caller
            ringing = await asyncio.wait_for(agent.incoming.get(), 10)
            # a1 (first in line) has no phone registered: declined at once, not after the
            # queue's 10 s ring time.
            assert time.monotonic() - t0 < 3
            await asyncio.wait_for(ringing.established.wait(), 5)
            await asyncio.sleep(1.2)
            assert power_at(caller.heard()[-6000:], 600) > 0.8
            assert power_at(agent.heard()[-6000:], 1000) > 0.8
            states = {f["agent"]: f["state"] for f in
                      (fields(x) for x in (await c.cmd("AGENT.LIST"))[:-1])}
            assert states["a2"] == "on_call"
            await caller.hang_up(call)
            [cdr] = await _wait_cdr(d)
            assert cdr["agent"] == "a2" and cdr["queue"] == "q" and cdr["disposition"] == "ANSWERED"
        finally:
            agent.close()
            caller.close()

    with _daemon(tmp_path, cfg) as (d, sw):
        asyncio.run(run(sw, d.port, d))
