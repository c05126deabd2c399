"""``switchd report``: the command run as a subprocess on a real state directory.

The state directory holds a SQLite ``switchd.db`` written by the project's own Store
(``insert_cdrs``) and a ``queue_log`` file in the ACD's format. The figures checked
are computed by hand below, from the calls' definitions in ``switchd.reports.figures``.

The calls (all times UTC; Europe/Berlin is UTC+1 in December):

========  ====================  =========  =====  ======  ====  ==================
call      start                 direction  queue  wait s  talk  outcome
========  ====================  =========  =====  ======  ====  ==================
c0        2026-12-06 22:30      inbound    sales  8       20    answered (before)
c1        2026-12-07 09:00      inbound    sales  10      60    answered by a1
c2        2026-12-07 09:10      inbound    sales  30      120   answered by a1
c3        2026-12-07 09:20      inbound    sales  40      -     ABANDON after 40 s
c4        2026-12-07 10:00      inbound    -      0       -     BUSY, trunks_full
c5        2026-12-07 11:00      outbound   -      3       45    answered (not offered)
c6        2026-12-07 23:30      inbound    sales  5       30    answered by a1
c7        2026-12-08 22:59:30   inbound    sales  40      -     ABANDON at 23:00:10
c9        2026-12-09 12:00      inbound    sales  6       10    answered (after)
========  ====================  =========  =====  ======  ====  ==================

In Berlin, ``--from 2026-12-07 --to 2026-12-09`` is [2026-12-06 23:00Z, 2026-12-08
23:00Z): c0 (local 23:30 on the 6th) and c9 are outside; c6 (local 00:30 on the 8th)
counts on the 8th; c7 starts 30 s before the end and abandons 10 s after it: its
ABANDON counts on the 8th, the day of the call. Day 7: offered 4 (c1-c4), answered 2,
abandoned 1, blocked 1, ASA (10 + 30) / 2 = 20 s, SL1 (T = 20 s) = 1 / (2 + 1). Day 8:
offered 2 (c6, c7), answered 1, abandoned 1.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from switchd.events import Cdr
from switchd.reports.data import load_call_columns, start_call_columns, summarize_queue_log
from switchd.store import Store

ROOT = Path(__file__).resolve().parent.parent
BERLIN = ("--tz", "Europe/Berlin", "--from", "2026-12-07", "--to", "2026-12-09")


def at(text: str) -> float:
    """Epoch seconds of a UTC time ``YYYY-MM-DD HH:MM``."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp()


def cdr(uid: str, start: float, *, wait: float, talk: int | None, direction: str = "inbound",
        queue: str | None = "sales", agent: str | None = "a1", disposition: str | None = None,
        blocked: str | None = None) -> Cdr:
    """A CDR answered after ``wait`` s and talked ``talk`` s (None: not answered)."""
    answer = None if talk is None else start + wait
    end = start + wait + (talk or 0)
    return Cdr(uniqueid=uid, linkedid=uid, src="+4930123", dst="100", clid="Caller", start=start,
               answer=answer, end=end, duration=round(end - start), billsec=talk or 0,
               disposition=disposition or ("ANSWERED" if talk is not None else "NO ANSWER"),
               direction=direction, queue=queue, agent=agent if talk is not None else None,
               wait_s=wait, blocked_reason=blocked)


CALLS = [
    cdr("c0", at("2026-12-06 22:30"), wait=8, talk=20),
    cdr("c1", at("2026-12-07 09:00"), wait=10, talk=60),
    cdr("c2", at("2026-12-07 09:10"), wait=30, talk=120),
    cdr("c3", at("2026-12-07 09:20"), wait=40, talk=None),
    cdr("c4", at("2026-12-07 10:00"), wait=0, talk=None, queue=None, disposition="BUSY",
        blocked="trunks_full"),
    cdr("c5", at("2026-12-07 11:00"), wait=3, talk=45, direction="outbound", queue=None,
        agent=None),
    cdr("c6", at("2026-12-07 23:30"), wait=5, talk=30),
    cdr("c7", at("2026-12-08 22:59") + 30, wait=40, talk=None),
    cdr("c9", at("2026-12-09 12:00"), wait=6, talk=10),
]


