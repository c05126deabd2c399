"""``switchd report``: call-centre figures per hour, day, week or month from stored records.

The command reads what the daemon stored in its state directory, never the live
daemon: the CDRs in ``<state_dir>/switchd.db`` (opened read-only, so it runs beside a
running switch) and the ACD's ``<state_dir>/queue_log``. The state directory is the
config's ``state_dir`` (``-c``, default ``config.yaml``); ``--state-dir`` overrides it
as for ``switchd run``, and with ``--state-dir`` no config file is needed.

Time range: ``--from``/``--to`` take a date ``YYYY-MM-DD`` (local midnight in
``--tz``) or a full ISO-8601 time (``2026-12-07T13:00``, local in ``--tz`` unless it
carries an offset or ``Z``). The report covers [from, to): ``--to 2026-12-08`` stops at
the start of 8 December. Default ``--to`` now, ``--from`` 7 days before ``--to``.
``--tz`` is an IANA zone; the config has no zone key of its own (schedules' zones live
in each IVR flow), so the default is UTC.

The CDRs read are those starting in [from, to); the queue_log entries those within a
day either side (``LOG_MARGIN_S``), which :func:`switchd.reports.figures.compute` counts
with their call or, for agents, clipped to [from, to). Figures are defined in
:mod:`switchd.reports.figures`; formats in :mod:`switchd.reports.render` (xlsx in
:mod:`switchd.reports.xlsx`). On a terminal a progress bar shows the stages on stderr
(:mod:`switchd.reports.progress`).

Exit codes: 0 report written; 1 the data cannot be read (no database, a config with
problems, a database that is not switchd's); 2 a bad option (message on stderr).
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from switchd.reports.intervals import BY_CHOICES

__all__ = ["BY_CHOICES", "FORMATS", "add_report_parser", "parse_when", "run_report"]

FORMATS: tuple[str, ...] = ("table", "csv", "json", "html", "xlsx")
#: The default report length when ``--from`` is not given, before ``--to``.
DEFAULT_DAYS = 7
#: queue_log entries are read this long (s) before ``--from`` and after ``--to``: a call
#: that starts before ``--to`` may abandon or complete after it (its events count with the
#: call), and a PAUSE before ``--from`` tells an agent was not ready when the period began.
LOG_MARGIN_S = 86400.0


def default_start(end: float, tz: ZoneInfo) -> float:
    """The start of a report that names no ``--from``: :data:`DEFAULT_DAYS` local days
    (wall-clock: 7 x 24 h give or take a DST change) before ``end`` (epoch s), down to
    its quarter hour, so that the report sums whole quarter hours of the stored report
    facts (switchd.reports.stored)."""
    start = (datetime.fromtimestamp(end, tz) - timedelta(days=DEFAULT_DAYS)).timestamp()
    return float(math.floor(start / 900.0) * 900)


class _Fail(Exception):
    """The command cannot go on: ``msg`` for stderr, ``code`` the exit code."""

    def __init__(self, msg: str, code: int) -> None:
        super().__init__(msg)
        self.msg = msg
        self.code = code


def _err(msg: str) -> None:
    sys.stderr.write(msg.rstrip("\n") + "\n")


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``. Raises ValueError naming it (and an example) if unknown."""
    try:
        if not name or name.startswith(("/", ".")):
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. UTC, Europe/Berlin, "
                         "Asia/Shanghai, America/New_York)") from None


