"""CALL.ANSWER / HANGUP / HOLD / RETRIEVE: a softphone works its own phone over the socket."""

from __future__ import annotations

from pathlib import Path

from tests.daemon import Client, fields, make_config, running


async def test_a_softphone_answers_holds_retrieves_and_hangs_up_its_own_call(
        tmp_path: Path) -> None:
    cfg = make_config(**{"sim.bots.mode": "manual"})   # 8200 rings extension 201
    with running(tmp_path, cfg) as d:
        admin = await Client.connect(d.port)
        await admin.ok("AUTH user=admin secret=demo-admin")
        await admin.ok("SUB events=call.*")
        agent = await Client.connect(d.port)
        await agent.ok("AUTH user=agent1 secret=demo")        # at extension 201
        other = await Client.connect(d.port)
        await other.ok("AUTH user=agent2 secret=demo")        # at extension 202

        call = (await admin.ok("SIM.CALL caller=13900000077 dnis=8200"))["call"]
        await admin.wait_event("call.ringing", call=call, line="ext/201")
        err = fields((await agent.cmd("CALL.HOLD"))[-1])
        assert err["code"] == "wrong_state" and "alerting" in err["msg"]
        err = fields((await other.cmd(f"CALL.ANSWER call={call}"))[-1])
        assert err["code"] == "forbidden" and "not on your phone ext/202" in err["msg"]

        ok = await agent.ok(f"CALL.ANSWER call={call}")
        assert (ok["call"], ok["line"]) == (call, "ext/201")
        await admin.wait_event("call.answered", call=call, line="ext/201")
        await agent.ok("CALL.HOLD")
        held = await admin.wait_event("call.held", call=call)
        assert (held["line"], held["held_line"]) == ("ext/201", "trunk/1")
        await agent.ok("CALL.RETRIEVE")
        await admin.wait_event("call.retrieved", call=call)
        err = fields((await other.cmd(f"CALL.HANGUP call={call}"))[-1])
        assert err["code"] == "forbidden"
        await agent.ok("CALL.HANGUP")
        ended = await admin.wait_event("call.ended", call=call)
        assert (ended["disposition"], ended["hangup_by"]) == ("ANSWERED", "callee")
        err = fields((await agent.cmd("CALL.HANGUP"))[-1])
        assert err["code"] == "wrong_state" and "idle" in err["msg"]

        nophone = await Client.connect(d.port)
        await nophone.ok("AUTH user=admin secret=demo-admin")
        err = fields((await nophone.cmd("CALL.ANSWER"))[-1])
        assert err["code"] == "forbidden" and "has none" in err["msg"]
        for c in (admin, agent, other, nophone):
            await c.close()
