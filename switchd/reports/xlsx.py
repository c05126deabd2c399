"""``switchd report --format xlsx``: the report as an Excel workbook (openpyxl, optional).

openpyxl is an optional extra (``pip install 'switchd[xlsx]'``); :func:`available` says
whether it can be imported, and ``switchd report`` checks it before reading any data.

The workbook has one sheet per table:

* ``intervals``: one row per interval (``interval`` label, local ``start`` and ``end``
  with their UTC offset, then every figure in :meth:`Figures.as_dict` order) and a last
  ``total`` row; a header row, frozen. Counts are numbers, seconds are numbers (format
  ``0.0``), rates are fractions shown as percentages (format ``0.0%``); a figure with
  nothing to average or divide (None) is an empty cell.
* ``daily`` and ``monthly``: the traffic tables (REQUIREMENTS.md), one row per local
  day / month of the period with :data:`switchd.reports.render.TRAFFIC_COLUMNS`.
* ``agents``: one row per agent (:meth:`AgentFigures.as_dict`: calls handled, talk, hold,
  wrap-up, RONA, AHT, occupancy, not-ready seconds in all and per reason); header only
  when no agent appears.
* ``definitions``: each figure's name and its definition (the report's settings
  included: the service-level threshold T and the short-abandon limit), plus the
  report's zone, interval and busiest hour.
"""

from __future__ import annotations

import importlib.util
import io
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from switchd.reports.model import Report
from switchd.reports.render import TRAFFIC_COLUMNS

__all__ = ["DEFINITIONS", "INSTALL_HINT", "as_xlsx", "available"]

#: What to run when openpyxl is missing.
INSTALL_HINT = "pip install 'switchd[xlsx]' (in a checkout: .venv/bin/pip install openpyxl)"

#: One line per figure (keys of Figures.as_dict); T and S are the report's settings.
DEFINITIONS: dict[str, str] = {
    "offered": "inbound calls (with --queue Q: calls that reached queue Q); one per call, "
               "transfers counted once",
    "answered": "offered calls a person answered (CDR disposition ANSWERED with an answer time)",
    "unanswered": "offered - answered",
    "connection_rate": "answered / offered",
    "abandoned": "offered calls with an ABANDON in the queue_log",
    "short_abandoned": "abandoned calls that waited less than S s (included in abandoned)",
    "abandon_rate": "abandoned / offered",
    "blocked": "offered calls with a blocked_reason, or disposition BUSY or CONGESTION",
    "loss_rate": "(blocked + abandoned) / offered",
    "refused": "offered calls refused at a queue's door (FULL or JOINEMPTY)",
    "overflowed": "offered calls that left a queue (timeout, empty, key, full) and went on: "
                  "another queue or a person answered",
    "callbacks": "offered calls that asked for a callback (CALLBACK)",
    "ivr_only": "offered calls the IVR alone handled: ivr_path set, not answered, not "
                "abandoned, not blocked",
    "queue_calls": "offered calls that reached a queue",
    "avg_wait_s": "mean queue wait (CDR wait_s) of calls with a queue, seconds",
    "max_wait_s": "longest queue wait of calls with a queue, seconds",
    "asa_s": "average speed of answer: mean wait of answered queue calls, seconds",
    "avg_talk_s": "mean talk time (billsec) of answered calls, seconds",
    "avg_wrapup_s": "mean wrap-up time (queue_log WRAPUPEND) after the interval's calls, seconds",
    "occupancy": "agents' talk + wrap-up time / their logged-in time in the interval",
    "sl1": "answered within T s / (answered + abandoned), over queue calls",
    "sl2": "answered within T s / (answered + abandoned after T s), over queue calls",
    "sl3": "answered within T s / queue calls",
}

_RATES = ("connection_rate", "abandon_rate", "loss_rate", "sl1", "sl2", "sl3", "occupancy")


def available() -> bool:
    """Whether openpyxl can be imported."""
    return importlib.util.find_spec("openpyxl") is not None


