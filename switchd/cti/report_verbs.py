"""``REPORT``: the figures of ``switchd report --format json`` on the CTI socket, for CRM
dashboards (issue 18 item 4).

The arguments are the command's options under their verb names and are read exactly
as ``switchd report`` reads them (:mod:`switchd.reports.cli`'s :func:`zone` and
:func:`parse_when`): ``from=``/``to=`` a date ``YYYY-MM-DD`` (local midnight in ``tz=``)
or an ISO-8601 time (local in ``tz=`` unless it carries an offset or ``Z``), the report
covering [from, to); default ``to=`` now, ``from=`` 7 local days before ``to=``;
``tz=`` an IANA zone (default UTC); ``by=`` hour|day|week|month (default day);
``sl_threshold=`` (s, > 0, default 20) and ``short_abandon=`` (s, ≥ 0, default 5).

Reply: one ``ITEM kind=interval label= start= end= …figures`` per interval in time
order, one ``ITEM kind=total start= end= tz= by= busiest_hour= sl_threshold_s=
short_abandon_s= …figures``, one ``ITEM kind=agent agent= …`` per agent, then ``END``.
Figures are :meth:`Figures.as_dict` (seconds, fractions 0..1; a figure without a value,
such as a rate over no offered calls, is left out in both modes, as in every reply); an
agent's not-ready time per pause reason is ``not_ready_<reason>_s`` with the reason
folded to the characters a field name may hold.

The switch reads and computes off the event loop (``Control.report``); at most
:data:`REPORTS_AT_ONCE` reports run at a time, the others wait their turn.
"""

from __future__ import annotations

import asyncio
import math
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from switchd.control import Control
from switchd.cti.codec import Request
from switchd.cti.server import Reply, Session
from switchd.cti.verbs import STAFF, VERBS, Verb, float_arg, only
from switchd.exceptions import ProtocolError
from switchd.reports.cli import BY_CHOICES, default_start, parse_when, zone
from switchd.reports.model import Report, ReportSettings

__all__ = ["MAX_INTERVALS", "REPORTS_AT_ONCE", "REPORT_VERBS", "ReportVerbs", "report_items"]

#: Most intervals one REPORT returns: 2000 hours is 83 days by the hour.
MAX_INTERVALS = 2000
#: Reports computed at the same time (each holds a worker thread while it reads).
REPORTS_AT_ONCE = 2
#: Shortest length of one interval of each ``by=`` (s), to bound the interval count.
_MIN_LEN_S = {"hour": 3600.0, "day": 82800.0, "week": 604800.0, "month": 28 * 86400.0}
_KEY_BAD = re.compile(r"[^a-z0-9_.-]+")

REPORT_VERBS: tuple[Verb, ...] = (
    Verb("REPORT", STAFF,
         "REPORT [from=] [to=] [tz=] [by=hour|day|week|month] [queue=] [agent=] "
         "[sl_threshold=] [short_abandon=]",
         "call-centre figures per interval, their total and per agent, as "
         "`switchd report --format json` gives them", "report"),
)


def _local_iso(epoch_s: float, tz: ZoneInfo) -> str:
    """``epoch_s`` as local ISO time in ``tz`` with its offset, to the second."""
    return datetime.fromtimestamp(epoch_s, tz).isoformat(timespec="seconds")


def _agent_fields(figures: dict[str, Any]) -> dict[str, Any]:
    """An agent's figures with each key a valid field name (pause reasons are free text:
    lower-cased, other characters folded to ``_``; reasons that fold alike are summed)."""
    out: dict[str, Any] = {}
    for key, value in figures.items():
        safe = _KEY_BAD.sub("_", key.lower())
        if safe in out and isinstance(value, (int, float)) and safe.startswith("not_ready_"):
            out[safe] += value
        else:
            out[safe] = value
    return out


def report_items(report: Report, start: float, end: float) -> list[dict[str, Any]]:
    """The ITEMs of a REPORT reply for ``report`` over [start, end) (module docstring)."""
    tz = ZoneInfo(report.tz)
    items: list[dict[str, Any]] = [
        {"kind": "interval", "label": iv.label, "start": _local_iso(iv.start, tz),
         "end": _local_iso(iv.end, tz), **fig.as_dict()}
        for iv, fig in report.intervals
    ]
    s = report.settings
    items.append({"kind": "total", "start": _local_iso(start, tz), "end": _local_iso(end, tz),
                  "tz": report.tz, "by": report.by, "busiest_hour": report.busiest_hour,
                  "sl_threshold_s": s.sl_threshold_s, "short_abandon_s": s.short_abandon_s,
                  "source": report.source, **report.total.as_dict()})
    items.extend({"kind": "agent", **_agent_fields(a.as_dict())} for a in report.agents)
    return items


