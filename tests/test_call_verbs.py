"""The softphone's toolbar end to end over real sockets: transfer, consult, complete, cancel,
conference, click-to-dial and keys — and after each branch the agents' states, the one
CDR and the closed recording together."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any

import numpy as np

from switchd.lines.dtmf import detect_digits
from tests.daemon import Client, admin, fields, make_config, running

QUEUE_DNIS = "6000"


def _cfg(**over: Any) -> dict[str, Any]:
    """Queue q with agent a1 (ext 201), queue q2 with a2 (ext 202), nobody logged in; phones that
    act only when told; the far end of outside calls answers at once; agents' phones
    send the 1 kHz test tone and callers silence, so who hears an agent shows in a
    recording."""
    return make_config(
        queues={"q": {"strategy": "linear", "wrapup_s": 0, "ring_timeout_s": 20},
                "q2": {"strategy": "linear", "wrapup_s": 0, "ring_timeout_s": 20}},
        agents=[{"id": "a1", "extension": 201, "queues": {"q": 0}},
                {"id": "a2", "extension": 202, "queues": {"q2": 0}}],
        queue_routes={QUEUE_DNIS: "q"},
        **{"sim.bots.mode": "manual", "sim.outside.answer_after_s": 0.2,
           "sim.outside.talk_s": [600, 600], "sim.audio.agents": "tone",
           "sim.audio.callers": "silence", "recording.mode": "on_answer", **over})


async def _admin(port: int) -> Client:
    """The admin, subscribed to every event (the test's view of the switch)."""
    c = await admin(port)
    await c.ok("SUB")
    return c


async def _agent(port: int, n: int) -> Client:
    c = await Client.connect(port)
    await c.ok(f"AUTH user=agent{n} secret=demo")
    await c.ok("SUB")
    return c


async def _queue_call(admin: Client, agent: Client, caller: str) -> str:
    """A caller in queue q offered to and answered by agent1 (ext 201) over the socket."""
    call = (await admin.ok(f"SIM.CALL caller={caller} dnis={QUEUE_DNIS}"))["call"]
    await agent.wait_event("call.ringing", call=call, line="ext/201")
    # The screen pop reaches the agent's softphone before it answers.
    pop = await agent.wait_event("call.offered", call=call, line="ext/201")
    assert (pop["caller"], pop["queue"], pop["agent"], pop["dnis"]) == (
        caller, "q", "a1", QUEUE_DNIS)
    await agent.ok("CALL.ANSWER")
    await admin.wait_event("queue.connected", call=call)
    return call


async def _cdr(admin: Client, call: str) -> dict[str, str]:
    # CDR.QUERY waits for the CDR writer, so a call that just ended is there.
    rows = [fields(x) for x in await admin.cmd("CDR.QUERY limit=50") if x.startswith("ITEM")]
    mine = [r for r in rows if r.get("uniqueid") == call]
    assert len(mine) == 1, f"one CDR for {call}: {mine}"
    return mine[0]


async def _recording(admin: Client, call: str) -> dict[str, str]:
    """The call's recording row (REC.QUERY: ``file`` absolute), once it is closed."""
    await admin.wait_event("recording.done", call=call)
    [row] = [fields(x) for x in await admin.cmd(f"REC.QUERY call={call}") if x.startswith("ITEM")]
    assert row["status"] == "done" and Path(row["file"]).is_file()
    return row


async def _agent_state(admin: Client, agent_id: str) -> str:
    rows = [fields(x) for x in await admin.cmd("AGENT.LIST") if x.startswith("ITEM")]
    return next(r["state"] for r in rows if r["agent"] == agent_id)


def _tone_share(samples: np.ndarray, hz: float = 1000.0) -> float:
    """Share of the energy of ``samples`` at ``hz`` (Goertzel over the whole block)."""
    x = samples.astype(np.float64)
    if not x.any():
        return 0.0
    n = np.arange(x.size)
    bin_ = np.abs(np.dot(x, np.exp(-2j * np.pi * hz * n / 8000))) ** 2 * 2 / x.size
    return float(bin_ / np.dot(x, x))


def _right(path: str) -> np.ndarray:
    """The right channel (what the customer hears) of a stereo recording."""
    with wave.open(path) as w:
        assert w.getnchannels() == 2 and w.getframerate() == 8000
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data.reshape(-1, 2)[:, 1]


async def test_login_ready_offer_answer_hold_retrieve_consult_complete(tmp_path: Path) -> None:
    with running(tmp_path, _cfg()) as d:
        admin = await _admin(d.port)
        a1, a2 = await _agent(d.port, 1), await _agent(d.port, 2)
        await a1.ok("AGENT.LOGIN")
        await a2.ok("AGENT.LOGIN")
        call = await _queue_call(admin, a1, "13900000101")
        await a1.ok("CALL.HOLD")
        await a1.wait_event("call.held", call=call)
        await a1.ok(f"CALL.RETRIEVE call={call}")
        await a1.wait_event("call.retrieved", call=call)

        ok = await a1.ok("CALL.CONSULT to=202")
        assert (ok["call"], ok["line"], ok["to"]) == (call, "ext/201", "extension:202")
        await a2.wait_event("call.ringing", call=call, line="ext/202")
        err = fields((await a1.cmd("CALL.COMPLETE"))[-1])
        assert err["code"] == "wrong_state" and "has not answered" in err["msg"]
        await a2.ok("CALL.ANSWER")
        await a1.wait_event("call.answered", call=call, line="ext/202")
        await a1.ok("CALL.COMPLETE")
        tr = await admin.wait_event("call.transferred", call=call)
        assert (tr["line"], tr["target"], tr["kind"]) == ("ext/201", "ext/202", "attended")
        assert await _agent_state(admin, "a1") == "ready"
        assert await _agent_state(admin, "a2") == "on_call"
        await a2.ok("CALL.HANGUP")
        ended = await admin.wait_event("call.ended", call=call)
        assert ended["disposition"] == "ANSWERED"
        await _recording(admin, call)
        cdr = await _cdr(admin, call)
        assert cdr["extension"] == "202" and cdr["recording_id"] == call
        assert await _agent_state(admin, "a2") == "ready"
        for c in (admin, a1, a2):
            await c.close()


async def test_consult_nobody_answers_then_cancel_gives_the_caller_back_the_agent(
        tmp_path: Path) -> None:
    with running(tmp_path, _cfg()) as d:
        admin = await _admin(d.port)
        a1, a2 = await _agent(d.port, 1), await _agent(d.port, 2)
        await a1.ok("AGENT.LOGIN")
        await a2.ok("AGENT.LOGIN")
        call = await _queue_call(admin, a1, "13900000102")
        await a1.ok("CALL.CONSULT to=202")
        await admin.wait_event("call.ringing", call=call, line="ext/202")
        assert await _agent_state(admin, "a2") == "on_call"
        await a1.ok("CALL.CANCEL")
        ended = await admin.wait_event("call.consult_ended", call=call)
        assert ended["reason"] == "cancel"
        await admin.wait_event("offer.withdrawn", call=call, line="ext/202")
        await admin.wait_event("call.retrieved", call=call)
        # Talk on for a second: the caller must hear the agent again (its 1 kHz tone).
        await _pause(admin, 1.5)
        await a1.ok("CALL.HANGUP")
        await admin.wait_event("call.ended", call=call)
        right = _right((await _recording(admin, call))["file"])
        tail = right[-8000:]            # the last second: after the cancel
        assert np.sqrt(np.mean(tail.astype(np.float64) ** 2)) > 300
        assert _tone_share(tail) > 0.8  # the agent's voice, not music on hold
        assert await _agent_state(admin, "a1") == "ready"
        assert await _agent_state(admin, "a2") == "ready"   # rung for a consult, not stuck
        cdr = await _cdr(admin, call)
        assert cdr["extension"] == "201"
        for c in (admin, a1, a2):
            await c.close()


async def _pause(client: Client, seconds: float) -> None:
    """Let the daemon's clock run ``seconds`` (the test waits on the socket, not a sleep:
    PING answers within the period, so the connection stays checked while waiting)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        await client.ok("PING")
        await asyncio.sleep(0.1)


async def test_caller_hangs_up_during_a_consult(tmp_path: Path) -> None:
    with running(tmp_path, _cfg()) as d:
        admin = await _admin(d.port)
        a1, a2 = await _agent(d.port, 1), await _agent(d.port, 2)
        await a1.ok("AGENT.LOGIN")
        await a2.ok("AGENT.LOGIN ready=false")
        for answered in (False, True):
            call = await _queue_call(admin, a1, f"1390000011{int(answered)}")
            await a1.ok("CALL.CONSULT to=202")
            await admin.wait_event("call.ringing", call=call, line="ext/202")
            if answered:
                await a2.ok("CALL.ANSWER")
                await admin.wait_event("call.answered", call=call, line="ext/202")
            await admin.ok(f"SIM.HANGUP call={call}")
            # The held caller left: the consulted phone stops ringing or is released, and
            # the agent is back with no call (issue 17 item 6).
            if not answered:
                await admin.wait_event("offer.withdrawn", call=call, line="ext/202")
            await admin.wait_event("call.ended", call=call)
            await _recording(admin, call)
            cdr = await _cdr(admin, call)
            assert cdr["hangup_by"] == "caller"
            for n in (1, 2):
                err = fields((await (a1 if n == 1 else a2).cmd("CALL.HANGUP"))[-1])
                assert err["code"] == "wrong_state" and "idle" in err["msg"]
            assert await _agent_state(admin, "a1") == "ready"
            assert await _agent_state(admin, "a2") == "not_ready"
            idle = [fields(x) for x in await admin.cmd("CALLS") if x.startswith("ITEM")]
            assert idle == []
        for c in (admin, a1, a2):
            await c.close()


async def test_conference_then_blind_transfers_to_queue_extension_and_outside(
        tmp_path: Path) -> None:
    with running(tmp_path, _cfg()) as d:
        admin = await _admin(d.port)
        a1, a2 = await _agent(d.port, 1), await _agent(d.port, 2)
        await a1.ok("AGENT.LOGIN")
        call = await _queue_call(admin, a1, "13900000103")
        await a1.ok("CALL.CONSULT to=203")
        await admin.wait_event("call.ringing", call=call, line="ext/203")
        await admin.ok("SIM.ANSWER ext=203")
        await admin.wait_event("call.answered", call=call, line="ext/203")
        await a1.ok("CALL.CONFERENCE")
        conf = await admin.wait_event("call.conferenced", call=call)
        assert set(conf["lines"].split(",")) == {"trunk/1", "ext/201", "ext/203"}
        # The agent leaves the conference; the caller and 203 talk on.
        await a1.ok("CALL.HANGUP")
        assert await _agent_state(admin, "a1") in ("ready", "wrap_up")
        await admin.ok(f"SIM.HANGUP call={call} line=ext/203")
        await admin.wait_event("call.ended", call=call)

        # Blind transfer into another queue, whose agent (a2) takes it.
        await a2.ok("AGENT.LOGIN")
        call = await _queue_call(admin, a1, "13900000104")
        err = fields((await a1.cmd("CALL.TRANSFER to=queue:nosuch"))[-1])
        assert err["code"] == "not_found" and "there are: q, q2" in err["msg"]
        ok = await a1.ok("CALL.TRANSFER to=queue:q2")
        assert ok["to"] == "queue:q2"
        await a2.wait_event("call.ringing", call=call, line="ext/202")
        await a2.ok("CALL.ANSWER")
        await admin.wait_event("queue.connected", call=call, agent="a2")
        # In its wrap-up, the agent who sent the call on notes it while it goes on.
        await a1.ok(f'CALL.NOTE call={call} text="sent to q2"')
        # ... then on to an outside number, which the simulated far end answers.
        await a2.ok("CALL.TRANSFER to=number:84001234")
        rung = await admin.wait_event("call.ringing", call=call, callee="84001234")
        assert rung["line"].startswith("trunk/")
        await admin.wait_event("call.answered", call=call, line=rung["line"])
        assert await _agent_state(admin, "a2") in ("ready", "wrap_up")
        await admin.ok(f"SIM.HANGUP call={call}")
        await admin.wait_event("call.ended", call=call)
        cdr = await _cdr(admin, call)
        assert cdr["agent"] == "a2" and cdr["note"] == "sent to q2"
        for c in (admin, a1, a2):
            await c.close()


async def test_click_to_dial_rings_the_agent_then_the_number(tmp_path: Path) -> None:
    # The agent's phone keeps sending its 1 kHz test tone: 59 Hz from the 941 Hz row of
    # '#', it would mask that key if the agent's voice were not muted while keys sound.
    with running(tmp_path, _cfg()) as d:
        admin = await _admin(d.port)
        crm = await Client.connect(d.port)
        await crm.ok("AUTH user=crm secret=demo")
        a1 = await _agent(d.port, 1)
        await a1.ok("AGENT.LOGIN")
        ok = await a1.ok("CALL.DIAL number=84005555")
        call = ok["call"]
        assert (ok["line"], ok["agent"]) == ("ext/201", "a1")
        await a1.wait_event("call.ringing", call=call, line="ext/201")
        await a1.ok("CALL.ANSWER")
        answered = await admin.wait_event("call.answered", call=call)
        rung = {"line": answered["line"]}
        assert rung["line"].startswith("trunk/")
        assert await _agent_state(admin, "a1") == "on_call"
        # Keys go to the far end (an outside IVR): played to the trunk, not seen as the
        # agent's own key presses.
        sent = await a1.ok("CALL.DTMF digits=12")
        assert (sent["digits"], sent["to"]) == ("12", rung["line"])
        # A softphone sends one request per key press, faster than keys sound: queued.
        await a1.ok("CALL.DTMF digits=#")
        await _pause(admin, 1.5)   # 3 keys of 80 ms + 80 ms gaps, with room for a slow tick
        await a1.ok("CALL.HANGUP")
        await admin.wait_event("call.ended", call=call)
        assert await _agent_state(admin, "a1") == "ready"
        # The far end heard each key once (the recording's right channel is what it
        # heard); the switch took none of them for a key the agent's phone pressed.
        heard = _right((await _recording(admin, call))["file"])
        assert detect_digits(heard) == "12#"
        assert not [e for e in admin.events if e["event"] == "call.dtmf"]

        # The CRM dials on the agent's behalf; an agent cannot dial for another.
        ok = await crm.ok("CALL.DIAL agent=a1 number=84006666")
        await a1.wait_event("call.ringing", call=ok["call"], line="ext/201")
        await a1.ok("CALL.HANGUP")
        await admin.wait_event("call.ended", call=ok["call"])
        a2 = await _agent(d.port, 2)
        err = fields((await a2.cmd("CALL.DIAL agent=a1 number=84007777"))[-1])
        assert err["code"] == "forbidden" and "own phone" in err["msg"]
        err = fields((await crm.cmd("CALL.DIAL agent=nosuch number=84007777"))[-1])
        assert err["code"] == "not_found"
        err = fields((await crm.cmd("CALL.DIAL agent=a2 number=84007777"))[-1])
        assert err["code"] == "wrong_state" and "logged out" in err["msg"]
        err = fields((await a1.cmd("CALL.DIAL number=+8613900000000"))[-1])
        assert err["code"] == "bad_arg" and "'+'" in err["msg"]
        for c in (admin, crm, a1, a2):
            await c.close()


async def test_agents_cannot_touch_others_calls_nor_probe_for_call_ids(tmp_path: Path) -> None:
    with running(tmp_path, _cfg()) as d:
        admin = await _admin(d.port)
        a1, a2 = await _agent(d.port, 1), await _agent(d.port, 2)
        await a1.ok("AGENT.LOGIN")
        call = await _queue_call(admin, a1, "13900000105")
        nosuch = "01AAAAAAAAAAAAAAAAAAAAAAAA"
        for verb in ("CALL.TRANSFER to=203", "CALL.CONSULT to=203", "CALL.COMPLETE",
                     "CALL.CANCEL", "CALL.CONFERENCE", "CALL.DTMF digits=1",
                     "CALL.HANGUP", "CALL.HOLD", "CALL.RECORD action=stop"):
            for target in (call, nosuch):
                err = fields((await a2.cmd(f"{verb} call={target}"))[-1])
                assert err["code"] == "forbidden", (verb, err)
                assert f"call {target} is not on your" in err["msg"]
        err = fields((await a2.cmd("CALL.TRANSFER to=203"))[-1])
        assert err["code"] == "wrong_state" and "has no call" in err["msg"]
        err = fields((await a1.cmd("CALL.TRANSFER to=group:sales"))[-1])
        assert err["code"] == "bad_arg"
        err = fields((await a1.cmd("CALL.TRANSFER to=299"))[-1])
        assert err["code"] == "not_found" and "to=number:299" in err["msg"]
        err = fields((await a1.cmd("CALL.TRANSFER to=203 ; RELOAD"))[-1])
        assert err["code"] == "bad_arg"
        lines = d.log_lines()
        assert any('"cti_forbidden"' in x and '"agent2"' in x for x in lines)
        await a1.ok("CALL.HANGUP")
        await admin.wait_event("call.ended", call=call)
        for c in (admin, a1, a2):
            await c.close()


async def test_lines_shows_every_line_its_call_and_the_agent_at_it(tmp_path: Path) -> None:
    with running(tmp_path, _cfg()) as d:
        admin = await _admin(d.port)
        a1 = await _agent(d.port, 1)
        await a1.ok("AGENT.LOGIN")
        call = await _queue_call(admin, a1, "13900000106")
        await a1.ok("CALL.HOLD")
        rows = {r["line"]: r for r in (fields(x) for x in await admin.cmd("LINES"))
                if "line" in r}
        assert len(rows) == 16 and list(rows)[:2] == ["trunk/1", "trunk/2"]
        assert (rows["trunk/1"]["state"], rows["trunk/1"]["call"], rows["trunk/1"]["tone"]) \
            == ("held", call, "moh")
        assert (rows["ext/201"]["state"], rows["ext/201"]["agent"],
                rows["ext/201"]["agent_state"]) == ("connected", "a1", "on_call")
        assert rows["ext/202"]["state"] == "idle" and rows["ext/202"]["agent_state"] == "logged_out"
        assert "call" not in rows["ext/203"] and "agent" not in rows["ext/203"]
        trunks = [fields(x) for x in await admin.cmd("LINES kind=trunk") if x.startswith("ITEM")]
        assert [r["kind"] for r in trunks] == ["trunk"] * 8
        err = fields((await a1.cmd("LINES"))[-1])
        assert err["code"] == "forbidden"
        err = fields((await admin.cmd("LINES kind=sip"))[-1])
        assert err["code"] == "bad_arg"
        await a1.ok("CALL.HANGUP")
        for c in (admin, a1):
            await c.close()


async def test_a_consultation_nobody_answers_ends_by_itself_back_with_the_caller(
        tmp_path: Path) -> None:
    with running(tmp_path, _cfg(**{"dialplan.ring_timeout_s": 1.5})) as d:
        admin = await _admin(d.port)
        a1, a2 = await _agent(d.port, 1), await _agent(d.port, 2)
        await a1.ok("AGENT.LOGIN")
        await a2.ok("AGENT.LOGIN")
        call = await _queue_call(admin, a1, "13900000107")
        await a1.ok("CALL.CONSULT to=202")
        ended = await admin.wait_event("call.consult_ended", call=call)
        assert ended["reason"] == "no_answer"
        await admin.wait_event("call.retrieved", call=call)
        rows = {r["line"]: r for r in (fields(x) for x in await admin.cmd("LINES kind=ext"))
                if "line" in r}
        assert rows["ext/201"]["state"] == "connected" and rows["ext/202"]["state"] == "idle"
        assert await _agent_state(admin, "a2") == "ready"
        # The agent can consult again, and the caller is still there to transfer.
        await a1.ok("CALL.TRANSFER to=queue:q2")
        await a2.wait_event("call.ringing", call=call, line="ext/202")
        await a2.ok("CALL.ANSWER")
        await a2.ok("CALL.HANGUP")
        await admin.wait_event("call.ended", call=call)
        cdr = await _cdr(admin, call)
        assert cdr["agent"] == "a2"
        for c in (admin, a1, a2):
            await c.close()
