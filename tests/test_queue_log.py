"""The queue_log writer: Asterisk's line format, order, a failing disk, close.

The writer runs its real background task and worker thread on a real file; a failing
disk is a ``write`` function that refuses (``ENOSPC``) or takes only part of what it
is given, as ``os.write`` does when the disk fills mid-batch. No test sleeps: each
waits for ``flush()``/``close()`` or for the failure it arranged.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from pathlib import Path

import pytest
import structlog

from switchd.events import QueueLogEntry
from switchd.store.queue_log import QueueLogWriter


def _entry(i: int, event: str = "ENTERQUEUE", *data: str) -> QueueLogEntry:
    return QueueLogEntry(1_796_010_523.75 + i, f"call{i:04d}", "sales", "NONE", event,
                         data or ("", f"1390000{i:04d}"))


class FlakyDisk:
    """``os.write`` with a disk that fills: after ``take`` bytes it refuses with ENOSPC
    (the call that crosses the limit takes what still fits, as the kernel does) until
    :meth:`free` is called. ``failed`` is set on the second refusal: by then the writer
    has taken stock of the first failed batch and is retrying."""

    def __init__(self, take: int) -> None:
        self.room = take
        self.full = True
        self.failed = threading.Event()
        self.refusals = 0

    def __call__(self, fd: int, data: bytes | memoryview) -> int:
        if self.full:
            if self.room <= 0:
                self.refusals += 1
                if self.refusals >= 2:
                    self.failed.set()
                raise OSError(errno.ENOSPC, "No space left on device")
            n = min(self.room, len(data))
            self.room -= n
            return os.write(fd, data[:n])
        return os.write(fd, data)

    def free(self) -> None:
        self.full = False


async def _wait(event: threading.Event) -> None:
    for _ in range(500):
        if event.is_set():
            return
        await asyncio.to_thread(event.wait, 0.01)
    raise AssertionError("the writer never tried the disk")


async def test_lines_are_asterisk_format_in_order_and_close_flushes(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    w = QueueLogWriter(path)
    w.start()
    entries = [QueueLogEntry(1_796_010_523.9, "NONE", "sales", "1001", "ADDMEMBER"),
               QueueLogEntry(1_796_010_530.2, "01M8N9J549Z9X5Z4PSGR5KQYRB", "sales", "NONE",
                             "ENTERQUEUE", ("", "84001234")),
               QueueLogEntry(1_796_010_534.0, "01M8N9J549Z9X5Z4PSGR5KQYRB", "sales", "1001",
                             "CONNECT", ("4", "01M8N9J549Z9X5Z4PSGR5KQYRB", "2")),
               QueueLogEntry(1_796_010_560.4, "01M8N9J549Z9X5Z4PSGR5KQYRB", "sales", "1001",
                             "COMPLETECALLER", ("4", "26", "1"))]
    for e in entries:
        w.submit(e)
    assert await w.close(timeout_s=5) == 0
    assert path.read_text(encoding="utf-8") == (
        "1796010523|NONE|sales|1001|ADDMEMBER\n"
        "1796010530|01M8N9J549Z9X5Z4PSGR5KQYRB|sales|NONE|ENTERQUEUE||84001234\n"
        "1796010534|01M8N9J549Z9X5Z4PSGR5KQYRB|sales|1001|CONNECT|4|01M8N9J549Z9X5Z4PSGR5KQYRB|2\n"
        "1796010560|01M8N9J549Z9X5Z4PSGR5KQYRB|sales|1001|COMPLETECALLER|4|26|1\n")
    assert w.written == 4 and w.pending == 0


async def test_many_lines_in_many_batches_keep_their_order_and_append(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    path.write_text("1796000000|NONE|NONE|NONE|QUEUESTART|\n")  # an earlier run's lines stay
    w = QueueLogWriter(path, batch_max=7)
    w.start()
    for i in range(500):
        w.submit(_entry(i))
        if i % 50 == 0:
            await asyncio.sleep(0)  # let the task take a batch while more arrive
    await w.flush()
    lines = path.read_text().splitlines()
    assert lines[0] == "1796000000|NONE|NONE|NONE|QUEUESTART|"
    assert lines[1:] == [_entry(i).line() for i in range(500)]
    assert await w.close() == 0


async def test_a_write_that_fails_half_way_is_retried_without_loss_or_doubles(
        tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    # Room for one line and a half: the disk fills in the middle of the second line.
    first = len(_entry(0).line()) + 1
    disk = FlakyDisk(first + 10)
    w = QueueLogWriter(path, write=disk, retry_initial_s=0.01, retry_max_s=0.02)
    w.start()
    for i in range(5):
        w.submit(_entry(i))
    await _wait(disk.failed)
    # One whole line is written; the rest waits in memory, the cut line included.
    assert w.written == 1 and w.pending == 4
    w.submit(_entry(5))  # lines keep coming while the disk is full
    disk.free()
    await w.flush()
    assert path.read_text().splitlines() == [_entry(i).line() for i in range(6)]
    assert await w.close() == 0 and w.dropped == 0


async def test_a_full_disk_is_logged_and_beyond_the_bound_new_lines_are_dropped_and_counted(
        tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    disk = FlakyDisk(0)
    w = QueueLogWriter(path, write=disk, max_pending=3, retry_initial_s=0.01, retry_max_s=0.02)
    w.start()
    with structlog.testing.capture_logs() as logs:
        for i in range(3):
            w.submit(_entry(i))
        await _wait(disk.failed)
        w.submit(_entry(3))
        w.submit(_entry(4))
        assert w.pending == 3 and w.dropped == 2
        disk.free()
        await w.flush()
    assert path.read_text().splitlines() == [_entry(i).line() for i in range(3)]
    events = [(r["event"], r["log_level"]) for r in logs]
    assert ("queue_log_write_failed", "error") in events
    assert events.count(("queue_log_full", "error")) == 1  # once per episode, not per line
    dropped = next(r for r in logs if r["event"] == "queue_log_lines_dropped")
    assert dropped["log_level"] == "error" and dropped["count"] == 2
    assert await w.close() == 0


async def test_close_on_a_disk_that_stays_full_reports_the_unwritten_lines(tmp_path: Path) -> None:
    disk = FlakyDisk(0)
    w = QueueLogWriter(tmp_path / "queue_log", write=disk, retry_initial_s=0.01,
                       retry_max_s=0.02)
    w.start()
    for i in range(4):
        w.submit(_entry(i))
    await _wait(disk.failed)
    with structlog.testing.capture_logs() as logs:
        left = await w.close(timeout_s=0.2)
    assert left == 4
    assert any(r["event"] == "queue_log_closed_with_pending" and r["pending"] == 4 for r in logs)
    # A line after close is never silently lost either: it is counted and logged.
    with structlog.testing.capture_logs() as logs:
        w.submit(_entry(9))
    assert w.dropped == 1 and logs[0]["event"] == "queue_log_line_dropped"


async def test_close_fsyncs_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "queue_log"
    synced: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    w = QueueLogWriter(path)
    w.start()
    w.submit(_entry(1))
    assert await w.close() == 0
    assert synced == [path.stat().st_ino]


async def test_a_rotated_file_is_recreated_by_the_next_batch(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    w = QueueLogWriter(path)
    w.start()
    w.submit(_entry(1))
    await w.flush()
    path.rename(tmp_path / "queue_log.1")
    w.submit(_entry(2))
    assert await w.close() == 0
    assert (tmp_path / "queue_log.1").read_text().splitlines() == [_entry(1).line()]
    assert path.read_text().splitlines() == [_entry(2).line()]


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_pending"):
        QueueLogWriter(tmp_path / "q", max_pending=0)
    with pytest.raises(ValueError, match="retry"):
        QueueLogWriter(tmp_path / "q", retry_initial_s=2, retry_max_s=1)
