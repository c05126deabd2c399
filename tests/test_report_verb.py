"""``REPORT`` on the CTI socket (issue 18 item 4): a real daemon takes a few simulated
calls, and REPORT counts them as ``switchd report`` does — the calls that just ended
included; who may ask; every refused argument named in the error; JSON mode; and the
item layout (agents' pause-reason keys folded to field names) on a hand-made report.
"""

from __future__ import annotations

import json
from typing import Any

from switchd.cti.codec import encode_reply
from switchd.cti.report_verbs import report_items
from switchd.reports.model import (
    AgentFigures,
    Figures,
    Interval,
    Report,
    ReportSettings,
)
from tests.daemon import Client, fields, make_config, running


async def login(port: int, user: str, secret: str = "demo") -> Client:
    c = await Client.connect(port)
    await c.ok(f"AUTH user={user} secret={secret}")
    return c


def items(lines: list[str]) -> list[dict[str, str]]:
    assert lines[-1].startswith("END"), lines
    return [fields(x.replace("ITEM", "X", 1)) for x in lines[:-1]]


def error(lines: list[str]) -> tuple[str, str]:
    assert lines[-1].startswith("ERR"), lines
    f = fields(lines[-1].replace("ERR", "X", 1))
    return f["code"], f["msg"]


async def json_request(port: int, user: str, secret: str, request: dict[str, Any]
                       ) -> list[dict[str, Any]]:
    """Log in, switch to JSON, send ``request``; the reply objects up to END/ERR."""
    c = await login(port, user, secret)
    await c.ok("FORMAT json")
    await c.send_raw((json.dumps({**request, "tag": "j1"}) + "\n").encode())
    out: list[dict[str, Any]] = []
    while True:
        obj = json.loads(await c.line(10))
        if obj.get("tag") != "j1":
            continue
        out.append(obj)
        if obj["type"] in ("END", "ERR"):
            await c.close()
            return out


async def test_report_counts_the_calls_that_just_ended_in_text_and_json(tmp_path):
    cfg = make_config(**{"sim.bots.mode": "auto", "sim.bots.answer_after_s": 0.2,
                         "sim.bots.talk_s": [0.5, 0.5]})
    with running(tmp_path, cfg) as d:
        admin = await login(d.port, "admin", "demo-admin")
        await admin.ok("SUB events=call.ended")
        for i in range(3):  # one after the other: each is answered by a free phone
            call = (await admin.ok(f"SIM.CALL caller=1380000002{i} dnis=8000"))["call"]
            await admin.wait_event("call.ended", timeout=15, call=call)

        # At once after the last call.ended: the CDR writer is flushed first.
        crm = await login(d.port, "crm")
        got = items(await crm.cmd("REPORT by=day", timeout=15))
        kinds = [g["kind"] for g in got]
        assert kinds.count("total") == 1
        assert kinds[:kinds.index("total")] == ["interval"] * kinds.index("total")
        assert set(kinds[kinds.index("total") + 1:]) <= {"agent"}
        total = got[kinds.index("total")]
        assert (total["offered"], total["answered"], total["unanswered"]) == ("3", "3", "0")
        assert total["connection_rate"] == "1.0"
        assert (total["by"], total["tz"]) == ("day", "UTC")
        intervals = [g for g in got if g["kind"] == "interval"]
        assert len(intervals) in (7, 8)  # 7 days back from now, cut at UTC midnights
        assert sum(int(g["offered"]) for g in intervals) == 3
        today = intervals[-1]
        assert today["offered"] == "3" and today["start"].endswith("+00:00")
        assert "connection_rate" not in intervals[0]  # no traffic: a rate has no value

        # A period without the calls, read as switchd report reads dates.
        before = items(await crm.cmd("REPORT from=2020-01-01 to=2020-01-03 "
                                     "tz=Asia/Shanghai", timeout=15))
        assert [b["label"] for b in before if b["kind"] == "interval"] == [
            "2020-01-01", "2020-01-02"]
        assert before[0]["start"] == "2020-01-01T00:00:00+08:00"
        assert [b["offered"] for b in before] == ["0", "0", "0"]

        sup = await login(d.port, "super1")
        hourly = items(await sup.cmd("REPORT by=hour queue=nosuch", timeout=15))
        assert next(h for h in hourly if h["kind"] == "total")["offered"] == "0"

        objs = await json_request(d.port, "crm", "demo", {"verb": "REPORT", "by": "day"})
        assert objs[-1]["type"] == "END"
        jtotal = next(o for o in objs if o.get("kind") == "total")
        assert jtotal["type"] == "ITEM"
        assert (jtotal["offered"], jtotal["answered"]) == (3, 3)  # numbers, not text
        assert jtotal["connection_rate"] == 1.0
        assert [o["kind"] for o in objs[:-1]] == kinds


