"""``switchd bench report``: how long ``switchd report`` takes on a big state directory.

The bench builds a throw-away state directory the way the daemon would have left it: a
``switchd.db`` and a ``queue_log`` in Asterisk's format, written by
:func:`switchd.store.offline.write_state`. ``--rows N`` calls are spread evenly over 30 days
(December 2026, UTC) from a fixed seed, so two runs report the same figures. The call
mix of an inbound centre with queues ``sales`` and ``support`` and as many agents
``a1``, ``a2``… as keep them about 85 % busy (8 for the 30 000 calls of an 8-seat month,
78 for 1 000 000); each answered call goes to the agent free soonest, so an agent's
calls never overlap and the occupancy figure stays real:

* 80 % reach a queue and a person answers (ENTERQUEUE, CONNECT|hold|bridged|ring,
  COMPLETEAGENT or COMPLETECALLER|hold|calltime|origpos, WRAPUPEND|30), 1 in 20 of them
  after a RINGNOANSWER of another agent, 1 in 10 with a 20 s HOLD/UNHOLD;
* 10 % abandon in the queue (ENTERQUEUE, ABANDON|pos|origpos|wait), a third of those
  within 5 s;
* 5 % end in the IVR (self-service: ``ivr_path`` set, never queued);
* 3 % are blocked (``blocked_reason`` ``trunks_full``, disposition CONGESTION);
* 2 % are outbound calls by the agents (not offered calls).

Call ids are 26 characters like switchd's ULIDs, times whole seconds as the ACD writes
them, and the agents' ADDMEMBER lines open the log (an hour before the month).

Then it times the three stages of ``switchd report --by day --format json`` over the
whole month, in this process, as the command runs them
(:func:`switchd.reports.run.compute_report`): **load** (the report facts that
:func:`~switchd.store.offline.write_state` stored as it wrote the queue_log — or with
``--queue-log`` the file, :func:`switchd.reports.data.summarize_queue_log` — read here
while a forked child reads the CDRs; ``load_calls_s`` is the wait for the child
afterwards), **compute** (:func:`switchd.reports.figures.compute_facts`) and **render**
(:func:`switchd.reports.render.as_json`), and, with ``--cli``, the whole command in a
child process (interpreter start-up included). The goal (issue 18) is under 5 s end to
end for 1 000 000 CDR rows: ``passed`` says whether load + compute + render met it.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from switchd.bench import report

__all__ = ["ReportBenchResult", "bench_report", "make_state", "run_report_bench"]

#: Start of the generated month (epoch s): 2026-12-01 00:00 UTC; the month is 30 days.
MONTH_START = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
MONTH_S = 30 * 86400.0
#: Goal of issue 18 for 1 000 000 CDR rows, load + compute + render (s).
GOAL_S = 5.0
#: Agents' target occupancy (talk + wrap-up over logged-in time) the agent count is sized for.
OCCUPANCY = 0.85
#: Every answered queue call's wrap-up (s): a WRAPUPEND line each.
WRAPUP_S = 30
QUEUES = ("sales", "support")


@dataclass(frozen=True)
class ReportBenchResult:
    """Sizes and times (s) of one bench run; ``passed`` is total_s < GOAL_S scaled to
    the row count (``GOAL_S`` per 1 000 000 rows, at least 1 s)."""

    rows: int
    queue_log_lines: int
    db_mb: float
    queue_log_mb: float
    build_s: float
    load_s: float
    load_calls_s: float
    load_queue_log_s: float
    stored_facts: bool
    compute_s: float
    render_s: float
    total_s: float
    cli_s: float | None
    offered: int
    answered: int
    abandoned: int
    json_bytes: int
    goal_s: float
    passed: bool

    def as_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready dict."""
        return asdict(self)