def parse_when(text: str, tz: ZoneInfo) -> float:
    """Epoch seconds of a ``--from``/``--to`` value: ``YYYY-MM-DD`` is local midnight in
    ``tz``; an ISO-8601 time is local in ``tz`` unless it has an offset or ``Z``. Raises
    ValueError saying what is accepted."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a date YYYY-MM-DD or an ISO-8601 time "
                         "YYYY-MM-DDTHH:MM[:SS][+HH:MM|Z]") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.timestamp()


def _seconds(option: str, text: str, *, positive: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _Fail(f"switchd report: {option} {text}: expected a number of seconds", 2) from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        need = "more than 0" if positive else "0 or more"
        raise _Fail(f"switchd report: {option} {text}: expected {need} seconds", 2)
    return value


def _state_dir(args: argparse.Namespace) -> Path:
    """The state directory named by ``--state-dir`` or the config. Raises _Fail."""
    if args.state_dir:
        return Path(args.state_dir).absolute()
    from switchd.config import load_config
    from switchd.exceptions import ConfigError

    config = Path(args.config)
    if not config.exists():
        raise _Fail(f"switchd report: no config file {config}; give -c CONFIG or --state-dir DIR "
                    "(the folder holding switchd.db and queue_log)", 2)
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        for p in exc.problems:
            _err(p)
        raise _Fail(f"switchd report: {config} has {len(exc.problems)} problem(s); "
                    f"`switchd check -c {config}` shows them", 1) from None
    return Path(cfg.state_dir)


def _report_text(args: argparse.Namespace) -> str | bytes:
    """Check the options, read the data, compute and render the report (bytes for xlsx).
    Raises _Fail."""
    from switchd.reports.model import ReportSettings

    if args.format == "xlsx":
        from switchd.reports.xlsx import INSTALL_HINT as XLSX_HINT
        from switchd.reports.xlsx import available

        if not args.out:
            raise _Fail("switchd report: --format xlsx writes a workbook: give --out FILE.xlsx", 2)
        if not available():
            raise _Fail(f"switchd report: --format xlsx needs openpyxl: {XLSX_HINT}", 2)

    if args.format == "html":
        from switchd.reports.html import INSTALL_HINT, missing

        if missing():
            raise _Fail(f"switchd report: --format html needs {' and '.join(missing())}: "
                        f"{INSTALL_HINT}", 2)
    try:
        tz = zone(args.tz)
    except ValueError as exc:
        raise _Fail(f"switchd report: --tz: {exc}", 2) from None
    try:
        end = time.time() if args.to is None else parse_when(args.to, tz)
        if args.from_ is None:
            start = default_start(end, tz)
        else:
            start = parse_when(args.from_, tz)
    except ValueError as exc:
        raise _Fail(f"switchd report: --from/--to: {exc}", 2) from None
    if start >= end:
        raise _Fail(f"switchd report: --from must be before --to (got --from "
                    f"{args.from_ or 'default'} and --to {args.to or 'now'})", 2)
    settings = ReportSettings(
        sl_threshold_s=_seconds("--sl-threshold", args.sl_threshold, positive=True),
        short_abandon_s=_seconds("--short-abandon", args.short_abandon, positive=False),
    )

    from switchd.reports.data import gc_paused, require_db
    from switchd.reports.progress import Stages

    state = _state_dir(args)
    db = state / "switchd.db"
    try:
        require_db(db)
    except FileNotFoundError as exc:
        raise _Fail(f"switchd report: {exc}", 1) from None
    from switchd.reports.run import ReportJob

    # Millions of rows and no cycles: no GC passes. The CDRs are read beside (a forked
    # child, started before the progress bar's thread) while the facts are read here.
    with gc_paused():
        try:
            job = ReportJob(db, start=start, end=end, tz=args.tz, by=args.by,
                            now=time.time(),
                            file_summary=lambda: _queue_log(args, state, start, end),
                            settings=settings, queue=args.queue, agent=args.agent,
                            stored=False if args.queue_log else None)
        except ValueError as exc:
            raise _Fail(f"switchd report: {exc}", 2) from None
        try:
            # A progress bar on a terminal (stderr) only.
            with Stages(4) as stages:
                report = _compute(job, stages, db)
                return _render(args, report, stages)
        finally:
            job.cancel()      # stopped early (an error, Ctrl-C): the reader goes too


def _compute(job: Any, stages: Any, db: Path) -> Any:
    """Read the rest of the data (the stored report facts or the queue_log file, and the
    CDRs: :class:`switchd.reports.run.ReportJob`) and compute the report. Raises _Fail."""
    try:
        return job.finish(stages.step)
    except FileNotFoundError as exc:
        raise _Fail(f"switchd report: {exc}", 1) from None
    except ValueError as exc:
        raise _Fail(f"switchd report: {exc}", 2) from None
    except (sqlite3.Error, OSError) as exc:
        raise _Fail(f"switchd report: cannot read {db}: {exc}", 1) from None
    except MemoryError:
        raise _Fail(f"switchd report: not enough memory to read {db} for this range: "
                    "report a shorter period", 1) from None


def _queue_log(args: argparse.Namespace, state: Path, start: float, end: float) -> Any:
    """The queue_log's summary for the report (an empty one, with a warning, when there is
    no queue_log). Raises _Fail when it cannot be read."""
    from switchd.reports.data import summarize_queue_log
    from switchd.reports.logsum import LogSummary

    try:
        qlog = summarize_queue_log(state / "queue_log", start=start, end=end,
                                   margin_s=LOG_MARGIN_S, queue=args.queue, agent=args.agent)
        if qlog.skipped:
            _err(f"switchd report: warning: skipped {qlog.skipped} malformed line(s) of "
                 f"{state / 'queue_log'}")
    except FileNotFoundError:
        # A switch that never queued a call has no queue_log: the queue figures are 0.
        qlog = LogSummary()
        _err(f"switchd report: warning: no queue_log {state / 'queue_log'}; the figures that "
             "come from it (abandoned, callbacks, refused, overflow, wrap-up, occupancy, "
             "agents) are 0 or empty, and the service level cannot count abandoned calls")
    except OSError as exc:
        raise _Fail(f"switchd report: cannot read {state / 'queue_log'}: {exc}", 1) from None
    except MemoryError:
        raise _Fail(f"switchd report: {state / 'queue_log'} is too big to read in memory: "
                    "rotate it (mv queue_log queue_log.1; the daemon starts a new one) and "
                    "report on the new one", 1) from None
    return qlog


def _render(args: argparse.Namespace, report: Any, stages: Any) -> Any:
    """The report in ``args.format`` (str, or bytes for xlsx)."""
    from switchd.reports import render

    stages.step(f"rendering {args.format}")
    if args.format == "xlsx":
        from switchd.reports.xlsx import as_xlsx

        return as_xlsx(report)
    if args.format == "html":
        from switchd.reports.html import as_html

        return as_html(report)
    if args.format == "json":
        return render.as_json(report)
    if args.format == "csv":
        return render.as_csv(report)
    return render.as_table(report)


def run_report(args: argparse.Namespace) -> int:
    """Run ``switchd report`` for parsed ``args``: print the report (or write it to
    ``--out``). Returns the exit code (module docstring); never raises for bad input.
    A SIGTERM while it works exits 143 after cleaning up (the CDR reader, its file)."""
    import signal
    import threading

    def terminated(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    old = None
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGTERM, terminated)
    try:
        return _run_report(args)
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


def _run_report(args: argparse.Namespace) -> int:
    try:
        text = _report_text(args)
        if args.out:
            out = Path(args.out)
            try:
                if isinstance(text, bytes):
                    out.write_bytes(text)
                else:
                    out.write_text(text, encoding="utf-8", newline="")
            except OSError as exc:
                raise _Fail(f"switchd report: --out {out}: {exc.strerror or exc}", 2) from None
        else:
            sys.stdout.write(text)
    except _Fail as exc:
        _err(exc.msg)
        return exc.code
    return 0


def add_report_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``switchd report`` on the main parser's sub-parsers ``sub``."""
    rep = sub.add_parser(
        "report", help="call-centre figures per hour/day/week/month from the stored CDRs and "
        "queue_log", description="Offered, answered, abandoned, blocked calls, waits, ASA, "
        "service level and agents' figures per interval, from <state_dir>/switchd.db and "
        "<state_dir>/queue_log. The report covers [--from, --to).")
    rep.add_argument("-c", "--config", default="config.yaml",
                     help="config file whose state_dir is read (config.yaml)")
    rep.add_argument("--state-dir", metavar="DIR",
                     help="where switchd.db and queue_log are (overrides state_dir)")
    rep.add_argument("--from", dest="from_", metavar="DATE",
                     help="start, YYYY-MM-DD (local midnight) or ISO time (default: 7 days "
                          "before --to)")
    rep.add_argument("--to", metavar="DATE",
                     help="end, not included: YYYY-MM-DD (local midnight) or ISO time "
                          "(default: now)")
    rep.add_argument("--tz", default="UTC", metavar="ZONE",
                     help="IANA time zone of the dates and intervals (default UTC)")
    rep.add_argument("--by", choices=BY_CHOICES, default="day",
                     help="interval length (default day); weeks are ISO, from Monday")
    rep.add_argument("--queue", metavar="Q", help="only calls and queue events of queue Q")
    rep.add_argument("--agent", metavar="A", help="only calls and queue events of agent A")
    rep.add_argument("--format", choices=FORMATS, default="table",
                     help="table (default), csv (intervals, a total row, then agents after "
                          "an empty line), json, html (one self-contained page with charts; "
                          "needs the extra switchd[html]) or xlsx (a workbook, one sheet per "
                          "table; needs --out and the extra switchd[xlsx])")
    rep.add_argument("--queue-log", action="store_true",
                     help="read the queue_log file even where the report facts stored in "
                          "switchd.db cover the period (they give the same figures, faster)")
    rep.add_argument("--out", metavar="FILE", help="write the report to FILE instead of stdout")
    rep.add_argument("--sl-threshold", default="20", metavar="S",
                     help="service-level threshold T, seconds (default 20)")
    rep.add_argument("--short-abandon", default="5", metavar="S",
                     help="abandons after less than S seconds are short ones (default 5)")
    rep.set_defaults(func=run_report)
    return rep
