"""switchd.recorder.writer: the writer thread — real files, a disk that stalls or fills up,
and a real ``kill -9`` of a process that is recording.

These tests drive a real thread, so they wait for it (bounded polling, never a fixed
sleep standing in for a result); a stalled disk is a ``threading.Event`` the fake
``append`` waits on.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from switchd.recorder import writer as writer_mod
from switchd.recorder.model import RecordFormat
from switchd.recorder.wav import WavFile, WavSummary, read_info, repair
from switchd.recorder.writer import RecordingWriter, WriterState
from tests.test_rec_wav import (
    SOX,
    TinyDisk,
    audio,
    check_consistent,
    encode,
    expected,
    read_back,
    read_pcm,
    sox_info,
)

PCM, ALAW = RecordFormat.PCM, RecordFormat.ALAW
ROOT = Path(__file__).resolve().parent.parent
REL = Path("2026/05/01/c1.wav")


def wait_until(cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll ``cond`` until true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the writer thread")
        time.sleep(0.002)


class Reports:
    """Collects the writer's final reports (from whichever thread delivers them)."""

    def __init__(self) -> None:
        self.closed: dict[str, WavSummary] = {}
        self.errors: dict[str, tuple[str, WavSummary | None]] = {}
        self.threads: set[int] = set()
        self.order: list[str] = []

    def on_closed(self, rec_id: str, summary: WavSummary) -> None:
        self.threads.add(threading.get_ident())
        self.closed[rec_id] = summary
        self.order.append(rec_id)

    def on_error(self, rec_id: str, reason: str, summary: WavSummary | None) -> None:
        self.threads.add(threading.get_ident())
        self.errors[rec_id] = (reason, summary)
        self.order.append(rec_id)

    def done(self, *rec_ids: str) -> Callable[[], bool]:
        return lambda: all(r in self.closed or r in self.errors for r in rec_ids)


@pytest.fixture
def reports() -> Reports:
    return Reports()


@pytest.fixture
def make_writer(tmp_path: Path, reports: Reports) -> Iterator[Callable[..., RecordingWriter]]:
    """A started writer on ``tmp_path`` (callbacks on the writer thread unless given);
    stopped at the end of the test so no thread outlives it."""
    made: list[RecordingWriter] = []

    def make(**kw: object) -> RecordingWriter:
        w = RecordingWriter(tmp_path, on_closed=reports.on_closed, on_error=reports.on_error,
                            **kw)  # type: ignore[arg-type]
        w.start()
        made.append(w)
        return w

    yield make
    for w in made:
        asyncio.run(w.stop(5.0))


