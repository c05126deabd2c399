"""``switchd bench calls``: the virtual bench in-process, the live bench against a real daemon."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

import pytest
import yaml

from switchd.__main__ import main
from switchd.bench import BenchError, _wait_for_port, live_config
from switchd.config import parse_config
from switchd.passwords import hash_secret


def _run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, dict]:
    code = main(argv)
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected exactly one JSON line on stdout, got {out!r}"
    return code, json.loads(lines[0])


def test_virtual_bench_gives_every_call_an_answered_cdr(capsys):
    code, result = _run_json(capsys, ["bench", "calls", "--json", "--calls", "300",
                                      "--lines", "20"])
    assert code == 0
    assert {"mode", "calls", "answered", "cdrs", "errors", "wall_s", "calls_per_s"} <= set(result)
    assert result["mode"] == "virtual"
    assert result["calls"] == result["cdrs"] == result["answered"] == 300
    assert result["errors"] == 0
    assert result["wall_s"] > 0 and result["calls_per_s"] > 0


def test_virtual_bench_without_json_prints_a_table_with_the_verdict(capsys):
    assert main(["bench", "calls", "--calls", "50", "--lines", "5"]) == 0
    out = capsys.readouterr().out
    assert "calls_per_s" in out and "PASS" in out


def test_bench_rejects_zero_calls(capsys):
    assert main(["bench", "calls", "--json", "--calls", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err


def test_live_config_is_a_valid_switchd_config(tmp_path):
    doc = live_config(30, hash_secret("bench", iterations=1000))
    cfg = parse_config(yaml.safe_dump(doc), tmp_path / "config.yaml")
    assert cfg.board.trunks == 30 and len(cfg.board.extension_numbers) == 30
    assert cfg.ring_groups["bench"].members == cfg.board.extension_numbers
    assert cfg.sim.traffic.enabled is False
    assert [u.role for u in cfg.users] == ["admin"]


def test_a_daemon_that_dies_at_start_is_reported_with_its_stderr(tmp_path):
    err = tmp_path / "err"
    with err.open("wb") as f:
        proc = subprocess.Popen([sys.executable, "-c",
                                 "import sys; sys.stderr.write('boom: bad config'); sys.exit(3)"],
                                stderr=f)
    proc.wait()
    with pytest.raises(BenchError, match=r"(?s)code 3.*boom: bad config"):
        _wait_for_port(proc, tmp_path / "log", err, None, 5.0)


def test_live_bench_writes_a_cdr_for_every_accepted_call(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    code, result = _run_json(capsys, ["bench", "calls", "--live", "--json", "--calls", "200",
                                      "--lines", "20"])
    assert result["mode"] == "live"
    assert result["errors"] == {}
    assert result["ok"] == result["calls"] == 200
    assert result["missing_cdrs"] == 0 and result["cdrs"] == 200
    assert result["answered"] == 200
    assert result["daemon_exit"] == 0
    assert result["log_level"] == "info" and result["lines"] == 20
    assert code == 0
    assert list(tmp_path.iterdir()) == [], "the bench left its temporary directory behind"
    # The output's shape (not its speed): every field, in order, with its type.
    shape = {"mode": str, "calls": int, "ok": int, "errors": dict, "ended": int,
             "answered": int, "cdrs": int, "missing_cdrs": int, "wall_s": float,
             "calls_per_s": float, "daemon_exit": int, "lines": int, "log_level": str,
             "window": int, "rate": type(None), "timed_out": bool, "dispositions": dict,
             "daemon_cpu_s": float, "daemon_cpu_ms_per_call": float, "recorded": bool}
    assert list(result) == list(shape)
    for key, kind in shape.items():
        assert type(result[key]) is kind, (key, result[key])
    assert result["dispositions"] == {"ANSWERED": 200}
    assert result["recorded"] is False       # the call path alone unless --record
    assert result["window"] == 16  # 80 % of the lines in flight
    if sys.platform == "linux":  # /proc: the daemon's CPU time is measured
        assert result["daemon_cpu_s"] > 0
        assert result["daemon_cpu_ms_per_call"] == pytest.approx(
            result["daemon_cpu_s"] * 1000 / result["ended"], abs=0.005)


def test_live_bench_with_record_records_every_call_and_still_passes(capsys, monkeypatch,
                                                                     tmp_path):
    import switchd.bench as bench

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen: list[dict] = []
    real = bench.live_config

    def spy(*args, **kw):
        doc = real(*args, **kw)
        seen.append(doc)
        return doc

    monkeypatch.setattr(bench, "live_config", spy)
    code, result = _run_json(capsys, ["bench", "calls", "--live", "--json", "--calls", "40",
                                      "--lines", "10", "--record"])
    assert code == 0 and result["recorded"] is True and result["cdrs"] == 40
    assert seen[0]["recording"] == {"mode": "on_answer"}

