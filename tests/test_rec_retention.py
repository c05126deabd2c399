"""Retention: the pure plan (age, disk budget, keep, open recordings) and the purge that
deletes files and rows, on a real SQLite file and real WAV files."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from switchd.recorder import retention
from switchd.recorder.model import RetentionSettings, recording_relpath
from switchd.recorder.recovery import recover
from switchd.recorder.retention import PurgeWhy, plan_purge, purge, retention_loop
from switchd.timefmt import iso_utc
from tests.test_rec_index import insert_row, open_store, rows, write_wav

DAY = 86_400.0
NOW = 1796010523.0  # 2026-11-30
MIB = 1024 * 1024


def row(rec_id: str, ended_days_ago: float | None, size: int = MIB, *, keep: bool = False,
        status: str = "done") -> dict[str, Any]:
    end = None if ended_days_ago is None else iso_utc(NOW - ended_days_ago * DAY)
    return {"id": rec_id, "file": f"{rec_id}.wav", "start": end or iso_utc(NOW - 1),
            "end": end, "size": size, "keep": int(keep), "status": status}


# ------------------------------------------------------------------ the plan (pure)


def test_recordings_older_than_the_limit_go_oldest_first_and_kept_ones_stay():
    rows_ = [row("new", 1), row("old", 40), row("older", 50), row("kept", 90, keep=True),
             row("open", 99, status="recording"), row("live", None, status="failed")]
    plan = plan_purge(rows_, NOW, RetentionSettings(days=30))
    assert [(p.id, p.why) for p in plan] == [("older", PurgeWhy.AGE), ("old", PurgeWhy.AGE)]
    assert round(plan[0].age_s / DAY) == 50 and plan[0].size == MIB


def test_over_the_budget_the_oldest_go_until_it_fits_and_kept_ones_count_but_stay():
    rows_ = [row("a", 5), row("b", 4), row("c", 3), row("d", 2), row("kept", 9, 2 * MIB, keep=True)]
    # 6 MiB in all, budget 3.5: a, b and c go (kept counts toward the total, never goes).
    plan = plan_purge(rows_, NOW, RetentionSettings(max_mb=3.5))
    assert [(p.id, p.why) for p in plan] == [("a", PurgeWhy.SIZE), ("b", PurgeWhy.SIZE),
                                             ("c", PurgeWhy.SIZE)]


def test_the_age_rule_runs_first_and_its_purges_count_toward_the_budget():
    rows_ = [row("a", 40, 3 * MIB), row("b", 4), row("c", 3)]
    plan = plan_purge(rows_, NOW, RetentionSettings(days=30, max_mb=2))
    assert [(p.id, p.why) for p in plan] == [("a", PurgeWhy.AGE)]


def test_without_limits_nothing_is_planned():
    assert plan_purge([row("a", 4000)], NOW, RetentionSettings()) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.floats(0, 100)), st.integers(0, 5 * MIB),
                          st.booleans(), st.sampled_from(["done", "recovered", "failed",
                                                          "recording"])),
                max_size=30),
       st.one_of(st.none(), st.floats(0.5, 60)), st.one_of(st.none(), st.floats(0, 40)))
def test_the_plan_never_takes_kept_or_open_recordings_and_meets_the_budget_if_it_can(
        specs, days, max_mb):
    rows_ = [row(f"r{i}", ago, size, keep=keep, status=status)
             for i, (ago, size, keep, status) in enumerate(specs)]
    plan = plan_purge(rows_, NOW, RetentionSettings(days=days, max_mb=max_mb))
    by_id = {r["id"]: r for r in rows_}
    ids = [p.id for p in plan]
    assert len(ids) == len(set(ids))
    for p in plan:
        r = by_id[p.id]
        assert not r["keep"] and r["status"] != "recording" and r["end"] is not None
        if p.why is PurgeWhy.AGE:
            assert days is not None and p.age_s > days * DAY
    eligible = [r for r in rows_ if not r["keep"] and r["status"] != "recording" and r["end"]]
    left = [r for r in eligible if r["id"] not in ids]
    if max_mb is not None:
        total = sum(r["size"] for r in rows_) - sum(p.size for p in plan)
        assert total <= max_mb * MIB or not left  # within budget, or nothing more may go
        # The budget takes the oldest: every eligible row left ended after every one it took.
        took = [by_id[p.id]["end"] for p in plan if p.why is PurgeWhy.SIZE]
        if took and left:
            assert max(took) <= min(r["end"] for r in left)
    else:
        assert all(p.why is PurgeWhy.AGE for p in plan)


# ------------------------------------------------------------------ the purge


async def _archive(tmp_path: Path) -> tuple[Any, Path, dict[str, Path]]:
    """A store and directory with three old recordings on two days and one new one."""
    store = await open_store(tmp_path)
    directory = tmp_path / "recordings"
    files = {}
    for rec_id, days_ago in (("OLD1", 40), ("OLD2", 40.1), ("OLD3", 35), ("NEW", 1)):
        start = NOW - days_ago * DAY
        path = directory / recording_relpath(rec_id, start)
        write_wav(path, 800)
        files[rec_id] = path
        await insert_row(store, rec_id, start, end=start + 60, size=path.stat().st_size,
                         keep=rec_id == "OLD3")
    return store, directory, files


async def test_purge_deletes_files_and_rows_logs_each_and_removes_empty_day_folders(tmp_path):
    store, directory, files = await _archive(tmp_path)
    with capture_logs() as logs:
        done = await purge(store, directory, RetentionSettings(days=30), NOW)
    assert sorted(p.id for p in done) == ["OLD1", "OLD2"]
    assert not files["OLD1"].exists() and not files["OLD2"].exists()
    assert files["OLD3"].exists() and files["NEW"].exists()  # kept; too young
    assert {r["id"] for r in await rows(store)} == {"OLD3", "NEW"}
    purged = [e for e in logs if e["event"] == "recording_purged"]
    assert sorted(e["recording_id"] for e in purged) == ["OLD1", "OLD2"]
    assert all(e["why"] == "age" and e["age_days"] > 30 and e["size"] > 0 for e in purged)
    # OLD1 and OLD2 were alone on their day: the day folder is gone; OLD3's stays.
    assert not files["OLD1"].parent.exists()
    assert files["OLD3"].parent.is_dir() and directory.is_dir()
    await store.close()


async def test_a_dry_run_deletes_nothing(tmp_path):
    store, directory, files = await _archive(tmp_path)
    plan = await purge(store, directory, RetentionSettings(days=30), NOW, dry_run=True)
    assert sorted(p.id for p in plan) == ["OLD1", "OLD2"]
    assert all(p.exists() for p in files.values()) and len(await rows(store)) == 4
    await store.close()


class KeepsDuringPurge:
    """A store where someone marks OLD1 kept right after retention read the rows."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def fetch(self, sql: str, params: Any) -> list[dict[str, Any]]:
        got = await self.store.fetch(sql, params)
        await self.store.execute("UPDATE recordings SET keep = 1 WHERE id = 'OLD1'", {})
        return got

    async def execute(self, sql: str, params: Any) -> int:
        return await self.store.execute(sql, params)