class Stall:
    """A disk that stalls: ``append`` to a file whose name contains ``name`` waits until
    :meth:`release` (every file when ``name`` is empty)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str = "") -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        real = WavFile.append

        def append(wf: WavFile, data: bytes) -> None:
            if name in wf.path.name:
                self.entered.set()
                self.gate.wait(10)
            real(wf, data)

        monkeypatch.setattr(WavFile, "append", append)

    def release(self) -> None:
        self.gate.set()


# ---------------------------------------------------------------- normal recording


def test_a_recording_reads_back_with_wave_sample_by_sample(tmp_path, make_writer, reports):
    w = make_writer()
    sent = audio(2, 12000)
    w.open("c1", REL, 2, PCM)
    for start in range(0, len(sent), 8000):  # the tap hands ~1 s at a time
        w.write("c1", encode(sent[start:start + 8000], PCM))
    w.close("c1")
    wait_until(reports.done("c1"))

    path = tmp_path / REL
    params, got = read_pcm(path)
    assert (params.nchannels, params.framerate, params.nframes) == (2, 8000, len(sent))
    np.testing.assert_array_equal(got, sent)  # customer left, agent right, untouched
    summary = reports.closed["c1"]
    assert summary.duration_s == pytest.approx(1.5)
    assert summary.size == path.stat().st_size
    stats = w.stats()
    assert (stats.bytes_written, stats.files_open, stats.dropped_bytes) == (len(sent) * 4, 0, 0)


def test_g711_recordings_are_written_as_g711_wavs(tmp_path, make_writer, reports):
    w = make_writer()
    sent = audio(1, 4000)
    w.open("c1", REL, 1, ALAW)
    w.write("c1", encode(sent, ALAW))
    w.close("c1")
    wait_until(reports.done("c1"))
    check_consistent(tmp_path / REL, ALAW, 1, len(sent))
    np.testing.assert_array_equal(read_back(tmp_path / REL, ALAW), expected(sent, ALAW))
    assert reports.closed["c1"].size == 58 + len(sent)


async def test_reports_run_on_the_event_loop_thread_with_call_soon(tmp_path, reports):
    loop = asyncio.get_running_loop()
    w = RecordingWriter(tmp_path, on_closed=reports.on_closed, on_error=reports.on_error,
                        call_soon=loop.call_soon_threadsafe)
    w.start()
    w.open("c1", REL, 2, PCM)
    w.write("c1", bytes(3200))
    w.close("c1")
    w.open("bad", REL, 2, PCM)  # the same file: refused, never overwritten
    assert await w.stop(5.0) == 0
    await asyncio.sleep(0)  # reports queued by the thread before it ended run now
    assert "c1" in reports.closed
    assert reports.errors["bad"][0] == f"File exists: {tmp_path / REL}"
    assert reports.threads == {threading.get_ident()}
    assert w.state is WriterState.STOPPED


def test_an_absolute_path_is_used_as_is(tmp_path, make_writer, reports):
    w = make_writer()
    target = tmp_path / "elsewhere" / "vm" / "m1.wav"
    w.open("m1", target, 1, PCM)
    w.close("m1")
    wait_until(reports.done("m1"))
    assert read_info(target) == (1, PCM, 0)


# ---------------------------------------------------------------- never blocking


def test_open_write_and_close_never_wait_for_a_stalled_disk(tmp_path, make_writer,
                                                            reports, monkeypatch):
    stall = Stall(monkeypatch)
    w = make_writer()
    sent = audio(2, 16000)
    began = time.perf_counter()
    w.open("c1", REL, 2, PCM)
    for start in range(0, len(sent), 1600):
        w.write("c1", encode(sent[start:start + 1600], PCM))
    w.close("c1")
    took = time.perf_counter() - began
    assert stall.entered.wait(5)  # the thread is stuck in the disk…
    assert took < 0.1             # …and the loop never was
    stats = w.stats()
    assert stats.queue_bytes == len(sent) * 4 - 1600 * 4  # all but the one being written
    assert stats.max_queue_bytes >= stats.queue_bytes
    assert "c1" not in reports.closed
    stall.release()
    wait_until(reports.done("c1"))
    np.testing.assert_array_equal(read_pcm(tmp_path / REL)[1], sent)
    assert w.stats().queue_bytes == 0


def test_sizes_are_patched_while_the_recording_is_open(tmp_path, make_writer):
    w = make_writer(flush_s=0.05)
    w.open("c1", REL, 2, PCM)
    path = tmp_path / REL
    w.write("c1", bytes(4 * 800))
    wait_until(lambda: path.exists() and read_info(path).data_bytes == 4 * 800)
    w.write("c1", bytes(4 * 1600))
    wait_until(lambda: read_info(path).data_bytes == 4 * 2400)
    with wave.open(str(path)) as f:  # a valid WAV at every moment, no close needed
        assert f.getnframes() == 2400


def test_audio_reaches_the_kernel_at_once_so_repair_recovers_it(tmp_path, make_writer):
    w = make_writer(flush_s=60.0)  # no periodic patch within this test
    sent = audio(2, 4000)
    w.open("c1", REL, 2, PCM)
    w.write("c1", encode(sent, PCM))
    wait_until(lambda: w.stats().bytes_written == len(sent) * 4)
    crashed = tmp_path / "crashed.wav"  # what a kill -9 now would leave
    shutil.copyfile(tmp_path / REL, crashed)
    assert read_info(crashed).data_bytes == 0  # the header was not patched yet
    assert repair(crashed).data_bytes == len(sent) * 4
    np.testing.assert_array_equal(read_pcm(crashed)[1], sent)


# ---------------------------------------------------------------- failures


def test_a_disk_that_does_not_keep_up_fails_only_that_recording(
        tmp_path, make_writer, reports, monkeypatch):
    stall = Stall(monkeypatch, name="slow")
    w = make_writer(buffer_s=0.5)  # mono PCM: 8000 bytes may wait
    chunk = encode(audio(1, 1600), PCM)  # 0.2 s = 3200 bytes
    w.open("slow", Path("slow.wav"), 1, PCM)
    w.open("fast", Path("fast.wav"), 1, PCM)
    w.write("slow", chunk)  # the thread takes it and stalls in the disk
    assert stall.entered.wait(5)
    w.write("fast", chunk)
    w.write("slow", chunk)
    w.write("slow", chunk)  # 6400 bytes wait
    w.write("slow", chunk)  # 9600 > 8000: the recording fails
    w.write("slow", chunk)  # dropped
    w.close("slow")         # ignored: the failure is its final report
    w.close("fast")
    stall.release()
    wait_until(reports.done("slow", "fast"))

    reason, summary = reports.errors["slow"]
    assert reason == ("the disk does not keep up: more than 0.5 s of audio (8000 bytes) "
                      f"waited to be written: {tmp_path / 'slow.wav'}")
    assert summary is not None and summary.data_bytes == 3200  # what reached the file
    check_consistent(tmp_path / "slow.wav", PCM, 1, 1600)
    assert "slow" not in reports.closed
    assert reports.closed["fast"].data_bytes == 3200
    assert w.stats().dropped_bytes == 4 * 3200
    assert w.stats().failures == 1


def test_a_full_disk_fails_the_recording_keeps_its_audio_and_space_coming_back_helps(
        tmp_path, make_writer, reports, monkeypatch):
    w = make_writer()
    disk = TinyDisk(monkeypatch, tmp_path, free=44 + 4 * 1000 + 2)
    sent = audio(2, 3200)
    w.open("c1", REL, 2, PCM)
    w.write("c1", encode(sent[:800], PCM))
    w.write("c1", encode(sent[800:1600], PCM))  # only 200 frames and 2 bytes fit
    w.write("c1", encode(sent[1600:], PCM))
    wait_until(reports.done("c1"))
    w.close("c1")

    reason, summary = reports.errors["c1"]
    assert reason == f"No space left on device: {tmp_path / REL}"
    assert summary is not None and summary.data_bytes == 4 * 1000
    check_consistent(tmp_path / REL, PCM, 2, 1000)  # patched, partial frame cut
    np.testing.assert_array_equal(read_pcm(tmp_path / REL)[1], sent[:1000])

    # Still full: a new call's recording fails at once, leaving no file behind.
    w.open("c2", Path("c2.wav"), 2, PCM)
    wait_until(reports.done("c2"))
    assert reports.errors["c2"] == (f"No space left on device: {tmp_path / 'c2.wav'}", None)
    assert not (tmp_path / "c2.wav").exists()

    disk.free = 10**9  # space returns: the next call is recorded
    w.open("c3", Path("c3.wav"), 2, PCM)
    w.write("c3", encode(sent, PCM))
    w.close("c3")
    wait_until(reports.done("c3"))
    np.testing.assert_array_equal(read_pcm(tmp_path / "c3.wav")[1], sent)
    assert w.stats().failures == 2
    assert w.stats().dropped_bytes == 4 * (3200 - 1600)  # the write after the failure


def test_an_unwritable_directory_is_reported_and_retried_for_new_calls(
        tmp_path, make_writer, reports, monkeypatch):
    real_open = os.open

    def refuse(path: object, *args: object, **kw: object) -> int:
        if str(path).startswith(str(tmp_path)):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refuse)
    w = make_writer()
    w.open("c1", REL, 2, PCM)
    w.write("c1", bytes(3200))
    wait_until(reports.done("c1"))
    assert reports.errors["c1"] == (f"Permission denied: {tmp_path / REL}", None)
    w.close("c1")

    monkeypatch.setattr(os, "open", real_open)  # the operator fixed the permissions
    w.open("c2", Path("c2.wav"), 2, PCM)
    w.close("c2")
    wait_until(reports.done("c2"))
    assert "c2" in reports.closed
    assert w.stats().dropped_bytes == 3200


def test_misuse_is_refused_or_counted(make_writer, reports):
    w = make_writer()
    w.open("c1", REL, 2, PCM)
    with pytest.raises(ValueError, match="already open"):
        w.open("c1", REL, 2, PCM)
    with pytest.raises(ValueError, match="whole 4-byte sample frames"):
        w.write("c1", bytes(6))
    with pytest.raises(ValueError, match="1 \\(mono\\) or 2 \\(stereo\\)"):
        w.open("c2", Path("c2.wav"), 3, PCM)
    w.write("nobody", bytes(8))  # unknown: dropped, counted
    w.close("nobody")            # unknown: nothing to do
    w.close("c1")
    w.write("c1", bytes(4))      # after close: dropped, counted
    wait_until(reports.done("c1"))
    assert w.stats().dropped_bytes == 12
    with pytest.raises(RuntimeError, match="start\\(\\) called when running"):
        w.start()
    with pytest.raises(ValueError, match="positive"):
        RecordingWriter(Path("."), flush_s=0, on_closed=reports.on_closed,
                        on_error=reports.on_error)


# ---------------------------------------------------------------- stop


async def test_stop_closes_every_open_recording_and_reports_each(tmp_path, reports):
    w = RecordingWriter(tmp_path, on_closed=reports.on_closed, on_error=reports.on_error)
    # Never started: stop still writes what was queued.
    for n in range(3):
        w.open(f"c{n}", Path(f"c{n}.wav"), 2, PCM)
        w.write(f"c{n}", bytes(4 * 800 * (n + 1)))
    assert await w.stop(5.0) == 0
    assert sorted(reports.closed) == ["c0", "c1", "c2"]
    for n in range(3):
        check_consistent(tmp_path / f"c{n}.wav", PCM, 2, 800 * (n + 1))
    assert await w.stop(5.0) == 0  # twice is fine

    w.open("late", Path("late.wav"), 2, PCM)  # after stop: refused, loudly
    assert reports.errors["late"] == (f"the recording writer is stopped: {tmp_path / 'late.wav'}",
                                      None)
    w.write("late", bytes(4))
    assert w.stats().dropped_bytes == 4


async def test_stop_gives_up_on_a_hung_disk_and_says_how_many_are_left(
        tmp_path, reports, monkeypatch):
    stall = Stall(monkeypatch)
    w = RecordingWriter(tmp_path, on_closed=reports.on_closed, on_error=reports.on_error)
    w.start()
    w.open("c1", REL, 2, PCM)
    w.open("c2", Path("c2.wav"), 2, PCM)
    w.write("c1", bytes(3200))
    assert stall.entered.wait(5)
    began = time.monotonic()
    assert await w.stop(0.2) == 2
    assert time.monotonic() - began < 2.0
    assert w.state is WriterState.STOPPING
    stall.release()  # the disk wakes up: the thread still finishes its work
    assert await w.stop(5.0) == 0
    assert sorted(reports.closed) == ["c1", "c2"]


async def test_stop_keeps_waiting_while_a_slow_disk_keeps_sealing(
        tmp_path, reports, monkeypatch):
    # A backlog of recordings on a disk whose fsyncs are slow: each wait of the stop
    # finishes some, so it waits on (up to most_s) instead of giving up after one.
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        time.sleep(0.05)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    w = RecordingWriter(tmp_path, on_closed=reports.on_closed, on_error=reports.on_error)
    w.start()
    n = 3 * writer_mod.SEAL_THREADS           # three rounds of 50 ms: past one 0.1 s wait
    for i in range(n):
        w.open(f"s{i}", Path(f"s{i}.wav"), 1, PCM)
        w.write(f"s{i}", bytes(1600))
    began = time.monotonic()
    assert await w.stop(0.1, most_s=10.0) == 0
    assert time.monotonic() - began > 0.1
    assert len(reports.closed) == n


# ---------------------------------------------------------------- kill -9

CHILD = r"""
import sys, time
from pathlib import Path
import numpy as np
from switchd.recorder.model import RecordFormat
from switchd.recorder.writer import RecordingWriter