async def test_report_refuses_agents_and_names_every_bad_argument(tmp_path):
    with running(tmp_path) as d:
        agent = await login(d.port, "agent1")
        code, msg = error(await agent.cmd("REPORT"))
        assert code == "forbidden" and "REPORT is for admin, crm, supervisor" in msg

        crm = await login(d.port, "crm")
        cases = {
            "by=fortnight": ("'fortnight'", "hour, day, week, month"),
            "tz=Mars/Olympus": ("'Mars/Olympus'", "IANA time zone"),
            "from=yesterday": ("'yesterday'", "YYYY-MM-DD"),
            "to=2026-13-01": ("'2026-13-01'", "ISO-8601"),
            "from=2026-01-02 to=2026-01-01": ("from= must be before to=", "2026-01-02"),
            "from=2020-01-01 to=2026-01-01 by=hour": ("at most 2000", "by hour"),
            "sl_threshold=0": ("sl_threshold=0", "more than 0"),
            "short_abandon=-1": ("short_abandon=-1", "between 0"),
            "sl_threshold=soon": ("'soon'", "seconds"),
            "queue=\"\"": ("queue= is empty", "usage: REPORT"),
            "period=day": ("'period'", "usage: REPORT"),
        }
        for args, needles in cases.items():
            code, msg = error(await crm.cmd(f"REPORT {args}"))
            assert code == "bad_arg", (args, code, msg)
            for needle in needles:
                assert needle in msg, (args, msg)

        objs = await json_request(d.port, "crm", "demo", {"verb": "REPORT", "by": "year"})
        assert objs[-1]["type"] == "ERR" and objs[-1]["code"] == "bad_arg"
        assert "'year'" in objs[-1]["msg"]


def test_items_carry_every_figure_and_fold_pause_reasons_to_field_names():
    day = Interval(1_800_000_000.0, 1_800_086_400.0, "2027-01-15")
    fig = Figures(offered=2, answered=1, unanswered=1, connection_rate=0.5)
    report = Report(ReportSettings(30.0, 3.0), "UTC", "day", ((day, fig),), fig,
                    (AgentFigures("a1", 1, 60.0, (("Lunch Break", 5.0), ("lunch-break", 1.0),
                                                    ("午饭", 2.0)), 0, 60.0),), "14:00")
    got = report_items(report, day.start, day.end)
    assert [g["kind"] for g in got] == ["interval", "total", "agent"]
    assert set(fig.as_dict()) <= set(got[0]) and set(fig.as_dict()) <= set(got[1])
    assert got[0]["label"] == "2027-01-15" and got[0]["start"] == "2027-01-15T08:00:00+00:00"
    assert (got[1]["sl_threshold_s"], got[1]["busiest_hour"]) == (30.0, "14:00")
    assert got[2]["not_ready_lunch_break_s"] == 5.0 and got[2]["not_ready_lunch-break_s"] == 1.0
    assert got[2]["not_ready_s"] == 8.0
    for item in got:  # every key is one the wire can carry, in both modes
        encode_reply("ITEM", item)
        encode_reply("ITEM", item, json_mode=True)
