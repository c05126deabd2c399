"""The recordings index: the ``recordings`` table's SQL, its writer, and its queries.

One row per recording (recording id = call id). The row is written from events, in
the order the bus delivers them, by :class:`RecordingIndex` — a background writer
like :class:`~switchd.store.cdr_writer.CdrWriter`: the event loop only appends to a
deque, one task commits, a transient SQLite error (locked, disk full, I/O) is
retried with a doubling delay and nothing is dropped; only a write the database
itself refuses (a constraint) is skipped, loudly.

Life of a row::

    recording.started  -> INSERT, status recording (file relative, start, caller, callee,
                          direction, mode, channels, format; agent/queue if already known)
    queue.connected    -> agent, queue (the agent who took the call)
    recording.failed   -> status failed, error (what the OS said)
    call.ended         -> caller, callee, agent, queue, end from the CDR
    recording.done     -> status done|failed, duration_s, size, sha256, marks (from the file)

and, outside the daemon's run: ``recovery`` turns rows left ``recording`` by a crash
into ``recovered`` (or ``failed``), ``retention`` deletes rows with their files.

The SQL is portable (``:name`` placeholders, ``"end"`` quoted, ISO-8601 UTC text
times), as ``switchd.store.schema`` requires; the store runs it through
``Store.execute``/``Store.fetch``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from switchd.events import (
    CallEnded,
    Event,
    QueueConnected,
    RecordingDone,
    RecordingFailed,
    RecordingMarks,
    RecordingStarted,
)
from switchd.exceptions import StorageError
from switchd.recorder.model import RecordFormat, RecordLayout, RecordStatus
from switchd.recorder.wav import byte_rate, data_offset
from switchd.store.background import BatchWriter, Outcome
from switchd.store.schema import parse_time_bound
from switchd.store.sqlite import Store
from switchd.timefmt import iso_utc

__all__ = [
    "RECORDING_COLUMNS",
    "IndexWrite",
    "RecordingIndex",
    "get",
    "agents_text",
    "live_figures",
    "marks_json",
    "query",
    "query_all",
    "set_keep",
]

log = structlog.get_logger(__name__)

#: The ``recordings`` table's columns (schema migration 3 -> 4), in table order.
RECORDING_COLUMNS: tuple[str, ...] = (
    "id", "call_id", "file", "start", "end", "duration_s", "size", "caller", "callee",
    "agent", "agents", "queue", "direction", "mode", "channels", "format", "status", "sha256",
    "keep", "marks", "error",
)

_SELECT_LIST = ", ".join(f'"{c}"' for c in RECORDING_COLUMNS)

# A later segment of the same recording (CALL.RECORD start after a stop) announces
# recording.started again: the row exists and must stay as it is.
SQL_INSERT = """
INSERT INTO recordings (id, call_id, file, start, caller, callee, agent, queue, direction,
                        mode, channels, format, status)
VALUES (:id, :call_id, :file, :start, :caller, :callee, :agent, :queue, :direction,
        :mode, :channels, :format, 'recording')
ON CONFLICT (id) DO NOTHING
"""

SQL_SET_AGENT = """
UPDATE recordings SET agent = COALESCE(:agent, agent), queue = COALESCE(:queue, queue)
WHERE id = :id
"""

SQL_SET_FAILED = "UPDATE recordings SET status = 'failed', error = :error WHERE id = :id"

# The CDR is the authority on who called whom and when the call ended; an unknown
# agent or queue (NULL) keeps what queue.connected said.
SQL_FROM_CDR = """
UPDATE recordings SET caller = :caller, callee = :callee, agent = COALESCE(:agent, agent),
                      queue = COALESCE(:queue, queue), "end" = :end
WHERE id = :id
"""

# Figures from the file itself (the index never disagrees with the bytes on disk). The
# call's end, when the CDR came first, stays the row's end.
SQL_DONE = """
UPDATE recordings SET status = :status, duration_s = :duration_s, size = :size,
                      sha256 = :sha256, marks = COALESCE(:marks, marks),
                      agents = COALESCE(:agents, agents), "end" = COALESCE("end", :end)