w = RecordingWriter(Path(sys.argv[1]), flush_s=1.0, on_closed=lambda *a: None,
                    on_error=lambda *a: print("error", *a, flush=True))
w.start()
w.open("k", Path("2026/05/01/k.wav"), 2, RecordFormat.PCM)
frames, hand, t0 = 0, 800, time.monotonic()   # hand 0.1 s at a time, in real time
while True:
    i = np.arange(frames, frames + hand)
    w.write("k", np.stack([i % 20000, -(i % 20000)], axis=1).astype("<i2").tobytes())
    frames += hand
    print(frames, flush=True)
    time.sleep(max(0.0, t0 + frames / 8000 - time.monotonic()))
"""


def test_kill_9_while_recording_leaves_a_file_that_repair_brings_to_the_last_second(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        handed = 0
        assert child.stdout is not None
        while handed < 14400:  # 1.8 s of audio handed to the writer
            line = child.stdout.readline()
            assert line, child.stderr.read() if child.stderr else "child died"
            assert not line.startswith("error"), line
            handed = int(line)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
    path = tmp_path / "2026/05/01/k.wav"

    # Unrepaired: a valid WAV whose header is at most flush_s (+ a hand-off) stale.
    with wave.open(str(path)) as f:
        assert f.getnframes() >= handed - 8000 * 1.5
        assert f.getnframes() > 0

    summary = repair(path)
    frames = summary.data_bytes // 4
    assert frames >= handed - 8000  # the audio up to at most ~1 s before the kill
    check_consistent(path, PCM, 2, frames)
    got = read_pcm(path)[1]
    i = np.arange(frames)
    np.testing.assert_array_equal(got[:, 0], i % 20000)  # every sample, in order
    np.testing.assert_array_equal(got[:, 1], -(i % 20000))
    if SOX is not None:
        assert sox_info(path)["samples"] == str(frames)


def test_closed_recordings_are_fsynced_side_by_side_each_with_its_own_fsync(
        tmp_path, make_writer, reports, monkeypatch):
    # One fsync at a time was the writer's ceiling (a busy switch ends more calls a
    # second than a disk does fsyncs one by one). Each fsync here waits until
    # SEAL_THREADS of them are in flight: sealed one at a time, the barrier times out.
    from switchd.recorder import writer as writer_mod

    n = writer_mod.SEAL_THREADS
    barrier = threading.Barrier(n, timeout=5.0)
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        barrier.wait()
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    w = make_writer()
    ids = [f"r{i}" for i in range(n)]
    for rid in ids:
        w.open(rid, Path(f"{rid}.wav"), 1, PCM)
        w.write(rid, encode(audio(1, 800), PCM))
        w.close(rid)
    wait_until(reports.done(*ids))
    assert reports.errors == {}
    assert len(synced) == n
    for rid in ids:
        info = read_info(tmp_path / f"{rid}.wav")
        assert reports.closed[rid].data_bytes == 1600 and info.data_bytes == 1600
    assert asyncio.run(w.stop(5.0)) == 0
