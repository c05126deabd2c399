"""Background writer of the report facts: the queue_log's lines folded
(:class:`switchd.reports.facts.FactsFold`) and written to SQLite beside the CDRs.

DESIGN.md §6, as the CDR writer: ``submit`` only appends the line to an in-memory deque
and never waits for the disk; one asyncio task folds what has piled up and writes the
result in one transaction, retrying with a doubling delay while the database fails.
Lines leave the deque only once their facts are committed; a fold is made once per
line (a batch that failed is written again as it was, never folded twice).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import structlog

from switchd.exceptions import StorageError
from switchd.reports.facts import FactsBatch, FactsFold, OpenSpan
from switchd.store import schema
from switchd.store.background import BatchWriter, Outcome
from switchd.store.sqlite import Store

__all__ = ["FactsWriter", "facts_steps", "load_facts_state", "start_facts", "write_facts_sync"]

log = structlog.get_logger(__name__)

Steps = list[tuple[str, list[tuple[object, ...]]]]


def facts_steps(batch: FactsBatch) -> Steps:
    """The statements and rows that write ``batch`` (one transaction, in this order)."""
    steps: Steps = []
    if batch.since is not None:
        steps.append((schema.SQL_FACTS_SINCE_SET, [(repr(batch.since),)]))
    if batch.calls:
        steps.append((schema.SQL_UPSERT_CALL_FACT, batch.calls))
    if batch.agent_time:
        steps.append((schema.SQL_ADD_AGENT_TIME,
                      [(a, q, b, *v) for (a, q, b), v in batch.agent_time.items()]))
    if batch.not_ready:
        steps.append((schema.SQL_ADD_NOT_READY,
                      [(*k, v) for k, v in batch.not_ready.items()]))
    if batch.closed:
        steps.append((schema.SQL_CLOSE_SPAN, [tuple(k) for k in batch.closed]))
    if batch.opened:
        steps.append((schema.SQL_OPEN_SPAN, [(s.agent, s.queue, s.kind, s.since, s.reason)
                                             for s in batch.opened]))
    if batch.long_spans:
        steps.append((schema.SQL_ADD_LONG_SPAN, list(batch.long_spans)))
    if batch.last is not None:
        steps.append((schema.SQL_FACTS_LAST_SET, [(f"{batch.last[0]!r} {batch.last[1]}",)]))
    return steps


def load_facts_state(conn: sqlite3.Connection) -> tuple[float | None, list[OpenSpan]]:
    """(``facts_since`` or None when never set, the open spans) of a migrated database."""
    row = conn.execute(schema.SQL_FACTS_SINCE_GET).fetchone()
    since = float(row[0]) if row is not None else None
    spans = [OpenSpan(a, q, k, float(s), r)
             for a, q, k, s, r in conn.execute(schema.SQL_OPEN_SPANS)]
    return since, spans


class FactsWriter(BatchWriter[bool]):
    """Folds queue_log lines into ``fold`` and writes its batches through ``store``.

    ``submit(line)`` (the event loop's thread) folds one line as written to the file, at
    once (a few µs: a batch folded at write time would stall the loop for tens of ms)
    and queues a mark for it; the task writes all that was folded since its last
    write in one transaction, and the marks leave the queue once it committed. Errors:
    as the CDR writer (logged as ``report_facts_write_failed``, retried: the batch goes
    again as it was, never folded twice); ``flush``/``close`` raise
    :class:`~switchd.exceptions.StorageError`."""

    _label = "report facts writer"
    _unit = "queue_log lines"
    _error = StorageError

    def __init__(self, store: Store, fold: FactsFold, *, max_pending: int = 200_000,
                 retry_initial_s: float = 0.5, retry_max_s: float = 30.0) -> None:
        """Prepare a writer for ``store``; nothing runs until ``start()``. Beyond
        ``max_pending`` lines waiting (a database failing for minutes) it stops folding
        for the rest of the run and marks the facts incomplete from then on (a gap:
        reports of those periods read the queue_log file). Raises ValueError for bad
        retry delays or ``max_pending`` < 1."""
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        super().__init__(retry_initial_s=retry_initial_s, retry_max_s=retry_max_s)
        self._store = store
        self._max_pending = max_pending
        #: Set when it gave up: the time from which the facts are incomplete.
        self.gap_from: float | None = None
        self._gap_written = False
        # Every mark queued so far is taken at once: a take covers them all.
        self._batch_max = 1 << 62
        self.fold = fold
        #: The batch being written, and how many queued lines it holds.
        self._ready: tuple[FactsBatch, int] | None = None

    def submit(self, line: str) -> None:
        """Fold one queue_log line (no line end) and queue it for writing. After
        ``close()`` began it is dropped and logged: its facts would be missing from the
        reports of its time."""
        if self._closing:
            log.error("report_facts_line_dropped", line=line, reason="writer closed")
            return
        if self.gap_from is not None:
            return
        if len(self._queue) >= self._max_pending:
            try:
                self.gap_from = float(line.split("|", 1)[0])
            except ValueError:
                self.gap_from = self.fold.latest
            log.error("report_facts_given_up", pending=len(self._queue),
                      gap_from=self.gap_from,
                      action="reports from here on read the queue_log file")
            return
        self.fold.feed(line)
        self._put(True)

    def _batch(self, taken: list[bool]) -> list[bool]:
        if self._ready is None:
            # What was folded so far: the lines queued now (submit folds as it queues).
            self._ready = (self.fold.take(), len(taken))
        return taken[:self._ready[1]]

    async def _attempt(self, items: list[bool]) -> Outcome:
        assert self._ready is not None
        batch = self._ready[0]
        steps = facts_steps(batch)
        if self.gap_from is not None and not self._gap_written:
            steps.append((schema.SQL_ADD_GAP, [(self.gap_from, OPEN_GAP_END)]))
        try:
            await self._store.write_rows(steps)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("report_facts_write_failed", error=f"{type(exc).__name__}: {exc}",
                      pending=self.pending, retry_in_s=self._delay_s)
            return Outcome.FAILED
        self._ready = None
        if self.gap_from is not None:
            self._gap_written = True
        return Outcome.COMMITTED

    def _left_unwritten(self, left: int) -> None:
        if left:
            log.error("report_facts_closed_with_pending", pending=left,
                      written=self._written)


#: The end of a gap still open (epoch s, far ahead): the next start closes it.
OPEN_GAP_END = 1e15


def queue_log_tail(path: Path, *, chunk: int = 1 << 16) -> tuple[float, int] | None:
    """The queue_log file's last line: (its time, how many lines in a row up to it had
    that time), or None for a missing or empty file (rotated while switchd was stopped:
    nothing to compare). Reads the end of the file only. Raises nothing for a file that
    cannot be read (None)."""
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(max(0, size - chunk))
            tail = fh.read()
    except OSError:
        return None
    times: list[float] = []
    for raw in tail.split(b"\n")[1 if size > chunk else 0:]:
        head = raw.split(b"|", 1)
        if len(head) < 2:
            continue
        try:
            times.append(float(head[0]))
        except ValueError:
            continue
    if not times:
        return None
    last, n = times[-1], 0
    for t in reversed(times):
        if t != last:
            break
        n += 1
    return last, n


async def start_facts(store: Store, *, queue_log: Path | None = None,
                      now: float = 0.0) -> FactsFold:
    """The fold a starting daemon continues: since when the facts are stored (None the
    first time: they begin at its first queue_log line, or cover all time when the
    database has no CDR and ``queue_log`` no line: nothing came before) and the spans its
    last run left open.

    First, the facts are checked against ``queue_log``: lines the file has after the
    last one stored (the last run crashed, or stopped with facts unwritten) make the
    period from that line to ``now`` (epoch s, this start) a gap, read from the file by
    reports; a gap left open by a writer that gave up ends now too. Raises sqlite3.Error.
    """
    rows = await store.fetch_rows(schema.SQL_FACTS_SINCE_GET)
    since = float(str(rows[0][0])) if rows else None
    if since is not None and queue_log is not None:
        steps: Steps = [(schema.SQL_CLOSE_GAPS, [(now, now)])]
        last_rows = await store.fetch_rows(schema.SQL_FACTS_LAST_GET)
        stored = None
        if last_rows:
            t_text, n_text = str(last_rows[0][0]).split()
            stored = (float(t_text), int(n_text))
        tail = await asyncio.to_thread(queue_log_tail, queue_log)
        if tail is not None and (stored is None or tail[0] > stored[0]
                                 or (tail[0] == stored[0] and tail[1] > stored[1])):
            start = since if stored is None else stored[0]
            log.error("report_facts_gap", start=start, end=now, queue_log_last=tail[0],
                      facts_last=None if stored is None else stored[0],
                      action="reports of this period read the queue_log file")
            steps.append((schema.SQL_ADD_GAP, [(start, now)]))
        await store.write_rows(steps)
    fresh = False
    if since is None:
        # Only the first time (a new database, or one from before the facts): counting
        # a big cdr table at every start is not needed.
        empty_log = queue_log is None or not queue_log.exists() or not queue_log.stat().st_size
        fresh = empty_log and await store.cdr_count() == 0
    spans = [OpenSpan(str(a), str(q), str(k), float(str(s)), str(r))
             for a, q, k, s, r in await store.fetch_rows(schema.SQL_OPEN_SPANS)]
    return FactsFold(since, spans, fresh=fresh)


def write_facts_sync(conn: sqlite3.Connection, steps: Sequence[tuple[str, list[tuple[object, ...]]]]
                     ) -> None:
    """Run ``steps`` in one transaction on a plain sqlite3 connection (offline writers)."""
    with conn:
        for sql, rows in steps:
            conn.executemany(sql, rows)