def _local(epoch_s: float, tz: str) -> str:
    return datetime.fromtimestamp(epoch_s, ZoneInfo(tz)).isoformat(timespec="seconds")


def _sheet(wb: Any, title: str, header: list[str], rows: list[list[Any]],
           formats: dict[str, str] | None = None) -> Any:
    from openpyxl.styles import Font

    ws = wb.create_sheet(title)
    ws.append(header)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in rows:
        ws.append(row)
    ws.freeze_panes = "A2"
    for col, name in enumerate(header, start=1):
        fmt = (formats or {}).get(name)
        letter = ws.cell(row=1, column=col).column_letter
        ws.column_dimensions[letter].width = max(10, min(40, len(name) + 2))
        if fmt:
            for r in range(2, len(rows) + 2):
                ws.cell(row=r, column=col).number_format = fmt
    return ws


def as_xlsx(report: Report) -> bytes:
    """The report as an .xlsx workbook (module docstring), as bytes. Raises ImportError
    with :data:`INSTALL_HINT` when openpyxl is not installed."""
    try:
        from openpyxl import Workbook
    except ImportError as exc:
        raise ImportError(f"--format xlsx needs openpyxl: {INSTALL_HINT}") from exc

    wb = Workbook()
    wb.remove(wb.active)
    keys = list(report.total.as_dict())
    formats = {k: ("0.0%" if k in _RATES else "0.0") for k in keys
               if k in _RATES or k.endswith("_s")}
    rows = []
    for iv, fig in report.intervals:
        values = fig.as_dict()
        rows.append([iv.label, _local(iv.start, report.tz), _local(iv.end, report.tz),
                     *(values[k] for k in keys)])
    first = report.intervals[0][0].start if report.intervals else None
    last = report.intervals[-1][0].end if report.intervals else None
    total = report.total.as_dict()
    rows.append(["total", "" if first is None else _local(first, report.tz),
                 "" if last is None else _local(last, report.tz), *(total[k] for k in keys)])
    _sheet(wb, "intervals", ["interval", "start", "end", *keys], rows, formats)

    for name, table in (("daily", report.daily), ("monthly", report.monthly)):
        _sheet(wb, name, ["date" if name == "daily" else "month",
                          *(k for k, _, _ in TRAFFIC_COLUMNS)],
               [[iv.label, *(getattr(f, k) for k, _, _ in TRAFFIC_COLUMNS)] for iv, f in table],
               {k: ("0.0%" if k in _RATES else "0.0") for k, _, _ in TRAFFIC_COLUMNS
                if k in _RATES or k.endswith("_s")})

    dicts = [a.as_dict() for a in report.agents]
    agent_keys = ["agent", "calls_handled", "talk_s", "hold_s", "wrapup_s", "rona", "aht_s",
                  "occupancy", "not_ready_s"]
    for d in dicts:
        agent_keys.extend(k for k in d if k not in agent_keys)
    agent_formats = {k: "0.0" for k in agent_keys if k.endswith("_s") or k.startswith("not_ready")}
    agent_formats["occupancy"] = "0.0%"
    _sheet(wb, "agents", agent_keys, [[d.get(k, 0) for k in agent_keys] for d in dicts],
           agent_formats)

    s = report.settings
    defs = [[k, DEFINITIONS.get(k, "")] for k in keys]
    defs += [
        ["T (sl_threshold_s)", f"{s.sl_threshold_s:g} s: the service-level threshold"],
        ["S (short_abandon_s)", f"{s.short_abandon_s:g} s: abandons shorter than this are short"],
        ["tz", f"{report.tz}: intervals are local calendar {report.by}s in this zone"],
        ["busiest_hour", report.busiest_hour or "none (no traffic)"],
        ["rates", "fractions 0..1 shown as %; empty when the denominator is 0"],
    ]
    ws = _sheet(wb, "definitions", ["figure", "definition"], defs)
    ws.column_dimensions["A"].width = 22
    ws.column_dimensions["B"].width = 100
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
