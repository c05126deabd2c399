"""The report facts (switchd.reports.facts): folded from the queue_log as the daemon
writes it, stored in switchd.db, and read by reports instead of the file — with the
file's figures exactly.

The real daemon takes queue calls (answered, abandoned, paused agents, a restart with
agents logged in), then ``switchd report`` runs twice on its state directory: from the
stored facts and with ``--queue-log``; every figure must agree. The writer's retries
never fold a line twice; memory stays bounded and late lines still merge.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from switchd.reports.facts import BUCKET_S, MAX_CALLS, FactsFold
from switchd.store.facts_writer import FactsWriter, facts_steps, write_facts_sync
from switchd.store.offline import write_state
from switchd.store.sqlite import Store
from tests.daemon import Client, make_config, running

QUEUE_DNIS = "6000"


def _config() -> dict[str, Any]:
    agents = [{"id": f"a{i}", "extension": 200 + i, "queues": {"q": 0, "r": 1},
               "login": True} for i in (1, 2)]
    queues = {"q": {"strategy": "linear", "ring_timeout_s": 10, "wrapup_s": 1,
                    "music": True},
              "r": {"strategy": "linear", "ring_timeout_s": 10, "wrapup_s": 1,
                    "music": True}}
    return make_config(queues=queues, agents=agents, queue_routes={QUEUE_DNIS: "q"},
                       **{"sim.bots.mode": "auto", "sim.bots.answer_after_s": 0.2,
                          "sim.bots.talk_s": [1.0, 1.0],
                          "sim.caller_talk_s": [3600, 3600]})


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _report(state: Path, start: float, end: float, *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "switchd", "report", "--state-dir", str(state), "--from",
         _iso(start), "--to", _iso(end), "--format", "json", *args],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _same(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two report documents differ (floats to 1e-9 relative), ``source`` aside."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) if k != "source"
                for d in _same(a.get(k), b.get(k), f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} rows vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in _same(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        return [] if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) else [f"{path}: {a} vs {b}"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


async def _admin(port: int) -> Client:
    c = await Client.connect(port)
    await c.ok("AUTH user=admin secret=demo-admin")
    await c.ok("SUB events=queue.*,call.ended,agent.state")
    return c


async def _traffic(port: int) -> None:
    """Answered calls, one abandoned while both agents talk, a pause and a ready."""
    c = await _admin(port)
    first = []
    for i in range(2):
        call = (await c.ok(f"SIM.CALL caller=1391000000{i} dnis={QUEUE_DNIS}"))["call"]
        await c.wait_event("queue.connected", call=call, timeout=10)
        first.append(call)
    lost = (await c.ok(f"SIM.CALL caller=13910000009 dnis={QUEUE_DNIS}"))["call"]
    await c.wait_event("queue.join", call=lost)
    await c.ok(f"SIM.HANGUP call={lost}")
    await c.wait_event("queue.abandon", call=lost, timeout=10)
    for call in first:
        await c.wait_event("call.ended", call=call, timeout=10)
    await c.wait_event("agent.state", agent="a2", state="ready", timeout=10)
    await c.ok("SUPER.AGENT agent=a2 state=not_ready reason=lunch")
    call = (await c.ok(f"SIM.CALL caller=13910000005 dnis={QUEUE_DNIS}"))["call"]
    await c.wait_event("call.ended", call=call, timeout=15)
    await c.ok("SUPER.AGENT agent=a2 state=ready")
    await asyncio.sleep(1.2)       # the last wrap-ups end (1 s): their WRAPUPEND lines
    await c.close()


async def test_the_daemons_stored_facts_give_the_queue_log_files_figures(tmp_path: Path
                                                                         ) -> None:
    began = time.time()
    with running(tmp_path, _config()) as d:
        await _traffic(d.port)
        # REPORT on the socket reads the stored facts (the writers flushed first).
        c = await _admin(d.port)
        lines = await c.cmd("REPORT by=hour", timeout=20)
        total = [x for x in lines if "kind=total" in x]
        assert total and "source=report_facts" in total[0], lines
        assert d.stop() == 0
    # A second run on the same state: the agents log in again; it stops with both
    # logged in (their spans stay open in agent_open until the next QUEUESTART).
    with running(tmp_path, _config()) as d:
        await _traffic(d.port)
        assert d.stop() == 0
    with running(tmp_path, _config()) as d:
        assert d.stop() == 0
    state = d.state_dir
    start = math.floor(began / BUCKET_S) * BUCKET_S
    end = math.ceil((time.time() + 1) / BUCKET_S) * BUCKET_S
    for args in ((), ("--by", "hour", "--queue", "q"), ("--agent", "a2"),
                 ("--queue", "r"), ("--tz", "Asia/Kathmandu", "--by", "hour")):
        stored = _report(state, start, end, *args)
        from_file = _report(state, start, end, "--queue-log", *args)
        assert (stored["source"], from_file["source"]) == ("report_facts", "queue_log")
        assert _same(stored, from_file) == [], args
    whole = _report(state, start, end)
    t = whole["total"]
    assert (t["offered"], t["answered"], t["abandoned"]) == (8, 6, 2)
    agents = {a["agent"]: a for a in whole["agents"]}
    assert agents["a2"]["not_ready_lunch_s"] > 0 and agents["a1"]["occupancy"] > 0
    with sqlite3.connect(state / "switchd.db") as db:
        # Everything the runs left open was closed by the next QUEUESTART but the last
        # run's own logins; every stored call has its CDR.
        assert db.execute("SELECT count(*) FROM call_facts WHERE has_cdr = 0").fetchone() == (0,)
        open_spans = db.execute("SELECT DISTINCT agent FROM agent_open").fetchall()
        assert sorted(open_spans) == [("a1",), ("a2",)]


def _line(t: float, cid: str, q: str, a: str, ev: str, *data: str) -> str:
    return "|".join((str(t), cid, q, a, ev, *data))


def test_a_pause_across_quarter_hours_is_cut_at_each_and_reasons_kept() -> None:
    t0 = 1_796_083_200.0          # a quarter hour
    fold = FactsFold(t0)
    fold.feed_all([_line(t0, "NONE", "q", "a1", "ADDMEMBER"),
                   _line(t0, "NONE", "r", "a1", "ADDMEMBER"),
                   _line(t0 + 600, "NONE", "q", "a1", "PAUSE", "lunch"),
                   _line(t0 + 600, "NONE", "r", "a1", "PAUSE", "lunch"),   # per queue: once
                   _line(t0 + 2400, "NONE", "q", "a1", "UNPAUSE"),
                   _line(t0 + 2400, "NONE", "r", "a1", "UNPAUSE")])
    batch = fold.take()
    per = {(k[2] - t0, k[1]): v for k, v in batch.not_ready.items() if k[3] == "lunch"}
    assert per == {(0.0, ""): 300.0, (900.0, ""): 900.0, (1800.0, ""): 600.0,
                   (0.0, "q"): 300.0, (900.0, "q"): 900.0, (1800.0, "q"): 600.0,
                   (0.0, "r"): 300.0, (900.0, "r"): 900.0, (1800.0, "r"): 600.0}
    # Still logged in: an open span, no logged seconds stored yet.
    assert sorted((s.agent, s.queue, s.kind) for s in batch.opened) == [
        ("a1", "", "logged"), ("a1", "q", "logged"), ("a1", "r", "logged")]
    assert all(v[6] == 0 for v in batch.agent_time.values())


def test_a_call_forgotten_under_load_still_merges_its_late_wrapup(tmp_path: Path) -> None:
    t0 = 1_796_083_200.0
    write_state(tmp_path, [], [], facts_since=t0)
    fold = FactsFold(t0)
    fold.feed_all([_line(t0, "c0", "q", "NONE", "ENTERQUEUE", "", "100"),
                   _line(t0 + 5, "c0", "q", "a1", "CONNECT", "5", "x", "1"),
                   _line(t0 + 65, "c0", "q", "a1", "COMPLETEAGENT", "5", "60", "1"),
                   _line(t0 + 70, "c0", "q", "a1", "WRAPUPEND", "5")])
    conn = sqlite3.connect(tmp_path / "switchd.db")
    write_facts_sync(conn, facts_steps(fold.take()))
    # Many calls later c0 is forgotten (bounded memory); another wrap-up line still adds.
    fold.feed_all(_line(t0 + 80, f"x{i}", "q", "NONE", "ENTERQUEUE", "", "1")
                  for i in range(MAX_CALLS + 10))
    write_facts_sync(conn, facts_steps(fold.take()))
    fold.feed(_line(t0 + 90, "c0", "q", "a2", "WRAPUPEND", "7"))
    write_facts_sync(conn, facts_steps(fold.take()))
    row = conn.execute("SELECT first_enter, connected, connect_hold, wrapup_s, wrapups "
                       "FROM call_facts WHERE uniqueid = 'c0' AND queue = ''").fetchone()
    conn.close()
    assert row == (t0, 1, 5.0, 12.0, 2)


class _FlakyStore:
    """A store whose first two writes fail (a locked or full database)."""

    def __init__(self, db: Path) -> None:
        self.db, self.fails = db, 2

    async def write_rows(self, steps: Any) -> None:
        if self.fails:
            self.fails -= 1
            raise sqlite3.OperationalError("database is locked")
        conn = sqlite3.connect(self.db)
        try:
            write_facts_sync(conn, steps)
        finally:
            conn.close()


async def test_a_failed_write_goes_again_as_folded_never_folded_twice(tmp_path: Path) -> None:
    t0 = 1_796_083_200.0
    await asyncio.to_thread(write_state, tmp_path, [], [], facts_since=t0)
    store = _FlakyStore(tmp_path / "switchd.db")
    writer = FactsWriter(store, FactsFold(t0), retry_initial_s=0.01,  # type: ignore[arg-type]
                         retry_max_s=0.02)
    writer.start()
    for line in (_line(t0, "c1", "q", "NONE", "ENTERQUEUE", "", "1"),
                 _line(t0 + 30, "c1", "q", "a1", "WRAPUPEND", "10"),
                 _line(t0 + 40, "c1", "q", "a1", "WRAPUPEND", "5")):
        writer.submit(line)
    await asyncio.wait_for(writer.flush(), 5)
    assert await writer.close() == 0 and store.fails == 0
    with sqlite3.connect(tmp_path / "switchd.db") as conn:
        assert conn.execute("SELECT wrapup_s, wrapups FROM call_facts WHERE uniqueid = 'c1' "
                            "AND queue = 'q'").fetchone() == (15.0, 2)
        assert conn.execute("SELECT sum(wrapup_s) FROM agent_time WHERE agent = 'a1' "
                            "AND queue = ''").fetchone() == (15.0,)


async def test_a_store_opened_at_schema_7_has_the_facts_tables(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "switchd.db")
    try:
        names = {r[0] for r in await store.fetch_rows(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        await store.close()
    assert {"call_facts", "agent_time", "agent_not_ready", "agent_open",
            "report_meta"} <= names


@pytest.mark.parametrize("end_offset", [60.0 * 7, 0.0])
def test_only_whole_quarter_hours_read_the_stored_facts(tmp_path: Path,
                                                        end_offset: float) -> None:
    from switchd.reports.stored import usable

    t0 = 1_796_083_200.0
    write_state(tmp_path, [], [_line(t0, "NONE", "NONE", "NONE", "QUEUESTART", "")],
                facts_since=t0)
    db = tmp_path / "switchd.db"
    now = t0 + 86400
    assert usable(db, [t0, t0 + 3600 + end_offset], now=now) is (end_offset == 0.0)
    assert usable(db, [t0, now - 7], now=now)               # up to now: the end may be any
    assert not usable(db, [t0 - BUCKET_S, t0 + 3600], now=now)   # before the facts began
    assert not usable(db, [t0 + 60, t0 + 3600], now=now)


async def test_lines_the_facts_never_got_make_a_gap_that_reports_read_from_the_file(
        tmp_path: Path) -> None:
    from switchd.reports.stored import usable
    from switchd.store.facts_writer import start_facts

    t0 = 1_796_083_200.0
    stored_lines = [_line(t0, "NONE", "NONE", "NONE", "QUEUESTART", ""),
                    _line(t0 + 10, "c1", "q", "NONE", "ENTERQUEUE", "", "1"),
                    _line(t0 + 10, "c2", "q", "NONE", "ENTERQUEUE", "", "2")]
    await asyncio.to_thread(write_state, tmp_path, [], stored_lines, facts_since=t0)
    db, log_file = tmp_path / "switchd.db", tmp_path / "queue_log"
    now = t0 + 7200
    # Same tail: nothing to say.
    store = await Store.open(db)
    try:
        await start_facts(store, queue_log=log_file, now=now)
    finally:
        await store.close()
    assert usable(db, [t0, t0 + 3600], now=now + 86400)
    # A crash: the file got a line (at the same second) the facts never did.
    with log_file.open("a") as f:
        f.write(_line(t0 + 10, "c3", "q", "NONE", "ABANDON", "1", "1", "9") + "\n")
    store = await Store.open(db)
    try:
        await start_facts(store, queue_log=log_file, now=now)
    finally:
        await store.close()
    assert not usable(db, [t0, t0 + 3600], now=now + 86400)        # overlaps the gap
    assert not usable(db, [t0 + 5400, t0 + 7200], now=now + 86400)
    assert usable(db, [t0 + 7200, t0 + 9000], now=now + 86400)     # after the restart


async def test_a_writer_that_cannot_keep_up_gives_up_and_marks_a_gap(tmp_path: Path) -> None:
    from switchd.reports.stored import usable

    t0 = 1_796_083_200.0
    await asyncio.to_thread(write_state, tmp_path, [], [], facts_since=t0)
    store = _FlakyStore(tmp_path / "switchd.db")
    store.fails = 10**9                         # a database failing for good, for now
    writer = FactsWriter(store, FactsFold(t0), max_pending=5,  # type: ignore[arg-type]
                         retry_initial_s=0.01, retry_max_s=0.01)
    writer.start()
    for i in range(8):
        writer.submit(_line(t0 + 60 * i, f"c{i}", "q", "NONE", "ENTERQUEUE", "", "1"))
    assert writer.gap_from == t0 + 300 and writer.pending == 5   # the 6th line gave up
    store.fails = 0                             # the disk is back: what was kept is written
    await asyncio.wait_for(writer.flush(), 5)
    await writer.close()
    db = tmp_path / "switchd.db"
    assert usable(db, [t0, t0 + 900], now=t0) is False            # overlaps the gap
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM call_facts WHERE queue = ''"
                            ).fetchone() == (5,)


def test_a_span_longer_than_a_day_is_stored_whole_and_reported_as_the_file_does(
        tmp_path: Path) -> None:
    from switchd.events import QueueLogEntry
    from tests.report_stored import reports_by_both_paths

    t0 = 1_796_083_200.0
    log = [QueueLogEntry(t0, "NONE", "q", "a1", "ADDMEMBER", ()),
           QueueLogEntry(t0 + 3600, "NONE", "q", "a1", "PAUSE", ("lunch",)),
           QueueLogEntry(t0 + 3 * 86400, "NONE", "q", "a1", "UNPAUSE", ()),
           QueueLogEntry(t0 + 3 * 86400 + 600, "NONE", "q", "a1", "REMOVEMEMBER", ())]
    from_file, stored = reports_by_both_paths(tmp_path, [], log, by="day")
    assert [a.agent for a in stored.agents] == ["a1"]
    assert stored.agents == from_file.agents
    [a1] = stored.agents
    assert dict(a1.not_ready_s)["lunch"] == 3 * 86400 - 3600
    with sqlite3.connect(next(tmp_path.glob("state*")) / "switchd.db") as conn:
        kinds = sorted(r[0] for r in conn.execute("SELECT kind FROM agent_spans"))
        buckets = conn.execute("SELECT count(*) FROM agent_not_ready").fetchone()[0]
    assert kinds == ["logged", "logged", "paused", "paused"] and buckets == 0


def test_an_agent_seen_without_addmember_counts_from_the_runs_first_line_across_batches(
        ) -> None:
    # The run's start is its first line, not the first line of each batch written.
    t0 = 1_796_083_200.0
    fold = FactsFold(None)
    fold.feed(_line(t0, "NONE", "NONE", "NONE", "QUEUESTART", ""))
    fold.take()
    fold.feed(_line(t0 + 600, "c1", "q", "a9", "CONNECT", "1", "x", "1"))
    opened = {(s.agent, s.queue): s.since for s in fold.take().opened}
    assert opened == {("a9", ""): t0, ("a9", "q"): t0}