async def test_a_keep_that_lands_while_purging_wins(tmp_path):
    store, directory, files = await _archive(tmp_path)
    done = await purge(KeepsDuringPurge(store), directory, RetentionSettings(days=30), NOW)  # type: ignore[arg-type]
    assert [p.id for p in done] == ["OLD2"]
    assert files["OLD1"].exists() and "OLD1" in {r["id"] for r in await rows(store)}
    await store.close()


async def test_a_row_naming_a_file_outside_the_directory_is_not_followed(tmp_path):
    store = await open_store(tmp_path)
    directory = tmp_path / "recordings"
    directory.mkdir()
    victim = tmp_path / "precious.wav"
    victim.write_bytes(b"x")
    await insert_row(store, "EVIL", NOW - 90 * DAY, end=NOW - 90 * DAY, file="../precious.wav")
    with capture_logs() as logs:
        assert await purge(store, directory, RetentionSettings(days=30), NOW) == []
    assert victim.exists() and len(await rows(store)) == 1
    assert [e["event"] for e in logs if e["event"].startswith("recording_purge")] == [
        "recording_purge_refused"]
    await store.close()


async def test_a_file_that_cannot_be_deleted_is_logged_and_indexed_again_at_the_next_start(
        tmp_path, monkeypatch):
    store, directory, files = await _archive(tmp_path)
    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if self.name.startswith("OLD1"):
            raise PermissionError(13, "Permission denied", str(self))
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    with capture_logs() as logs:
        await purge(store, directory, RetentionSettings(days=30), NOW)
    assert files["OLD1"].exists()
    failed = [e for e in logs if e["event"] == "recording_purge_failed"]
    assert [e["recording_id"] for e in failed] == ["OLD1"]
    monkeypatch.undo()
    got = await recover(store, directory)
    assert [(g.id, g.status.value) for g in got] == [("OLD1", "recovered")]
    await store.close()


