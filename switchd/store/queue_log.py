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
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import structlog

from switchd.events import QueueLogEntry
from switchd.store.background import BackgroundWriter

__all__ = ["QUEUE_LOG_NAME", "QueueLogWriter"]

log = structlog.get_logger(__name__)

#: The file's name in the state directory (Asterisk's own name for it).
QUEUE_LOG_NAME = "queue_log"

#: ``os.write`` as the worker thread calls it (tests inject a failing disk).
Writer = Callable[[int, bytes], int]


class LineSink(Protocol):
    """Where a copy of each line goes (the report facts writer)."""

    def submit(self, line: str) -> None:
        """Take one queue_log line (no line end); never blocks."""
        ...


class QueueLogWriter(BackgroundWriter[bytes]):
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
    ``flush``/``close`` as :class:`BackgroundWriter` (``close`` also fsyncs the file).
    """

    _label = "queue_log writer"
    _unit = "lines"

    def __init__(self, path: Path, *, batch_max: int = 2000, max_pending: int = 200_000,
                 retry_initial_s: float = 0.5, retry_max_s: float = 30.0,
                 write: Writer = os.write, facts: LineSink | None = None) -> None:
        """Prepare a writer appending to ``path``; nothing runs until ``start()``.
        ``facts``: also given every line queued for the file (the report facts writer,
        :class:`switchd.store.facts_writer.FactsWriter`), the very text the file gets.

        Raises ``ValueError`` if ``batch_max`` or ``max_pending`` < 1, or the retry
        delays are not 0 < ``retry_initial_s`` <= ``retry_max_s``.
        """
        if batch_max < 1 or max_pending < 1:
            raise ValueError(f"batch_max and max_pending must be at least 1, got {batch_max} "
                             f"and {max_pending}")
        super().__init__(retry_initial_s=retry_initial_s, retry_max_s=retry_max_s)
        self.path = Path(path)
        self._batch_max = batch_max
        self._max_pending = max_pending
        self._write = write
        self._facts = facts
        # The queue holds encoded lines, each ending in LF; its head may be the unwritten
        # rest of a line cut short by a failing disk.
        self._dropped = 0  # lines dropped since start (memory bound, or after close)
        self._dropping = 0  # dropped in the current episode (not yet reported as a total)
        self._failing = False

    # ---------------------------------------------------------------- figures

    @property
    def written(self) -> int:
        """Lines wholly written since ``start()``."""
        return self._done

    @property
    def dropped(self) -> int:
        """Lines dropped since start: the memory bound was reached, or they came after close."""
        return self._dropped

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
        line = entry.line()
        self._put(line.encode("utf-8") + b"\n")
        if self._facts is not None:
            self._facts.submit(line)

    async def _finish(self, timeout_s: float) -> None:
        if self._done:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.to_thread(self._fsync), timeout_s)

    def _left_unwritten(self, left: int) -> None:
        self._report_dropped()
        if left:
            log.error("queue_log_closed_with_pending", pending=left, written=self._done,
                      path=str(self.path))

    # ------------------------------------------------------------------ task

    async def _run(self) -> None:
        """Write the queue batch by batch until stopped."""
        while (batch := await self._take(self._batch_max)) is not None:
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
            if not await self._back_off():
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
            self._advance(whole)

    def _report_dropped(self) -> None:
        if self._dropping:
            log.error("queue_log_lines_dropped", count=self._dropping, total=self._dropped,
                      path=str(self.path), reason=f"more than {self._max_pending} lines waited "
                      "for a failing disk")
            self._dropping = 0