WHERE id = :id
"""

SQL_SET_KEEP = "UPDATE recordings SET keep = :keep WHERE id = :id"

SQL_GET = f"SELECT {_SELECT_LIST} FROM recordings WHERE id = :id"

#: Rows a crash left open (recovery).
SQL_OPEN_ROWS = f"SELECT {_SELECT_LIST} FROM recordings WHERE status = 'recording'"

#: Every row's file, to find files with no row (recovery).
SQL_ALL_FILES = "SELECT id, file FROM recordings"

#: What recovery learnt from the file (or that the file is gone).
SQL_RECOVERED = """
UPDATE recordings SET status = :status, duration_s = :duration_s, size = :size,
                      sha256 = :sha256, "end" = COALESCE("end", :end), error = :error
WHERE id = :id
"""

#: A row for a file the index never heard of (the crash came before the insert).
SQL_INSERT_RECOVERED = """
INSERT INTO recordings (id, call_id, file, start, "end", duration_s, size, caller, callee,
                        agent, queue, direction, mode, channels, format, status, sha256)
VALUES (:id, :call_id, :file, :start, :end, :duration_s, :size, :caller, :callee, :agent,
        :queue, :direction, :mode, :channels, :format, 'recovered', :sha256)
ON CONFLICT (id) DO NOTHING
"""

#: Who called whom, from the call's CDR when it was written before the crash.
SQL_CDR_OF_CALL = """
SELECT src, dst, direction, agent, extension, queue, "end" FROM cdr WHERE uniqueid = :id
"""

#: What retention needs to decide (every row: kept and open ones count toward the budget).
SQL_RETENTION_ROWS = 'SELECT id, file, start, "end", size, keep, status FROM recordings'

#: Retention removes a row only once its file is gone, and never a row that is open
#: or kept (which may have changed since the plan was made).
SQL_DELETE = "DELETE FROM recordings WHERE id = :id AND keep = 0 AND status <> 'recording'"

# The only filters query() may combine; each is a fixed fragment served by an index.
_FILTERS: Mapping[str, str] = {
    "call": "call_id = :call",
    "caller": "caller = :caller",
    "callee": "callee = :callee",
    # The last agent, or any agent who was in the call (a transfer, a consult): ``agents``
    # is ``,a1,a2,``; LIKE's wildcards in the asked id are escaped with ``!``.
    "agent": ("(agent = :agent OR agents LIKE '%,' || replace(replace(replace(:agent, '!', "
              "'!!'), '%', '!%'), '_', '!_') || ',%' ESCAPE '!')"),
    "queue": "queue = :queue",
    "status": "status = :status",
    "since": "start >= :since",
    "until": "start < :until",
    # Keyset paging for query_all: rows after (older than) the last one of a page.
    "before": "(start < :before_start OR (start = :before_start AND id < :before_id))",
}


def select_sql(filters: frozenset[str] | set[str]) -> str:
    """The query for the given filter names (a subset of :data:`_FILTERS`), newest first
    (by ``start``, then ``id``), ``LIMIT :limit``. Raises KeyError for another name."""
    where = " AND ".join(_FILTERS[name] for name in sorted(filters))
    clause = f" WHERE {where}" if where else ""
    return f"SELECT {_SELECT_LIST} FROM recordings{clause} ORDER BY start DESC, id DESC LIMIT :limit"


def marks_json(marks: RecordingMarks | None) -> str | None:
    """The ``marks`` column: a JSON list of ``{at, offset_s, kind, detail}`` (``at`` as
    ISO-8601 UTC text, ``offset_s`` seconds into the file), or None without marks."""
    if marks is None:
        return None
    return json.dumps([{"at": iso_utc(m.at), "offset_s": round(m.offset_s, 3), "kind": m.kind,
                        "detail": m.detail} for m in marks.items])


_AGENT_IN_MARK = re.compile(r"(?:^|,)agent=([^,]+)")


def agents_text(marks: RecordingMarks | None) -> str | None:
    """Every agent the ``members`` marks name (``agent=<id>``), in order of appearance, as
    ``,a1,a2,`` (the ``agents`` column); None when no mark names one."""
    seen: dict[str, None] = {}
    for m in marks.items if marks is not None else ():
        if m.kind == "members":
            for agent in _AGENT_IN_MARK.findall(m.detail):
                seen.setdefault(agent, None)
    return "," + ",".join(seen) + "," if seen else None


def row_out(row: Mapping[str, object], directory: Path | None = None) -> dict[str, Any]:
    """A stored row as callers use it: ``keep`` as bool, ``marks`` parsed (a list, or
    None), ``file`` absolute (text) when ``directory`` (the recordings directory) is given."""
    out: dict[str, Any] = dict(row)
    if "keep" in out:
        out["keep"] = bool(out["keep"])
    if isinstance(out.get("marks"), str):
        try:
            out["marks"] = json.loads(str(out["marks"]))
        except ValueError:
            pass  # left as stored text: a hand-edited row must not break a query
    if directory is not None and out.get("file") is not None:
        out["file"] = str(directory / str(out["file"]))
    if isinstance(out.get("agents"), str):
        out["agents"] = str(out["agents"]).strip(",") or None
    return out


def live_figures(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` (as :func:`query` gives them, ``file`` absolute) with each open
    recording's ``size`` (bytes) and ``duration_s`` read from its file as it is now: the
    index holds them only from the close, and a search should not show 0 s for a call
    that has been recording for minutes. Blocking (a ``stat`` per open row): call it off
    the event loop. A file not there (yet) keeps the row's figures."""
    out = []
    for row in rows:
        if row.get("status") == RecordStatus.RECORDING.value and row.get("file"):
            try:
                size = os.stat(str(row["file"])).st_size
                fmt = RecordFormat(str(row["format"]))
                rate = byte_rate(int(row["channels"]), fmt)
                row = {**row, "size": size,
                       "duration_s": round(max(size - data_offset(fmt), 0) / rate, 3)}
            except (OSError, ValueError, KeyError, TypeError):
                pass
        out.append(row)
    return out


