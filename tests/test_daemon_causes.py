"""What a new user tripped on, through the real daemon and socket: why a call was busy,
and simulated parties that never strand a call."""

from __future__ import annotations

import sqlite3

from tests.daemon import admin, fields, make_config, running, stop_and_check_json


async def _ended(c, call: str) -> dict[str, str]:
    return await c.wait_event("call.ended", call=call, timeout=15)


async def _cdr(c, call: str) -> dict[str, str]:
    rows = await c.cmd("CDR.QUERY limit=50")
    for row in rows[:-1]:
        f = fields(row.replace("ITEM", "X", 1))
        if f["uniqueid"] == call:
            return f
    raise AssertionError(f"no CDR for {call} in {rows}")


async def test_busy_blacklisted_unknown_and_congested_calls_each_say_why(tmp_path):
    cfg = make_config(**{"sim.caller_hangup_after_tone_s": 0.2})
    cfg["ring_groups"]["sales"]["members"] = [202]
    # No catch-all: a number nobody routes is unallocated.
    cfg["routes"] = [{"dnis": "8000", "to": "group:sales"}, {"dnis": "8200", "to": "extension:201"}]
    with running(tmp_path, cfg) as d:
        c = await admin(d.port)
        await c.ok("SUB events=call.*")
        for ext in (201, 202):
            await c.ok(f"SIM.AGENT ext={ext} mode=auto answer_after=0 talk=3600")
        busy_201 = (await c.ok("SIM.CALL caller=100 dnis=8200"))["call"]
        busy_202 = (await c.ok("SIM.CALL caller=101 dnis=8000"))["call"]
        await c.wait_event("call.answered", call=busy_201)
        await c.wait_event("call.answered", call=busy_202)

        expect = {}
        expect[(await c.ok("SIM.CALL caller=102 dnis=8200"))["call"]] = ("USER_BUSY", "17")
        expect[(await c.ok("SIM.CALL caller=103 dnis=8000"))["call"]] = ("USER_BUSY", "17")
        expect[(await c.ok("SIM.CALL caller=104 dnis=9999"))["call"]] = ("UNALLOCATED_NUMBER", "1")
        await c.ok("CONTACT.SET number=105 blacklisted=true")
        expect[(await c.ok("SIM.CALL caller=105 dnis=8200"))["call"]] = ("CALL_REJECTED", "21")
        for call, (cause, q850) in expect.items():
            ended = await _ended(c, call)
            assert (ended["hangup_cause"], ended["q850"]) == (cause, q850), ended
            cdr = await _cdr(c, call)
            assert (cdr["hangup_cause"], cdr["q850"]) == (cause, q850), cdr
        # Busy and blacklisted stay BUSY for Asterisk-style reports, but no longer look alike.
        dispositions = {(await _cdr(c, k))["disposition"] for k in expect}
        assert dispositions == {"BUSY", "FAILED"}

        await c.close()
        code, _ = stop_and_check_json(d)
        assert code == 0
        db = sqlite3.connect(d.db)
        causes = dict(db.execute("SELECT uniqueid, hangup_cause FROM cdr"))
        db.close()
    # The calls still up at SIGTERM ended with the shutdown cause, in the CDR table too.
    assert causes[busy_201] == causes[busy_202] == "SYSTEM_SHUTDOWN"


async def test_an_outside_call_with_every_trunk_busy_ends_in_congestion(tmp_path):
    cfg = make_config(**{"board.trunks": 2, "sim.caller_hangup_after_tone_s": 60})
    cfg["routes"] = [{"dnis": "8200", "to": "extension:201"}]
    with running(tmp_path, cfg) as d:
        c = await admin(d.port)
        await c.ok("SUB events=call.*")
        for caller in (400, 401):   # unallocated numbers: each caller holds its trunk on tone
            await c.ok(f"SIM.CALL caller={caller} dnis=8300")
        await c.ok("SIM.AGENT ext=203 mode=manual")
        dial = (await c.ok("SIM.DIAL ext=203 number=984001234"))["call"]
        ended = await _ended(c, dial)
        assert (ended["hangup_cause"], ended["q850"]) == ("NORMAL_CIRCUIT_CONGESTION", "34")
        assert ended["disposition"] == "CONGESTION"
        await c.close()
        assert stop_and_check_json(d)[0] == 0


async def test_a_caller_whose_agent_phone_goes_manual_still_hangs_up(tmp_path):
    cfg = make_config(**{"sim.caller_talk_s": [1, 1]})
    with running(tmp_path, cfg) as d:
        c = await admin(d.port)
        await c.ok("SUB events=call.*")
        await c.ok("SIM.AGENT ext=201 mode=auto answer_after=0 talk=3600")
        call = (await c.ok("SIM.CALL caller=300 dnis=8200"))["call"]
        await c.wait_event("call.answered", call=call)
        await c.ok("SIM.AGENT ext=201 mode=manual")
        ended = await _ended(c, call)
        assert ended["hangup_by"] == "caller" and ended["hangup_cause"] == "NORMAL_CLEARING"
        assert (await c.cmd("CALLS"))[-1] == "END count=0"
        await c.close()
        assert stop_and_check_json(d)[0] == 0


async def test_an_unanswered_simulated_caller_gives_up_after_its_patience(tmp_path):
    cfg = make_config(**{"sim.caller_patience_s": 1})
    with running(tmp_path, cfg) as d:
        c = await admin(d.port)
        await c.ok("SUB events=call.*")
        await c.ok("SIM.AGENT ext=201 mode=manual")
        call = (await c.ok("SIM.CALL caller=301 dnis=8200"))["call"]
        ended = await _ended(c, call)
        assert ended["hangup_by"] == "caller"
        assert (ended["hangup_cause"], ended["q850"]) == ("ORIGINATOR_CANCEL", "487")
        assert ended["disposition"] == "NO ANSWER"
        await c.close()
        assert stop_and_check_json(d)[0] == 0