async def test_over_budget_with_only_kept_recordings_left_is_a_warning(tmp_path):
    store, directory, _files = await _archive(tmp_path)
    await store.execute("UPDATE recordings SET keep = 1", {})
    with capture_logs() as logs:
        assert await purge(store, directory, RetentionSettings(max_mb=0.001), NOW) == []
    assert any(e["event"] == "recordings_over_budget" for e in logs)
    await store.close()


async def test_the_retention_loop_purges_at_once_and_reads_the_settings_each_round(tmp_path):
    store, directory, files = await _archive(tmp_path)
    asked: list[int] = []

    def current() -> RetentionSettings:
        asked.append(1)
        return RetentionSettings(days=30, check_every_s=3600)

    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)
        raise asyncio.CancelledError  # stop after the first round

    task = asyncio.ensure_future(retention_loop(store, directory, current, lambda: NOW,
                                                sleep=sleep))
    await asyncio.gather(task, return_exceptions=True)
    assert slept == [3600]
    assert not files["OLD1"].exists() and files["NEW"].exists() and asked == [1]
    await store.close()


async def test_a_failing_round_is_logged_and_the_loop_goes_on(tmp_path, monkeypatch):
    calls: list[float] = []

    async def boom(*_a: Any, **_k: Any) -> list[Any]:
        calls.append(1)
        raise OSError("disk gone")

    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)
        if len(slept) >= 2:
            raise asyncio.CancelledError

    monkeypatch.setattr(retention, "purge", boom)
    with capture_logs() as logs:
        task = asyncio.ensure_future(retention_loop(
            None, Path("/x"), lambda: RetentionSettings(days=1, check_every_s=10),  # type: ignore[arg-type]
            lambda: NOW, sleep=sleep))
        await asyncio.gather(task, return_exceptions=True)
    assert len(calls) == 2 and slept == [10, 10]
    assert [e["event"] for e in logs].count("recording_purge_failed") == 2


async def test_an_open_recording_counts_toward_the_budget_with_its_files_bytes(tmp_path):
    """An open recording's row says 0 bytes; its file's size counts, so the closed old
    ones go to make room (the open one itself is never purged)."""
    store, directory, files = await _archive(tmp_path)
    live = directory / recording_relpath("LIVE", NOW - 60)
    write_wav(live, 40_000)                 # 5 s of stereo audio, ~160 kB, still open
    await insert_row(store, "LIVE", NOW - 60, size=0, status="recording")
    budget_mb = (live.stat().st_size + files["OLD3"].stat().st_size
                 + files["NEW"].stat().st_size + 100) / MIB
    gone = await purge(store, directory, RetentionSettings(max_mb=budget_mb), NOW)
    # Without the open file's bytes the three closed ones would fit and nothing would go.
    assert sorted(p.id for p in gone) == ["OLD1", "OLD2"]
    assert live.exists() and files["OLD3"].exists() and files["NEW"].exists()
    await store.close()


async def test_a_reload_wakes_the_retention_loop_for_a_round_with_its_new_limits(tmp_path):
    store, directory, files = await _archive(tmp_path)
    limits = [RetentionSettings(check_every_s=3600)]   # no limit yet
    wake = asyncio.Event()
    task = asyncio.ensure_future(retention_loop(store, directory, lambda: limits[-1],
                                                lambda: NOW, wake=wake))
    for _ in range(20):
        await asyncio.sleep(0)
    assert files["OLD1"].exists()
    limits.append(RetentionSettings(days=30, check_every_s=3600))   # the reload
    wake.set()
    for _ in range(200):
        if not files["OLD1"].exists():
            break
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not files["OLD1"].exists() and not wake.is_set()
    await store.close()