def _calls(n: int, seed: int) -> tuple[list[Any], list[str]]:
    """``n`` CDRs (``switchd.events.Cdr``) and their queue_log lines, in start order."""
    from switchd.events import Cdr

    rnd = random.Random(seed)
    step = MONTH_S / max(n, 1)
    # Busy seconds per answered call: 3 s IVR, mean talk 180 s and the wrap-up.
    busy_s = 0.80 * n * (180 + WRAPUP_S)
    agents = tuple(f"a{i}" for i in range(1, max(8, math.ceil(busy_s / MONTH_S / OCCUPANCY)) + 1))
    free = [(MONTH_START, a) for a in agents]   # (free at, agent): a heap
    cdrs: list[Any] = []
    lines: list[str] = []
    for i in range(n):
        start = MONTH_START + i * step + rnd.random() * step
        uid = f"01KB{i:022X}"   # 26 characters, as switchd's ULID call ids
        kind = rnd.random()
        queue = QUEUES[i % 2]
        src = f"138{rnd.randrange(10**8):08d}"
        base = {"uniqueid": uid, "linkedid": uid, "src": src, "dst": "6000", "clid": src,
                "start": start, "direction": "inbound", "trunk": 1 + i % 30}
        if kind < 0.80:
            wait = rnd.expovariate(1 / 15.0)
            talk = 30 + rnd.expovariate(1 / 150.0)
            answer = start + 3 + wait
            end = answer + talk
            _, agent = heapq.heappop(free)
            heapq.heappush(free, (end + WRAPUP_S, agent))
            cdrs.append(Cdr(**base, answer=answer, end=end, duration=round(end - start),
                            billsec=round(talk), disposition="ANSWERED", agent=agent,
                            queue=queue, wait_s=wait, ivr_path="start,menu,queue",
                            hangup_by="caller", extension=100 + int(agent[1:])))
            t0 = start + 3
            lines.append(f"{t0:.0f}|{uid}|{queue}|NONE|ENTERQUEUE||{src}|1")
            if rnd.random() < 0.05:
                other = agents[int(agent[1:]) % len(agents)]
                lines.append(f"{t0 + wait / 2:.0f}|{uid}|{queue}|{other}|RINGNOANSWER|15000")
            hold = round(wait)
            lines.append(f"{answer:.0f}|{uid}|{queue}|{agent}|CONNECT|{hold}|{uid}|2")
            if rnd.random() < 0.10:
                on_hold = answer + talk / 3
                lines.append(f"{on_hold:.0f}|{uid}|{queue}|{agent}|HOLD|trunk/1")
                lines.append(f"{on_hold + 20:.0f}|{uid}|{queue}|{agent}|UNHOLD|20")
            ev = "COMPLETECALLER" if rnd.random() < 0.6 else "COMPLETEAGENT"
            lines.append(f"{end:.0f}|{uid}|{queue}|{agent}|{ev}|{hold}|{round(talk)}|1")
            lines.append(f"{end + WRAPUP_S:.0f}|{uid}|{queue}|{agent}|WRAPUPEND|{WRAPUP_S}")
        elif kind < 0.90:
            wait = rnd.uniform(0.5, 5.0) if rnd.random() < 1 / 3 else rnd.uniform(5.0, 120.0)
            end = start + 3 + wait
            cdrs.append(Cdr(**base, answer=None, end=end, duration=round(end - start),
                            billsec=0, disposition="NO ANSWER", queue=queue, wait_s=wait,
                            ivr_path="start,menu,queue", hangup_by="caller"))
            lines.append(f"{start + 3:.0f}|{uid}|{queue}|NONE|ENTERQUEUE||{src}|1")
            lines.append(f"{end:.0f}|{uid}|{queue}|NONE|ABANDON|1|1|{round(wait)}")
        elif kind < 0.95:
            end = start + rnd.uniform(10, 90)
            cdrs.append(Cdr(**base, answer=None, end=end, duration=round(end - start),
                            billsec=0, disposition="NO ANSWER", ivr_path="start,menu,balance",
                            hangup_by="caller"))
        elif kind < 0.98:
            end = start + 0.2
            cdrs.append(Cdr(**base, answer=None, end=end, duration=0, billsec=0,
                            disposition="CONGESTION", blocked_reason="trunks_full",
                            hangup_by="switch"))
        else:
            agent = agents[rnd.randrange(len(agents))]
            talk = rnd.uniform(20, 300)
            answer = start + 8
            end = answer + talk
            cdrs.append(Cdr(**{**base, "direction": "outbound", "dst": src, "src": "101"},
                            answer=answer, end=end, duration=round(end - start),
                            billsec=round(talk), disposition="ANSWERED", agent=agent,
                            extension=100 + int(agent[1:]), hangup_by="agent"))
    # The agents logged in to both queues an hour before the month (one line per queue).
    lines.extend(f"{MONTH_START - 3600:.0f}|NONE|{q}|{a}|ADDMEMBER" for a in agents
                 for q in QUEUES)
    lines.sort(key=lambda s: float(s.split("|", 1)[0]))
    return cdrs, lines


def make_state(state_dir: Path, rows: int, *, seed: int = 1) -> int:
    """Build ``switchd.db`` (``rows`` CDRs) and ``queue_log`` in ``state_dir``; returns the
    number of queue_log lines. Raises ValueError for rows < 1, StorageError /
    OSError when the directory cannot be written."""
    from switchd.store.offline import write_state

    if rows < 1:
        raise ValueError(f"--rows {rows}: expected 1 or more")
    cdrs, lines = _calls(rows, seed)
    write_state(state_dir, cdrs, lines)
    return len(lines)