def queue_log_lines() -> list[str]:
    """The ACD's lines for the queued calls above, plus one malformed line."""
    lines: list[str] = []
    for c in CALLS:
        if c.queue is None:
            continue
        t = int(c.start)
        lines.append(f"{t}|{c.uniqueid}|sales|NONE|ENTERQUEUE||+4930123")
        wait = int(c.wait_s)
        if c.answer is None:
            lines.append(f"{t + wait}|{c.uniqueid}|sales|NONE|ABANDON|1|1|{wait}")
        else:
            lines.append(f"{t + wait}|{c.uniqueid}|sales|a1|CONNECT|{wait}|{c.uniqueid}|2")
            lines.append(f"{t + wait + c.billsec}|{c.uniqueid}|sales|a1|COMPLETECALLER|{wait}|"
                         f"{c.billsec}|1")
    lines.append("this is not a queue_log line")
    return lines


def _write_state(state: Path, *, with_queue_log: bool = True) -> Path:
    async def insert() -> None:
        store = await Store.open(state / "switchd.db")
        try:
            await store.insert_cdrs(CALLS)
        finally:
            await store.close()

    asyncio.run(insert())
    if with_queue_log:
        (state / "queue_log").write_text("\n".join(queue_log_lines()) + "\n", encoding="utf-8")
    return state


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state directory with the CDRs and queue_log of the module docstring."""
    return _write_state(tmp_path_factory.mktemp("state"))


def report(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m switchd report ARGS`` and return the finished process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "switchd", "report", *args], cwd=cwd or ROOT,
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def json_report(*args: str) -> dict:
    proc = report(*args, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# --- figures ---------------------------------------------------------------------------


def test_json_by_day_in_berlin_counts_each_call_on_its_local_day(state: Path) -> None:
    doc = json_report("--state-dir", str(state), *BERLIN)
    days = {row["interval"]: row for row in doc["intervals"]}
    assert list(days) == ["2026-12-07", "2026-12-08"]
    assert days["2026-12-07"]["start"] == "2026-12-07T00:00:00+01:00"
    assert (days["2026-12-07"]["offered"], days["2026-12-08"]["offered"]) == (4, 2)
    assert (days["2026-12-07"]["answered"], days["2026-12-08"]["answered"]) == (2, 1)
    assert days["2026-12-07"]["abandoned"] == 1
    assert days["2026-12-08"]["abandoned"] == 1   # logged after --to, counted with its call
    assert days["2026-12-07"]["blocked"] == 1
    assert days["2026-12-07"]["asa_s"] == pytest.approx(20.0)
    assert days["2026-12-07"]["sl1"] == pytest.approx(1 / 3)
    assert days["2026-12-08"]["asa_s"] == pytest.approx(5.0)
    total = doc["total"]
    assert (total["offered"], total["answered"], total["abandoned"]) == (6, 3, 2)
    assert doc["tz"] == "Europe/Berlin" and doc["by"] == "day"
    assert doc["settings"] == {"sl_threshold_s": 20.0, "short_abandon_s": 5.0}


def test_json_agents_and_the_malformed_queue_log_line_is_reported(state: Path) -> None:
    proc = report("--state-dir", str(state), *BERLIN, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert "skipped 1 malformed line" in proc.stderr
    agents = {a["agent"]: a for a in json.loads(proc.stdout)["agents"]}
    assert agents["a1"]["calls_handled"] == 3
    assert agents["a1"]["talk_s"] == pytest.approx(60 + 120 + 30)


def test_the_zone_decides_the_day_a_call_counts_on(state: Path) -> None:
    """In UTC, c6 (23:30Z on the 7th) is on the 7th, and c0 stays out."""
    doc = json_report("--state-dir", str(state), "--tz", "UTC", "--from", "2026-12-07",
                      "--to", "2026-12-08")
    assert [(r["interval"], r["offered"]) for r in doc["intervals"]] == [("2026-12-07", 5)]


def test_iso_times_with_an_offset_or_z_bound_the_range(state: Path) -> None:
    """09:00Z to 10:00Z given two ways: c1-c3 in, c4 (10:00Z) out (the end is excluded)."""
    doc = json_report("--state-dir", str(state), "--tz", "Asia/Shanghai", "--from",
                      "2026-12-07T10:00+01:00", "--to", "2026-12-07T10:00Z")
    assert doc["total"]["offered"] == 3


def test_by_hour_puts_calls_in_their_local_hour(state: Path) -> None:
    doc = json_report("--state-dir", str(state), "--tz", "Europe/Berlin", "--from",
                      "2026-12-07", "--to", "2026-12-08", "--by", "hour")
    hours = {r["interval"]: r["offered"] for r in doc["intervals"]}
    assert len(hours) == 24
    assert hours["2026-12-07 10:00"] == 3   # c1-c3 at 09:xxZ
    assert hours["2026-12-07 11:00"] == 1   # c4
    assert sum(hours.values()) == 4


def test_queue_filter_keeps_only_that_queues_calls(state: Path) -> None:
    doc = json_report("--state-dir", str(state), *BERLIN, "--queue", "sales")
    assert [r["offered"] for r in doc["intervals"]] == [3, 2]
    other = json_report("--state-dir", str(state), *BERLIN, "--queue", "support")
    assert other["total"]["offered"] == 0
    assert other["total"]["connection_rate"] is None


def test_csv_has_a_row_per_interval_a_total_then_the_agents(state: Path) -> None:
    proc = report("--state-dir", str(state), *BERLIN, "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    # text=True reads CRLF as LF: the sections are split by one empty line.
    intervals_part, agents_part = proc.stdout.split("\n\n", 1)
    rows = list(csv.DictReader(io.StringIO(intervals_part)))
    assert [r["interval"] for r in rows] == ["2026-12-07", "2026-12-08", "total"]
    assert [int(r["offered"]) for r in rows] == [4, 2, 6]
    assert [int(r["answered"]) for r in rows] == [2, 1, 3]
    assert rows[2]["start"] == "2026-12-07T00:00:00+01:00"
    assert rows[2]["end"] == "2026-12-09T00:00:00+01:00"
    agents = list(csv.DictReader(io.StringIO(agents_part)))
    assert [(a["agent"], a["calls_handled"]) for a in agents] == [("a1", "3")]


def test_table_shows_the_days_the_total_and_the_busiest_hour(state: Path) -> None:
    proc = report("--state-dir", str(state), *BERLIN)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for text in ("Calls by day, Europe/Berlin", "2026-12-07", "2026-12-08", "total",
                 "busiest hour:", "SL1", "a1"):
        assert text in out, f"{text!r} not in the table:\n{out}"
    day7 = next(line for line in out.splitlines() if "2026-12-07" in line)
    assert day7.split("│")[2].strip() == "4"  # offered


def test_out_writes_the_file_and_nothing_on_stdout(state: Path, tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    proc = report("--state-dir", str(state), *BERLIN, "--format", "json", "--out", str(target))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert json.loads(target.read_text(encoding="utf-8"))["total"]["offered"] == 6


def test_without_a_queue_log_it_warns_and_reports_the_cdr_figures(tmp_path: Path) -> None:
    state = _write_state(tmp_path, with_queue_log=False)
    proc = report("--state-dir", str(state), *BERLIN, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert f"no queue_log {state / 'queue_log'}" in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["total"]["offered"] == 6 and doc["total"]["abandoned"] == 0


# --- bad arguments and missing data -------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (("--by", "fortnight"), "invalid choice: 'fortnight'"),
    (("--format", "xml"), "invalid choice: 'xml'"),
    (("--tz", "Mars/Olympus"), "'Mars/Olympus' is not an IANA time zone"),
    (("--from", "07/12/2026"), "'07/12/2026' is not a date YYYY-MM-DD"),
    (("--from", "2026-12-09", "--to", "2026-12-07"), "--from must be before --to"),
    (("--from", "2026-12-07", "--to", "2026-12-07"), "--from must be before --to"),
    (("--sl-threshold", "0"), "--sl-threshold 0: expected more than 0 seconds"),
    (("--sl-threshold", "soon"), "--sl-threshold soon: expected a number of seconds"),
    (("--short-abandon", "-1"), "--short-abandon -1: expected 0 or more seconds"),
])
def test_bad_arguments_exit_2_with_a_message(state: Path, args: tuple[str, ...],
                                             message: str) -> None:
    proc = report("--state-dir", str(state), *args)
    assert proc.returncode == 2, proc.stdout
    assert message in proc.stderr
    assert proc.stdout == ""


def test_a_missing_database_is_named(tmp_path: Path) -> None:
    proc = report("--state-dir", str(tmp_path), *BERLIN)
    assert proc.returncode == 1
    assert f"no database {tmp_path / 'switchd.db'}" in proc.stderr
    assert "--state-dir" in proc.stderr
    assert not (tmp_path / "switchd.db").exists(), "the report must not create the database"


def test_no_config_and_no_state_dir_says_what_to_give(tmp_path: Path) -> None:
    proc = report(*BERLIN, cwd=tmp_path)
    assert proc.returncode == 2
    assert "no config file config.yaml" in proc.stderr and "--state-dir" in proc.stderr


def test_a_file_that_is_not_a_switchd_database_exits_1(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "switchd.db").close()
    proc = report("--state-dir", str(tmp_path), *BERLIN)
    assert proc.returncode == 1
    assert "cannot read" in proc.stderr and "no such table: cdr" in proc.stderr


# --- the readers ---------------------------------------------------------------------------


def test_call_columns_select_the_start_range_and_convert_times(state: Path) -> None:
    cols = load_call_columns(state / "switchd.db", at("2026-12-07 00:00"),
                             at("2026-12-07 09:10"))
    assert cols.uid == ["c1"]   # end excluded: c2 starts at 09:10
    assert cols.start[0] == at("2026-12-07 09:00")
    assert cols.answer[0] == pytest.approx(at("2026-12-07 09:00") + 10)
    assert (cols.queue[0], cols.agent[0], cols.wait_s[0], cols.billsec[0]) == (
        "sales", "a1", 10.0, 60)
    assert (cols.inbound[0], cols.answered[0], cols.has_queue[0], cols.blocked[0]) == (
        True, True, True, False)
    unnamed = load_call_columns(state / "switchd.db", at("2026-12-07 00:00"),
                                at("2026-12-07 09:10"), names=False)
    assert unnamed.queue[0] is None and unnamed.has_queue[0]


def test_the_readers_name_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no database .*switchd.db"):
        load_call_columns(tmp_path / "switchd.db", 0.0, 1.0)
    with pytest.raises(FileNotFoundError, match="no database .*switchd.db"):
        start_call_columns(tmp_path / "switchd.db", 0.0, 1.0).result()
    with pytest.raises(FileNotFoundError, match="no queue_log .*queue_log"):
        summarize_queue_log(tmp_path / "queue_log", start=0.0, end=1.0, margin_s=0.0)


def test_queue_log_reader_skips_and_counts_malformed_lines(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    path.write_bytes(b"100|c1|sales|NONE|ENTERQUEUE||+49\n"
                     b"x|c1|sales|NONE|ABANDON|1|1|4\n"    # time not a number
                     b"101|c1|sales\n"                       # too few fields
                     b"\xff\xfe|bad utf-8|q|a|E\n"
                     b"nan|c3|sales|NONE|ENTERQUEUE||+49\n"  # a time that is not finite
                     b"\n"
                     b"   \r\n"
                     b"105|c1|sales|NONE|ABANDON|1|1|5\r\n"  # a CRLF line end
                     b"200|c2|sales|NONE|ENTERQUEUE||+49\n")
    log = summarize_queue_log(path, start=100.0, end=200.0, margin_s=0.0)
    assert log.first_enter == {"c1": 100.0}          # c2 at 200 is outside [100, 200)
    assert log.abandon_wait == {"c1": 5.0}
    assert (log.skipped, log.lines) == (4, 7)


def test_queue_log_with_crlf_line_ends(tmp_path: Path) -> None:
    # A file edited on Windows: the CR must not stick to the last field (a pause reason).
    path = tmp_path / "queue_log"
    path.write_bytes(b"100|NONE|sales|a1|PAUSE|lunch\r\n110|NONE|sales|a1|UNPAUSE|\r\n")
    log = summarize_queue_log(path, start=100.0, end=200.0, margin_s=0.0)
    [a1] = log.agents
    assert a1.not_ready_s == (("lunch", 10.0),) and (log.lines, log.skipped) == (2, 0)


def _forking() -> bool:
    import threading

    return hasattr(os, "fork") and threading.active_count() == 1


def _gone(pid: int | None) -> bool:
    """True when process ``pid`` is no child of this one any more (reaped, not a zombie)."""
    assert pid is not None
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def _in_child(action: Any) -> Any:
    """A stand-in loader that runs ``action`` only in a forked reader (never in pytest)."""
    parent = os.getpid()

    def load(*args: Any, **kw: Any) -> None:
        if os.getpid() == parent:
            raise AssertionError("the CDRs were read in place: no fork")
        action()

    return load


def _need_fork() -> None:
    if not _forking():
        pytest.skip("start_call_columns reads in place in a threaded process (no fork)")


def test_the_forked_cdr_reader_dying_is_a_clear_error(state: Path, monkeypatch) -> None:
    import signal

    import switchd.reports.data as data

    _need_fork()
    monkeypatch.setattr(data, "_load",
                        _in_child(lambda: os.kill(os.getpid(), signal.SIGKILL)))
    reader = data.start_call_columns(state / "switchd.db", 0.0, 2e9)
    pid = reader.pid
    with pytest.raises(OSError, match="died of signal 9"):
        reader.result()
    assert _gone(pid) and reader.pid is None


def test_ctrl_c_while_waiting_kills_and_reaps_the_cdr_reader(state: Path, monkeypatch) -> None:
    # Found in review: with a process pool, Ctrl-C could hang the command for ever.
    import signal
    import time

    import switchd.reports.data as data

    _need_fork()
    monkeypatch.setattr(data, "_load", _in_child(lambda: time.sleep(60)))

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        reader = data.start_call_columns(state / "switchd.db", 0.0, 2e9)
        pid = reader.pid
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        began = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            reader.result()
        assert time.monotonic() - began < 5
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert _gone(pid) and reader.pid is None


def test_a_call_that_started_before_the_range_and_queued_after_counts_once(
        tmp_path: Path) -> None:
    # Found in review: the caller spent 15 s in the IVR before midnight (the CDR starts on
    # the 6th) and joined the queue after it. The report of the 7th read the ENTERQUEUE
    # but not the CDR, and counted a second, unanswered call: days did not add up.
    from switchd.store.offline import write_state

    start = at("2026-12-06 23:59") + 50
    call = cdr("late", start, wait=10, talk=60)
    write_state(tmp_path, [call], [
        f"{int(start) + 15}|late|sales|NONE|ENTERQUEUE||+4930123",
        f"{int(start) + 25}|late|sales|a1|CONNECT|10|late|2",
        f"{int(start) + 85}|late|sales|a1|COMPLETECALLER|10|60|1"])
    utc_days = ("--tz", "UTC", "--by", "day")
    sixth = json_report("--state-dir", str(tmp_path), "--from", "2026-12-06", "--to",
                        "2026-12-07", *utc_days)["total"]
    seventh = json_report("--state-dir", str(tmp_path), "--from", "2026-12-07", "--to",
                          "2026-12-08", *utc_days)["total"]
    both = json_report("--state-dir", str(tmp_path), "--from", "2026-12-06", "--to",
                       "2026-12-08", *utc_days)["total"]
    assert (sixth["offered"], sixth["answered"]) == (1, 1)
    assert (seventh["offered"], both["offered"]) == (0, 1)


def test_a_long_queue_log_is_read_around_the_window_only_with_the_same_figures(
        tmp_path: Path, monkeypatch) -> None:
    # A year of log, a one-day report: the read starts at a bisection and stops past the
    # window, in blocks (memory stays bounded); the summary is the same as a full read.
    import switchd.reports.data as data
    from switchd.events import QueueLogEntry
    from switchd.reports.figures import _log_lines
    from switchd.reports.logsum import summarize

    rows = []
    t = at("2026-01-01 00:00")
    for i in range(6000):                       # a call every ~1.5 h over a year
        cid = f"k{i}"
        rows += [QueueLogEntry(t, cid, "sales", "NONE", "ENTERQUEUE", ("", "1")),
                 QueueLogEntry(t + 5, cid, "sales", "a1", "CONNECT", ("5", cid, "1")),
                 QueueLogEntry(t + 65, cid, "sales", "a1", "COMPLETEAGENT", ("5", "60", "1"))]
        if i % 7 == 0:
            rows.append(QueueLogEntry(t + 70, "NONE", "sales", "a1", "PAUSE", ("lunch",)))
            rows.append(QueueLogEntry(t + 700, "NONE", "sales", "a1", "UNPAUSE", ("",)))
        t += 5256.0
    lines = _log_lines(rows)
    path = tmp_path / "queue_log"
    path.write_text("\n".join(lines) + "\nnot a line\n", encoding="utf-8")
    start, end = at("2026-06-10 00:00"), at("2026-06-11 00:00")
    monkeypatch.setattr(data, "CHUNK_BYTES", 4096)     # many blocks, lines cut across them
    monkeypatch.setattr(data, "BISECT_BYTES", 512)
    read_lines = []
    real = data.summarize

    def counting(it, **kw):
        got = list(it)
        read_lines.extend(got)
        return real(got, **kw)

    monkeypatch.setattr(data, "summarize", counting)
    part = data.summarize_queue_log(path, start=start, end=end, margin_s=86400.0)
    whole = summarize(lines, start=start, end=end, window=(start - 86400, end + 86400))
    assert part.first_enter == whole.first_enter and len(part.first_enter) >= 40
    assert part.connect_hold == whole.connect_hold
    assert part.agents == whole.agents
    assert len(read_lines) < len(lines) / 20       # a few days of a year, not all of it
