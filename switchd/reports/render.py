"""A computed :class:`~switchd.reports.model.Report` as text: a table, CSV or JSON.

- :func:`as_table`: for a terminal. Two tables of the intervals and their total (calls;
  waiting and service level), the daily and the monthly traffic table
  (:data:`TRAFFIC_COLUMNS`), the agents' table when there are agents, and the busiest
  hour. Durations as ``m:ss``, rates as percentages, ``-`` where a figure has no value
  (a rate over zero offered calls, a mean over no calls).
- :func:`as_csv`: for a spreadsheet. One header line, one row per interval in time
  order, then a row labelled ``total``; the columns are ``interval, start, end`` (ISO
  local times with their offset) then every key of ``Figures.as_dict()`` in its order,
  seconds and fractions unrounded, empty for None. The agents follow in a **second
  section of the same text**, after one empty line: a header ``agent, calls_handled,
  talk_s, hold_s, wrapup_s, rona, aht_s, occupancy, not_ready_s`` plus one
  ``not_ready_<reason>_s`` column per pause reason seen, one row per agent. A reader
  wanting only the intervals stops at the first empty line. (Daily or monthly CSV:
  ``--by day`` / ``--by month``.)
- :func:`as_json`: one JSON object ``{"tz", "by", "settings", "busiest_hour",
  "intervals": [{"interval", "start", "end", …figures}], "total": {…figures},
  "agents": [{…}], "daily": [...], "monthly": [...], "source"}`` (daily and monthly
  rows as the intervals'; ``source`` where the queue_log's facts came from:
  ``report_facts`` stored in the database, or the ``queue_log`` file); figures as
  ``Figures.as_dict()`` gives them (seconds, fractions 0..1, null for no value).

Nothing here reads or writes files; none of these raise for a well-formed Report.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from switchd.reports.model import AgentFigures, Figures, Interval, Report

__all__ = ["as_csv", "as_json", "as_table"]

#: The column groups of the table output: (title, [(Figures key, header)]).
_CALL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("offered", "offered"), ("answered", "answered"), ("connection_rate", "conn."),
    ("unanswered", "unans."), ("abandoned", "aband."), ("short_abandoned", "short ab."),
    ("blocked", "blocked"), ("loss_rate", "loss"), ("refused", "refused"),
    ("overflowed", "overflow"), ("callbacks", "callbacks"), ("ivr_only", "IVR only"),
)
_WAIT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("queue_calls", "queue calls"), ("avg_wait_s", "avg wait"), ("max_wait_s", "max wait"),
    ("asa_s", "ASA"), ("avg_talk_s", "avg talk"), ("avg_wrapup_s", "avg wrap-up"),
    ("occupancy", "occupancy"), ("sl1", "SL1"), ("sl2", "SL2"), ("sl3", "SL3"),
)


#: The daily and monthly traffic tables (REQUIREMENTS.md: traffic, connected count and
#: connection rate, average talk time, unanswered calls, abandon and loss rate, average
#: wait, service level): (Figures key, English header, Chinese header).
TRAFFIC_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("offered", "calls", "呼入"), ("answered", "connected", "接通"),
    ("connection_rate", "conn. rate", "接通率"), ("unanswered", "unanswered", "未接"),
    ("avg_talk_s", "avg talk", "平均通话"), ("abandoned", "abandoned", "放弃"),
    ("abandon_rate", "abandon rate", "放弃率"), ("loss_rate", "loss rate", "呼损率"),
    ("avg_wait_s", "avg wait", "平均等待"), ("sl1", "service level", "服务水平"),
)


def _local_iso(epoch_s: float, tz: str) -> str:
    """An interval bound as local ISO time with its offset, to the second."""
    return datetime.fromtimestamp(epoch_s, ZoneInfo(tz)).isoformat(timespec="seconds")


def _cell(key: str, value: Any) -> str:
    """One figure for the table: rates as %, seconds as m:ss, counts as is, None as -."""
    if value is None:
        return "-"
    if key.endswith("_rate") or key in ("sl1", "sl2", "sl3", "occupancy"):
        return f"{float(value) * 100:.1f}%"
    if key.endswith("_s"):
        s = int(round(float(value)))
        h, rest = divmod(s, 3600)
        m, sec = divmod(rest, 60)
        return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"
    return str(value)


def _rows(report: Report) -> list[tuple[Interval | None, Figures]]:
    """The intervals in order, then (None, total)."""
    return [*report.intervals, (None, report.total)]


def as_table(report: Report, *, width: int = 200) -> str:
    """The report as text tables for a terminal (module docstring), ``width`` columns at
    most (the tables are not wrapped to a narrower terminal: pipe to ``less -S``)."""
    from rich.console import Console
    from rich.table import Table

    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, highlight=False,
                      emoji=False, soft_wrap=True)
    s = report.settings
    for title, columns in (
        (f"Calls by {report.by}, {report.tz}", _CALL_COLUMNS),
        (f"Waiting and service level by {report.by}, {report.tz} (T = "
         f"{s.sl_threshold_s:g} s; short abandon < {s.short_abandon_s:g} s)", _WAIT_COLUMNS),
    ):
        table = Table(title=title, title_justify="left")
        table.add_column(report.by, no_wrap=True)
        for _, header in columns:
            table.add_column(header, justify="right", no_wrap=True)
        rows = _rows(report)
        for i, (interval, fig) in enumerate(rows):
            values = fig.as_dict()
            label = "total" if interval is None else interval.label
            table.add_row(label, *(_cell(k, values.get(k)) for k, _ in columns),
                          end_section=i == len(rows) - 2)
        console.print(table)
    for title, first, rows in ((f"Daily traffic, {report.tz}", "date", report.daily),
                               (f"Monthly traffic, {report.tz}", "month", report.monthly)):
        if rows:
            console.print(_traffic_table(title, first, rows))
    if report.agents:
        console.print(_agents_table(report.agents))
    console.print(f"busiest hour: {report.busiest_hour or '-'}")
    console.print("SL1 = answered within T / (answered + abandoned); SL2 = answered within T / "
                  "(answered + abandoned after T); SL3 = answered within T / queue calls")
    return buf.getvalue()


def _traffic_table(title: str, first: str, rows: tuple[tuple[Interval, Figures], ...]) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column(first, no_wrap=True)
    for _, header, _zh in TRAFFIC_COLUMNS:
        table.add_column(header, justify="right", no_wrap=True)
    for iv, fig in rows:
        table.add_row(iv.label, *(_cell(k, getattr(fig, k)) for k, _, _ in TRAFFIC_COLUMNS))
    return table


def _agents_table(agents: tuple[AgentFigures, ...]) -> Any:
    from rich.table import Table

    table = Table(title="Agents (whole period)", title_justify="left")
    for name, just in (("agent", "left"), ("calls", "right"), ("talk", "right"),
                       ("hold", "right"), ("wrap-up", "right"), ("AHT", "right"),
                       ("occupancy", "right"), ("RONA", "right"), ("not ready", "left")):
        table.add_column(name, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for a in agents:
        pauses = ", ".join(f"{reason or 'no reason'} {_cell('x_s', secs)}"
                           for reason, secs in a.not_ready_s) or "-"
        table.add_row(a.agent, str(a.calls_handled), _cell("talk_s", a.talk_s),
                      _cell("hold_s", a.hold_s), _cell("wrapup_s", a.wrapup_s),
                      _cell("aht_s", a.aht_s), _cell("occupancy", a.occupancy), str(a.rona),
                      pauses)
    return table


def _csv_value(value: Any) -> Any:
    return "" if value is None else value


def as_csv(report: Report) -> str:
    """The report as CSV: the intervals and a ``total`` row, then an empty line and the
    agents' section (module docstring). Lines end in CRLF, as the csv module writes."""
    out = io.StringIO()
    w = csv.writer(out)
    keys = list(report.total.as_dict())
    w.writerow(["interval", "start", "end", *keys])
    for interval, fig in report.intervals:
        values = fig.as_dict()
        w.writerow([interval.label, _local_iso(interval.start, report.tz),
                    _local_iso(interval.end, report.tz), *(_csv_value(values[k]) for k in keys)])
    if report.intervals:
        first, last = report.intervals[0][0], report.intervals[-1][0]
        bounds = [_local_iso(first.start, report.tz), _local_iso(last.end, report.tz)]
    else:
        bounds = ["", ""]
    total = report.total.as_dict()
    w.writerow(["total", *bounds, *(_csv_value(total[k]) for k in keys)])
    if report.agents:
        dicts = [a.as_dict() for a in report.agents]
        agent_keys: list[str] = []
        for d in dicts:
            agent_keys.extend(k for k in d if k not in agent_keys)
        out.write("\r\n")
        w.writerow(agent_keys)
        for d in dicts:
            w.writerow([_csv_value(d.get(k, 0)) for k in agent_keys])
    return out.getvalue()


def _json_rows(report: Report, rows: tuple[tuple[Interval, Figures], ...]) -> list[dict[str, Any]]:
    return [{"interval": iv.label, "start": _local_iso(iv.start, report.tz),
             "end": _local_iso(iv.end, report.tz), **fig.as_dict()} for iv, fig in rows]


def as_json(report: Report) -> str:
    """The report as one JSON object (module docstring), indented, ending in a newline."""
    s = report.settings
    doc = {
        "tz": report.tz,
        "by": report.by,
        "settings": {"sl_threshold_s": s.sl_threshold_s, "short_abandon_s": s.short_abandon_s},
        "busiest_hour": report.busiest_hour,
        "intervals": _json_rows(report, report.intervals),
        "total": report.total.as_dict(),
        "agents": [a.as_dict() for a in report.agents],
        "daily": _json_rows(report, report.daily),
        "monthly": _json_rows(report, report.monthly),
        "source": report.source,
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
