"""Reading the stored records a report is computed from: CDRs and the queue_log.

Both readers only read. The database is opened through SQLite's read-only URI
(``file:…?mode=ro``), so a report can run beside a live daemon (WAL mode) and can never
create or change ``switchd.db``. CDR times are stored as fixed-width ISO-8601 UTC text
(``2026-12-07T12:35:18.900Z``), so the start range is selected on the text, which the
``cdr_start_idx`` index serves; they are turned into epoch seconds here.

The queue_log is Asterisk's text format, one ``epoch|call_id|queue|agent|EVENT|data…``
line per entry (:mod:`switchd.store.queue_log`). A line that does not parse (too few
fields, a time that is not a number, bad UTF-8) is skipped and counted: a rotated or
hand-edited file must not stop a report.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from switchd.reports.model import CallRow, QueueLogRow
from switchd.timefmt import iso_utc

__all__ = ["QueueLog", "epoch_of_iso", "load_calls", "load_queue_log", "parse_queue_log_line",
           "read_queue_log"]

_CALL_COLUMNS = ('uniqueid, start, answer, "end", direction, disposition, queue, agent, '
                 "extension, wait_s, ivr_path, blocked_reason, billsec, hangup_by")

_WHERE_TO_LOOK = "give --state-dir DIR, the folder holding switchd.db and queue_log, or -c CONFIG"


def epoch_of_iso(text: str) -> float:
    """Epoch seconds (UTC) of a stored time such as ``2026-12-07T12:35:18.900Z``.

    Raises ValueError if ``text`` is not an ISO-8601 time.
    """
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def load_calls(db: Path, start: float, end: float) -> list[CallRow]:
    """The CDRs whose ``start`` is in [start, end) (epoch seconds), oldest first.

    One CDR is one call (switchd writes one per call, transfers included), so the rows
    are calls. Raises FileNotFoundError naming ``db`` when it does not exist, and
    ``sqlite3.Error`` when it is not a switchd database (no ``cdr`` table) or cannot
    be read.
    """
    db = Path(db)
    if not db.is_file():
        raise FileNotFoundError(f"no database {db}: has switchd run with this state "
                                f"directory? ({_WHERE_TO_LOOK})")
    uri = f"{db.absolute().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        rows = conn.execute(
            f"SELECT {_CALL_COLUMNS} FROM cdr WHERE start >= ? AND start < ? "
            "ORDER BY start, uniqueid",
            (iso_utc(start), iso_utc(end)),
        ).fetchall()
    finally:
        conn.close()
    return [
        CallRow(
            uniqueid=str(r[0]),
            start=epoch_of_iso(r[1]),
            answer=None if r[2] is None else epoch_of_iso(r[2]),
            end=epoch_of_iso(r[3]),
            direction=str(r[4]),
            disposition=str(r[5]),
            queue=r[6],
            agent=r[7],
            extension=None if r[8] is None else int(r[8]),
            wait_s=float(r[9] or 0.0),
            ivr_path=r[10],
            blocked_reason=r[11],
            billsec=int(r[12] or 0),
            hangup_by=r[13],
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class QueueLog:
    """The queue_log entries read for a report and how many lines were skipped as
    malformed (``skipped``; ``lines`` counts every non-empty line read)."""

    rows: tuple[QueueLogRow, ...]
    skipped: int
    lines: int


def parse_queue_log_line(line: str) -> QueueLogRow | None:
    """One queue_log line as a row, or None if it is malformed (fewer than five
    fields, an empty event, or a time that is not a finite number)."""
    parts = line.rstrip("\r\n").split("|")
    if len(parts) < 5 or not parts[4]:
        return None
    try:
        when = float(parts[0])
    except ValueError:
        return None
    if when != when or when in (float("inf"), float("-inf")):
        return None
    return QueueLogRow(time=when, call_id=parts[1], queue=parts[2], agent=parts[3],
                       event=parts[4], data=tuple(parts[5:]))


def load_queue_log(path: Path, start: float, end: float) -> list[QueueLogRow]:
    """The queue_log entries with ``time`` in [start, end) (epoch seconds), in file order;
    malformed lines skipped (:func:`read_queue_log` also gives their count). Raises
    FileNotFoundError naming ``path`` when it does not exist, OSError when it cannot be
    read."""
    return list(read_queue_log(path, start, end).rows)


def read_queue_log(path: Path, start: float, end: float) -> QueueLog:
    """The queue_log entries with ``time`` in [start, end) (epoch seconds), in file order.

    Malformed lines are skipped and counted (:class:`QueueLog`). Raises
    FileNotFoundError naming ``path`` when it does not exist, OSError when it cannot be
    read.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no queue_log {path}: has the ACD run with this state "
                                f"directory? ({_WHERE_TO_LOOK})")
    rows: list[QueueLogRow] = []
    skipped = lines = 0
    with path.open("rb") as fh:
        for raw in fh:
            if not raw.strip():
                continue
            lines += 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                skipped += 1
                continue
            row = parse_queue_log_line(text)
            if row is None:
                skipped += 1
            elif start <= row.time < end:
                rows.append(row)
    return QueueLog(tuple(rows), skipped, lines)
