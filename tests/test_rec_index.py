"""The recordings index: rows written from the recorder's events, queries, keep, and
start-up recovery of what a crash left. Every test uses a real SQLite file and real
WAV files (written and read back with the ``wave`` module)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import wave
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from switchd.events import (
    CallEnded,
    Cdr,
    Disposition,
    HangupCause,
    QueueConnected,
    RecordingDone,
    RecordingFailed,
    RecordingMark,
    RecordingMarks,
    RecordingStarted,
)
from switchd.recorder import index
from switchd.recorder.index import RecordingIndex
from switchd.recorder.model import RecordStatus, recording_relpath
from switchd.recorder.recovery import FILE_MISSING, NO_ROW, OPEN_AT_CRASH, recover
from switchd.store import Store
from switchd.timefmt import iso_utc

T0 = 1796010523.123  # 2026-11-30T03:48:43.123Z
CALL = "01M8N9J549Z9X5Z4PSGR5KQYRB"  # a ULID: 2026-11-30T03:56:45.065Z


# ------------------------------------------------------------------ helpers (shared)


def started(call: str = CALL, t: float = T0, *, caller: str = "13800000001",
            callee: str = "8000", layout: str = "stereo", fmt: str = "pcm",
            segment: int = 1, direction: str = "inbound") -> RecordingStarted:
    return RecordingStarted(call, t, call, recording_relpath(call, t).as_posix(), "on_answer",
                            layout, fmt, "answer", direction, caller, callee, segment)


def ended(call: str = CALL, t: float = T0 + 60, *, agent: str | None = "a1",
          queue: str | None = "sales", recording: str | None = CALL) -> CallEnded:
    cdr = Cdr(call, call, "13800000001", "8000", '"13800000001" <13800000001>', T0 - 5, T0,
              t, 65, 60, "ANSWERED", "inbound", trunk=1, extension=201, agent=agent,
              queue=queue, recording_id=recording)
    cause = HangupCause.NORMAL_CLEARING
    return CallEnded(call, t, Disposition.ANSWERED, 65, 60, "caller", cause, cause.value[1], cdr)


def done(call: str = CALL, t: float = T0 + 60.2, *, status: str = "done",
         marks: RecordingMarks | None = None) -> RecordingDone:
    return RecordingDone(call, t, call, recording_relpath(call, T0).as_posix(), status, 60.0,
                         1_920_044, "ab" * 32, marks)


async def open_store(tmp_path: Path) -> Store:
    return await Store.open(tmp_path / "switchd.db")


async def rows(store: Store) -> list[dict[str, Any]]:
    return await store.fetch("SELECT * FROM recordings ORDER BY start, id", {})


def write_wav(path: Path, frames: int, *, channels: int = 2, seed: int = 1) -> bytes:
    """A PCM 8 kHz WAV of ``frames`` sample frames (distinct values); returns the audio."""
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = bytes((seed * 7 + i * 13) % 256 for i in range(frames * channels * 2))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(audio)
    return audio


async def insert_row(store: Store, rec_id: str, start: float, *, end: float | None = None,
                     size: int = 1000, status: str = "done", keep: bool = False,
                     file: str | None = None, caller: str = "13800000001",
                     agent: str | None = "a1", sha256: str | None = None) -> None:
    """An index row as the writer would leave it."""
    await store.execute(
        'INSERT INTO recordings (id, call_id, file, start, "end", duration_s, size, caller, '
        "callee, agent, queue, direction, mode, channels, format, status, sha256, keep) VALUES "
        "(:id, :id, :file, :start, :end, 1.0, :size, :caller, '8000', :agent, 'sales', "
        "'inbound', 'on_answer', 2, 'pcm', :status, :sha, :keep)",
        {"id": rec_id, "file": file or recording_relpath(rec_id, start).as_posix(),
         "start": iso_utc(start), "end": iso_utc(end) if end is not None else None,
         "size": size, "caller": caller, "agent": agent, "status": status, "sha": sha256,
         "keep": int(keep)})


# ------------------------------------------------------------------ the writer


async def test_a_recording_row_follows_the_call_from_start_to_done(tmp_path):
    store = await open_store(tmp_path)
    idx = RecordingIndex(store)
    idx.start()
    idx.on_event(started())
    await idx.flush()
    (row,) = await rows(store)
    assert row["status"] == "recording" and row["file"] == "2026/11/30/" + CALL + ".wav"
    assert (row["start"], row["channels"], row["format"], row["direction"], row["mode"]) == (
        "2026-11-30T03:48:43.123Z", 2, "pcm", "inbound", "on_answer")
    assert row["end"] is None and row["agent"] is None

    idx.on_event(QueueConnected(CALL, T0 + 10, "sales", "a7", "ext/207", 8.0, 2.0))
    await idx.flush()
    assert (await rows(store))[0]["agent"] == "a7"

    marks = RecordingMarks((RecordingMark(T0, 0.0, "start", "answer"),
                            RecordingMark(T0 + 20, 20.0, "pause", "a7"),
                            RecordingMark(T0 + 30, 30.0, "resume", "")))
    idx.on_event(ended(agent="a1"))
    idx.on_event(done(marks=marks))
    await idx.close()
    (row,) = await rows(store)
    # The CDR is the authority on who took the call and when it ended.
    assert (row["agent"], row["queue"], row["end"]) == ("a1", "sales", iso_utc(T0 + 60))
    assert (row["status"], row["duration_s"], row["size"], row["sha256"]) == (
        "done", 60.0, 1_920_044, "ab" * 32)
    assert json.loads(row["marks"]) == [
        {"at": "2026-11-30T03:48:43.123Z", "offset_s": 0.0, "kind": "start", "detail": "answer"},
        {"at": "2026-11-30T03:49:03.123Z", "offset_s": 20.0, "kind": "pause", "detail": "a7"},
        {"at": "2026-11-30T03:49:13.123Z", "offset_s": 30.0, "kind": "resume", "detail": ""}]
    await store.close()


async def test_an_agent_known_before_the_recording_starts_is_in_the_first_row(tmp_path):
    # Mode on_agent: queue.connected is what starts the recording.
    store = await open_store(tmp_path)
    idx = RecordingIndex(store)
    idx.start()
    idx.on_event(QueueConnected(CALL, T0, "support", "a3", "ext/203", 12.0, 3.0))
    idx.on_event(started())
    await idx.close()
    (row,) = await rows(store)
    assert (row["agent"], row["queue"]) == ("a3", "support")
    await store.close()


async def test_a_call_without_a_recording_writes_nothing(tmp_path):
    store = await open_store(tmp_path)
    idx = RecordingIndex(store)
    idx.start()
    idx.on_event(QueueConnected(CALL, T0, "support", "a3", "ext/203", 12.0, 3.0))
    idx.on_event(ended(recording=None))
    await idx.close()
    assert await rows(store) == [] and idx.written == 0
    await store.close()


async def test_a_second_segment_keeps_the_row_and_a_failure_keeps_its_reason(tmp_path):
    store = await open_store(tmp_path)
    idx = RecordingIndex(store)
    idx.start()
    idx.on_event(started())
    idx.on_event(started(t=T0 + 30, segment=2, caller="changed"))
    idx.on_event(RecordingFailed(CALL, T0 + 40, CALL, "x.wav", "No space left on device"))
    idx.on_event(ended())
    idx.on_event(done(status="failed"))
    await idx.close()
    (row,) = await rows(store)
    assert row["start"] == iso_utc(T0)  # the first segment's start
    assert (row["status"], row["error"]) == ("failed", "No space left on device")
    assert row["duration_s"] == 60.0  # what reached the file is indexed
    await store.close()


class FlakyStore:
    """A Store whose writes fail ``failures`` times with 'database is locked' first."""

    def __init__(self, store: Store, failures: int) -> None:
        self.store = store
        self.failures = failures
        self.calls = 0

    async def execute_steps(self, steps: Any) -> int:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("database is locked")
        return await self.store.execute_steps(steps)


async def test_a_transient_sqlite_error_is_retried_until_the_row_is_written(tmp_path):
    store = await open_store(tmp_path)
    flaky = FlakyStore(store, failures=3)
    idx = RecordingIndex(flaky, retry_initial_s=0.001, retry_max_s=0.004)  # type: ignore[arg-type]
    idx.start()
    with capture_logs() as logs:
        idx.on_event(started())
        idx.on_event(ended())
        idx.on_event(done())
        await asyncio.wait_for(idx.flush(), 5)
    await idx.close()
    (row,) = await rows(store)
    assert row["status"] == "done" and row["agent"] == "a1"
    assert [e["event"] for e in logs].count("recording_index_write_failed") == 3
    assert idx.written == 3
    await store.close()


async def test_a_write_the_database_refuses_is_skipped_loudly_and_the_rest_goes_on(tmp_path):
    store = await open_store(tmp_path)
    idx = RecordingIndex(store)
    idx.start()
    other = "01M8N9KMYDGDA9P097V8HTTDJN"
    with capture_logs() as logs:
        idx.on_event(started())
        idx.on_event(started(other))
        # Two Done writes in one transaction; the first breaks the status CHECK.
        idx.on_event(done(status="bogus"))
        idx.on_event(done(other))
        await idx.close()
    got = {r["id"]: r["status"] for r in await rows(store)}
    assert got == {CALL: "recording", other: "done"}
    rejected = [e for e in logs if e["event"] == "recording_index_rejected"]
    assert len(rejected) == 1 and rejected[0]["recording_id"] == CALL
    await store.close()


async def test_events_after_close_are_said_loudly_and_left_to_recovery(tmp_path):
    store = await open_store(tmp_path)
    idx = RecordingIndex(store)
    idx.start()
    await idx.close()
    with capture_logs() as logs:
        idx.on_event(started())
    [warned] = [e for e in logs if e["event"] == "recording_index_write_after_close"]
    assert warned["what"] == "recording.started" and "repairs" in warned["action"]
    assert await rows(store) == []
    await store.close()


# ------------------------------------------------------------------ queries


async def test_query_filters_newest_first_and_gives_absolute_files(tmp_path):
    store = await open_store(tmp_path)
    await insert_row(store, "R1", T0, end=T0 + 60, caller="111", agent="a1")
    await insert_row(store, "R2", T0 + 100, end=T0 + 160, caller="222", agent="a2",
                     status="failed")
    await insert_row(store, "R3", T0 + 200, caller="111", agent="a2", status="recording")
    got = await index.query(store, directory=tmp_path / "rec")
    assert [r["id"] for r in got] == ["R3", "R2", "R1"]
    assert got[0]["file"] == str(tmp_path / "rec" / recording_relpath("R3", T0 + 200))
    assert got[0]["keep"] is False
    assert [r["id"] for r in await index.query(store, caller="111")] == ["R3", "R1"]
    assert [r["id"] for r in await index.query(store, agent="a2", status="failed")] == ["R2"]
    assert [r["id"] for r in await index.query(store, since=str(T0 + 100))] == ["R3", "R2"]
    assert [r["id"] for r in await index.query(store, until=iso_utc(T0 + 100))] == ["R1"]
    assert [r["id"] for r in await index.query(store, call="R1")] == ["R1"]
    assert [r["id"] for r in await index.query(store, limit=1)] == ["R3"]
    await store.close()


@pytest.mark.parametrize("kw, message", [
    ({"status": "finished"}, "bad status 'finished': expected one of recording, done, "
                             "recovered, failed"),
    ({"limit": 0}, "bad limit 0"),
    ({"since": "yesterday"}, "bad since 'yesterday'"),
])
async def test_query_refuses_a_bad_filter_saying_what_is_accepted(tmp_path, kw, message):
    store = await open_store(tmp_path)
    with pytest.raises(ValueError, match=message):
        await index.query(store, **kw)
    await store.close()


async def test_query_all_pages_through_rows_that_share_a_start(tmp_path):
    store = await open_store(tmp_path)
    for i in range(7):
        await insert_row(store, f"R{i}", T0 + (0 if i < 5 else i))
    got = [r["id"] async for r in index.query_all(store, page=2)]
    assert got == ["R6", "R5", "R4", "R3", "R2", "R1", "R0"]
    got = [r["id"] async for r in index.query_all(store, page=3, since=iso_utc(T0 + 1))]
    assert got == ["R6", "R5"]
    await store.close()


async def test_set_keep_marks_and_unmarks_and_says_when_there_is_no_such_recording(tmp_path):
    store = await open_store(tmp_path)
    await insert_row(store, "R1", T0, end=T0 + 60)
    row = await index.set_keep(store, "R1", True)
    assert row is not None and row["keep"] is True
    row = await index.set_keep(store, "R1", False)
    assert row is not None and row["keep"] is False
    assert await index.set_keep(store, "NOPE", True) is None
    await store.close()


# ------------------------------------------------------------------ recovery


def _crash(path: Path, extra_frames: int, *, partial: int = 3) -> None:
    """What a kill -9 leaves: audio appended after the header's last patch, and part of a
    sample frame at the end."""
    with open(path, "ab") as f:
        f.write(bytes(range(256)) * (extra_frames * 4 // 256) + bytes(extra_frames * 4 % 256))
        f.write(b"\x01" * partial)


async def test_a_recording_open_at_a_crash_is_repaired_and_marked_recovered(tmp_path):
    store = await open_store(tmp_path)
    directory = tmp_path / "recordings"
    idx = RecordingIndex(store)
    idx.start()
    idx.on_event(started())
    await idx.close()
    path = directory / recording_relpath(CALL, T0)
    audio = write_wav(path, 8000)  # 1 s patched into the header
    _crash(path, 4000)             # 0.5 s more reached the disk, then the kill
    with capture_logs() as logs:
        got = await recover(store, directory)
    assert [(g.id, g.status, g.why) for g in got] == [
        (CALL, RecordStatus.RECOVERED, OPEN_AT_CRASH)]
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, 8000, 12000)
        assert w.readframes(8000) == audio
    (row,) = await rows(store)
    assert row["status"] == "recovered" and row["duration_s"] == 1.5
    assert row["size"] == path.stat().st_size == 44 + 12000 * 4
    assert row["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert row["end"] is not None
    assert any(e["event"] == "recording_recovered" and e["recording_id"] == CALL for e in logs)
    # A second start finds nothing left to do.
    assert await recover(store, directory) == []
    await store.close()


async def test_a_row_whose_file_is_gone_becomes_failed(tmp_path):
    store = await open_store(tmp_path)
    await insert_row(store, CALL, T0, status="recording")
    got = await recover(store, tmp_path / "recordings")
    assert [(g.status, g.why) for g in got] == [(RecordStatus.FAILED, FILE_MISSING)]
    (row,) = await rows(store)
    assert (row["status"], row["error"]) == ("failed", FILE_MISSING)
    await store.close()


async def test_a_file_with_no_row_gets_a_recovered_row_with_its_cdr_facts(tmp_path):
    store = await open_store(tmp_path)
    directory = tmp_path / "recordings"
    await store.insert_cdrs([ended(agent=None, queue="support").cdr])
    path = directory / recording_relpath(CALL, T0)
    write_wav(path, 4000, channels=1)
    _crash(path, 0, partial=1)
    lonely = "01M8N9KMYDGDA9P097V8HTTDJN"
    write_wav(directory / recording_relpath(lonely, T0), 800)
    got = await recover(store, directory)
    assert sorted((g.id, g.why) for g in got) == [(CALL, NO_ROW), (lonely, NO_ROW)]
    by_id = {r["id"]: r for r in await rows(store)}
    row = by_id[CALL]
    assert (row["status"], row["channels"], row["format"], row["duration_s"]) == (
        "recovered", 1, "pcm", 0.5)
    assert (row["caller"], row["callee"], row["agent"], row["queue"], row["direction"]) == (
        "13800000001", "8000", "201", "support", "inbound")
    assert row["end"] == iso_utc(T0 + 60)  # the call's end, from its CDR
    assert row["file"] == recording_relpath(CALL, T0).as_posix()
    # A ULID call id bounds the start from below.
    assert row["start"] >= "2026-11-30T03:56:45.065Z"
    assert by_id[lonely]["direction"] == "unknown" and by_id[lonely]["caller"] is None
    await store.close()


async def test_a_file_that_is_no_recording_is_left_alone_and_named_in_the_log(tmp_path):
    store = await open_store(tmp_path)
    directory = tmp_path / "recordings"
    junk = directory / "2026" / "notes.wav"
    junk.parent.mkdir(parents=True)
    junk.write_bytes(b"this is not a wav file at all, but it is long enough" * 4)
    before = junk.read_bytes()
    with capture_logs() as logs:
        assert await recover(store, directory) == []
    assert junk.read_bytes() == before and await rows(store) == []
    assert [e["file"] for e in logs if e["event"] == "recording_file_skipped"] == [str(junk)]
    await store.close()


async def test_search_by_agent_finds_every_agent_who_was_in_the_call(tmp_path):
    """A consult transfer from a_1 to a2: the CDR names a2 (the last agent), and a search
    for a_1 still finds the recording; LIKE's wildcards in the id do not over-match."""
    store = await open_store(tmp_path)
    idx = RecordingIndex(store)
    idx.start()
    idx.on_event(started())
    marks = RecordingMarks((
        RecordingMark(T0, 0.0, "start", "answer"),
        RecordingMark(T0 + 5, 5.0, "members", "trunk/1:party,ext/201:party,agent=a_1"),
        RecordingMark(T0 + 30, 30.0, "members",
                      "trunk/1:held,ext/201:party,agent=a_1,ext/202:party,agent=a2"),
        RecordingMark(T0 + 40, 40.0, "members", "trunk/1:party,ext/202:party,agent=a2")))
    idx.on_event(ended(agent="a2"))
    idx.on_event(done(marks=marks))
    await idx.close()
    found = {a: [r["id"] for r in await index.query(store, agent=a)] for a in
             ("a_1", "a2", "ax1", "a")}
    assert found == {"a_1": [CALL], "a2": [CALL], "ax1": [], "a": []}
    (row,) = await index.query(store, call=CALL)
    assert (row["agent"], row["agents"]) == ("a2", "a_1,a2")
    await store.close()


def test_an_open_recording_shows_the_figures_of_its_file_as_it_is_now(tmp_path):
    """The index holds duration and size from the close; a search of a live recording
    reads them from the file (stereo PCM: 32 000 bytes a second after the 44-byte header)."""
    directory = tmp_path / "recordings"
    path = directory / recording_relpath(CALL, T0)
    write_wav(path, 16_000)                # 2 s of stereo frames
    rows = [{"id": CALL, "status": "recording", "file": str(path), "format": "pcm",
             "channels": 2, "size": 0, "duration_s": 0.0},
            {"id": "gone", "status": "recording", "file": str(directory / "nope.wav"),
             "format": "pcm", "channels": 2, "size": 0, "duration_s": 0.0},
            {"id": "closed", "status": "done", "file": str(path), "format": "pcm",
             "channels": 2, "size": 7, "duration_s": 9.0}]
    live, gone, closed = index.live_figures(rows)
    assert (live["size"], live["duration_s"]) == (path.stat().st_size, 2.0)
    assert (gone["size"], gone["duration_s"]) == (0, 0.0)
    assert closed == rows[2]
