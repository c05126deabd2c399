"""switchd.store: schema versioning, CDR and contact queries, and the background CDR writer.

Every test uses a real SQLite file under tmp_path.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from switchd.events import Cdr
from switchd.exceptions import StorageError
from switchd.store import CDR_COLUMNS, SCHEMA_VERSION, CdrWriter, Store, schema

T0 = 1796010523.123  # 2026-11-30T03:48:43.123Z


def make_cdr(n: int, *, start: float | None = None, **overrides: object) -> Cdr:
    """A complete, valid inbound CDR; ``n`` makes the uniqueid and caller unique."""
    begin = T0 + n if start is None else start
    values: dict[str, object] = {
        "uniqueid": f"01JCALL{n:06d}",
        "linkedid": f"01JLINK{n:06d}",
        "src": f"+4930{n:06d}",
        "dst": "100",
        "clid": f'"Caller {n}" <+4930{n:06d}>',
        "start": begin,
        "answer": begin + 4.5,
        "end": begin + 64.5,
        "duration": 65,
        "billsec": 60,
        "disposition": "ANSWERED",
        "direction": "inbound",
    }
    values.update(overrides)
    return Cdr(**values)  # type: ignore[arg-type]


@pytest.fixture
async def store(tmp_path: Path):
    s = await Store.open(tmp_path / "switchd.db")
    yield s
    await s.close()


def raw_pragma(path: Path, name: str) -> object:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


# --- schema and migrations ---------------------------------------------------------


async def test_fresh_database_is_created_at_current_version_in_wal_mode(tmp_path):
    path = tmp_path / "var" / "lib" / "switchd.db"
    s = await Store.open(path)
    assert s.path == path
    await s.close()
    assert raw_pragma(path, "user_version") == SCHEMA_VERSION
    assert raw_pragma(path, "journal_mode") == "wal"


def test_cdr_columns_are_exactly_the_cdr_fields_in_order():
    assert CDR_COLUMNS == tuple(f.name for f in dataclasses.fields(Cdr))


async def test_reopening_runs_no_migration_twice_and_keeps_rows(tmp_path):
    path = tmp_path / "switchd.db"
    with capture_logs() as first:
        s = await Store.open(path)
    await s.insert_cdrs([make_cdr(1)])
    await s.close()
    assert [e["to_version"] for e in first if e["event"] == "store_migrated"] == list(
        range(1, SCHEMA_VERSION + 1)
    )

    with capture_logs() as second:
        s = await Store.open(path)
    try:
        assert [e for e in second if e["event"] == "store_migrated"] == []
        assert await s.cdr_count() == 1
    finally:
        await s.close()


async def test_older_database_is_migrated_forward_keeping_its_rows(tmp_path, monkeypatch):
    path = tmp_path / "switchd.db"
    s = await Store.open(path)
    await s.set_contact("+4930111", name="Ada")
    await s.close()

    extra = "ALTER TABLE contacts ADD COLUMN tag TEXT; UPDATE contacts SET tag = 'x;y';"
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, extra))
    monkeypatch.setattr(schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    s = await Store.open(path)
    await s.close()

    assert raw_pragma(path, "user_version") == SCHEMA_VERSION + 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT name, tag FROM contacts").fetchall() == [("Ada", "x;y")]


async def test_version_2_database_gains_ivr_vars_keeping_its_rows(tmp_path, monkeypatch):
    """Migration 2 -> 3 adds cdr.ivr_vars; rows written before keep every value (NULL vars)."""
    path = tmp_path / "switchd.db"
    with monkeypatch.context() as m:
        m.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:2])
        m.setattr(schema, "SCHEMA_VERSION", 2)
        await (await Store.open(path)).close()
    old = make_cdr(1, ivr_path="main:welcome", hangup_cause="NORMAL_CLEARING", q850=16)
    row = {k: v for k, v in schema.cdr_row(old).items() if k not in ("ivr_vars", "note", "media")}
    columns = ", ".join(f'"{k}"' for k in row)  # "end" is a reserved word
    values = ", ".join(f":{k}" for k in row)
    assert raw_pragma(path, "user_version") == 2
    with sqlite3.connect(path) as conn:
        conn.execute(f"INSERT INTO cdr ({columns}) VALUES ({values})", row)

    s = await Store.open(path)
    try:
        assert raw_pragma(path, "user_version") == SCHEMA_VERSION >= 3
        new = make_cdr(2, ivr_path="main:welcome>menu", ivr_vars='{"lang": "en"}')
        await s.insert_cdrs([new])
        rows = {r["uniqueid"]: r for r in await s.query_cdrs()}
    finally:
        await s.close()
    assert rows[old.uniqueid] == schema.cdr_row(old) | {"ivr_vars": None, "note": None, "media": None}
    assert (rows[new.uniqueid]["ivr_path"], rows[new.uniqueid]["ivr_vars"]) == (
        "main:welcome>menu", '{"lang": "en"}')


async def test_failed_migration_is_rolled_back_and_version_unchanged(tmp_path, monkeypatch):
    path = tmp_path / "switchd.db"
    await (await Store.open(path)).close()

    broken = "CREATE TABLE half_done (x TEXT); SELECT * FROM no_such_table;"
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, broken))
    monkeypatch.setattr(schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(StorageError, match="no_such_table"):
        await Store.open(path)

    assert raw_pragma(path, "user_version") == SCHEMA_VERSION
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "half_done" not in tables


async def test_database_from_a_newer_switchd_is_refused_with_upgrade_hint(tmp_path):
    path = tmp_path / "switchd.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(StorageError, match="upgrade switchd") as info:
        await Store.open(path)
    assert str(path) in str(info.value)
    assert raw_pragma(path, "user_version") == SCHEMA_VERSION + 1


async def test_file_that_is_not_a_database_raises_storage_error_naming_the_path(tmp_path):
    path = tmp_path / "switchd.db"
    path.write_bytes(b"this is not an SQLite database\n" * 200)
    with pytest.raises(StorageError) as info:
        await Store.open(path)
    assert str(path) in str(info.value)


async def test_directory_in_place_of_the_file_raises_storage_error(tmp_path):
    path = tmp_path / "switchd.db"
    path.mkdir()
    with pytest.raises(StorageError, match=str(path)):
        await Store.open(path)


async def test_closed_store_raises_storage_error(tmp_path):
    s = await Store.open(tmp_path / "switchd.db")
    await s.close()
    await s.close()
    with pytest.raises(StorageError, match="closed"):
        await s.cdr_count()


# --- time representation -----------------------------------------------------------


def test_times_are_iso_utc_text_with_milliseconds_and_z():
    assert schema.iso_utc(T0) == "2026-11-30T03:48:43.123Z"
    assert schema.iso_utc(0) == "1970-01-01T00:00:00.000Z"


@given(
    st.floats(min_value=0, max_value=253402300799),
    st.floats(min_value=0, max_value=253402300799),
)
def test_text_order_of_stored_times_is_time_order(a, b):
    lo, hi = sorted((a, b))
    assert schema.iso_utc(lo) <= schema.iso_utc(hi)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-30", "2026-11-30T00:00:00.000Z"),
        ("2026-11-30T03:48:43", "2026-11-30T03:48:43.000Z"),
        ("2026-11-30T03:48:43.123Z", "2026-11-30T03:48:43.123Z"),
        ("2026-11-30T11:48:43.123+08:00", "2026-11-30T03:48:43.123Z"),
        ("2026-11-30 03:48:43.1231", "2026-11-30T03:48:43.124Z"),  # rounded up: see docstring
        ("1796010523", "2026-11-30T03:48:43.000Z"),
        ("1796010523.123", "2026-11-30T03:48:43.123Z"),
    ],
)
def test_time_bounds_accept_dates_timestamps_and_epoch_seconds(text, expected):
    assert schema.parse_time_bound(text) == expected


# --- CDRs ----------------------------------------------------------------------------


async def test_cdr_round_trip_keeps_every_field(store):
    full = make_cdr(
        1,
        trunk=3,
        extension=101,
        agent="alice",
        queue="sales",
        wait_s=4.25,
        ivr_path="main:welcome>menu>sales",
        ivr_vars='{"account": "12345678", "lang": "中文"}',
        recording_id="01JREC000001",
        hangup_by="caller",
        blocked_reason=None,
        dnis="+4930999",
    )
    unanswered = make_cdr(
        2, answer=None, billsec=0, disposition="NO ANSWER", blocked_reason="blacklist"
    )
    await store.insert_cdrs([full, unanswered])

    rows = {r["uniqueid"]: r for r in await store.query_cdrs()}
    expected = dataclasses.asdict(full) | {
        "start": "2026-11-30T03:48:44.123Z",
        "answer": "2026-11-30T03:48:48.623Z",
        "end": "2026-11-30T03:49:48.623Z",
    }
    assert rows[full.uniqueid] == expected
    assert list(rows[full.uniqueid]) == list(CDR_COLUMNS)
    assert isinstance(rows[full.uniqueid]["wait_s"], float)
    assert isinstance(rows[full.uniqueid]["duration"], int)
    assert rows[unanswered.uniqueid]["answer"] is None
    assert rows[unanswered.uniqueid]["agent"] is None
    assert rows[unanswered.uniqueid]["blocked_reason"] == "blacklist"
    assert await store.cdr_count() == 2


async def test_insert_with_duplicate_uniqueid_writes_nothing_of_the_batch(store):
    await store.insert_cdrs([make_cdr(1)])
    with pytest.raises(sqlite3.IntegrityError):
        await store.insert_cdrs([make_cdr(2), make_cdr(1)])
    assert await store.cdr_count() == 1
    assert await store.get_contact(make_cdr(2).src) is None


@pytest.fixture
async def day_of_calls(store):
    """Five calls on 2026-11-30/12-01, ids 1..5 in start order."""
    day = 1796004000.0  # 2026-11-30T02:00:00Z
    cdrs = [
        make_cdr(1, start=day - 86400, src="+111"),  # 2026-11-29T02:00:00Z
        make_cdr(2, start=day, src="+222", disposition="NO ANSWER", answer=None),
        make_cdr(3, start=day + 3600.123, src="+111", dst="200"),  # 03:00:00.123Z
        make_cdr(4, start=day + 7200.5, src="+333", disposition="BUSY", answer=None),  # 04:00:00.5
        make_cdr(5, start=day + 86400, src="+111"),  # 2026-12-01T02:00:00Z
    ]
    await store.insert_cdrs(cdrs)
    return store


def ids(rows: list[dict[str, object]]) -> list[int]:
    return [int(str(r["uniqueid"])[-6:]) for r in rows]


async def test_query_returns_newest_first(day_of_calls):
    assert ids(await day_of_calls.query_cdrs()) == [5, 4, 3, 2, 1]


async def test_query_limit_keeps_the_newest(day_of_calls):
    assert ids(await day_of_calls.query_cdrs(limit=2)) == [5, 4]


async def test_query_filters_on_caller_callee_and_disposition(day_of_calls):
    assert ids(await day_of_calls.query_cdrs(caller="+111")) == [5, 3, 1]
    assert ids(await day_of_calls.query_cdrs(callee="200")) == [3]
    assert ids(await day_of_calls.query_cdrs(disposition="BUSY")) == [4]
    assert ids(await day_of_calls.query_cdrs(caller="+111", callee="100")) == [5, 1]
    assert await day_of_calls.query_cdrs(caller="+11") == []


async def test_query_date_bounds_select_one_utc_day(day_of_calls):
    rows = await day_of_calls.query_cdrs(since="2026-11-30", until="2026-12-01")
    assert ids(rows) == [4, 3, 2]
    # ISO-8601 basic dates mean the same day, not epoch seconds in 1970.
    assert ids(await day_of_calls.query_cdrs(since="20261130", until="20261201")) == [4, 3, 2]


async def test_query_since_is_inclusive_and_until_exclusive_on_timestamps(day_of_calls):
    assert ids(await day_of_calls.query_cdrs(since="2026-11-30T03:00:00.123Z")) == [5, 4, 3]
    assert ids(await day_of_calls.query_cdrs(since="2026-11-30T03:00:00.124Z")) == [5, 4]
    assert ids(await day_of_calls.query_cdrs(until="2026-11-30T03:00:00.123Z")) == [2, 1]
    # call 4 starts at 04:00:00.500Z, which is 05:00:00.500 in UTC+01:00
    assert ids(await day_of_calls.query_cdrs(until="2026-11-30T05:00:00.501+01:00")) == [4, 3, 2, 1]
    assert ids(await day_of_calls.query_cdrs(until="2026-11-30T05:00:00.500+01:00")) == [3, 2, 1]


async def test_query_accepts_epoch_seconds_as_text(day_of_calls):
    assert ids(await day_of_calls.query_cdrs(since="1796004000", until="1796007600.124")) == [3, 2]


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01", "30/11/2026", "", "1e9"])
async def test_bad_since_raises_value_error_naming_the_expected_format(store, bad):
    with pytest.raises(ValueError, match=r"since.*expected a date \(2026-11-30\)"):
        await store.query_cdrs(since=bad)


async def test_bad_until_and_limit_raise_value_error(store):
    with pytest.raises(ValueError, match="until"):
        await store.query_cdrs(until="noon")
    for limit in (0, 10001, True):
        with pytest.raises(ValueError, match="limit"):
            await store.query_cdrs(limit=limit)


# --- contacts ------------------------------------------------------------------------


async def test_unknown_contact_is_none(store):
    assert await store.get_contact("+4930000") is None


async def test_set_contact_creates_then_changes_only_the_given_fields(store):
    created = await store.set_contact("+4930123", name="Ada Lovelace", vip=True)
    assert created["number"] == "+4930123"
    assert created["name"] == "Ada Lovelace"
    assert created["vip"] is True
    assert created["blacklisted"] is False
    assert created["notes"] is None
    assert created["last_agent"] is None
    assert created["last_call_at"] is None
    assert str(created["created_at"]).endswith("Z")

    updated = await store.set_contact("+4930123", notes="prefers email", vip=False)
    assert updated["name"] == "Ada Lovelace"
    assert updated["vip"] is False
    assert updated["notes"] == "prefers email"
    assert updated["created_at"] == created["created_at"]
    assert updated["updated_at"] >= created["updated_at"]
    assert await store.get_contact("+4930123") == updated
    assert set(updated) == set(schema.CONTACT_COLUMNS)


async def test_set_contact_rejects_an_empty_number(store):
    with pytest.raises(ValueError, match="number"):
        await store.set_contact("", name="nobody")


async def test_contact_flags_lists_only_flagged_numbers(store):
    await store.set_contact("+1", vip=True)
    await store.set_contact("+2", blacklisted=True)
    await store.set_contact("+3", name="plain")
    await store.set_contact("+4", vip=True, blacklisted=True)
    await store.set_contact("+5", vip=True)
    await store.set_contact("+5", vip=False)
    assert await store.contact_flags() == {
        "+1": (True, False),
        "+2": (False, True),
        "+4": (True, True),
    }


async def test_inbound_cdr_touches_the_callers_contact(store):
    await store.set_contact("+4930111", name="Ada", vip=True)
    await store.insert_cdrs([make_cdr(1, src="+4930111", agent="alice", extension=101)])
    contact = await store.get_contact("+4930111")
    assert contact is not None
    assert contact["last_call_at"] == schema.iso_utc(make_cdr(1).end)
    assert contact["last_agent"] == "alice"
    assert (contact["name"], contact["vip"]) == ("Ada", True)


async def test_outbound_cdr_touches_the_called_number_and_creates_it(store):
    cdr = make_cdr(1, direction="outbound", src="101", dst="+4930222", extension=101)
    await store.insert_cdrs([cdr])
    contact = await store.get_contact("+4930222")
    assert contact is not None
    assert contact["last_agent"] == "101"
    assert contact["last_call_at"] == schema.iso_utc(cdr.end)
    assert contact["vip"] is False
    assert await store.get_contact("101") is None


async def test_internal_cdr_touches_no_contact(store):
    await store.insert_cdrs([make_cdr(1, direction="internal", src="101", dst="102")])
    assert await store.get_contact("101") is None
    assert await store.get_contact("102") is None


async def test_call_without_agent_keeps_last_agent_and_late_cdr_does_not_go_back(store):
    number = "+4930333"
    await store.insert_cdrs([make_cdr(1, src=number, agent="alice")])
    later = make_cdr(2, src=number, start=T0 + 600, disposition="NO ANSWER", answer=None)
    await store.insert_cdrs([later])
    contact = await store.get_contact(number)
    assert contact is not None
    assert (contact["last_agent"], contact["last_call_at"]) == ("alice", schema.iso_utc(later.end))

    late = make_cdr(3, src=number, start=T0 - 600, agent="bob")
    await store.insert_cdrs([late])
    contact = await store.get_contact(number)
    assert contact is not None
    assert (contact["last_agent"], contact["last_call_at"]) == ("alice", schema.iso_utc(later.end))


# --- CdrWriter -----------------------------------------------------------------------


@pytest.fixture
def insert_calls(monkeypatch):
    """Record the uniqueids of every Store.insert_cdrs call that committed."""
    committed: list[list[str]] = []
    original = Store.insert_cdrs

    async def recording(self, cdrs):
        await original(self, cdrs)
        committed.append([c.uniqueid for c in cdrs])

    monkeypatch.setattr(Store, "insert_cdrs", recording)
    return committed


async def test_writer_commits_1200_rows_in_three_transactions(store, insert_calls):
    writer = CdrWriter(store, batch_max=500)
    batches: list[int] = []
    writer.on_written = lambda rows: batches.append(len(rows))
    writer.start()
    cdrs = [make_cdr(n) for n in range(1200)]
    for cdr in cdrs:
        writer.submit(cdr)
    assert writer.pending == 1200
    await writer.flush()

    assert writer.pending == 0
    assert writer.written == 1200
    assert await store.cdr_count() == 1200
    assert len(insert_calls) <= 3
    assert [u for call in insert_calls for u in call] == [c.uniqueid for c in cdrs]
    assert sum(batches) == 1200
    assert await writer.close() == 0


async def test_writer_retries_failed_writes_with_backoff_and_loses_nothing(store, monkeypatch):
    committed: list[str] = []
    failures = 0
    original = Store.insert_cdrs

    async def flaky(self, cdrs):
        nonlocal failures
        if failures < 2:
            failures += 1
            raise sqlite3.OperationalError("disk I/O error")
        await original(self, cdrs)
        committed.extend(c.uniqueid for c in cdrs)

    monkeypatch.setattr(Store, "insert_cdrs", flaky)
    writer = CdrWriter(store, batch_max=7, retry_initial_s=0.001, retry_max_s=0.0015)
    writer.start()
    cdrs = [make_cdr(n) for n in range(20)]
    with capture_logs() as logs:
        for cdr in cdrs:
            writer.submit(cdr)
        await writer.flush()

    assert committed == [c.uniqueid for c in cdrs]
    assert await store.cdr_count() == 20
    failed = [e for e in logs if e["event"] == "cdr_write_failed"]
    assert [e["log_level"] for e in failed] == ["error", "error"]
    assert [e["retry_in_s"] for e in failed] == [0.001, 0.0015]  # doubled, capped
    assert failed[0]["pending"] == 20
    assert "disk I/O error" in failed[0]["error"]
    assert await writer.close() == 0


async def test_writer_skips_only_the_duplicate_row_of_a_batch(store, insert_calls):
    await store.insert_cdrs([make_cdr(5)])
    insert_calls.clear()
    writer = CdrWriter(store, batch_max=100)
    writer.start()
    with capture_logs() as logs:
        for n in range(10):
            writer.submit(make_cdr(n))
        writer.submit(make_cdr(10))
        await writer.flush()

    assert await store.cdr_count() == 11
    assert writer.written == 10
    assert writer.pending == 0
    assert [u for call in insert_calls for u in call] == [
        make_cdr(n).uniqueid for n in range(11) if n != 5
    ]
    rejected = [e for e in logs if e["event"] == "cdr_rejected"]
    assert [(e["uniqueid"], e["log_level"]) for e in rejected] == [(make_cdr(5).uniqueid, "error")]
    assert await writer.close() == 0


async def test_writer_close_reports_rows_it_could_not_write(store, monkeypatch):
    async def broken(self, cdrs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Store, "insert_cdrs", broken)
    writer = CdrWriter(store, retry_initial_s=0.001, retry_max_s=0.002)
    writer.start()
    for n in range(3):
        writer.submit(make_cdr(n))

    with capture_logs() as logs:
        assert await writer.close(timeout_s=0.05) == 3
    assert writer.pending == 3
    assert any(e["event"] == "cdr_writer_closed_with_pending" for e in logs)
    with pytest.raises(StorageError, match="3 CDRs unwritten"):
        await writer.flush()
    with pytest.raises(StorageError, match="closed"):
        writer.submit(make_cdr(9))


async def test_writer_close_returns_zero_after_writing_everything(store):
    writer = CdrWriter(store)
    writer.start()
    for n in range(5):
        writer.submit(make_cdr(n))
    assert await writer.close() == 0
    assert await store.cdr_count() == 5
    assert await writer.close() == 0


async def test_flush_without_start_raises_instead_of_hanging(store):
    writer = CdrWriter(store)
    await writer.flush()  # nothing pending: returns at once
    writer.submit(make_cdr(1))
    with pytest.raises(StorageError, match="start"):
        await writer.flush()
