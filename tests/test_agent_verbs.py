"""AGENT.LOGIN / LOGOUT / READY / NOTREADY / STATUS through the real daemon's socket."""

from __future__ import annotations

from pathlib import Path

from tests.daemon import Client, fields, make_config, running

QUEUE_DNIS = "6000"


def _config() -> dict:
    """Queue ``q`` with agent a1 configured at ext/201 (logged out at start) and a2 at
    ext/202 (logged in); bots answer at once."""
    agents = [{"id": "a1", "extension": 201, "queues": {"q": 0}},
              {"id": "a2", "extension": 202, "queues": {"q": 0}, "login": True}]
    return make_config(queues={"q": {"strategy": "linear", "music": False}}, agents=agents,
                       queue_routes={QUEUE_DNIS: "q"},
                       **{"sim.bots.mode": "manual"})


async def test_an_agent_logs_in_at_its_phone_takes_a_break_and_logs_out(tmp_path: Path) -> None:
    with running(tmp_path, _config()) as d:
        admin = await Client.connect(d.port)
        await admin.ok("AUTH user=admin secret=demo-admin")
        await admin.ok("SUB events=agent.state,call.ringing")
        agent = await Client.connect(d.port)
        await agent.ok("AUTH user=agent1 secret=demo")   # users[]: agent1 at extension 201

        st = await agent.ok("AGENT.STATUS")
        assert (st["agent"], st["line"], st["state"]) == ("a1", "ext/201", "logged_out")
        ok = await agent.ok("AGENT.LOGIN ready=false")
        assert (ok["agent"], ok["state"], ok["reason"], ok["queues"]) == (
            "a1", "not_ready", "login", "q:0")
        ev = await admin.wait_event("agent.state", agent="a1", state="not_ready")
        assert ev["previous"] == "logged_out"

        # Not ready: a caller in q is offered to a2 only (linear would pick a1 first).
        await admin.ok(f"SIM.CALL caller=13900000001 dnis={QUEUE_DNIS}")
        assert (await admin.wait_event("call.ringing"))["line"] == "ext/202"

        ok = await agent.ok("AGENT.READY")
        assert ok["state"] == "ready"
        ok = await agent.ok("AGENT.NOTREADY reason=lunch")
        assert (ok["state"], ok["reason"]) == ("not_ready", "lunch")
        await admin.wait_event("agent.state", agent="a1", state="not_ready", reason="lunch")
        ok = await agent.ok("AGENT.LOGOUT")
        assert ok["state"] == "logged_out"

        err = fields((await agent.cmd("AGENT.READY"))[-1])
        assert err["code"] == "wrong_state" and "AGENT.LOGIN first" in err["msg"]
        await agent.close()
        await admin.close()


async def test_agent_verbs_refuse_other_agents_bad_queues_and_users_without_a_phone(
        tmp_path: Path) -> None:
    with running(tmp_path, _config()) as d:
        agent = await Client.connect(d.port)
        await agent.ok("AUTH user=agent1 secret=demo")
        for request, code, words in (
            ("AGENT.LOGIN agent=a2", "forbidden", "a2 sits at ext/202"),
            ("AGENT.LOGIN queues=q:0,nosuch", "not_found", "no queue nosuch; queues: q"),
            ("AGENT.LOGIN queues=group:sales", "not_found", "no queue group:sales"),
            ("AGENT.LOGIN queues=q:-1", "bad_arg", "whole number >= 0"),
            ("AGENT.LOGIN ready=maybe", "bad_arg", "true or false"),
            ("AGENT.LOGIN colour=red", "bad_arg", "takes no argument 'colour'"),
            ("AGENT.LOGOUT", "wrong_state", "no agent is logged in at ext/201"),
        ):
            err = fields((await agent.cmd(request))[-1])
            assert err["code"] == code and words in err["msg"], (request, err)
        # Still logged out: nothing above changed anything.
        assert (await agent.ok("AGENT.STATUS"))["state"] == "logged_out"
        await agent.close()

        admin = await Client.connect(d.port)
        await admin.ok("AUTH user=admin secret=demo-admin")
        err = fields((await admin.cmd("AGENT.STATUS"))[-1])
        assert err["code"] == "forbidden" and "has none" in err["msg"]
        await admin.close()


async def test_a_team_leader_lists_agents_and_sets_their_state(tmp_path: Path) -> None:
    with running(tmp_path, _config()) as d:
        sup = await Client.connect(d.port)
        await sup.ok("AUTH user=super1 secret=demo")
        await sup.ok("SUB events=agent.state")
        listed = [fields(x) for x in (await sup.cmd("AGENT.LIST"))[:-1]]
        assert [(a["agent"], a["state"]) for a in listed] == [("a1", "logged_out"),
                                                            ("a2", "ready")]
        ok = await sup.ok("SUPER.AGENT agent=a2 state=not_ready reason=coaching")
        assert (ok["state"], ok["reason"]) == ("not_ready", "coaching")
        ev = await sup.wait_event("agent.state", agent="a2", state="not_ready")
        assert ev["reason"] == "coaching"
        assert (await sup.ok("SUPER.AGENT agent=a2 state=ready"))["state"] == "ready"
        assert (await sup.ok("SUPER.AGENT agent=a2 state=logout"))["state"] == "logged_out"
        for request, code in (("SUPER.AGENT agent=a2 state=ready", "wrong_state"),
                              ("SUPER.AGENT agent=zz state=ready", "not_found"),
                              ("SUPER.AGENT agent=a2 state=asleep", "bad_arg"),
                              ("SUPER.AGENT agent=a2 state=logout reason=x", "bad_arg")):
            assert fields((await sup.cmd(request))[-1])["code"] == code, request
        await sup.close()
        for user in ("crm", "agent1"):
            c = await Client.connect(d.port)
            await c.ok(f"AUTH user={user} secret=demo")
            err = fields((await c.cmd("SUPER.AGENT agent=a1 state=logout"))[-1])
            assert err["code"] == "forbidden", user
            await c.close()
