"""The voicemail index on a real SQLite store: rows written in the background (a failing
database retried, never a row lost), the unheard count, VM.LIST/FETCH/DELETE's queries,
and short messages' files deleted off the loop. No sleeps: each test waits for
``flush()`` or for what it arranged."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import MappingProxyType

import pytest

from switchd.exceptions import ProtocolError, StorageError
from switchd.recorder.mailboxes import Mailboxes
from switchd.recorder.model import Mailbox, VoicemailSettings
from switchd.recorder.vm_index import MessageIndex, MessageRow
from switchd.store.sqlite import Store

T0 = 1_764_000_000.0


@pytest.fixture
async def store(tmp_path: Path):
    s = await Store.open(tmp_path / "switchd.db")
    yield s
    await s.close()


def _boxes(tmp_path: Path) -> Mailboxes:
    return Mailboxes(VoicemailSettings(directory=tmp_path / "vm", boxes=MappingProxyType({
        "1001": Mailbox("1001", owner="agent:1001"), "sales": Mailbox("sales")})))


def _row(i: int, box: str = "1001", *, at: float | None = None) -> MessageRow:
    return MessageRow(f"M{i:03d}", box, f"C{i}", f"1390000{i:04d}", f"{box}/M{i:03d}.wav",
                      T0 + i if at is None else at, 2.5 + i, 40_044 + i, f"{i:064x}")


def _file(tmp_path: Path, row: MessageRow) -> Path:
    path = tmp_path / "vm" / row.file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF....WAVE")
    return path


async def _index(store: Store, tmp_path: Path, **kw: object) -> tuple[MessageIndex, list]:
    saved: list[tuple[str, int]] = []
    index = MessageIndex(store, tmp_path / "vm", _boxes(tmp_path),
                         on_saved=lambda row, waiting: saved.append((row.id, waiting)), **kw)
    index.start()
    return index, saved


async def test_saved_rows_are_reported_with_the_box_unheard_count(store, tmp_path):
    index, saved = await _index(store, tmp_path)
    for i in (1, 2):
        index.save(_row(i))
    index.save(_row(3, "sales"))
    await index.flush()
    assert saved == [("M001", 1), ("M002", 2), ("M003", 1)]
    assert index.saved == 3
    [raw] = await store.fetch("SELECT * FROM voicemail WHERE id = 'M002'", {})
    assert raw == {"id": "M002", "mailbox": "1001", "call_id": "C2", "caller": "13900000002",
                   "file": "1001/M002.wav", "received": "2025-11-24T16:00:02.000Z",
                   "duration_s": 4.5, "size": 40_046, "heard": 0, "sha256": f"{2:064x}"}
    assert await index.close() == 0


async def test_list_is_newest_first_per_box_or_all_with_absolute_files(store, tmp_path):
    index, _ = await _index(store, tmp_path)
    for i in (1, 2, 3):
        index.save(_row(i))
    index.save(_row(4, "sales"))
    await index.flush()
    mine = await index.list("1001")
    assert [m["id"] for m in mine] == ["M003", "M002", "M001"]
    assert mine[0] == {"id": "M003", "mailbox": "1001", "call": "C3", "caller": "13900000003",
                       "received": "2025-11-24T16:00:03.000Z", "duration_s": 5.5,
                       "size": 40_047, "heard": False, "sha256": f"{3:064x}",
                       "file": str(tmp_path / "vm" / "1001" / "M003.wav")}
    assert [m["id"] for m in await index.list(None)] == ["M004", "M003", "M002", "M001"]
    assert [m["id"] for m in await index.list(None, limit=2)] == ["M004", "M003"]
    assert await index.list("sales", limit=1) != []
    await index.close()


async def test_list_of_an_unknown_box_is_not_found_but_a_removed_box_keeps_its_messages(
        store, tmp_path):
    index, _ = await _index(store, tmp_path)
    with pytest.raises(ProtocolError) as err:
        await index.list("sale")
    assert err.value.code == "not_found" and "did you mean 'sales'?" in err.value.msg
    index.save(_row(7, "gone"))  # its box was in the config when the message was left
    await index.flush()
    assert [m["id"] for m in await index.list("gone")] == ["M007"]
    assert await index.list("sales") == []
    with pytest.raises(ProtocolError) as err:
        await index.list("1001", limit=0)
    assert err.value.code == "bad_arg"
    await index.close()


async def test_fetch_marks_the_message_heard_and_delete_removes_row_and_file(store, tmp_path):
    index, _ = await _index(store, tmp_path)
    rows = [_row(1), _row(2)]
    files = [_file(tmp_path, r) for r in rows]
    for r in rows:
        index.save(r)
    await index.flush()
    assert await index.waiting("1001") == 2
    got = await index.fetch("M001")
    assert got["heard"] is True and got["file"] == str(files[0])
    assert await index.waiting("1001") == 1
    assert (await index.get("M001"))["heard"] is True
    gone = await index.delete("M002")
    assert gone["id"] == "M002" and not files[1].exists() and files[0].exists()
    assert [m["id"] for m in await index.list("1001")] == ["M001"]
    for call in (index.fetch, index.delete, index.get):
        with pytest.raises(ProtocolError) as err:
            await call("M002")
        assert err.value.code == "not_found"
    await index.close()


async def test_a_message_whose_file_is_already_gone_is_still_deleted(store, tmp_path):
    index, _ = await _index(store, tmp_path)
    index.save(_row(1))
    await index.flush()
    assert (await index.delete("M001"))["id"] == "M001"
    assert await index.list("1001") == []
    await index.close()


async def test_discard_deletes_a_short_message_file_off_the_loop(store, tmp_path):
    index, saved = await _index(store, tmp_path)
    path = _file(tmp_path, _row(1))
    index.discard(Path("1001/M001.wav"))
    index.discard(Path("1001/never-written.wav"))
    await index.flush()
    assert not path.exists() and saved == []
    assert await store.fetch("SELECT id FROM voicemail", {}) == []
    await index.close()


async def test_a_failing_database_is_retried_and_the_row_is_not_lost(store, tmp_path,
                                                                      monkeypatch):
    real = store.execute
    failures = [sqlite3.OperationalError("database is locked")] * 2

    async def flaky(sql: str, params: object = MappingProxyType({})) -> int:
        if failures and sql.startswith("INSERT"):
            raise failures.pop()
        return await real(sql, params)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "execute", flaky)
    index, saved = await _index(store, tmp_path, retry_initial_s=0.001, retry_max_s=0.002)
    index.save(_row(1))
    index.save(_row(2))
    await index.flush()
    assert saved == [("M001", 1), ("M002", 2)] and failures == []
    await index.close()


async def test_a_count_that_fails_after_the_insert_is_retried_alone(store, tmp_path,
                                                                     monkeypatch):
    real = store.fetch
    failures = [sqlite3.OperationalError("disk I/O error")]

    async def flaky(sql: str, params: object = MappingProxyType({})) -> list:
        if failures and "COUNT" in sql:
            raise failures.pop()
        return await real(sql, params)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "fetch", flaky)
    index, saved = await _index(store, tmp_path, retry_initial_s=0.001, retry_max_s=0.002)
    index.save(_row(1))
    index.save(_row(2))
    await index.flush()
    # The row was committed once; the retry counted it and announced it.
    assert saved == [("M001", 1), ("M002", 2)] and failures == []
    assert index.saved == 2
    assert [r["id"] for r in await real("SELECT id FROM voicemail ORDER BY id", {})] == [
        "M001", "M002"]
    await index.close()


async def test_the_same_message_twice_is_skipped_not_retried_for_ever(store, tmp_path):
    index, saved = await _index(store, tmp_path)
    index.save(_row(1))
    index.save(_row(1))
    index.save(_row(2))
    await index.flush()
    assert saved == [("M001", 1), ("M002", 2)]
    await index.close()


async def test_after_close_nothing_more_is_accepted(store, tmp_path):
    index, _ = await _index(store, tmp_path)
    assert await index.close() == 0
    with pytest.raises(StorageError):
        index.save(_row(1))
    with pytest.raises(StorageError):
        index.discard(Path("1001/x.wav"))