def bench_report(rows: int, *, cli: bool = False, seed: int = 1,
                 keep: Path | None = None, from_file: bool = False) -> ReportBenchResult:
    """Build a state directory of ``rows`` CDRs (in ``keep`` if given, else a temporary
    folder removed afterwards) and time the report over it (``from_file``: from the
    queue_log file, as a report of a period before the stored facts). Raises ValueError
    for rows < 1."""
    from switchd.reports import render
    from switchd.reports.data import gc_paused, summarize_queue_log
    from switchd.reports.run import ReportTimes, compute_report

    if rows < 1:
        raise ValueError(f"--rows {rows}: expected 1 or more")
    tmp = None if keep is not None else Path(tempfile.mkdtemp(prefix="switchd-bench-report-"))
    state = keep if keep is not None else tmp
    assert state is not None
    try:
        t0 = time.perf_counter()
        nlines = make_state(state, rows, seed=seed)
        build_s = time.perf_counter() - t0
        start, end = MONTH_START, MONTH_START + MONTH_S
        with gc_paused():  # as switchd report does
            # As switchd report: the stored report facts when they cover the month (the
            # CDRs read by a forked child meanwhile), else the queue_log file.
            times = ReportTimes()
            t0 = time.perf_counter()
            rep = compute_report(
                state / "switchd.db", start=start, end=end, tz="UTC", by="day",
                now=time.time(), times=times, stored=False if from_file else None,
                file_summary=lambda: summarize_queue_log(
                    state / "queue_log", start=start, end=end, margin_s=86400.0))
            t3 = time.perf_counter()
            text = render.as_json(rep)
            t4 = time.perf_counter()
        cli_s = None
        if cli:
            c0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "switchd", "report", "--state-dir", str(state),
                            "--from", "2026-12-01", "--to", "2026-12-31", "--format", "json"],
                           check=True, stdout=subprocess.DEVNULL)
            cli_s = time.perf_counter() - c0
        goal = max(1.0, GOAL_S * rows / 1_000_000)
        total = t4 - t0
        return ReportBenchResult(
            rows=rows, queue_log_lines=nlines,
            db_mb=round((state / "switchd.db").stat().st_size / 1e6, 1),
            queue_log_mb=round((state / "queue_log").stat().st_size / 1e6, 1),
            build_s=round(build_s, 3),
            load_s=round(times.load_log_s + times.load_calls_s, 3),
            load_calls_s=round(times.load_calls_s, 3),
            load_queue_log_s=round(times.load_log_s, 3), stored_facts=times.stored,
            compute_s=round(t3 - t0 - times.load_log_s - times.load_calls_s, 3), render_s=round(t4 - t3, 3), total_s=round(total, 3),
            cli_s=None if cli_s is None else round(cli_s, 3),
            offered=rep.total.offered, answered=rep.total.answered,
            abandoned=rep.total.abandoned, json_bytes=len(text.encode("utf-8")),
            goal_s=goal, passed=total < goal)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _table(r: ReportBenchResult) -> None:
    print(f"switchd bench report: {r.rows} CDR rows, {r.queue_log_lines} queue_log lines "
          f"(db {r.db_mb} MB, queue_log {r.queue_log_mb} MB; built in {r.build_s:.1f} s)")
    source = "report facts" if r.stored_facts else "queue_log"
    print(f"  load     {r.load_s:7.3f} s  ({source} {r.load_queue_log_s:.3f} s, then "
          f"CDRs {r.load_calls_s:.3f} s more)")
    print(f"  compute  {r.compute_s:7.3f} s")
    print(f"  render   {r.render_s:7.3f} s  (json, {r.json_bytes} bytes)")
    print(f"  total    {r.total_s:7.3f} s  (goal < {r.goal_s:g} s: "
          f"{'met' if r.passed else 'MISSED'})")
    if r.cli_s is not None:
        print(f"  switchd report (child process) {r.cli_s:.3f} s")
    print(f"  offered {r.offered}, answered {r.answered}, abandoned {r.abandoned}")


def run_report_bench(args: argparse.Namespace) -> int:
    """``switchd bench report``: exit 0 goal met, 1 missed, 2 bad arguments."""
    keep = Path(args.keep) if args.keep else None
    return report("report", lambda: bench_report(args.rows, cli=args.cli, keep=keep,
                                                 from_file=args.queue_log),
                  _table, json_out=args.json)


def add_report_bench_parser(bsub: Any) -> argparse.ArgumentParser:
    """Register ``switchd bench report`` on the bench sub-parsers ``bsub``."""
    p = bsub.add_parser("report", help="time switchd report (load, compute, render) on N "
                        "generated CDRs and their queue_log")
    p.add_argument("--rows", type=int, default=1_000_000,
                   help="CDR rows over 30 days (default 1000000; 30000 is a month of an "
                        "8-seat centre)")
    p.add_argument("--queue-log", action="store_true",
                   help="read the queue_log file, not the stored report facts (as a "
                        "report of a period before the facts began)")
    p.add_argument("--cli", action="store_true",
                   help="also time the whole `switchd report` command in a child process")
    p.add_argument("--keep", metavar="DIR",
                   help="build the state directory in DIR and keep it (default: a temporary one)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_report_bench)
    return p
