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

    def __init__(self, store: Store, fold: FactsFold, *, retry_initial_s: float = 0.5,
                 retry_max_s: float = 30.0) -> None:
        """Prepare a writer for ``store``; nothing runs until ``start()``. Raises
        ValueError for bad retry delays."""
        super().__init__(retry_initial_s=retry_initial_s, retry_max_s=retry_max_s)
        self._store = store
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
        try:
            await self._store.write_rows(facts_steps(batch))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("report_facts_write_failed", error=f"{type(exc).__name__}: {exc}",
                      pending=self.pending, retry_in_s=self._delay_s)
            return Outcome.FAILED
        self._ready = None
        return Outcome.COMMITTED

    def _left_unwritten(self, left: int) -> None:
        if left:
            log.error("report_facts_closed_with_pending", pending=left,
                      written=self._written)


async def start_facts(store: Store, *, fresh: bool = False) -> FactsFold:
    """The fold a starting daemon continues: since when the facts are stored (None the
    first time: they begin at its first queue_log line, or cover all time when
    ``fresh``: no CDR and no queue_log before) and the spans its last run left open.
    Raises sqlite3.Error."""
    rows = await store.fetch_rows(schema.SQL_FACTS_SINCE_GET)
    since = float(str(rows[0][0])) if rows else None
    spans = [OpenSpan(str(a), str(q), str(k), float(str(s)), str(r))
             for a, q, k, s, r in await store.fetch_rows(schema.SQL_OPEN_SPANS)]
    return FactsFold(since, spans, fresh=fresh and since is None)


def write_facts_sync(conn: sqlite3.Connection, steps: Sequence[tuple[str, list[tuple[object, ...]]]]
                     ) -> None:
    """Run ``steps`` in one transaction on a plain sqlite3 connection (offline writers)."""
    with conn:
        for sql, rows in steps:
            conn.executemany(sql, rows)
