"""The queue_log file: the ACD's ``queue.log`` entries, appended in Asterisk's format.

DESIGN.md §6: the queue_log is a text file in Asterisk's ``queue_log`` format (one
``epoch|call_id|queue|agent|EVENT|data…`` line per entry, REFERENCE.md) so that tools
which read Asterisk queue logs report on switchd. Like the CDR writer, writing never
blocks the event loop and never loses a line quietly: :meth:`QueueLogWriter.submit`
only appends to an in-memory deque; one asyncio task hands what has piled up to a
worker thread (``asyncio.to_thread``) that appends it to the file in one
``os.write`` loop. A line leaves memory only once the kernel has taken all of its
bytes, so a write that fails half-way (disk full) resumes at the first byte not
written: the file gets every line once, in order, with nothing doubled.

While the disk keeps failing, the lines wait in memory up to ``max_pending``; beyond
that new lines are dropped, counted and logged at error level (memory must stay
bounded however long the disk is full). ``close`` writes what is left within its
time budget and fsyncs the file.

The file is opened for each batch (``O_APPEND``), so rotating it (``mv queue_log
queue_log.1``) needs no signal: the next batch creates a new ``queue_log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import Callable
from itertools import islice
from pathlib import Path

import structlog

from switchd.events import QueueLogEntry

__all__ = ["QUEUE_LOG_NAME", "QueueLogWriter"]

log = structlog.get_logger(__name__)

#: The file's name in the state directory (Asterisk's own name for it).
QUEUE_LOG_NAME = "queue_log"

#: ``os.write`` as the worker thread calls it (tests inject a failing disk).
Writer = Callable[[int, bytes], int]


class QueueLogWriter:
    """Appends queue_log lines to ``path`` from a background task, in order, retrying
    until the kernel has taken them.

    ``submit`` (synchronous, from the event loop's thread) queues one entry. The task
    takes up to ``batch_max`` lines at a time and appends them in a worker thread. An
    ``OSError`` (disk full, permission, a missing directory, …) is logged as
    ``queue_log_write_failed`` and retried after a delay that starts at
    ``retry_initial_s`` and doubles up to ``retry_max_s`` (seconds); the lines stay
    in memory, in order. At most ``max_pending`` lines wait; lines submitted beyond
    that are dropped and logged (``queue_log_full`` when dropping starts,
    ``queue_log_lines_dropped`` with the count once writing works again or at close).
    """

    def __init__(self, path: Path, *, batch_max: int = 2000, max_pending: int = 200_000,
                 retry_initial_s: float = 0.5, retry_max_s: float = 30.0,
                 write: Writer = os.write) -> None:
        """Prepare a writer appending to ``path``; nothing runs until ``start()``.

        Raises ``ValueError`` if ``batch_max`` or ``max_pending`` < 1, or the retry
        delays are not 0 < ``retry_initial_s`` <= ``retry_max_s``.
        """
        if batch_max < 1 or max_pending < 1:
            raise ValueError(f"batch_max and max_pending must be at least 1, got {batch_max} "
                             f"and {max_pending}")
        if not 0 < retry_initial_s <= retry_max_s:
            raise ValueError("retry delays must satisfy 0 < retry_initial_s <= retry_max_s, "
                             f"got {retry_initial_s} and {retry_max_s}")
        self.path = Path(path)
        self._batch_max = batch_max
        self._max_pending = max_pending
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._delay_s = retry_initial_s
        self._write = write
        #: Encoded lines, each ending in LF; the head may be the unwritten rest of a line.
        self._queue: deque[bytes] = deque()
        self._submitted = 0  # lines ever queued (dropped ones not counted)
        self._done = 0  # lines wholly written
        self._dropped = 0  # lines dropped since start (memory bound, or after close)
        self._dropping = 0  # dropped in the current episode (not yet reported as a total)
        self._failing = False
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False

    # ---------------------------------------------------------------- figures

    @property
    def pending(self) -> int:
        """Lines queued but not yet wholly written."""
        return len(self._queue)

    @property
    def written(self) -> int:
        """Lines wholly written since ``start()``."""
        return self._done

    @property
    def dropped(self) -> int:
        """Lines dropped since start: the memory bound was reached, or they came after close."""
        return self._dropped

    # -------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the background task on the running loop.

        Raises ``RuntimeError`` if called twice, after ``close()``, or outside a
        running event loop.
        """
        if self._closing:
            raise RuntimeError("QueueLogWriter.start() called after close()")
        if self._task is not None:
            raise RuntimeError("QueueLogWriter.start() called twice")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="queue-log-writer")

    def submit(self, entry: QueueLogEntry) -> None:
        """Queue ``entry``'s line; never blocks, never waits for the disk.

        After ``close()`` began, or with ``max_pending`` lines already waiting, the
        line is dropped, counted and logged at error level (never silently).
        """
        if self._closing:
            self._dropped += 1
            log.error("queue_log_line_dropped", line=entry.line(), reason="writer closed",
                      path=str(self.path))
            return
        if len(self._queue) >= self._max_pending:
            if not self._dropping:
                log.error("queue_log_full", path=str(self.path), pending=len(self._queue),
                          action="dropping new lines until the file can be written")
            self._dropping += 1
            self._dropped += 1
            return
        self._queue.append(entry.line().encode("utf-8") + b"\n")
        self._submitted += 1
        self._wake.set()

    async def flush(self) -> None:
        """Wait until every line submitted before this call is written.

        Raises ``RuntimeError`` if the writer was never started while lines are
        pending, or if it is closed before they were written.
        """
        target = self._submitted
        if self._done >= target:
            return
        if self._closed:
            raise RuntimeError(f"queue_log writer is closed with {self.pending} lines unwritten")
        if self._task is None:
            raise RuntimeError("queue_log writer was never started; call start() before flush()")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (target, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    async def close(self, timeout_s: float = 5.0) -> int:
        """Write what is queued for up to ``timeout_s`` seconds, stop the task and fsync
        the file; return the lines left unwritten (0: everything is on disk).

        Lines still unwritten (the disk kept failing) are logged as
        ``queue_log_closed_with_pending``. The fsync gets its own ``timeout_s``. Safe to
        call twice.
        """
        if self._closed:
            return self.pending
        self._closing = True
        if self._task is not None:
            with contextlib.suppress(TimeoutError, RuntimeError):
                await asyncio.wait_for(self.flush(), timeout_s)
            self._stop.set()
            self._wake.set()
            done, _ = await asyncio.wait({self._task}, timeout=timeout_s)
            if not done:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            if self._done:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.to_thread(self._fsync), timeout_s)
        self._closed = True
        self._report_dropped()
        left = self.pending
        if left:
            log.error("queue_log_closed_with_pending", pending=left, written=self._done,
                      path=str(self.path))
        for _target, waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(RuntimeError(
                    f"queue_log writer closed with {left} lines unwritten"))
        self._waiters.clear()
        return left

    # ------------------------------------------------------------------ task

    async def _run(self) -> None:
        """Write the queue batch by batch until stopped."""
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
            data = b"".join(batch)
            written, error = await asyncio.to_thread(self._append, data)
            self._taken(batch, written)
            if error is None:
                if self._failing:
                    self._failing = False
                    log.info("queue_log_write_recovered", path=str(self.path),
                             pending=self.pending)
                self._delay_s = self._retry_initial_s
                self._report_dropped()
                continue
            self._failing = True
            log.error("queue_log_write_failed", path=str(self.path),
                      error=f"{type(error).__name__}: {error}", pending=self.pending,
                      dropped=self._dropped, retry_in_s=self._delay_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._delay_s)
            self._delay_s = min(self._delay_s * 2, self._retry_max_s)
            if self._stop.is_set():
                return

    def _append(self, data: bytes) -> tuple[int, OSError | None]:
        """Append ``data`` to the file (worker thread). Returns (bytes the kernel took, the
        error that stopped it or None); never raises an OSError."""
        written = 0
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            return 0, exc
        try:
            view = memoryview(data)
            while written < len(data):
                n = self._write(fd, view[written:])
                if n <= 0:
                    raise OSError(f"write took {n} bytes")
                written += n
        except OSError as exc:
            return written, exc
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
        return written, None

    def _fsync(self) -> None:
        """Flush the file to the disk (worker thread); a failure is logged."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            log.error("queue_log_fsync_failed", path=str(self.path), error=str(exc))
            return
        try:
            os.fsync(fd)
        except OSError as exc:
            log.error("queue_log_fsync_failed", path=str(self.path), error=str(exc))
        finally:
            os.close(fd)

    def _taken(self, batch: list[bytes], written: int) -> None:
        """Drop from the queue the lines of ``batch`` whose bytes were all written; keep the
        unwritten rest of a line cut short, so the next attempt resumes there."""
        whole = 0
        for line in batch:
            if written >= len(line):
                written -= len(line)
                self._queue.popleft()
                whole += 1
                continue
            if written:
                self._queue[0] = line[written:]
            break
        if whole:
            self._done += whole
            for target, waiter in self._waiters:
                if target <= self._done and not waiter.done():
                    waiter.set_result(None)

    def _report_dropped(self) -> None:
        if self._dropping:
            log.error("queue_log_lines_dropped", count=self._dropping, total=self._dropped,
                      path=str(self.path), reason=f"more than {self._max_pending} lines waited "
                      "for a failing disk")
            self._dropping = 0
