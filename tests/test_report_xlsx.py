"""``switchd report --format xlsx``: the workbook read back agrees with the JSON report, and
the command refuses (exit 2) without --out or without openpyxl."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from switchd.__main__ import main
from switchd.bench_report import make_state

RANGE = ["--from", "2026-12-01", "--to", "2026-12-31", "--tz", "UTC"]


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("xlsx-state")
    make_state(path, 400, seed=7)
    return path


def _json(state: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["report", "--state-dir", str(state), *RANGE, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_workbook_has_one_sheet_per_table_matching_json(state, tmp_path, capsys):
    openpyxl = pytest.importorskip(
        "openpyxl", reason="openpyxl not installed: pip install 'switchd[xlsx]'")
    doc = _json(state, capsys)
    out = tmp_path / "r.xlsx"
    assert main(["report", "--state-dir", str(state), *RANGE, "--format", "xlsx",
                 "--out", str(out)]) == 0
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == ["intervals", "daily", "monthly", "agents", "definitions"]

    rows = list(wb["intervals"].iter_rows(values_only=True))
    header = list(rows[0])
    assert header[:3] == ["interval", "start", "end"] and "offered" in header and "sl1" in header
    body = [dict(zip(header, r, strict=True)) for r in rows[1:]]
    assert [r["interval"] for r in body] == [iv["interval"] for iv in doc["intervals"]] + ["total"]
    assert len(body) == 31  # 30 days and the total
    for got, want in zip(body, [*doc["intervals"], doc["total"]], strict=True):
        for key in ("offered", "answered", "abandoned", "blocked", "ivr_only", "queue_calls"):
            assert got[key] == want[key], key
        for key in ("connection_rate", "loss_rate", "sl1", "asa_s", "avg_talk_s"):
            if want[key] is None:
                assert got[key] is None, key
            else:
                assert got[key] == pytest.approx(want[key]), key
    # The total row counts every inbound CDR of the month (hand check on the database).
    with sqlite3.connect(state / "switchd.db") as conn:
        (inbound,) = conn.execute("SELECT count(*) FROM cdr WHERE direction = 'inbound'").fetchone()
    assert body[-1]["offered"] == inbound > 300
    ws = wb["intervals"]
    rate_col = header.index("connection_rate") + 1
    assert ws.cell(row=2, column=rate_col).number_format == "0.0%"

    # The traffic tables: the month's days (these are by day already) and its one month.
    daily = list(wb["daily"].iter_rows(values_only=True))
    assert list(daily[0][:4]) == ["date", "offered", "answered", "connection_rate"]
    assert [r[0] for r in daily[1:]] == [d["interval"] for d in doc["daily"]]
    assert [r[1] for r in daily[1:]] == [d["offered"] for d in doc["intervals"]]
    monthly = list(wb["monthly"].iter_rows(values_only=True))
    assert [r[:3] for r in monthly[1:]] == [(m["interval"], m["offered"], m["answered"])
                                            for m in doc["monthly"]]
    assert sum(m["offered"] for m in doc["monthly"]) == doc["total"]["offered"]

    agents = list(wb["agents"].iter_rows(values_only=True))
    a_header = list(agents[0])
    assert a_header[:3] == ["agent", "calls_handled", "talk_s"]
    assert [r[0] for r in agents[1:]] == [a["agent"] for a in doc["agents"]]
    assert sum(r[1] for r in agents[1:]) == sum(a["calls_handled"] for a in doc["agents"]) > 0

    defs = {r[0]: r[1] for r in wb["definitions"].iter_rows(min_row=2, values_only=True)}
    assert defs["loss_rate"] == "(blocked + abandoned) / offered"
    assert "20 s" in defs["T (sl_threshold_s)"]


def test_xlsx_needs_out(state, capsys):
    assert main(["report", "--state-dir", str(state), *RANGE, "--format", "xlsx"]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "xlsx" in err


def test_xlsx_without_openpyxl_says_how_to_install(state, tmp_path, capsys, monkeypatch):
    import switchd.reports.xlsx as xlsx

    monkeypatch.setattr(xlsx, "available", lambda: False)
    out = tmp_path / "r.xlsx"
    assert main(["report", "--state-dir", str(state), *RANGE, "--format", "xlsx",
                 "--out", str(out)]) == 2
    assert "pip install 'switchd[xlsx]'" in capsys.readouterr().err
    assert not out.exists()
