"""End-to-end: the real daemon as a subprocess, a real TCP socket, a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.daemon import (
    Client,
    admin,
    fields,
    make_config,
    running,
    start_daemon,
    stop_and_check_json,
)

ROOT = Path(__file__).resolve().parent.parent


async def test_simulated_call_to_auto_answering_extension_lands_in_cdr_and_events(tmp_path):
    with running(tmp_path) as d:
        c = await admin(d.port)
        assert c.greeting == "HELLO switchd/0.1.0 proto=1"
        await c.ok("SUB events=call.*")
        await c.ok("SIM.AGENT ext=201 mode=auto answer_after=0.2 talk=3600")
        ok = await c.ok("SIM.CALL caller=13800138000 dnis=8200")
        call = ok["call"]
        assert len(call) == 26 and ok["trunk"] == "1"
        await c.wait_event("call.answered", call=call, line="ext/201")
        await c.ok(f"SIM.HANGUP call={call}")
        ended = await c.wait_event("call.ended", call=call)
        assert ended["disposition"] == "ANSWERED" and ended["hangup_by"] == "caller"
        names = [e["event"] for e in c.events if e.get("call") == call]
        assert names == ["call.new", "call.ringing", "call.offered", "call.answered",
                         "call.bridged", "call.ended"]

        rows = await c.cmd("CDR.QUERY caller=13800138000")
        assert rows[-1] == "END count=1"
        cdr = fields(rows[0].replace("ITEM", "X", 1))
        assert cdr["uniqueid"] == call and cdr["disposition"] == "ANSWERED"
        assert cdr["dst"] == "8200" and cdr["extension"] == "201" and cdr["trunk"] == "1"
        assert cdr["direction"] == "inbound" and cdr["answer"]
        await c.close()
        code, logs = stop_and_check_json(d)
    assert code == 0
    assert all({"timestamp", "level", "event"} <= set(x) for x in logs)
    assert any(x["event"] == "call.ended" and x.get("call_id") == call for x in logs)
    with sqlite3.connect(d.db) as db:
        row = db.execute("SELECT src, dst, disposition, billsec, extension FROM cdr WHERE uniqueid=?",
                         (call,)).fetchone()
        contact = db.execute("SELECT last_agent, last_call_at FROM contacts WHERE number=?",
                             ("13800138000",)).fetchone()
    assert row[:3] == ("13800138000", "8200", "ANSWERED") and row[4] == 201
    assert contact is not None and contact[0] == "201" and contact[1]


async def test_sigterm_ends_live_calls_with_cdrs_and_exits_zero(tmp_path):
    with running(tmp_path) as d:
        c = await admin(d.port)
        for ext in range(201, 209):
            await c.ok(f"SIM.AGENT ext={ext} mode=auto answer_after=0 talk=3600")
        ids = [(await c.ok(f"SIM.CALL caller=1390000000{i} dnis=8000"))["call"] for i in range(3)]
        await c.ok("SIM.AGENT ext=208 mode=manual")
        ringing = (await c.ok("SIM.CALL caller=13900000009 dnis=8200"))["call"]
        await asyncio.sleep(0.2)
        t0 = time.monotonic()
        code, logs = stop_and_check_json(d)
        assert time.monotonic() - t0 < 5
        # A client still connected at shutdown is closed without a traceback.
        assert d.proc.stderr is not None and d.proc.stderr.read() == b""
    assert code == 0
    with sqlite3.connect(d.db) as db:
        got = dict(db.execute("SELECT uniqueid, disposition FROM cdr").fetchall())
    assert {i: "ANSWERED" for i in ids}.items() <= got.items()
    assert ringing in got
    assert any(x["event"] == "switchd_stopped" for x in logs)


async def test_each_error_code_is_reachable_and_the_connection_survives(tmp_path):
    cfg = make_config(**{"board.trunks": 2})
    cfg["routes"] = [r for r in cfg["routes"] if "trunk" not in r]
    with running(tmp_path, cfg) as d:
        c = await Client.connect(d.port)

        async def err(text: str) -> str:
            lines = await c.cmd(text)
            assert lines[-1].startswith("ERR"), lines
            return fields(lines[-1])["code"]

        assert await err("CALLS") == "not_authenticated"
        assert await err("AUTH user=admin secret=wrong") == "forbidden"
        await c.ok("AUTH user=admin secret=demo-admin")
        assert await err("AUTH user=admin secret=demo-admin") == "wrong_state"
        assert await err('PING "unterminated') == "bad_syntax"
        assert await err("FROBNICATE") == "unknown_verb"
        assert await err("SIM.CALL") == "missing_arg"
        assert await err("CDR.QUERY limit=lots") == "bad_arg"
        assert await err("SIM.HANGUP call=01ARZ3NDEKTSV4RRFFQ69G5FAV") == "not_found"
        await c.ok("SIM.AGENT ext=201 mode=manual")
        await c.ok("SIM.AGENT ext=202 mode=manual")
        await c.ok("SIM.CALL caller=100 dnis=8200")
        await c.ok("SIM.CALL caller=101 dnis=8200")
        assert await err("SIM.CALL caller=102") == "busy"
        assert await err("SIM.ANSWER ext=203") == "wrong_state"
        await c.send_raw(b"#big PING " + b"x" * 9000 + b"\n")
        big = await c.line()
        assert big.startswith("#big ERR code=line_too_long")
        assert (await c.ok("PING"))["pong"] == "true"

        agent = await Client.connect(d.port)
        await agent.ok("AUTH user=agent1 secret=demo")
        lines = await agent.cmd("SIM.CALL caller=1")
        assert fields(lines[-1])["code"] == "forbidden"
        await agent.close()
        await c.close()
        assert stop_and_check_json(d)[0] == 0


async def test_garbage_input_gets_errors_and_the_connection_keeps_working(tmp_path):
    with running(tmp_path) as d:
        c = await admin(d.port)
        for junk in (b"\xff\xfe\xfd bad utf8\n", b"PING \x00 nul\n", bytes(range(1, 9)) + b"\n",
                     b"\x80" * 100 + b"\n", b'CALLS key="a\\q"\n', b"=== \n"):
            await c.send_raw(junk)
            line = await c.line()
            assert line.startswith("ERR code=bad_syntax"), (junk, line)
        await c.send_raw(b"A" * 100_000 + b"\nPING\n")
        assert (await c.line()).startswith("ERR code=line_too_long")
        assert (await c.line()).startswith("OK pong=true")
        await c.ok("FORMAT json")
        await c.send_raw(b'{"verb": "PING", "tag": "j1"}\n{not json\n')
        first = json.loads(await c.line())
        assert first["type"] == "OK" and first["tag"] == "j1" and first["pong"] is True
        second = json.loads(await c.line())
        assert second["type"] == "ERR" and second["code"] == "bad_syntax"
        await c.close()
        assert stop_and_check_json(d)[0] == 0


async def test_client_that_stops_reading_is_dropped_with_overloaded_and_others_are_not_slowed(tmp_path):
    cfg = make_config(**{"cti.outbound_queue": 64})
    with running(tmp_path, cfg) as d:
        import socket as _s

        # A small receive buffer set before connecting keeps the kernel from absorbing
        # megabytes of replies, so the server's own queue is what fills.
        raw = _s.socket(_s.AF_INET, _s.SOCK_STREAM)
        raw.setsockopt(_s.SOL_SOCKET, _s.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", d.port))
        slow_r, slow_w = await asyncio.open_connection(sock=raw, limit=1 << 16)
        fast = await admin(d.port)
        # The slow client pipelines a flood of requests and then stops reading; the
        # others keep being served while its replies wait for room and then give up.
        slow_w.write(b"PING\n" * 200_000)
        t_end = time.monotonic() + 3.5
        while time.monotonic() < t_end:
            t0 = time.monotonic()
            assert (await fast.ok("PING"))["pong"] == "true"
            assert time.monotonic() - t0 < 1.0
            await asyncio.sleep(0.1)
        data = b""
        try:
            while chunk := await asyncio.wait_for(slow_r.read(1 << 20), 10):
                data += chunk
        except (ConnectionError, TimeoutError):
            pass
        assert b"ERR code=overloaded" in data
        assert (await fast.ok("PING"))["pong"] == "true"
        slow_w.close()
        await fast.close()
        code, logs = stop_and_check_json(d)
    assert code == 0
    assert any(x["event"] == "cti_client_overloaded" for x in logs)


async def test_blacklisted_caller_hears_busy_and_gets_a_blocked_cdr(tmp_path):
    with running(tmp_path) as d:
        c = await admin(d.port)
        await c.ok("SUB events=call.*")
        got = await c.ok("CONTACT.SET number=13666666666 blacklisted=true name=Spammer")
        assert got["blacklisted"] == "true"
        call = (await c.ok("SIM.CALL caller=13666666666 dnis=8000"))["call"]
        ended = await c.wait_event("call.ended", call=call, timeout=15)
        assert ended["disposition"] == "BUSY"
        assert not [e for e in c.events if e["event"] == "call.ringing" and e["call"] == call]
        rows = await c.cmd("CDR.QUERY caller=13666666666")
        cdr = fields(rows[0].replace("ITEM", "X", 1))
        assert cdr["blocked_reason"] == "blacklist" and cdr["disposition"] == "BUSY"
        contact = await c.ok("CONTACT.GET number=13666666666")
        assert contact["name"] == "Spammer" and contact["last_call_at"]
        await c.close()
        assert stop_and_check_json(d)[0] == 0


async def test_reload_keeps_live_calls_and_rejects_a_broken_config(tmp_path):
    with running(tmp_path) as d:
        c = await admin(d.port)
        await c.ok("SIM.AGENT ext=201 mode=auto answer_after=0 talk=3600")
        await c.ok("SUB events=call.*")
        call = (await c.ok("SIM.CALL caller=555 dnis=8200"))["call"]
        await c.wait_event("call.answered", call=call)

        good = d.config_path.read_text()
        d.config_path.write_text(good + "\nbogus_key: 1\n")
        lines = await c.cmd("RELOAD")
        err = fields(lines[-1])
        assert err["code"] == "bad_arg" and "config.yaml:" in err["msg"] and "bogus_key" in err["msg"]

        cfg = yaml.safe_load(good)
        cfg["routes"].insert(0, {"dnis": "8200", "to": "busy"})
        d.config_path.write_text(yaml.safe_dump(cfg))
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while not any('"config_reloaded"' in x for x in d.log_lines()):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        calls = await c.cmd("CALLS")
        assert calls[-1] == "END count=1" and call in calls[0]
        second = (await c.ok("SIM.CALL caller=556 dnis=8200"))["call"]
        ended = await c.wait_event("call.ended", call=second, timeout=15)
        assert ended["disposition"] == "BUSY"
        assert (await c.cmd("CALLS"))[-1] == "END count=1"
        await c.close()
        code, logs = stop_and_check_json(d)
    assert code == 0
    assert any(x["event"] == "config_rejected" for x in logs)


async def test_agent_sees_only_its_own_calls(tmp_path):
    with running(tmp_path) as d:
        a = await admin(d.port)
        for ext in (201, 202):
            await a.ok(f"SIM.AGENT ext={ext} mode=auto answer_after=0 talk=3600")
        agent = await Client.connect(d.port)
        await agent.ok("AUTH user=agent2 secret=demo")
        await agent.ok("SUB")
        mine = (await a.ok("SIM.DIAL ext=201 number=202"))["call"]
        other = (await a.ok("SIM.CALL caller=777 dnis=8200"))["call"]
        await agent.wait_event("call.answered", call=mine)
        calls = await agent.cmd("CALLS")
        assert calls[-1] == "END count=1" and mine in calls[0] and other not in calls[0]
        assert all(e.get("call") in (mine, None) for e in agent.events)
        await a.close()
        await agent.close()
        assert stop_and_check_json(d)[0] == 0


def test_demo_secrets_are_refused_on_a_non_loopback_address(tmp_path):
    d = start_daemon(tmp_path, listen="0.0.0.0:0", wait=False)
    code = d.proc.wait(30)
    err = d.proc.stderr.read().decode() if d.proc.stderr else ""
    assert code == 1
    assert "demo secrets" in err and "0.0.0.0" in err


def test_run_refuses_an_invalid_config_with_file_line_messages(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("board:\n  trunkz: 8\ncti:\n  listen: 127.0.0.1:70000\n")
    run = subprocess.run([sys.executable, "-m", "switchd", "run", "-c", str(bad)],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 1
    assert f"{bad}:2:3:" in run.stderr and "trunks" in run.stderr
    check = subprocess.run([sys.executable, "-m", "switchd", "check", "-c", str(bad)],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 1
    lines = check.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{bad}:2:3:") and lines[1].startswith(f"{bad}:4:")
    ok = subprocess.run([sys.executable, "-m", "switchd", "check", "-c", str(ROOT / "config.yaml")],
                        capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0 and len(ok.stdout.strip().splitlines()) == 1


@pytest.mark.parametrize("fmt", ["json"])
def test_passwd_prints_a_hash_that_verifies(fmt):
    from switchd.passwords import verify_secret

    out = subprocess.run([sys.executable, "-m", "switchd", "passwd", "--stdin"], input="s3cret\n",
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    assert verify_secret("s3cret", out.stdout.strip())


async def test_systemd_notify_ready_reloading_watchdog_stopping(tmp_path):
    import socket

    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"}
    with running(tmp_path / "d", env=env) as d:

        def until(word: str) -> list[str]:
            seen: list[str] = []
            while not any(x == word for x in seen):
                seen.extend(sock.recv(4096).decode().splitlines())
            return seen

        assert "READY=1" in until("READY=1")
        assert "WATCHDOG=1" in until("WATCHDOG=1")
        d.proc.send_signal(signal.SIGHUP)
        reload = until("RELOADING=1")
        assert any(x.startswith("MONOTONIC_USEC=") for x in reload + until("READY=1"))
        d.proc.send_signal(signal.SIGTERM)
        until("STOPPING=1")
        assert d.proc.wait(10) == 0
    sock.close()


def test_ctrl_c_stops_cleanly(tmp_path):
    with running(tmp_path) as d:
        assert d.stop(signal.SIGINT) == 0
    assert any('"switchd_stopped"' in x for x in d.log_lines())


async def test_sim_dtmf_is_sent_as_audio_and_detected_from_it(tmp_path):
    # The caller sends a 1 kHz test tone; like a phone, it is muted while keys are sent.
    cfg = make_config(**{"sim.audio.callers": "tone", "sim.audio.agents": "tone"})
    with running(tmp_path, cfg) as d:
        c = await admin(d.port)
        await c.ok("SUB events=call.*")
        await c.ok("SIM.AGENT ext=201 mode=auto answer_after=0 talk=3600")
        call = (await c.ok("SIM.CALL caller=13800000001 dnis=8200"))["call"]
        await c.wait_event("call.answered", call=call)
        ok = await c.ok(f"SIM.DTMF call={call} digits=12")
        assert ok["line"] == "trunk/1"
        await c.ok(f"SIM.DTMF call={call} digits=3#")  # queued behind the first keys
        # The reply comes before any digit: digits exist only once heard in the audio.
        assert not [e for e in c.events if e["event"] == "call.dtmf"]
        deadline = time.monotonic() + 5
        while len([e for e in c.events if e["event"] == "call.dtmf"]) < 4:
            assert time.monotonic() < deadline, c.events
            c.events.append(Client.parse_event(await c.line(5)))
        digits = [e for e in c.events if e["event"] == "call.dtmf"]
        assert "".join(e["digit"] for e in digits) == "123#"
        assert all(e["call"] == call and e["line"] == "trunk/1" for e in digits)
        times = [e["time"] for e in digits]
        assert times == sorted(times) and len(set(times)) == 4
        await c.close()
        assert stop_and_check_json(d)[0] == 0


async def test_ringall_pickup_by_bots_raises_no_line_errors(tmp_path):
    with running(tmp_path) as d:
        c = await admin(d.port)
        await c.ok("SUB events=call.*,line.error")
        for ext in (201, 202, 203, 204):
            await c.ok(f"SIM.AGENT ext={ext} mode=auto answer_after=0.3 talk=0.3")
        call = (await c.ok("SIM.CALL caller=101 dnis=8000"))["call"]
        await c.wait_event("call.ended", call=call)
        await c.ok("PING")
        assert not [e for e in c.events if e["event"] == "line.error"], c.events
        await c.close()
        assert stop_and_check_json(d)[0] == 0


def test_passwd_without_a_terminal_says_to_use_stdin():
    out = subprocess.run([sys.executable, "-m", "switchd", "passwd"], input="",
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "--stdin" in out.stderr and "Traceback" not in out.stderr


async def test_reload_refuses_demo_secrets_while_listening_beyond_loopback(tmp_path):
    from switchd.passwords import hash_secret

    cfg = make_config()
    real = hash_secret("not-the-demo", iterations=1000)
    for user in cfg["users"]:
        user["secret"] = real
    with running(tmp_path, cfg, listen="0.0.0.0:0") as d:
        demo = make_config()
        d.config_path.write_text(yaml.safe_dump(demo))
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not any('"config_rejected"' in x for x in d.log_lines()):
            assert time.monotonic() < deadline, d.log_lines()[-5:]
            await asyncio.sleep(0.05)
        c = await Client.connect(d.port)
        await c.ok("AUTH user=admin secret=not-the-demo")
        await c.close()
        other = await Client.connect(d.port)
        lines = await other.cmd("AUTH user=admin secret=demo-admin")
        assert fields(lines[-1])["code"] == "forbidden"  # the old secrets are still in force
        await other.close()
        assert stop_and_check_json(d)[0] == 0
    assert not any('"config_reloaded"' in x for x in d.log_lines())
