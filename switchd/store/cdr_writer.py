"""Background CDR writer: the event loop hands CDRs over and never waits for the disk.

DESIGN.md §6: writes never block the loop's media tick, and a failed write is
retried or logged loudly, never dropped silently. ``submit`` only appends to an
in-memory deque; one asyncio task drains it in batches, each batch one transaction.
A row leaves the deque only once it is committed, or once the database has rejected
that very row (a duplicate ``uniqueid``), which is logged as an error.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable

import structlog

from switchd.events import Cdr
from switchd.exceptions import StorageError
from switchd.store.background import BatchWriter, Outcome
from switchd.store.sqlite import Store

__all__ = ["CdrWriter"]

log = structlog.get_logger(__name__)


class CdrWriter(BatchWriter[Cdr]):
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
    refresh a cache); an exception in it is logged and ignored. ``flush``/``close``
    raise :class:`~switchd.exceptions.StorageError` (see :class:`BackgroundWriter`).
    """

    _label = "CDR writer"
    _unit = "CDRs"
    _error = StorageError
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
        super().__init__(retry_initial_s=retry_initial_s, retry_max_s=retry_max_s)
        self.on_written = None
        self._store = store
        self._batch_max = batch_max

    def submit(self, cdr: Cdr) -> None:
        """Queue one CDR for writing; never blocks, never waits for the disk.

        Raises ``StorageError`` once ``close()`` has begun, because the row could no
        longer be written and dropping it silently is not allowed.
        """
        if self._closing:
            raise StorageError(f"CDR writer is closed; CDR {cdr.uniqueid} was not written")
        self._put(cdr)

    def _left_unwritten(self, left: int) -> None:
        if left:
            log.error("cdr_writer_closed_with_pending", pending=left, written=self._written)

    async def _attempt(self, rows: list[Cdr]) -> Outcome:
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
            return Outcome.REJECTED
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
            return Outcome.FAILED
        return Outcome.COMMITTED

    def _on_committed(self, rows: list[Cdr]) -> None:
        """Tell the hook about rows just committed (a failing hook is logged, ignored)."""
        if self.on_written is not None:
            try:
                self.on_written(rows)
            except Exception:
                log.exception("cdr_on_written_failed", rows=len(rows))