def _name(req: Request, key: str) -> str | None:
    """``queue=``/``agent=`` as given, None when absent. Raises ProtocolError(bad_arg)
    when it is empty (an empty filter would silently match nothing)."""
    value = req.args.get(key)
    if value is not None and not value.strip():
        raise ProtocolError("bad_arg", f"{key}= is empty; name one, or leave {key}= out; "
                            f"usage: {VERBS['REPORT'].usage}")
    return value


class ReportVerbs:
    """Handlers of :data:`REPORT_VERBS`."""

    def __init__(self, control: Control) -> None:
        self.control = control
        self._slots = asyncio.Semaphore(REPORTS_AT_ONCE)

    async def report(self, session: Session, req: Request) -> Reply:
        """REPORT: interval, total and agent ITEMs, then END (module docstring).

        Raises ProtocolError: bad_arg (a bad from/to/tz/by/threshold, from not before to,
        more than MAX_INTERVALS intervals), busy (the database cannot be read now).
        """
        only(req, "from", "to", "tz", "by", "queue", "agent", "sl_threshold", "short_abandon")
        tz_name = req.args.get("tz", "UTC")
        try:
            tz = zone(tz_name)
        except ValueError as exc:
            raise ProtocolError("bad_arg", f"tz: {exc}") from None
        by = req.args.get("by", "day")
        if by not in BY_CHOICES:
            raise ProtocolError("bad_arg", f"by={by!r}: use one of {', '.join(BY_CHOICES)}")
        start, end = self._period(req, tz)
        count = math.ceil((end - start) / _MIN_LEN_S[by])
        if count > MAX_INTERVALS:
            raise ProtocolError("bad_arg", f"from= to to= holds up to {count} intervals by "
                                f"{by}; at most {MAX_INTERVALS}: give a larger by= or a "
                                "shorter period")
        sl = float_arg(req, "sl_threshold", 0.0, 86_400.0)
        if sl == 0:
            raise ProtocolError("bad_arg", "sl_threshold=0: the service-level threshold must "
                                "be more than 0 seconds")
        short = float_arg(req, "short_abandon", 0.0, 86_400.0)
        defaults = ReportSettings()
        settings = ReportSettings(
            sl_threshold_s=defaults.sl_threshold_s if sl is None else sl,
            short_abandon_s=defaults.short_abandon_s if short is None else short)
        queue, agent = _name(req, "queue"), _name(req, "agent")
        async with self._slots:
            report = await self.control.report(start=start, end=end, tz=tz_name, by=by,
                                               settings=settings, queue=queue, agent=agent)
        return Reply(items=report_items(report, start, end))

    def _period(self, req: Request, tz: ZoneInfo) -> tuple[float, float]:
        """[from, to) in epoch seconds as ``switchd report`` reads them. Raises
        ProtocolError(bad_arg) naming the value that cannot be read."""
        values: dict[str, float] = {}
        for key in ("from", "to"):
            text = req.args.get(key)
            if text is None:
                continue
            try:
                values[key] = parse_when(text, tz)
            except ValueError as exc:
                raise ProtocolError("bad_arg", f"{key}: {exc}") from None
            except (OverflowError, OSError):
                raise ProtocolError("bad_arg", f"{key}={text!r} is out of range") from None
        end = values.get("to", self.control.now())
        start = values.get("from")
        if start is None:
            # 7 local days, as switchd report (7 x 24 h give or take a DST change).
            try:
                start = default_start(end, tz)
            except (OverflowError, ValueError, OSError):
                raise ProtocolError("bad_arg", f"to={req.args.get('to')!r} is out of "
                                    "range") from None
        if start >= end:
            raise ProtocolError("bad_arg", f"from= must be before to= (got from="
                                f"{req.args.get('from', 'default')} and to="
                                f"{req.args.get('to', 'now')})")
        return start, end
