"""Background CDR writer: the event loop hands CDRs over and never waits for the disk.

DESIGN.md §6: writes never block the loop's media tick, and a failed write is
retried or logged loudly, never dropped silently. ``submit`` only appends to an
in-memory deque; one asyncio task drains it in batches, each batch one transaction.
A row leaves the deque only once it is committed, or once the database has rejected
that very row (a duplicate ``uniqueid``), which is logged as an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import sqlite3
from collections import deque
from collections.abc import Callable
from itertools import islice

import structlog

from switchd.events import Cdr
from switchd.exceptions import StorageError
from switchd.store.sqlite import Store

__all__ = ["CdrWriter"]

log = structlog.get_logger(__name__)


class _Outcome(enum.Enum):
    """What one write attempt did."""

    COMMITTED = "committed"
    REJECTED = "rejected"  # the data itself was refused; retrying cannot help
    FAILED = "failed"  # the database could not write now; retry later


class CdrWriter:
    """Writes CDRs to a ``Store`` from a background task, in order, retrying until committed.

    ``submit`` (synchronous, call it from the event loop's thread) appends to a
    deque. The task takes up to ``batch_max`` rows at a time and writes them with one
    ``Store.insert_cdrs`` call (one transaction). A failure other than
    ``sqlite3.IntegrityError`` (disk full, locked, I/O, a closed store, …) is
    logged as ``cdr_write_failed`` and retried after a delay that starts at
    ``retry_initial_s`` and doubles up to ``retry_max_s`` (seconds); the rows stay in
    memory, in order. An ``IntegrityError`` makes the batch go again one row at a
    time, so only the offending row (logged as ``cdr_rejected``) is skipped.

    ``on_written``, if set, is called with each committed batch (for example to
    refresh a cache); an exception in it is logged and ignored.
    """

    on_written: Callable[[list[Cdr]], None] | None

    def __init__(
        self,
        store: Store,
        *,
        batch_max: int = 500,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
    ) -> None:
        """Prepare a writer for ``store``; nothing runs until ``start()``.

        Raises ``ValueError`` if ``batch_max`` < 1 or the retry delays are not
        0 < ``retry_initial_s`` <= ``retry_max_s``.
        """
        if batch_max < 1:
            raise ValueError(f"batch_max must be at least 1, got {batch_max}")
        if not 0 < retry_initial_s <= retry_max_s:
            raise ValueError(
                "retry delays must satisfy 0 < retry_initial_s <= retry_max_s, got "
                f"{retry_initial_s} and {retry_max_s}"
            )
        self.on_written = None
        self._store = store
        self._batch_max = batch_max
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._delay_s = retry_initial_s
        self._queue: deque[Cdr] = deque()
        self._submitted = 0  # rows ever submitted
        self._done = 0  # rows that left the queue: committed or rejected
        self._written = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False

    @property
    def pending(self) -> int:
        """Rows submitted but not yet committed (nor rejected)."""
        return len(self._queue)

    @property
    def written(self) -> int:
        """Rows committed since ``start()``."""
        return self._written

    def start(self) -> None:
        """Start the background task on the running loop.

        Raises ``RuntimeError`` if called twice or outside a running event loop.
        """
        if self._closing:
            raise RuntimeError("CdrWriter.start() called after close()")
        if self._task is not None:
            raise RuntimeError("CdrWriter.start() called twice")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cdr-writer")

    def submit(self, cdr: Cdr) -> None:
        """Queue one CDR for writing; never blocks, never waits for the disk.

        Raises ``StorageError`` once ``close()`` has begun, because the row could no
        longer be written and dropping it silently is not allowed.
        """
        if self._closing:
            raise StorageError(f"CDR writer is closed; CDR {cdr.uniqueid} was not written")
        self._queue.append(cdr)
        self._submitted += 1
        self._wake.set()

    async def flush(self) -> None:
        """Wait until every CDR submitted before this call is committed (or rejected).

        Raises ``StorageError`` if the writer was never started while rows are
        pending, or if it is closed before those rows were written.
        """
        target = self._submitted
        if self._done >= target:
            return
        if self._closed:
            raise StorageError(f"CDR writer is closed with {self.pending} CDRs unwritten")
        if self._task is None:
            raise StorageError("CDR writer was never started; call start() before flush()")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (target, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    async def close(self, timeout_s: float = 5.0) -> int:
        """Flush for up to ``timeout_s`` seconds, then stop the task; return rows left unwritten.

        Returns 0 when everything was committed. Rows still unwritten (the database
        kept failing) are logged as ``cdr_writer_closed_with_pending``; pending
        ``flush()`` callers then get ``StorageError``. An in-flight write is given
        up to another ``timeout_s`` to finish before the task is cancelled. Safe to
        call twice.
        """
        if self._closed:
            return self.pending
        self._closing = True
        if self._task is not None:
            with contextlib.suppress(TimeoutError, StorageError):
                await asyncio.wait_for(self.flush(), timeout_s)
            self._stop.set()
            self._wake.set()
            done, _ = await asyncio.wait({self._task}, timeout=timeout_s)
            if not done:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        self._closed = True
        left = self.pending
        if left:
            log.error("cdr_writer_closed_with_pending", pending=left, written=self._written)
        for _target, waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(StorageError(f"CDR writer closed with {left} CDRs unwritten"))
        self._waiters.clear()
        return left

    async def _run(self) -> None:
        """Drain the queue batch by batch until stopped."""
        while True:
            if not self._queue:
                if self._stop.is_set():
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._stop.is_set():
                return
            batch = list(islice(self._queue, self._batch_max))
            outcome = await self._attempt(batch)
            if outcome is _Outcome.COMMITTED:
                self._committed(batch)
            elif outcome is _Outcome.REJECTED:
                if len(batch) == 1:
                    self._skip_head()
                else:
                    await self._write_one_by_one(len(batch))
            elif not await self._back_off():
                return

    async def _write_one_by_one(self, count: int) -> None:
        """Write the first ``count`` queued rows singly, skipping the ones the database rejects."""
        for _ in range(count):
            while True:
                if self._stop.is_set():
                    return
                row = self._queue[0]
                outcome = await self._attempt([row])
                if outcome is _Outcome.COMMITTED:
                    self._committed([row])
                    break
                if outcome is _Outcome.REJECTED:
                    self._skip_head()
                    break
                if not await self._back_off():
                    return

    async def _attempt(self, rows: list[Cdr]) -> _Outcome:
        """Try one ``insert_cdrs`` call and classify what happened; never raises."""
        try:
            await self._store.insert_cdrs(rows)
        except sqlite3.IntegrityError as exc:
            if len(rows) > 1:
                log.warning(
                    "cdr_batch_rejected", error=str(exc), rows=len(rows), retry="one_by_one"
                )
            else:
                log.error(
                    "cdr_rejected",
                    uniqueid=rows[0].uniqueid,
                    error=str(exc),
                    action="skipped",
                )
            return _Outcome.REJECTED
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Anything else is treated as transient, even an unexpected error: a
            # row is never dropped unless the database itself refused it.
            log.error(
                "cdr_write_failed",
                error=f"{type(exc).__name__}: {exc}",
                pending=self.pending,
                retry_in_s=self._delay_s,
                exc_info=not isinstance(exc, sqlite3.OperationalError | StorageError),
            )
            return _Outcome.FAILED
        return _Outcome.COMMITTED

    async def _back_off(self) -> bool:
        """Wait the current retry delay, then double it; return False if told to stop meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), self._delay_s)
        self._delay_s = min(self._delay_s * 2, self._retry_max_s)
        return not self._stop.is_set()

    def _committed(self, rows: list[Cdr]) -> None:
        """Account for rows just committed: drop them from the queue and tell the hook."""
        for _ in rows:
            self._queue.popleft()
        self._written += len(rows)
        self._delay_s = self._retry_initial_s
        self._advance(len(rows))
        if self.on_written is not None:
            try:
                self.on_written(rows)
            except Exception:
                log.exception("cdr_on_written_failed", rows=len(rows))

    def _skip_head(self) -> None:
        """Drop the first queued row, which the database refused (already logged)."""
        self._queue.popleft()
        self._advance(1)

    def _advance(self, count: int) -> None:
        """Count ``count`` rows as done and wake the ``flush()`` callers now satisfied."""
        self._done += count
        for target, waiter in self._waiters:
            if target <= self._done and not waiter.done():
                waiter.set_result(None)
