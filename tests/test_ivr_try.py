"""``switchd flows try`` and ``switchd bench ivr`` from the command line, on the shipped flow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from switchd.__main__ import main

ROOT = Path(__file__).resolve().parent.parent
CONFIG = str(ROOT / "config.yaml")


def _try(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["flows", "try", "main", "-c", CONFIG, *args])
    out, err = capsys.readouterr()
    return code, out, err


def _steps(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_self_service_path_with_a_crm_reply_says_the_balance_and_returns_to_the_menu(capsys):
    code, out, _ = _try(capsys, "--at", "2026-12-07T10:00+08:00", "--digits", "3,12345678#,1",
                        "--route-reply", "next=say_balance", "balance=88.5", "--json")
    assert code == 0
    steps = _steps(out)
    entered = [s["node"] for s in steps if s["event"] == "ivr.enter"]
    assert entered == ["welcome", "hours", "vip_check", "main_menu", "self_service", "lookup",
                       "say_balance", "say_amount", "main_menu", "sales"]
    collect = next(s for s in steps if s["event"] == "ivr.leave" and s["node"] == "self_service")
    assert collect["digits"] == "12345678#" and collect["next"] == "lookup"
    # The menu's 1 queues for sales: no ACD in a trial, so the hand-over is the last step.
    assert steps[-2]["event"] == "ivr.exit" and steps[-2]["outcome"] == "queued"
    assert steps[-1] == {"t": steps[-2]["t"], "event": "call.routed", "target": "queue:sales",
                         "priority": 0}
    # Prompts last as long as their audio: the welcome (zh + en) takes seconds, not zero.
    leave_welcome = next(s for s in steps if s["event"] == "ivr.leave" and s["node"] == "welcome")
    assert 2.0 < float(leave_welcome["t"]) < 20.0  # type: ignore[arg-type]


def test_a_queue_node_ends_the_trial_saying_where_the_call_went(capsys):
    code, out, _ = _try(capsys, "--at", "2026-12-07T10:00+08:00", "--digits", "2,5")
    assert code == 0
    lines = out.splitlines()
    assert lines[-5].endswith("enter main:support (queue)")
    assert lines[-4].endswith("leave support  (flow ends here)  because queued in support")
    assert lines[-3].endswith("flow main ends: queued (at support)")
    assert lines[-2].endswith("handed to queue:support; flows try runs no queues, so the trial "
                              "ends here")
    # Nothing of the flow waits for keys after the hand-over: the 5 is left unpressed.
    assert lines[-1] == 'keys never pressed (the flow did not wait for them): ["5"]'


def test_a_vip_caller_is_queued_for_sales_with_priority_10(capsys):
    code, out, _ = _try(capsys, "--at", "2026-12-07T10:00+08:00", "--vip", "--json")
    assert code == 0
    steps = _steps(out)
    entered = [s["node"] for s in steps if s["event"] == "ivr.enter"]
    assert entered == ["welcome", "hours", "vip_check", "vip_welcome", "vip_desk"]
    assert steps[-1] == {"t": steps[-1]["t"], "event": "call.routed", "target": "queue:sales",
                         "priority": 10}
    assert steps[-2]["outcome"] == "queued" and steps[-2]["node"] == "vip_desk"


def test_after_hours_in_the_flows_own_zone_whatever_the_clock_of_the_server(capsys):
    # 18:00:00 in Shanghai is 10:00 UTC: closed, although it is office time in UTC.
    code, out, _ = _try(capsys, "--at", "2026-12-07T10:00:00Z")
    assert code == 0
    assert "leave hours  -> after_hours  because Mon 18:00:05 Asia/Shanghai" in out
    assert "flow main ends: hangup (at leave_message)" in out


def test_a_chinese_public_holiday_takes_the_holiday_branch(capsys):
    code, out, _ = _try(capsys, "--at", "2026-10-01T10:00+08:00", "--json")
    assert code == 0
    hours = next(s for s in _steps(out) if s["event"] == "ivr.leave" and s["node"] == "hours")
    assert hours["next"] == "holiday" and "National Day" in str(hours["why"])


def test_no_crm_reply_times_out_to_the_fallback_and_unpressed_keys_are_listed(capsys):
    code, out, _ = _try(capsys, "--at", "2026-12-07T10:00+08:00", "--digits", "3,12345678#",
                        "--transfer", "decline")
    assert code == 0
    assert "leave lookup  -> crm_down  because" in out
    # Back at the menu nobody presses: its fallback, the operator, queues for sales.
    assert "handed to queue:sales with priority 5" in out
    assert "keys never pressed" not in out


def test_bad_options_exit_2_and_a_broken_flow_exits_1(capsys, tmp_path):
    code, _, err = _try(capsys, "--at", "2026-12-07T10:00")
    assert code == 2 and "has no zone" in err
    code, _, err = _try(capsys, "--digits", "1,x")
    assert code == 2 and "--digits" in err
    broken = tmp_path / "broken.yaml"
    broken.write_text("timezone: Asia/Shanghai\nstart: a\nnodes:\n  a: {type: hangupp}\n")
    code = main(["flows", "try", str(broken), "-c", CONFIG])
    _, err = capsys.readouterr()
    assert code == 1 and f"{broken}:4:13: " in err and "did you mean 'hangup'" in err


def test_bench_ivr_reports_cost_per_step_and_real_time_factor(capsys):
    assert main(["bench", "ivr", "--calls", "30", "--channels", "12", "--seconds", "8",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    steps = result["steps"]
    assert steps["calls"] == 30 and steps["steps"] > 30 * 4
    assert 0 < steps["ivr_us_per_step"] <= steps["shell_us_per_step"]
    media = result["media"][0]
    assert media["channels"] == 12 and media["seconds"] == 8.0 and media["rtf"] > 0
    # The callers' keys went through the media plane as audio and were detected.
    assert media["digits_detected"] > 0 and media["steps"] > 12


def test_a_route_reply_the_socket_would_refuse_is_refused_by_try_too(capsys):
    code, _, err = _try(capsys, "--route-reply", "next=say_balance", "Balance=1")
    assert code == 2 and "'Balance' is not a key ROUTE.REPLY can carry" in err
