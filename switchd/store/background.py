"""What the background writers share: the loop hands items over and never waits for the disk.

Both the CDR writer (rows into SQLite) and the queue_log writer (lines into a file)
follow DESIGN.md §6: ``submit`` only appends to an in-memory deque; one asyncio task
drains it in order, retrying what failed with a doubling delay; ``flush`` waits until
what was submitted before it is done; ``close`` gives the rest a time budget and
reports what is left. This class is that lifecycle; a subclass writes (its ``_run``)
and says what its items are called.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections import deque
from itertools import islice
from typing import Generic, TypeVar

__all__ = ["BackgroundWriter", "BatchWriter", "Outcome"]

T = TypeVar("T")


class BackgroundWriter(Generic[T]):
    """A deque of items written by one background task (see the module docstring).

    Subclasses implement ``async _run()`` (drain ``_queue``; call :meth:`_advance` for
    items done, :meth:`_back_off` after a failure) and may override :meth:`_finish`
    (after the task stopped, e.g. fsync) and :meth:`_left_unwritten` (log what is
    left). ``_label`` names the writer in errors ("CDR writer"), ``_unit`` its items.
    """

    _label = "writer"
    _unit = "items"
    #: Raised by :meth:`flush` when items can no longer be written.
    _error: type[Exception] = RuntimeError

    def __init__(self, *, retry_initial_s: float, retry_max_s: float) -> None:
        """Raises ``ValueError`` unless 0 < ``retry_initial_s`` <= ``retry_max_s`` (seconds)."""
        if not 0 < retry_initial_s <= retry_max_s:
            raise ValueError("retry delays must satisfy 0 < retry_initial_s <= retry_max_s, "
                             f"got {retry_initial_s} and {retry_max_s}")
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._delay_s = retry_initial_s
        self._queue: deque[T] = deque()
        self._submitted = 0  # items ever queued
        self._done = 0  # items that left the queue for good (written, or refused)
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False

    @property
    def pending(self) -> int:
        """Items queued but not yet done."""
        return len(self._queue)

    def start(self) -> None:
        """Start the background task on the running loop.

        Raises ``RuntimeError`` if called twice, after ``close()``, or outside a
        running event loop.
        """
        name = type(self).__name__
        if self._closing:
            raise RuntimeError(f"{name}.start() called after close()")
        if self._task is not None:
            raise RuntimeError(f"{name}.start() called twice")
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=self._label.replace(" ", "-").lower())

    def _put(self, item: T) -> None:
        """Queue ``item`` and wake the task (the caller checked it may)."""
        self._queue.append(item)
        self._submitted += 1
        self._wake.set()

    async def flush(self) -> None:
        """Wait until every item submitted before this call is done.

        Raises ``_error`` if the writer was never started while items are pending,
        or if it is closed before they were written.
        """
        target = self._submitted
        if self._done >= target:
            return
        if self._closed:
            raise self._error(f"{self._label} is closed with {self.pending} {self._unit} "
                              "unwritten")
        if self._task is None:
            raise self._error(f"{self._label} was never started; call start() before flush()")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (target, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    async def close(self, timeout_s: float = 5.0) -> int:
        """Write what is queued for up to ``timeout_s`` seconds, then stop the task; return
        the items left unwritten (0: everything is done).

        An in-flight write gets up to another ``timeout_s`` to finish before the task
        is cancelled; pending ``flush()`` callers then get ``_error``. Safe to call twice.
        """
        if self._closed:
            return self.pending
        self._closing = True
        if self._task is not None:
            with contextlib.suppress(TimeoutError, self._error):
                await asyncio.wait_for(self.flush(), timeout_s)
            self._stop.set()
            self._wake.set()
            done, _ = await asyncio.wait({self._task}, timeout=timeout_s)
            if not done:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            await self._finish(timeout_s)
        self._closed = True
        left = self.pending
        self._left_unwritten(left)
        for _target, waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(self._error(
                    f"{self._label} closed with {left} {self._unit} unwritten"))
        self._waiters.clear()
        return left

    # ------------------------------------------------------------ for subclasses

    async def _run(self) -> None:
        raise NotImplementedError

    async def _finish(self, timeout_s: float) -> None:
        """After the task stopped, before ``close`` reports (default: nothing)."""

    def _left_unwritten(self, left: int) -> None:
        """Report at close what is left (``left`` may be 0; default: nothing)."""

    async def _take(self, most: int) -> list[T] | None:
        """The next batch: up to ``most`` queued items (left in the queue until done),
        waiting until there are some; None once the writer is told to stop."""
        while True:
            if not self._queue:
                if self._stop.is_set():
                    return None
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._stop.is_set():
                return None
            return list(islice(self._queue, most))

    def _advance(self, count: int) -> None:
        """Count ``count`` items as done and wake the ``flush()`` callers now satisfied."""
        self._done += count
        for target, waiter in self._waiters:
            if target <= self._done and not waiter.done():
                waiter.set_result(None)

    async def _back_off(self) -> bool:
        """Wait the current retry delay, then double it (up to ``retry_max_s``); False if
        told to stop meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), self._delay_s)
        self._delay_s = min(self._delay_s * 2, self._retry_max_s)
        return not self._stop.is_set()


