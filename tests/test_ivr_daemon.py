"""The IVR on the real daemon: in-band keys, CRM look-ups, reloads, keys while bridged.

A flow written for the test (always open, so the result never depends on the hour)
plays the shipped prompts; callers press keys with ``SIM.DTMF``, which the simulated
board sends as real two-tone audio that the media plane must detect.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import yaml

from tests.daemon import ROOT, Client, fields, make_config, running

FLOW = """\
timezone: Asia/Shanghai
language: zh
start: menu
nodes:
  menu:
    type: menu
    prompts: [zh/menu]
    choices: {"1": sales, "3": account}
    timeout_s: 8
    retries: 1
    fallback: bye
  account:
    type: collect
    prompts: [zh/enter_account]
    into: account
    min_digits: 8
    max_digits: 12
    next: lookup
    fallback: bye
  lookup:
    type: route_request
    timeout_s: 10
    choices: [done]
    sets: [balance]
    fallback: sorry
  done:
    type: say
    say: amount
    value: "{balance}"
    next: bye
  sorry:
    type: play
    prompts: [zh/crm_unavailable]
    next: bye
  sales:
    type: transfer
    to: extension:201
    on_fail: bye
  bye:
    type: hangup
"""


def _setup(tmp: Path, flow: str = FLOW) -> dict[str, Any]:
    flows = tmp / "flows"
    flows.mkdir(parents=True, exist_ok=True)
    (flows / "desk.yaml").write_text(flow, encoding="utf-8")
    # The shipped demo flow stays routed (DNIS 8000) beside the test's.
    (flows / "main.yaml").write_text((ROOT / "flows" / "main.yaml").read_text("utf-8"), "utf-8")
    cfg = make_config(flows=True)
    cfg["ivr"]["flows_dir"] = str(flows)
    cfg["routes"].insert(0, {"dnis": "8100", "to": "flow:desk"})
    return cfg


async def _admin(port: int) -> Client:
    c = await Client.connect(port)
    await c.ok("AUTH user=admin secret=demo-admin")
    await c.ok("SUB events=call.*,ivr.*")
    return c


async def _cdr(c: Client, call: str) -> dict[str, str]:
    for _ in range(50):
        rows = await c.cmd("CDR.QUERY caller=13700000001 limit=50")
        for row in rows[:-1]:
            f = fields(row.replace("ITEM", "X", 1))
            if f["uniqueid"] == call:
                return f
        await asyncio.sleep(0.1)
    raise AssertionError(f"no CDR for {call}")


async def test_in_band_keys_walk_the_flow_and_the_crm_reply_reaches_the_cdr(tmp_path):
    with running(tmp_path, _setup(tmp_path)) as d:
        c = await _admin(d.port)
        call = (await c.ok("SIM.CALL caller=13700000001 dnis=8100"))["call"]
        await c.wait_event("call.routed", call=call, target="flow:desk")
        await c.wait_event("ivr.enter", call=call, node="menu")
        await c.ok(f"SIM.DTMF call={call} digits=3")
        left = await c.wait_event("ivr.leave", call=call, node="menu")
        assert left["next"] == "account" and left["digits"] == "3"
        await c.wait_event("ivr.enter", call=call, node="account")
        await c.ok(f"SIM.DTMF call={call} digits=12345678#")
        req = await c.wait_event("ivr.route_request", call=call, timeout=10)
        assert json.loads(req["vars"])["account"] == "12345678"
        # A key is one event: eleven presses in all, each detected once.
        assert [e["digit"] for e in c.events
                if e["event"] == "call.dtmf" and e["call"] == call] == list("312345678#")
        ok = await c.ok(f"ROUTE.REPLY call={call} next=done balance=12.50")
        assert ok["next"] == "done"
        exit_ = await c.wait_event("ivr.exit", call=call, timeout=15)
        assert exit_["outcome"] == "hangup" and exit_["node"] == "bye"
        ended = await c.wait_event("call.ended", call=call)
        assert ended["hangup_by"] == "system" and ended["hangup_cause"] == "NORMAL_CLEARING"
        cdr = await _cdr(c, call)
        assert cdr["ivr_path"] == "desk:menu>account>lookup>done>bye"
        assert json.loads(cdr["ivr_vars"]) == {"account": "12345678", "balance": "12.50"}
        await c.close()
        d.stop()
    with sqlite3.connect(d.db) as db:
        row = db.execute("SELECT ivr_path, ivr_vars FROM cdr WHERE uniqueid=?", (call,)).fetchone()
    assert row[0] == "desk:menu>account>lookup>done>bye" and "12345678" in row[1]


async def test_route_reply_errors_name_the_problem_and_the_call_takes_its_fallback(tmp_path):
    cfg = _setup(tmp_path)
    cfg["cti"]["max_line_bytes"] = 65536  # so a 10 000-character value reaches the flow
    with running(tmp_path, cfg) as d:
        c = await _admin(d.port)
        call = (await c.ok("SIM.CALL caller=13700000001 dnis=8100"))["call"]
        await c.wait_event("ivr.enter", call=call, node="menu")
        err = (await c.cmd(f"ROUTE.REPLY call={call} next=done"))[-1]
        assert err.startswith("ERR code=wrong_state"), err
        err = (await c.cmd("ROUTE.REPLY call=01NOSUCHCALL0000000000000 next=done"))[-1]
        assert err.startswith("ERR code=not_found"), err
        await c.ok(f"SIM.DTMF call={call} digits=3")
        await c.wait_event("ivr.enter", call=call, node="account")
        await c.ok(f"SIM.DTMF call={call} digits=12345678#")
        await c.wait_event("ivr.route_request", call=call, timeout=10)
        huge = "9" * 10_000
        err = (await c.cmd(f"ROUTE.REPLY call={call} next=done balance={huge}"))[-1]
        assert err.startswith("ERR code=bad_arg") and "balance" in err and "sorry" in err, err[:300]
        await c.wait_event("ivr.enter", call=call, node="sorry")
        await c.wait_event("ivr.exit", call=call, timeout=15)
        # The switch is still fine: a new call gets the menu.
        second = (await c.ok("SIM.CALL caller=13700000002 dnis=8100"))["call"]
        await c.wait_event("ivr.enter", call=second, node="menu")
        await c.close()
        assert d.stop() == 0


async def test_a_reload_mid_call_keeps_that_calls_version_and_new_calls_take_the_new_one(tmp_path):
    cfg = _setup(tmp_path)
    with running(tmp_path, cfg) as d:
        c = await _admin(d.port)
        await c.ok("SIM.AGENT ext=201 mode=auto answer_after=0.2 talk=3600")
        first = (await c.ok("SIM.CALL caller=13700000001 dnis=8100"))["call"]
        enter = await c.wait_event("ivr.enter", call=first, node="menu")
        old = enter["version"]
        # Version 2: key 1 now ends the call instead of ringing sales.
        (tmp_path / "flows" / "desk.yaml").write_text(
            FLOW.replace('"1": sales', '"1": bye, "2": sales'), encoding="utf-8")
        await c.ok("RELOAD")
        await c.ok(f"SIM.DTMF call={first} digits=1")
        left = await c.wait_event("ivr.leave", call=first, node="menu")
        assert left["next"] == "sales" and left["version"] == old
        await c.wait_event("call.answered", call=first, line="ext/201", timeout=10)
        exit_ = await c.wait_event("ivr.exit", call=first)
        assert exit_["outcome"] == "transferred" and exit_["version"] == old

        second = (await c.ok("SIM.CALL caller=13700000002 dnis=8100"))["call"]
        enter2 = await c.wait_event("ivr.enter", call=second, node="menu")
        assert enter2["version"] != old
        await c.ok(f"SIM.DTMF call={second} digits=1")
        left2 = await c.wait_event("ivr.leave", call=second, node="menu")
        assert left2["next"] == "bye" and left2["version"] == enter2["version"]

        # A broken file is refused with its position; the version in force stays.
        (tmp_path / "flows" / "desk.yaml").write_text(
            FLOW.replace("fallback: bye\n  account", "fallback: byee\n  account"), encoding="utf-8")
        err = (await c.cmd("RELOAD"))[-1]
        assert err.startswith("ERR code=bad_arg") and "desk.yaml:11:15" in err, err
        assert "did you mean 'bye'" in err
        third = (await c.ok("SIM.CALL caller=13700000003 dnis=8100"))["call"]
        enter3 = await c.wait_event("ivr.enter", call=third, node="menu")
        assert enter3["version"] == enter2["version"]
        await c.close()
        assert d.stop() == 0


async def test_a_key_held_three_seconds_while_bridged_reaches_the_agent_once(tmp_path):
    with running(tmp_path, _setup(tmp_path)) as d:
        c = await _admin(d.port)
        await c.ok("SIM.AGENT ext=201 mode=auto answer_after=0.2 talk=3600")
        agent = await Client.connect(d.port)
        await agent.ok("AUTH user=agent1 secret=demo")
        await agent.ok("SUB events=call.*")
        call = (await c.ok("SIM.CALL caller=13700000001 dnis=8100"))["call"]
        await c.wait_event("ivr.enter", call=call, node="menu")
        await c.ok(f"SIM.DTMF call={call} digits=1")
        await agent.wait_event("call.answered", call=call, line="ext/201", timeout=10)
        await c.ok(f"SIM.DTMF call={call} digits=5 hold_ms=3000")
        got = await agent.wait_event("call.dtmf", call=call, timeout=10)
        assert got["digit"] == "5" and got["line"] == "trunk/1"
        await asyncio.sleep(3.5)  # the key is still held: no second event may come
        await agent.ok("PING")
        assert [e["digit"] for e in agent.events if e["event"] == "call.dtmf"] == ["5"]
        await agent.close()
        await c.close()
        assert d.stop() == 0


def test_run_and_check_refuse_a_config_whose_flow_is_broken(tmp_path):
    import subprocess
    import sys

    cfg = _setup(tmp_path, FLOW.replace("type: menu", "type: menuu"))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    flow = tmp_path / "flows" / "desk.yaml"
    done = subprocess.run([sys.executable, "-m", "switchd", "check", "-c", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stdout.startswith(f"{flow}:6:11: ") and "did you mean 'menu'" in done.stdout
    run = subprocess.run([sys.executable, "-m", "switchd", "run", "-c", str(path), "--state-dir",
                          str(tmp_path / "state"), "--cti-listen", "127.0.0.1:0"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert f"{flow}:6:11: " in run.stderr and "not starting" in run.stderr
    assert ROOT.is_dir()


async def test_the_service_number_runs_the_shipped_flow_with_in_band_keys(tmp_path):
    """DNIS 8000 through flows/main.yaml as shipped: whatever the hour in Shanghai, the
    caller's key (real DTMF audio) takes it where the flow says for that hour: the
    support queue (the menu's 2 in office hours, the urgent line after hours)."""
    import time as _time

    from switchd.ivr.loader import load_flow
    from switchd.ivr.model import Schedule
    from switchd.ivr.schedule import evaluate

    main = load_flow(ROOT / "flows" / "main.yaml", ROOT / "prompts")
    hours = main.nodes["hours"]
    assert isinstance(hours, Schedule)
    with running(tmp_path, make_config(flows=True)) as d:
        c = await _admin(d.port)
        await c.ok("SIM.AGENT ext=205 mode=auto answer_after=0.2 talk=3600")
        await c.ok("SIM.AGENT ext=201 mode=auto answer_after=0.2 talk=3600")
        state, _ = evaluate(hours, main.holidays, main.timezone, _time.time() + 6)
        call = (await c.ok("SIM.CALL caller=13700000009 dnis=8000"))["call"]
        await c.wait_event("call.routed", call=call, target="flow:main")
        left = await c.wait_event("ivr.leave", call=call, node="hours", timeout=15)
        if left["next"] == "vip_check":  # office hours: the main menu, 2 for support
            await c.wait_event("ivr.enter", call=call, node="main_menu")
            await c.ok(f"SIM.DTMF call={call} digits=2")
            expect = ("main_menu", "support")
        elif left["next"] == "after_hours":  # the urgent line queues for support
            await c.wait_event("ivr.enter", call=call, node="after_hours")
            await c.ok(f"SIM.DTMF call={call} digits=1")
            await c.wait_event("ivr.enter", call=call, node="urgent")
            await c.ok(f"SIM.DTMF call={call} digits=1")
            expect = ("urgent", "on_call")
        else:
            assert left["next"] == "holiday" and state == "holiday"
            await c.wait_event("ivr.exit", call=call, timeout=30)
            expect = None
        if expect is not None:
            assert left["next"] == ("vip_check" if state == "open" else "after_hours")
            node, nxt = expect
            chose = await c.wait_event("ivr.leave", call=call, node=node, timeout=15)
            assert chose["next"] == nxt
            exit_ = await c.wait_event("ivr.exit", call=call, timeout=15)
            assert (exit_["outcome"], exit_["node"], exit_["flow"]) == ("queued", nxt, "main")
            # The queue node handed the caller to the ACD's support queue.
            await c.wait_event("call.routed", call=call, target="queue:support")
        await c.close()
        assert d.stop() == 0


def test_check_refuses_a_transfer_to_an_extension_or_group_the_config_does_not_have(tmp_path):
    import subprocess
    import sys

    flow = FLOW.replace("to: extension:201", "to: extension:299").replace(
        '"3": account}', '"3": account, "4": team}').replace(
        "  bye:\n", "  team:\n    type: transfer\n    to: group:salse\n  bye:\n")
    cfg = _setup(tmp_path, flow)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    done = subprocess.run([sys.executable, "-m", "switchd", "check", "-c", str(path)],
                          capture_output=True, text=True, timeout=60)
    desk = tmp_path / "flows" / "desk.yaml"
    assert done.returncode == 1, done.stdout
    lines = done.stdout.splitlines()
    assert any(x.startswith(f"{desk}:") and "nodes.sales.to: no extension 299 on the board"
               in x and "201-208" in x for x in lines), lines
    assert any("nodes.team.to: no ring group 'salse'" in x and "did you mean 'group:sales'" in x
               for x in lines), lines


async def test_reloads_with_new_prompts_do_not_pile_up_in_the_prompt_cache(tmp_path):
    """Each reload points the flow at newly recorded prompts; the old ones are let go, so
    the tenth reload is accepted in a cache that holds about four generations."""
    import shutil

    prompts = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", prompts)
    names = ("menu", "enter_account", "crm_unavailable")
    for v in range(1, 11):
        (prompts / f"v{v}").mkdir()
        for name in names:
            shutil.copy(prompts / "zh" / f"{name}.wav", prompts / f"v{v}" / f"{name}.wav")

    def version(v: int) -> str:
        text = FLOW
        for name in names:
            text = text.replace(f"zh/{name}", f"v{v}/{name}")
        return text

    cfg = _setup(tmp_path, version(1))
    cfg["media"]["prompts_dir"] = str(prompts)
    cfg["media"]["moh_dir"] = str(prompts / "moh")
    cfg["media"]["prompt_cache_mb"] = 3
    with running(tmp_path, cfg) as d:
        c = await _admin(d.port)
        for v in range(2, 11):
            (tmp_path / "flows" / "desk.yaml").write_text(version(v), encoding="utf-8")
            ok = await c.ok("RELOAD")
            assert ok["config"], v
        call = (await c.ok("SIM.CALL caller=13700000001 dnis=8100"))["call"]
        enter = await c.wait_event("ivr.enter", call=call, node="menu")
        assert enter["prompt"] == "v10/menu"
        await c.close()
        assert d.stop() == 0


def test_check_refuses_flow_prompts_that_would_not_fit_the_prompt_cache_as_run_does(tmp_path):
    import subprocess
    import sys

    cfg = _setup(tmp_path)
    cfg["media"]["prompt_cache_mb"] = 1
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    done = subprocess.run([sys.executable, "-m", "switchd", "check", "-c", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "does not fit in the prompt cache" in done.stdout
    assert "raise media.prompt_cache_mb" in done.stdout
