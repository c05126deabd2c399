"""Start-up recovery of voicemail on a real SQLite store and real WAV files: a message a
``kill -9`` left half-written (stale header, no row) is repaired and indexed, so VM.LIST
shows it; a file that is no message of ours is left alone; a second start does nothing."""

from __future__ import annotations

import hashlib
import os
import wave
from pathlib import Path
from types import MappingProxyType

import pytest
from structlog.testing import capture_logs

from switchd.recorder.mailboxes import Mailboxes
from switchd.recorder.model import Mailbox, RecordFormat, VoicemailSettings
from switchd.recorder.vm_index import MessageIndex, MessageRow
from switchd.recorder.vm_recovery import received_at, recover_messages
from switchd.recorder.wav import WavFile
from switchd.store.sqlite import Store
from switchd.timefmt import iso_utc

MSG = "01M8N9J549Z9X5Z4PSGR5KQYRB"  # a ULID: 2026-11-30T03:56:45.065Z
MSG_T = 1796011005.065
MTIME = MSG_T + 30.0  # the last write, well after the beep


@pytest.fixture
async def store(tmp_path: Path):
    s = await Store.open(tmp_path / "switchd.db")
    yield s
    await s.close()


def _boxes(tmp_path: Path) -> Mailboxes:
    return Mailboxes(VoicemailSettings(directory=tmp_path / "vm", min_s=1.0,
                                       boxes=MappingProxyType({
                                           "1001": Mailbox("1001", owner="agent:1001"),
                                           "sales": Mailbox("sales")})))


def _killed(path: Path, patched_frames: int, extra_frames: int, *, partial: int = 1) -> bytes:
    """A mono PCM message as a kill -9 leaves it: ``patched_frames`` counted by the
    header, ``extra_frames`` more (and ``partial`` bytes of a frame) on disk after the
    last patch. Returns the audio of every whole frame."""
    audio = bytes(range(256)) * ((patched_frames + extra_frames) * 2 // 256 + 1)
    audio = audio[:(patched_frames + extra_frames) * 2]
    f = WavFile.create(path, 1, RecordFormat.PCM)
    f.append(audio[:patched_frames * 2])
    f.patch()
    f.append(audio[patched_frames * 2:])
    f.abandon()  # the process dies: no close, no final patch
    with open(path, "ab") as raw:
        raw.write(b"\x07" * partial)
    os.utime(path, (MTIME, MTIME))
    return audio


async def test_a_message_cut_by_a_crash_is_repaired_indexed_and_listed(store, tmp_path):
    directory = tmp_path / "vm"
    path = directory / "1001" / f"{MSG}.wav"
    audio = _killed(path, 8000, 12000)  # 1 s in the header, 2.5 s on disk
    boxes = _boxes(tmp_path)
    with capture_logs() as logs:
        got = await recover_messages(store, directory, boxes)
    assert [(g.id, g.mailbox, g.file, g.duration_s, g.short) for g in got] == [
        (MSG, "1001", path, 2.5, False)]
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getnframes()) == (1, 2, 20000)
        assert w.readframes(20000) == audio
    [row] = await store.fetch("SELECT * FROM voicemail", {})
    assert row == {"id": MSG, "mailbox": "1001", "call_id": None, "caller": None,
                   "file": f"1001/{MSG}.wav", "received": iso_utc(MSG_T),
                   "duration_s": 2.5, "size": 44 + 40000, "heard": 0,
                   "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert [e["message"] for e in logs if e["event"] == "voicemail_recovered"] == [MSG]
    index = MessageIndex(store, directory, boxes)
    listed = await index.list("1001")
    assert [(m["id"], m["heard"], m["file"]) for m in listed] == [(MSG, False, str(path))]
    assert await index.waiting("1001") == 1
    assert await recover_messages(store, directory, boxes) == []  # the next start


async def test_a_file_cut_inside_its_header_and_a_short_message_are_kept(store, tmp_path):
    directory = tmp_path / "vm"
    stub = directory / "sales" / "stub.wav"
    stub.parent.mkdir(parents=True)
    stub.write_bytes(b"RIFF\x00\x00")  # killed while the header was being written
    os.utime(stub, (MTIME, MTIME))
    short = directory / "1001" / "short.wav"
    _killed(short, 0, 2000, partial=0)  # 0.25 s: below min_s, but the caller did not choose
    with capture_logs() as logs:
        got = await recover_messages(store, directory, _boxes(tmp_path))
    by_id = {g.id: g for g in got}
    assert (by_id["short"].duration_s, by_id["short"].short) == (0.25, True)
    assert (by_id["stub"].duration_s, by_id["stub"].size) == (0.0, 44)
    assert short.exists() and stub.stat().st_size == 44
    rows = {r["id"]: r for r in await store.fetch("SELECT * FROM voicemail", {})}
    # Not ULIDs: received is the last write minus the audio.
    assert rows["short"]["received"] == iso_utc(MTIME - 0.25)
    assert rows["stub"]["received"] == iso_utc(MTIME)
    assert sorted((e["message"], e["short"]) for e in logs
                  if e["event"] == "voicemail_recovered") == [("short", True), ("stub", True)]


async def test_files_not_ours_or_already_indexed_are_left_alone(store, tmp_path):
    directory = tmp_path / "vm"
    boxes = _boxes(tmp_path)
    index = MessageIndex(store, directory, boxes)
    index.start()
    done = directory / "1001" / "DONE.wav"
    _killed(done, 800, 0, partial=0)
    before_done = done.read_bytes()
    index.save(MessageRow("DONE", "1001", "C1", "139", "1001/DONE.wav", MSG_T, 0.1, 1644, "x"))
    await index.close()
    junk = directory / "1001" / "notes.wav"
    junk.write_bytes(b"not a wav file at all, but long enough to have a header" * 4)
    before_junk = junk.read_bytes()
    copy = directory / "sales" / "DONE.wav"
    copy.parent.mkdir()
    copy.write_bytes(before_done)
    loose = directory / "loose.wav"  # not in a box folder
    loose.write_bytes(before_junk)
    with capture_logs() as logs:
        assert await recover_messages(store, directory, boxes) == []
    assert (done.read_bytes(), junk.read_bytes()) == (before_done, before_junk)
    assert [r["id"] for r in await store.fetch("SELECT id FROM voicemail", {})] == ["DONE"]
    assert sorted(e["file"] for e in logs if e["event"] == "voicemail_file_skipped") == [
        str(junk), str(copy)]


async def test_a_box_removed_from_the_config_keeps_its_recovered_message(store, tmp_path):
    directory = tmp_path / "vm"
    _killed(directory / "gone" / f"{MSG}.wav", 4000, 4000)
    with capture_logs() as logs:
        got = await recover_messages(store, directory, _boxes(tmp_path))
    assert [g.mailbox for g in got] == ["gone"]
    [event] = [e for e in logs if e["event"] == "voicemail_recovered"]
    assert event["configured"] is False
    assert await recover_messages(store, tmp_path / "nowhere", _boxes(tmp_path)) == []


def test_received_is_the_id_time_unless_it_is_no_ulid_or_after_the_last_write():
    assert received_at(MSG, MTIME, 2.0) == pytest.approx(MSG_T)
    assert received_at("not-a-ulid", MTIME, 2.0) == MTIME - 2.0
    assert received_at(MSG, MSG_T - 60, 2.0) == MSG_T - 62  # an id from the future