class Outcome(enum.Enum):
    """What one write attempt of a :class:`BatchWriter` did."""

    COMMITTED = "committed"
    REJECTED = "rejected"  # the data itself was refused; retrying cannot help
    FAILED = "failed"  # the database could not write now; retry later


class BatchWriter(BackgroundWriter[T]):
    """A background writer whose items go to a database in batches, one transaction each.

    A batch either commits whole, or fails for now (retried after a back-off, the items
    kept in order), or is refused for its data (an integrity error): then it goes again
    one item at a time, so only the refused item is skipped (logged by the subclass's
    :meth:`_attempt`). Subclasses set ``_batch_max`` and implement :meth:`_attempt`;
    they may narrow a batch (:meth:`_batch`) and hook commits (:meth:`_on_committed`).
    """

    _batch_max = 100
    _written = 0

    @property
    def written(self) -> int:
        """Items committed since ``start()``."""
        return self._written

    def _batch(self, taken: list[T]) -> list[T]:
        """The part of the items ``taken`` from the queue to write in one transaction
        (default: all of them)."""
        return taken

    async def _attempt(self, items: list[T]) -> Outcome:
        """Write ``items`` in one transaction and say what happened; never raises."""
        raise NotImplementedError

    def _on_committed(self, items: list[T]) -> None:
        """Called with each committed batch (default: nothing)."""

    async def _run(self) -> None:
        while (taken := await self._take(self._batch_max)) is not None:
            batch = self._batch(taken)
            outcome = await self._attempt(batch)
            if outcome is Outcome.COMMITTED:
                self._committed(batch)
            elif outcome is Outcome.REJECTED:
                if len(batch) == 1:
                    self._skip_head()
                else:
                    await self._one_by_one(len(batch))
            elif not await self._back_off():
                return

    async def _one_by_one(self, count: int) -> None:
        """Write the first ``count`` queued items singly, skipping the refused ones."""
        for _ in range(count):
            while True:
                if self._stop.is_set():
                    return
                item = self._queue[0]
                outcome = await self._attempt([item])
                if outcome is Outcome.COMMITTED:
                    self._committed([item])
                    break
                if outcome is Outcome.REJECTED:
                    self._skip_head()
                    break
                if not await self._back_off():
                    return

    def _committed(self, items: list[T]) -> None:
        """Drop committed items from the queue, reset the back-off, tell the hook."""
        for _ in items:
            self._queue.popleft()
        self._written += len(items)
        self._delay_s = self._retry_initial_s
        self._advance(len(items))
        self._on_committed(items)

    def _skip_head(self) -> None:
        """Drop the first queued item, which the database refused (already logged)."""
        self._queue.popleft()
        self._advance(1)
