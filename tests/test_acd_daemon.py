"""The ACD on the real daemon: queues, bot agents, the queue_log file, QUEUE.*, CDRs.

Calls come in with ``SIM.CALL`` to a DNIS routed ``to: queue:q``; the simulated board's
bots are the agents (auto answer after 0.2 s, then they talk for an hour, so each
stays busy and the next caller goes to the next agent). Everything is checked where a
user would look: the ``queue.*``/``agent.state`` events on the CTI socket,
``QUEUE.STATUS``/``QUEUE.LIST``, ``CDR.QUERY``, the ``queue_log`` file and the
database. The tests wait for events, never for time.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import yaml

from switchd.app import queue_prompt_files
from switchd.config import load_config
from tests.daemon import ROOT, Client, fields, make_config, running

QUEUE_DNIS = "6000"


def _config(**queue: Any) -> dict[str, Any]:
    """Queue ``q`` (linear, no music or prompts to wait for) with agents a1, a2, a3 at
    extensions 202, 201, 203: configured order is not extension order, so an answer
    order that follows the extensions would show."""
    agents = [{"id": f"a{i}", "extension": ext, "queues": {"q": 0}, "login": True}
              for i, ext in ((1, 202), (2, 201), (3, 203))]
    q = {"strategy": "linear", "ring_timeout_s": 10, "wrapup_s": 0, "music": True, **queue}
    return make_config(queues={"q": q}, agents=agents, queue_routes={QUEUE_DNIS: "q"},
                       **{"sim.bots.mode": "auto", "sim.bots.answer_after_s": 0.2,
                          "sim.bots.talk_s": [3600, 3600], "sim.caller_talk_s": [3600, 3600]})


async def _admin(port: int, events: str = "queue.*,agent.state,call.ended") -> Client:
    c = await Client.connect(port)
    await c.ok("AUTH user=admin secret=demo-admin")
    await c.ok(f"SUB events={events}")
    return c


def _items(lines: list[str]) -> list[dict[str, str]]:
    assert lines[-1].startswith("END"), lines
    return [fields(x.replace("ITEM", "X", 1)) for x in lines[:-1]]


async def _cdr(c: Client, caller: str) -> dict[str, str]:
    rows = _items(await c.cmd(f"CDR.QUERY caller={caller} limit=5"))
    assert len(rows) == 1, rows
    return rows[0]


async def test_bots_answer_in_configured_order_and_a_hang_up_in_queue_is_an_abandon_everywhere(
        tmp_path: Path) -> None:
    with running(tmp_path, _config()) as d:
        c = await _admin(d.port)
        answered = []
        for i in range(3):
            call = (await c.ok(f"SIM.CALL caller=1390000000{i} dnis={QUEUE_DNIS}"))["call"]
            join = await c.wait_event("queue.join", call=call)
            assert join["queue"] == "q" and join["position"] == "1"
            conn = await c.wait_event("queue.connected", call=call, timeout=10)
            answered.append((conn["agent"], conn["line"]))
        # Linear: the first free agent in the configured order, whatever its extension.
        assert answered == [("a1", "ext/202"), ("a2", "ext/201"), ("a3", "ext/203")]
        offered = [e["agent"] for e in c.events if e["event"] == "queue.offered"]
        assert offered == ["a1", "a2", "a3"]  # each rung once: nobody busy was rung
        states = [(e["agent"], e["state"]) for e in c.events if e["event"] == "agent.state"]
        assert states == [("a1", "reserved"), ("a1", "on_call"), ("a2", "reserved"),
                          ("a2", "on_call"), ("a3", "reserved"), ("a3", "on_call")]

        # Every agent is on a call: the fourth caller waits, and QUEUE.STATUS shows it.
        lost = (await c.ok(f"SIM.CALL caller=13900000009 dnis={QUEUE_DNIS}"))["call"]
        join = await c.wait_event("queue.join", call=lost)
        status = _items(await c.cmd("QUEUE.STATUS queue=q"))
        head, callers = status[0], [x for x in status if x["kind"] == "caller"]
        assert head["kind"] == "queue" and head["waiting"] == "1" and head["on_call"] == "3"
        assert [(x["call"], x["caller"], x["position"], x["priority"]) for x in callers] == [
            (lost, "13900000009", "1", "0")]
        assert "ringing" not in callers[0]  # no busy agent is rung
        assert callers[0]["state"] == "waiting"
        agents = [x for x in status if x["kind"] == "agent"]
        assert [(x["agent"], x["state"], x["line"]) for x in agents] \
            == [("a1", "on_call", "ext/202"), ("a2", "on_call", "ext/201"),
                ("a3", "on_call", "ext/203")]
        # Each agent's own figures: one offer, answered; everyone busy since answering.
        assert all((x["offered"], x["answered"], x["missed"]) == ("1", "1", "0")
                   for x in agents)
        assert 0 < float(head["occupancy"]) <= 1

        await c.ok(f"SIM.HANGUP call={lost}")
        abandon = await c.wait_event("queue.abandon", call=lost)
        leave = await c.wait_event("queue.leave", call=lost)
        ended = await c.wait_event("call.ended", call=lost)
        assert abandon["position"] == "1" and abandon["orig_position"] == "1"
        assert leave["reason"] == "abandon" and "agent" not in leave
        assert ended["disposition"] == "NO ANSWER"
        wait = float(abandon["wait_s"])

        # QUEUE.STATUS: exact counts; the abandon is not an answer and not a timeout.
        head = _items(await c.cmd("QUEUE.STATUS queue=q"))[0]
        assert (head["offered"], head["joined"], head["answered"], head["abandoned"],
                head["timed_out"], head["waiting"]) == ("4", "4", "3", "1", "0", "0")
        # Exact sums over every caller who left (answered and abandoned alike).
        waits = [float(e["wait_s"]) for e in c.events if e["event"] == "queue.leave"]
        assert len(waits) == 4 and float(head["left"]) == 4
        assert abs(float(head["wait_sum_all"]) - sum(waits)) < 0.005
        assert abs(float(head["wait_max"]) - max(waits)) < 0.002
        listing = _items(await c.cmd("QUEUE.LIST"))
        assert [(x["waiting"], x["logged_in"], x["on_call"], x["abandoned"])
                for x in listing if x["queue"] == "q"] == [("0", "3", "3", "1")]

        # The CDR agrees: never ANSWERED, the queue set, no agent, the queue wait.
        cdr = await _cdr(c, "13900000009")
        assert cdr["uniqueid"] == lost and cdr["disposition"] == "NO ANSWER"
        assert cdr["queue"] == "q" and "agent" not in cdr
        assert abs(float(cdr["wait_s"]) - wait) < 0.05
        # queue.log entries feed the file only: never sent, not even to queue.*.
        assert {e["event"] for e in c.events} == {
            "queue.join", "queue.offered", "queue.connected", "queue.abandon", "queue.leave",
            "agent.state", "call.ended"}
        await c.close()
        assert d.stop() == 0

    # The calls still talking ended at shutdown; each CDR names the agent who answered.
    with sqlite3.connect(d.db) as db:
        rows = dict(db.execute("SELECT src, agent FROM cdr WHERE queue = 'q'").fetchall())
    assert rows == {"13900000000": "a1", "13900000001": "a2", "13900000002": "a3",
                    "13900000009": None}
    # queue_log: Asterisk's lines, in order, written and fsynced by the shutdown.
    log = (d.state_dir / "queue_log").read_text().splitlines()
    assert re.fullmatch(r"\d+\|NONE\|NONE\|NONE\|QUEUESTART\|", log[0])
    body = [x.split("|", 1)[1] for x in log]  # without the epoch
    assert body[1:4] == ["NONE|q|a1|ADDMEMBER", "NONE|q|a2|ADDMEMBER", "NONE|q|a3|ADDMEMBER"]
    assert f"{lost}|q|NONE|ENTERQUEUE||13900000009" in body
    assert f"{lost}|q|NONE|ABANDON|1|1|{int(wait + 0.5)}" in body
    connects = [x.split("|")[2] for x in body if x.split("|")[3] == "CONNECT"]
    assert connects == ["a1", "a2", "a3"]
    assert not any("|" + lost + "|" in x and "CONNECT" in x for x in body)


async def test_queue_verbs_roles_errors_and_events_for_an_agent(tmp_path: Path) -> None:
    with running(tmp_path, _config()) as d:
        c = await _admin(d.port)
        err = (await c.cmd("QUEUE.STATUS queue=sale"))[-1]
        assert err.startswith("ERR code=not_found") and "no queue 'sale'" in err, err
        assert "q" in err.split("queues: ")[1].rstrip('"').split(", "), err
        err = (await c.cmd("QUEUE.STATUS queue=q period=week"))[-1]
        assert err.startswith("ERR code=bad_arg") and "interval" in err, err
        # Before a 15-minute interval (on the clock) has completed there is nothing to
        # show, and the error says so; once one has, its figures and span.
        reply = await c.cmd("QUEUE.STATUS queue=q period=previous")
        if reply[-1].startswith("ERR"):
            assert reply[-1].startswith("ERR code=not_found") and "period=interval" in reply[-1]
        else:
            prev = _items(reply)[0]
            assert prev["period"] == "previous" and "since" in prev and "until" in prev
        err = (await c.cmd("QUEUE.STATUS"))[-1]
        assert err.startswith("ERR code=missing_arg"), err
        head = _items(await c.cmd("QUEUE.STATUS queue=q period=interval"))[0]
        assert head["period"] == "interval" and "since" in head and head["offered"] == "0"
        assert "sl1" not in head  # no call yet: the ratio is null, left out

        # An agent sees the queues, not their callers, and its own agent events only.
        agent = await Client.connect(d.port)
        await agent.ok("AUTH user=agent2 secret=demo")  # extension 202: agent a1
        await agent.ok("SUB events=agent.state,queue.*")
        listing = {x["queue"]: x for x in _items(await agent.cmd("QUEUE.LIST"))}
        assert listing["q"]["ready"] == "3" and listing["q"]["logged_in"] == "3"
        err = (await agent.cmd("QUEUE.STATUS queue=q"))[-1]
        assert err.startswith("ERR code=forbidden"), err

        call = (await c.ok(f"SIM.CALL caller=13900000001 dnis={QUEUE_DNIS}"))["call"]
        await agent.wait_event("agent.state", agent="a1", state="on_call", timeout=10)
        conn = await agent.wait_event("queue.connected", call=call)
        assert conn["agent"] == "a1" and conn["line"] == "ext/202"
        await c.wait_event("queue.leave", call=call, reason="answered")
        head = _items(await c.cmd("QUEUE.STATUS queue=q"))[0]
        assert head["answered"] == "1" and float(head["sl1"]) == 1.0

        second = (await c.ok(f"SIM.CALL caller=13900000002 dnis={QUEUE_DNIS}"))["call"]
        await c.wait_event("queue.connected", call=second, agent="a2", timeout=10)
        await agent.ok("PING")  # everything before the reply has arrived
        assert {e.get("agent") for e in agent.events if e["event"] == "agent.state"} == {"a1"}
        assert not any(e.get("call") == second for e in agent.events)
        await agent.close()

        # RELOAD adds a queue (and its route) while calls talk: the next call joins it.
        cfg = _config()
        cfg["queues"]["q2"] = {"music": False}
        cfg["routes"].insert(0, {"dnis": "6001", "to": "queue:q2"})
        d.config_path.write_text(yaml.safe_dump(cfg))
        await c.ok("RELOAD")
        third = (await c.ok("SIM.CALL caller=13900000003 dnis=6001"))["call"]
        join = await c.wait_event("queue.join", call=third)
        assert join["queue"] == "q2"
        status = _items(await c.cmd("QUEUE.STATUS queue=q2"))
        assert status[0]["waiting"] == "1" and status[1]["call"] == third
        head = _items(await c.cmd("QUEUE.STATUS queue=q"))[0]
        assert head["answered"] == "2" and head["on_call"] == "2"  # q's figures kept
        await c.close()
        assert d.stop() == 0


async def test_a_returning_caller_reaches_the_agent_of_their_last_call_after_a_restart(
        tmp_path: Path) -> None:
    """Sticky routing reads the contacts' last agent at start (the database), so it
    survives a restart: linear would give a1, the caller's last agent a2 gets it."""
    cfg = _config(sticky_wait_s=10)
    with running(tmp_path, cfg) as d:
        c = await _admin(d.port)
        first = (await c.ok(f"SIM.CALL caller=13900000001 dnis={QUEUE_DNIS}"))["call"]
        await c.wait_event("queue.connected", call=first, agent="a1", timeout=10)
        back = (await c.ok(f"SIM.CALL caller=13900000002 dnis={QUEUE_DNIS}"))["call"]
        await c.wait_event("queue.connected", call=back, agent="a2", timeout=10)
        await c.close()
        assert d.stop() == 0
    with running(tmp_path, cfg) as d:
        c = await _admin(d.port)
        again = (await c.ok(f"SIM.CALL caller=13900000002 dnis={QUEUE_DNIS}"))["call"]
        offered = await c.wait_event("queue.offered", call=again)
        assert offered["agent"] == "a2"
        await c.wait_event("queue.connected", call=again, agent="a2", timeout=10)
        await c.close()
        assert d.stop() == 0


def test_the_shipped_queues_prompts_are_all_preloaded() -> None:
    """What the queues play comes from the prompt cache (no file read on the loop): the
    files the daemon preloads are every one the shipped queues name."""
    acd = load_config(ROOT / "config.yaml").acd
    files = queue_prompt_files(acd)
    sales, support = acd.queues["sales"], acd.queues["support"]
    named = [*sales.greeting, *sales.periodic, *support.greeting]
    named += [p for parts in (*sales.position_files, *sales.wait_files) for p in parts]
    assert sales.callback is not None
    named += [*sales.callback.confirm, *sales.callback.done]
    assert set(named) == set(files) and len(files) == len(set(files))
    assert all(p.is_file() for p in files)