def _statuses() -> str:
    return ", ".join(s.value for s in RecordStatus)


def _check_filters(filters: Mapping[str, str | None]) -> dict[str, object]:
    """The bind parameters of the filters given (None = not given). Raises ValueError for
    an unknown filter name, a bad time bound or a bad status."""
    params: dict[str, object] = {}
    for name, value in filters.items():
        if value is None:
            continue
        if name not in _FILTERS or name == "before":
            raise ValueError(f"unknown filter {name!r}: expected one of "
                             "call, caller, callee, agent, queue, since, until, status")
        if name == "status" and value not in {s.value for s in RecordStatus}:
            raise ValueError(f"bad status {value!r}: expected one of {_statuses()}")
        if name in ("since", "until"):
            params[name] = parse_time_bound(value, name=name)
        else:
            params[name] = value
    return params


async def query(store: Store, *, call: str | None = None, caller: str | None = None,
                callee: str | None = None, agent: str | None = None, queue: str | None = None,
                since: str | None = None, until: str | None = None, status: str | None = None,
                limit: int = 100, directory: Path | None = None) -> list[dict[str, Any]]:
    """Recordings matching every filter given, newest first (by ``start``).

    ``call``, ``caller``, ``callee``, ``agent``, ``queue`` and ``status`` match exactly;
    ``since`` (inclusive) and ``until`` (exclusive) bound ``start`` and take what
    ``CDR.QUERY`` takes (a date, ISO-8601, epoch seconds:
    :func:`switchd.store.schema.parse_time_bound`). ``limit``: 1..10000 rows.
    Rows as :func:`row_out` gives them (``file`` absolute when ``directory`` is given).
    Raises ValueError for a bad bound, status or limit (the message says what is
    accepted), StorageError if the store is closed.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10000:
        raise ValueError(f"bad limit {limit!r}: expected an integer from 1 to 10000")
    params: dict[str, object] = {"limit": limit}
    params.update(_check_filters({"call": call, "caller": caller, "callee": callee,
                                  "agent": agent, "queue": queue, "since": since,
                                  "until": until, "status": status}))
    rows = await store.fetch(select_sql(set(params) - {"limit"}), params)
    return [row_out(r, directory) for r in rows]


async def query_all(store: Store, *, page: int = 1000, directory: Path | None = None,
                    **filters: str | None) -> AsyncIterator[dict[str, Any]]:
    """Every recording matching ``filters`` (those of :func:`query`, no limit), newest
    first, fetched ``page`` rows at a time (keyset paging on ``start``, ``id``: no row
    is skipped or repeated when several share a start). For exports of any size.
    Raises ValueError for a bad filter, as :func:`query` does."""
    if page < 1:
        raise ValueError(f"page must be at least 1, got {page}")
    checked = _check_filters(filters)
    names: set[str] = set(checked)
    params: dict[str, object] = {**checked, "limit": page}
    while True:
        rows = [row_out(r, directory) for r in await store.fetch(select_sql(names), params)]
        for row in rows:
            yield row
        if len(rows) < page:
            return
        # Rows come back with ``file`` made absolute; the keyset needs only start and id.
        names.add("before")
        params.update(before_start=rows[-1]["start"], before_id=rows[-1]["id"])


async def get(store: Store, recording_id: str, *, directory: Path | None = None
              ) -> dict[str, Any] | None:
    """One recording's row (as :func:`row_out` gives it), or None if there is none."""
    rows = await store.fetch(SQL_GET, {"id": recording_id})
    return row_out(rows[0], directory) if rows else None


