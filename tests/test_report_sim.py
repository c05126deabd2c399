"""The report of a fixed-seed ``switchd sim`` run agrees with the simulator's own JSON
(issue 18, item 2): the real commands, as a user runs them, on the records the
simulator leaves (``--records``: the CDRs in ``switchd.db`` and the ACD's queue_log).

The simulator's figures are the ACD's exact statistics; the report recomputes them from
the stored records: counts must be equal, waits equal to the CDR's millisecond, and
occupancy within the queue_log's whole seconds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def _run(*args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "switchd", *args], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _sim_and_report(folder: Path, *sim_args: str) -> tuple[dict[str, Any], dict[str, Any]]:
    sim = _run("sim", *sim_args, "--records", str(folder), "--json")
    rec = sim["records"]
    assert rec["dir"] == str(folder)
    report = _run("report", "--state-dir", str(folder), "--from", rec["from"], "--to",
                  rec["to"], "--by", "hour", "--sl-threshold", str(sim["options"]["target_s"]),
                  "--format", "json")
    return sim, report


@pytest.mark.parametrize("seed", [7, 2026])
def test_a_report_of_a_sim_run_agrees_with_the_sim(tmp_path: Path, seed: int) -> None:
    # 8 agents, 6 Erlangs, impatient callers, 30 s wrap-up: waits, abandons, wrap-up.
    sim, rep = _sim_and_report(tmp_path / "rec", "--agents", "8", "--erlangs", "6", "--aht",
                               "180", "--patience", "120", "--wrapup", "30", "--hours", "2",
                               "--seed", str(seed))
    t = rep["total"]
    assert sim["blocked"] == 0
    assert t["offered"] == sim["offered"] > 100
    assert t["queue_calls"] == sim["offered"]
    assert t["answered"] == sim["answered"]
    assert t["abandoned"] == sim["abandoned"] > 0
    assert t["loss_rate"] == pytest.approx(sim["p_abandon"])
    # SL3 = answered within T / queue calls: the simulator's service_level.
    assert t["sl3"] == pytest.approx(sim["service_level"])
    assert t["asa_s"] == pytest.approx(sim["asa_s"], abs=1e-3)
    assert t["avg_wait_s"] == pytest.approx(sim["mean_wait_s"], abs=1e-3)
    assert t["occupancy"] == pytest.approx(sim["occupancy"], abs=0.003)
    assert t["avg_wrapup_s"] == pytest.approx(30.0)
    # Two hours of arrivals: two hour rows adding up to the total.
    assert [r["offered"] for r in rep["intervals"]] and len(rep["intervals"]) == 2
    assert sum(r["offered"] for r in rep["intervals"]) == t["offered"]
    agents = rep["agents"]
    assert len(agents) == 8
    assert sum(a["calls_handled"] for a in agents) == sim["answered"]


def test_blocked_arrivals_never_became_calls(tmp_path: Path) -> None:
    # 4 trunks for 6 agents: arrivals finding every trunk busy are blocked by the board and
    # leave no CDR; the report sees the calls that got in.
    sim, rep = _sim_and_report(tmp_path / "rec", "--agents", "6", "--trunks", "4",
                               "--erlangs", "4", "--aht", "120", "--hours", "1", "--seed", "11")
    t = rep["total"]
    assert sim["blocked"] > 0
    assert t["offered"] == sim["offered"] - sim["blocked"]
    assert t["answered"] == sim["answered"] == t["offered"]
    assert t["occupancy"] == pytest.approx(sim["occupancy"], abs=0.003)


def test_records_refuse_a_folder_that_holds_files(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    (folder / "switchd.db").write_bytes(b"")
    proc = subprocess.run([sys.executable, "-m", "switchd", "sim", "--agents", "2",
                           "--erlangs", "1", "--records", str(folder), "--json"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "new or empty folder" in proc.stderr and str(folder) in proc.stderr
    assert (folder / "switchd.db").read_bytes() == b""
