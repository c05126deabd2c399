"""The recording service: Tap* inputs from the engine, the writer's reports back, on a real shell.

Unit tests use a fake writer that logs its calls; the integration tests run the real
RecordingWriter thread (reports through ``loop.call_soon_threadsafe``, as the daemon
wires it) and read the files back with ``wave`` sample by sample.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from switchd.bench_media import bench_media
from switchd.bus import Bus
from switchd.events import Role
from switchd.lines.g711 import alaw_decode, alaw_encode
from switchd.lines.media import FRAME, MediaPlane
from switchd.recorder.inputs import (
    RECORDER_INPUTS,
    RecordingClosed,
    RecordingError,
    TapClose,
    TapMode,
    TapOpen,
    TapSources,
    TapState,
)
from switchd.recorder.model import RecordFormat, RecordLayout, recording_relpath
from switchd.recorder.service import RecordingService, RecState, ServiceError
from switchd.recorder.wav import data_offset, read_info
from switchd.recorder.writer import RecordingWriter
from switchd.shell import Shell, VirtualClock
from tests.test_rec_tap import (
    LINES,
    T0,
    TonePort,
    bridge,
    expected_right,
    heard,
    run,
    said,
    sat,
)


class Recorder:
    """Stands in for the recorder engine: takes what the service reports."""

    def __init__(self) -> None:
        self.got: list[Any] = []

    def handle(self, now: float, item: Any) -> list[Any]:
        self.got.append(item)
        return []

    def next_deadline(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> list[Any]:
        return []


class FakeWriter:
    """Logs open/write/close; ``refuse`` makes open raise ValueError."""

    def __init__(self, refuse: bool = False) -> None:
        self.ops: list[tuple[Any, ...]] = []
        self.bytes: dict[str, int] = {}
        self.refuse = refuse

    def open(self, rec_id: str, relpath: Path, channels: int, fmt: RecordFormat) -> None:
        if self.refuse:
            raise ValueError(f"recording {rec_id} is already open in the writer")
        self.ops.append(("open", rec_id, relpath, channels, fmt))

    def write(self, rec_id: str, data: bytes) -> None:
        self.ops.append(("write", rec_id))
        self.bytes[rec_id] = self.bytes.get(rec_id, 0) + len(data)

    def close(self, rec_id: str) -> None:
        self.ops.append(("close", rec_id))


@dataclass(frozen=True)
class Summary:
    duration_s: float
    size: int
    sha256: str


def tap_open(rid: str = "c1", customer: str = "trunk/1", extras: tuple[str, ...] = (),
             layout: RecordLayout = RecordLayout.STEREO,
             fmt: RecordFormat = RecordFormat.PCM) -> TapOpen:
    return TapOpen(rid, rid, recording_relpath(rid, T0), T0, layout, fmt, customer, extras)


def shell_rig(writer: Any = None, port: TonePort | None = None):
    media = MediaPlane(LINES, port=port or TonePort(len(LINES)))
    shell = Shell(Bus(), VirtualClock(T0), log_events=False)
    rec = Recorder()
    writer = writer if writer is not None else FakeWriter()
    svc = RecordingService(media, writer, shell.submit)
    shell.add(svc, takes=RecordingService.TAKES)
    shell.add(rec, takes=RECORDER_INPUTS)
    return media, shell, svc, writer, rec


# ------------------------------------------------------------------ the table


def test_open_close_and_the_writer_report_reach_the_engine():
    media, shell, svc, writer, rec = shell_rig()
    shell.submit(tap_open("c1", extras=("ext/203",)))
    assert writer.ops == [("open", "c1", Path("2025/11/24/c1.wav"), 2, RecordFormat.PCM)]
    assert svc.state("c1") is RecState.OPEN and len(media.taps) == 2
    run(media, 12)
    shell.submit(TapClose("c1"))
    assert svc.state("c1") is RecState.CLOSING and len(media.taps) == 0
    assert writer.ops[-1] == ("close", "c1")
    assert writer.bytes["c1"] == 12 * 640  # every byte before the close
    assert rec.got == []
    assert svc.closed("c1", Summary(0.24, 7724, "ab" * 32)) is True
    assert rec.got == [RecordingClosed("c1", duration_s=0.24, size=7724, sha256="ab" * 32)]
    assert svc.state("c1") is None and len(svc) == 0


def test_mono_g711_opens_one_channel_in_that_format():
    media, shell, svc, writer, rec = shell_rig()
    shell.submit(tap_open("c1", layout=RecordLayout.MONO, fmt=RecordFormat.ULAW))
    assert writer.ops[0][3:] == (1, RecordFormat.ULAW)
    run(media, 3)
    shell.submit(TapClose("c1"))
    assert writer.bytes["c1"] == 3 * 160


def test_a_customer_line_without_channel_is_an_immediate_recording_error():
    media, shell, svc, writer, rec = shell_rig()
    shell.submit(tap_open("c1", customer="trunk/99"))
    assert writer.ops == [] and len(media.taps) == 0 and svc.state("c1") is None
    assert len(rec.got) == 1 and isinstance(rec.got[0], RecordingError)
    assert "trunk/99 has no audio channel" in rec.got[0].reason


def test_a_writer_that_refuses_on_the_spot_is_a_recording_error():
    media, shell, svc, writer, rec = shell_rig(FakeWriter(refuse=True))
    shell.submit(tap_open("c1"))
    assert len(media.taps) == 0 and svc.state("c1") is None
    assert isinstance(rec.got[0], RecordingError) and "already open" in rec.got[0].reason


def test_a_disk_failure_while_open_stops_the_tap_and_reports_what_is_on_disk():
    media, shell, svc, writer, rec = shell_rig()
    shell.submit(tap_open("c1"))
    shell.submit(tap_open("c2", customer="trunk/2"))
    run(media, 5)
    assert svc.failed("c1", "No space left on device: /rec/c1.wav", Summary(0.5, 8044, "x"))
    assert rec.got == [RecordingError("c1", "No space left on device: /rec/c1.wav",
                                      duration_s=0.5, size=8044)]
    assert len(media.taps) == 1  # c2 goes on
    before = writer.bytes.get("c1", 0)
    run(media, 60)
    assert writer.bytes.get("c1", 0) == before  # nothing more is tapped for c1
    assert writer.bytes["c2"] > 0
    # A Tap* the engine sent before the failure reached it is moot, not an error.
    assert shell.submit(TapState("c1", TapMode.PAUSED)) == []
    assert writer.bytes.get("c1", 0) == before
    # A failure without a file reports 0 s / 0 bytes.
    assert svc.failed("c2", "Permission denied: /rec", None)
    assert rec.got[-1] == RecordingError("c2", "Permission denied: /rec")


def test_a_failure_while_closing_is_the_final_report():
    media, shell, svc, writer, rec = shell_rig()
    shell.submit(tap_open("c1"))
    shell.submit(TapClose("c1"))
    assert svc.failed("c1", "Input/output error: /rec/c1.wav", Summary(1.0, 16044, "y"))
    assert rec.got == [RecordingError("c1", "Input/output error: /rec/c1.wav",
                                      duration_s=1.0, size=16044)]
    assert svc.closed("c1", Summary(1.0, 16044, "y")) is False  # one final report only


def test_a_writer_that_closes_an_open_recording_at_shutdown_reports_it_closed():
    media, shell, svc, writer, rec = shell_rig()
    shell.submit(tap_open("c1"))
    run(media, 4)
    svc.flush()
    assert writer.bytes["c1"] == 4 * 640
    assert svc.closed("c1", Summary(0.08, 2604, "z"))
    assert rec.got == [RecordingClosed("c1", 0.08, 2604, "z")]
    assert len(media.taps) == 0


def test_sources_and_state_reach_the_tap():
    media, shell, svc, writer, rec = shell_rig()
    shell.submit(tap_open("c1"))
    shell.submit(TapSources("c1", "trunk/1", ("ext/202", "ext/203")))
    assert len(media.taps) == 3
    shell.submit(TapState("c1", TapMode.STOPPED))
    assert svc.tap.mode("c1") is TapMode.STOPPED
    run(media, 5)
    shell.submit(TapState("c1", TapMode.RUNNING))
    run(media, 2)
    shell.submit(TapClose("c1"))
    assert writer.bytes["c1"] == 2 * 640


def test_inputs_the_table_does_not_allow_raise_and_name_the_recording():
    media, shell, svc, writer, rec = shell_rig()
    with pytest.raises(ServiceError, match="c9 is not open"):
        shell.submit(TapClose("c9"))
    shell.submit(tap_open("c1"))
    with pytest.raises(ServiceError, match="already open"):
        shell.submit(tap_open("c1"))
    with pytest.raises(ServiceError, match="no audio channel"):
        shell.submit(TapSources("c1", "ext/999"))
    assert len(media.taps) == 1  # still recording what it followed
    shell.submit(TapClose("c1"))
    for late in (TapClose("c1"), TapState("c1", TapMode.PAUSED), TapSources("c1", "trunk/1")):
        with pytest.raises(ServiceError, match="c1 is closing"):
            shell.submit(late)
    with pytest.raises(ServiceError, match="does not take"):
        svc.handle(T0, RecordingClosed("c1", 0, 0, ""))


def test_reports_for_recordings_it_did_not_open_are_ignored():
    media, shell, svc, writer, rec = shell_rig()
    assert svc.closed("vm-1", Summary(3.0, 48044, "q")) is False
    assert svc.failed("vm-1", "No space left on device", None) is False
    assert rec.got == []
    assert svc.next_deadline() is None and svc.handle_timer(T0) == []


# ------------------------------------------------------------------ the real writer


async def _writer_rig(tmp_path: Path, port: TonePort | None = None):
    loop = asyncio.get_running_loop()
    media = MediaPlane(LINES, port=port or TonePort(len(LINES)))
    shell = Shell(Bus(), VirtualClock(T0), log_events=False)
    rec = Recorder()
    svc = RecordingService.with_writer(
        media, shell.submit,
        lambda closed, failed: RecordingWriter(tmp_path, on_closed=closed, on_error=failed,
                                               call_soon=loop.call_soon_threadsafe))
    svc.writer.start()
    shell.add(svc, takes=RecordingService.TAKES)
    shell.add(rec, takes=RECORDER_INPUTS)
    return media, shell, svc, rec


def shell_port(media: MediaPlane) -> TonePort:
    assert isinstance(media.port, TonePort)
    return media.port


async def _reports(rec: Recorder, n: int) -> list[Any]:
    for _ in range(500):
        if len(rec.got) >= n:
            return rec.got
        await asyncio.sleep(0.01)
    raise AssertionError(f"waited for {n} reports, got {rec.got}")


async def test_real_writer_file_reads_back_with_wave_sample_by_sample(tmp_path):
    media, shell, svc, rec = await _writer_rig(tmp_path)
    bridge(media, "b1", ("trunk/1", Role.PARTY), ("ext/201", Role.PARTY),
           ("ext/203", Role.WHISPER, "ext/201"))
    shell.submit(tap_open("c1", extras=("ext/203",)))
    a = run(media, 70)
    shell.submit(TapState("c1", TapMode.PAUSED))
    run(media, 10)
    shell.submit(TapState("c1", TapMode.RUNNING))
    b = run(media, 20)
    shell.submit(TapClose("c1"))
    (closed,) = await _reports(rec, 1)
    assert await svc.writer.stop(5.0) == 0
    path = tmp_path / recording_relpath("c1", T0)
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        assert w.getnframes() == 100 * FRAME
        audio = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    left, right = audio[:, 0], audio[:, 1]
    zeros = np.zeros(10 * FRAME, np.int16)
    port = shell_port(media)
    assert np.array_equal(left, np.concatenate(
        [said(port, media, "trunk/1", a), zeros, said(port, media, "trunk/1", b)]))
    assert np.array_equal(right, np.concatenate(
        [expected_right(port, media, "trunk/1", ["ext/203"], a), zeros,
         expected_right(port, media, "trunk/1", ["ext/203"], b)]))
    data = path.read_bytes()
    assert closed == RecordingClosed("c1", duration_s=2.0, size=len(data),
                                     sha256=hashlib.sha256(data).hexdigest())
    assert len(data) == 44 + 100 * 640


async def test_real_writer_alaw_mono_file_decodes_back(tmp_path):
    media, shell, svc, rec = await _writer_rig(tmp_path)
    bridge(media, "b1", ("trunk/2", Role.PARTY), ("ext/202", Role.PARTY))
    shell.submit(tap_open("c2", customer="trunk/2", layout=RecordLayout.MONO,
                          fmt=RecordFormat.ALAW))
    frames = run(media, 50)
    shell.submit(TapClose("c2"))
    (closed,) = await _reports(rec, 1)
    await svc.writer.stop(5.0)
    path = tmp_path / recording_relpath("c2", T0)
    info = read_info(path)
    assert (info.channels, info.fmt, info.data_bytes) == (1, RecordFormat.ALAW, 50 * FRAME)
    codes = np.frombuffer(path.read_bytes()[data_offset(RecordFormat.ALAW):], np.uint8)
    port = shell_port(media)
    pcm = sat(said(port, media, "trunk/2", frames).astype(np.int32)
              + heard(port, media, "trunk/2", frames))
    assert np.array_equal(codes, alaw_encode(pcm))
    assert np.abs(alaw_decode(codes).astype(np.int32) - pcm).max() <= 1024
    assert closed.duration_s == pytest.approx(1.0)
    if shutil.which("sox") is None:
        pytest.skip("sox is not installed: the header was checked by read_info only")
    out = subprocess.run(["sox", "--i", str(path)], capture_output=True, text=True, check=True)
    assert "Channels       : 1" in out.stdout and "A-law" in out.stdout
    assert "00:00:01.00" in out.stdout


async def test_real_writer_unwritable_directory_fails_the_recording_and_the_next_one_works(
        tmp_path):
    media, shell, svc, rec = await _writer_rig(tmp_path)
    year = recording_relpath("c1", T0).parts[0]
    (tmp_path / year).write_text("a file where the year's folder should be")
    shell.submit(tap_open("c1"))
    run(media, 60)
    (failed,) = await _reports(rec, 1)
    assert isinstance(failed, RecordingError) and "Not a directory" in failed.reason
    assert failed.size == 0 and svc.state("c1") is None and len(media.taps) == 0
    # The disk is usable again: the next call records.
    (tmp_path / year).unlink()
    shell.submit(tap_open("c2", customer="trunk/2"))
    run(media, 25)
    shell.submit(TapClose("c2"))
    closed = (await _reports(rec, 2))[1]
    await svc.writer.stop(5.0)
    assert closed == RecordingClosed("c2", duration_s=0.5, size=44 + 25 * 640,
                                     sha256=closed.sha256)


# ------------------------------------------------------------------ the bench


def test_bench_media_records_every_call_through_tap_and_writer(tmp_path):
    result = bench_media(40, 0.5, record=True, record_dir=tmp_path)
    assert result.recordings == 20 and result.tapped == 20
    assert result.record_failures == 0 and result.dropped_bytes == 0
    assert result.dropped_frames == 0
    # 5 warm-up frames + 25 measured, stereo PCM, every call.
    assert result.writer_bytes == 20 * 30 * 640
    assert result.realtime_bytes_per_s == 20 * 32000
    assert result.record_cpu_us_per_channel_frame is not None
    assert result.record_cpu_us_per_channel_frame > 0
    files = sorted(tmp_path.rglob("*.wav"))
    assert len(files) == 20
    for f in files:
        with wave.open(str(f), "rb") as w:
            assert w.getnchannels() == 2 and w.getnframes() == 30 * FRAME


def test_bench_media_without_record_reports_no_recording_figures():
    result = bench_media(20, 0.2)
    assert result.recordings is None and result.writer_bytes is None and result.tapped == 3