async def set_keep(store: Store, recording_id: str, keep: bool, *,
                   directory: Path | None = None) -> dict[str, Any] | None:
    """Mark a recording kept (retention never purges it) or not; returns its row after
    the change, or None when there is no such recording. Raises sqlite3.Error and
    StorageError as :meth:`Store.execute` does."""
    changed = await store.execute(SQL_SET_KEEP, {"id": recording_id, "keep": int(bool(keep))})
    if not changed:
        return None
    return await get(store, recording_id, directory=directory)


# ------------------------------------------------------------------ the writer


@dataclass(frozen=True, slots=True)
class IndexWrite:
    """One statement for the index: ``sql`` with its ``params``; ``what`` names the event
    it comes from (for the logs) and ``recording_id`` the row."""

    what: str
    recording_id: str
    sql: str
    params: Mapping[str, object]


def _channels(layout: str) -> int:
    return 2 if layout == RecordLayout.STEREO.value else 1


class RecordingIndex(BatchWriter[IndexWrite]):
    """Keeps the ``recordings`` table in step with the recorder's events (module docstring).

    Subscribe :meth:`on_event` to every event in :attr:`FOLLOWS` (``bus.on(E.name,
    index.on_event)``), ``start()`` it on the running loop, ``close()`` it after the
    recorder's writer has stopped (its last ``recording.done`` events are then queued).
    ``on_event`` never blocks and never raises for an event it does not handle.
    Writes run in order, a batch of them (runs of the same statement as one
    ``executemany`` each) in one transaction; a failure
    other than ``sqlite3.IntegrityError`` is logged (``recording_index_write_failed``)
    and retried after ``retry_initial_s`` doubling up to ``retry_max_s`` (seconds).
    """

    #: The events the index is written from.
    FOLLOWS: tuple[type[Event], ...] = (RecordingStarted, QueueConnected, RecordingFailed,
                                        CallEnded, RecordingDone)

    _label = "recordings index writer"
    _unit = "index writes"
    _error = StorageError

    def __init__(self, store: Store, *, batch_max: int = 200, retry_initial_s: float = 0.5,
                 retry_max_s: float = 30.0) -> None:
        """Prepare the writer for ``store``; nothing runs until ``start()``. Raises
        ValueError for ``batch_max`` < 1 or bad retry delays."""
        if batch_max < 1:
            raise ValueError(f"batch_max must be at least 1, got {batch_max}")
        super().__init__(retry_initial_s=retry_initial_s, retry_max_s=retry_max_s)
        self._store = store
        self._batch_max = batch_max
        #: Live recordings by call id (recording id = call id, but say which is which).
        self._recording: dict[str, str] = {}
        #: (agent, queue) of live calls an agent took, for a recording that starts after
        #: queue.connected (mode on_agent starts *because* of it).
        self._taken: dict[str, tuple[str | None, str]] = {}
        self._handlers: Mapping[type[Event], Callable[[Any], None]] = {
            RecordingStarted: self._on_started, QueueConnected: self._on_connected,
            RecordingFailed: self._on_failed, CallEnded: self._on_ended,
            RecordingDone: self._on_done,
        }

    def on_event(self, ev: Event) -> None:
        """Queue what ``ev`` changes in the index (nothing for other events).

        Once ``close()`` has begun, a write is not queued but logged
        (``recording_index_write_after_close``): it must not vanish silently, and the next
        start's recovery finishes that row from the file.
        """
        handler = self._handlers.get(type(ev))
        if handler is not None:
            handler(ev)

    def _submit(self, write: IndexWrite) -> None:
        if self._closing:
            # A report that came after shutdown's budget ran out (a disk slow to close
            # files): the row stays as it was and the next start repairs the file and
            # indexes it (recovery). Said for each write, not as a handler failure.
            log.warning("recording_index_write_after_close", what=write.what,
                        recording_id=write.recording_id,
                        action="the next start repairs and indexes the recording")
            return
        self._put(write)

    def _on_started(self, ev: RecordingStarted) -> None:
        self._recording[ev.call_id] = ev.recording_id
        agent, queue = self._taken.get(ev.call_id, (None, None))
        self._submit(IndexWrite("recording.started", ev.recording_id, SQL_INSERT, {
            "id": ev.recording_id, "call_id": ev.call_id, "file": ev.file,
            "start": iso_utc(ev.time), "caller": ev.caller or None, "callee": ev.callee or None,
            "agent": agent, "queue": queue, "direction": ev.direction, "mode": ev.mode,
            "channels": _channels(ev.layout), "format": ev.format}))

    def _on_connected(self, ev: QueueConnected) -> None:
        self._taken[ev.call_id] = (ev.agent, ev.queue)
        rec = self._recording.get(ev.call_id)
        if rec is not None:
            self._submit(IndexWrite("queue.connected", rec, SQL_SET_AGENT,
                                    {"id": rec, "agent": ev.agent, "queue": ev.queue}))

    def _on_failed(self, ev: RecordingFailed) -> None:
        self._submit(IndexWrite("recording.failed", ev.recording_id, SQL_SET_FAILED,
                                {"id": ev.recording_id, "error": ev.reason}))

    def _on_ended(self, ev: CallEnded) -> None:
        self._taken.pop(ev.call_id, None)
        rec = self._recording.pop(ev.call_id, None) or ev.cdr.recording_id
        if rec is None:
            return
        cdr = ev.cdr
        # As the contacts table does: the agent's id, else the extension that took it.
        agent = cdr.agent or (str(cdr.extension) if cdr.extension is not None else None)
        self._submit(IndexWrite("call.ended", rec, SQL_FROM_CDR, {
            "id": rec, "caller": cdr.src or None, "callee": cdr.dst or None, "agent": agent,
            "queue": cdr.queue, "end": iso_utc(cdr.end)}))

    def _on_done(self, ev: RecordingDone) -> None:
        self._submit(IndexWrite("recording.done", ev.recording_id, SQL_DONE, {
            "id": ev.recording_id, "status": ev.status, "duration_s": ev.duration_s,
            "size": ev.size, "sha256": ev.sha256, "marks": marks_json(ev.marks),
            "agents": agents_text(ev.marks), "end": iso_utc(ev.time)}))

    # ------------------------------------------------------------ the task

    def _left_unwritten(self, left: int) -> None:
        if left:
            log.error("recording_index_closed_with_pending", pending=left, written=self._written)

    async def _attempt(self, group: list[IndexWrite]) -> Outcome:
        """The writes of ``group`` in one transaction, in order (each run of the same
        statement one ``executemany``, so a later statement for a row never overtakes an
        earlier one): one commit for the started, connected, ended and done rows of many
        calls, which at hundreds of calls a second is what keeps the index up. Never
        raises."""
        steps: list[tuple[str, list[Mapping[str, object]]]] = []
        rest = group
        while rest:
            run = _leading_run(rest)
            steps.append((run[0].sql, [w.params for w in run]))
            rest = rest[len(run):]
        try:
            await self._store.execute_steps(steps)
        except sqlite3.IntegrityError as exc:
            if len(group) == 1:
                log.error("recording_index_rejected", recording_id=group[0].recording_id,
                          what=group[0].what, error=str(exc), action="skipped")
            return Outcome.REJECTED
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Anything else counts as transient: a row is never dropped unless the
            # database itself refused it.
            log.error("recording_index_write_failed", error=f"{type(exc).__name__}: {exc}",
                      pending=self.pending, retry_in_s=self._delay_s,
                      exc_info=not isinstance(exc, sqlite3.OperationalError | StorageError))
            return Outcome.FAILED
        return Outcome.COMMITTED


def _leading_run(batch: list[IndexWrite]) -> list[IndexWrite]:
    """The first writes of ``batch`` that share its first write's statement (in order:
    a later statement for the same row must not overtake an earlier one)."""
    sql = batch[0].sql
    n = 1
    while n < len(batch) and batch[n].sql == sql:
        n += 1
    return batch[:n]
