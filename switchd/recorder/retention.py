"""Retention: recordings older than N days, or beyond a disk budget, are deleted — the
oldest first, one log line each; never a recording marked ``keep``, never an open one.

:func:`plan_purge` decides (pure: rows, now and settings in, the plan out), so the
rule is tested without files; :func:`purge` carries the plan out (file and row), and
:func:`retention_loop` runs it every ``check_every_s`` in the daemon.
``switchd recordings purge [--dry-run]`` runs the same :func:`purge` now.

Order of deletion, and why: the row goes first, with a condition (``keep = 0`` and
not ``recording``) checked by the database at that moment, then the file. So a
``REC.KEEP`` that lands while a purge runs wins, and the index never names a file
that is gone; if the file cannot be deleted (a permission), it stays without a row
and the next start-up's recovery indexes it again (``recovered``): nothing vanishes
unlogged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import structlog

from switchd.recorder import index
from switchd.recorder.model import RecordStatus, RetentionSettings, recording_relpath
from switchd.store.sqlite import Store

__all__ = ["PurgeWhy", "Purged", "plan_purge", "purge", "retention_loop"]

log = structlog.get_logger(__name__)

_MIB = 1024 * 1024
_DAY_S = 86_400.0


class PurgeWhy(StrEnum):
    """Which retention rule purges a recording."""

    AGE = "age"    #: it ended more than ``days`` days ago
    SIZE = "size"  #: the recordings take more than ``max_mb`` MiB and it is among the oldest


@dataclass(frozen=True, slots=True)
class Purged:
    """A recording retention deletes: ``file`` relative to the recordings directory,
    ``size`` in bytes, ``age_s`` seconds since it ended, ``why`` the rule."""

    id: str
    file: str
    size: int
    age_s: float
    why: PurgeWhy


def _epoch(text: object) -> float | None:
    """Epoch seconds of a stored ISO-8601 UTC time (``…Z``), None for NULL or junk."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _size(row: Mapping[str, object]) -> int:
    """A row's ``size`` in bytes (0 when NULL)."""
    value = row.get("size")
    return int(value) if isinstance(value, int | float) else 0


def plan_purge(rows: Sequence[Mapping[str, object]], now: float,
               settings: RetentionSettings) -> list[Purged]:
    """What retention deletes now, oldest first.

    ``rows``: every recording with ``id``, ``file``, ``start``, ``end`` (ISO-8601 UTC text
    or None), ``size`` (bytes), ``keep`` (0/1 or bool) and ``status``. ``now``: epoch s.
    A row is *eligible* unless it is kept, still ``recording``, or has no ``end`` (the
    call is live as far as the index knows). First every eligible row that ended more
    than ``settings.days`` days before ``now`` (why ``age``); then, while the total size
    of *all* rows (kept and open ones count: they use the disk too) is above
    ``settings.max_mb`` MiB, the oldest remaining eligible rows by ``end`` (why ``size``).
    When only kept or open recordings are left the budget stays exceeded: the caller
    warns. None for ``days``/``max_mb`` turns that rule off. Never raises for a row's
    odd values: a row whose ``end`` cannot be read is not eligible.
    """
    eligible: list[tuple[float, str, Mapping[str, object]]] = []
    total = 0
    for row in rows:
        size = _size(row)
        total += size
        end = _epoch(row.get("end"))
        if bool(row.get("keep")) or row.get("status") == RecordStatus.RECORDING.value \
                or end is None:
            continue
        eligible.append((end, str(row["id"]), row))
    eligible.sort(key=lambda e: (e[0], e[1]))
    plan: list[Purged] = []
    rest: list[tuple[float, str, Mapping[str, object]]] = []
    for end, rec_id, row in eligible:
        age = now - end
        if settings.days is not None and age > settings.days * _DAY_S:
            size = _size(row)
            plan.append(Purged(rec_id, str(row["file"]), size, age, PurgeWhy.AGE))
            total -= size
        else:
            rest.append((end, rec_id, row))
    if settings.max_mb is not None:
        budget = settings.max_mb * _MIB
        for end, rec_id, row in rest:
            if total <= budget:
                break
            size = _size(row)
            plan.append(Purged(rec_id, str(row["file"]), size, now - end, PurgeWhy.SIZE))
            total -= size
    return plan


def _inside(directory: Path, rel: str) -> Path | None:
    """``directory/rel`` when ``rel`` is a plain relative path (a row naming ``../x`` or
    ``/etc/x`` must not make retention delete a file elsewhere), else None. Checked on
    the text, not by resolving links: a date directory may be a link to another disk."""
    path = Path(rel)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        return None
    return directory / path


def _unlink(path: Path, directory: Path) -> None:
    """Delete ``path`` (already gone is fine), then its parent date directories
    (``YYYY/MM/DD``, ``YYYY/MM``, ``YYYY``) that are left empty, up to ``directory``.
    Blocking. Raises OSError when the file cannot be deleted."""
    path.unlink(missing_ok=True)
    parent = path.parent
    # Today's folders stay: the writer thread may be creating a file in them right now
    # (a folder removed between its mkdir and its open would fail that recording).
    today = recording_relpath("x", time.time()).parent
    while parent != directory and parent.is_relative_to(directory):
        if today.is_relative_to(parent.relative_to(directory)):
            break
        try:
            parent.rmdir()
        except OSError:
            break  # not empty (or not ours to remove): stop climbing
        parent = parent.parent


def _waiter(wake: asyncio.Event | None) -> Callable[[float], Awaitable[None]]:
    """A sleep of up to ``seconds`` that ``wake`` cuts short (and is cleared by)."""
    async def wait(seconds: float) -> None:
        if wake is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), seconds)
        wake.clear()
    return wait


def _with_open_sizes(rows: list[dict[str, object]], directory: Path
                     ) -> list[dict[str, object]]:
    """``rows`` with each open recording's ``size`` read from its file (bytes; 0 when it is
    not there or outside ``directory``). Blocking: call off the loop."""
    out = []
    for row in rows:
        if row.get("status") == RecordStatus.RECORDING.value:
            path = _inside(directory, str(row.get("file") or ""))
            try:
                size = path.stat().st_size if path is not None else 0
            except OSError:
                size = 0
            row = {**row, "size": size}
        out.append(row)
    return out


async def purge(store: Store, directory: Path, settings: RetentionSettings, now: float, *,
                dry_run: bool = False) -> list[Purged]:
    """Apply retention now: plan (:func:`plan_purge`) and delete each recording's row and
    file (module docstring for the order), logging ``recording_purged`` for each.

    ``directory``: the recordings directory (absolute); ``now``: epoch s. With
    ``dry_run`` nothing is deleted and the plan is returned. Returns what was deleted
    (a row kept or reopened meanwhile, or whose file lies outside ``directory``, is
    not). Files are deleted in a worker thread; a file that cannot be deleted is
    logged (``recording_purge_failed``) and its row is gone (recovery re-indexes it).
    Logs ``recordings_over_budget`` when kept and open recordings alone exceed
    ``max_mb``. Raises StorageError / sqlite3.Error when the index cannot be read or
    written.
    """
    directory = Path(directory)
    rows = await store.fetch(index.SQL_RETENTION_ROWS, {})
    if settings.max_mb is not None:
        # An open recording's row says 0 bytes until it closes; its file already takes
        # room, which the budget counts (it is never purged, others go first).
        rows = await asyncio.to_thread(_with_open_sizes, rows, directory)
    plan = plan_purge(rows, now, settings)
    if dry_run:
        return plan
    done: list[Purged] = []
    for item in plan:
        path = _inside(directory, item.file)
        if path is None:
            log.error("recording_purge_refused", recording_id=item.id, file=item.file,
                      reason=f"the file lies outside the recordings directory {directory}")
            continue
        if not await store.execute(index.SQL_DELETE, {"id": item.id}):
            continue  # marked keep (or reopened) since the plan was made
        try:
            await asyncio.to_thread(_unlink, path, directory)
        except OSError as exc:
            log.error("recording_purge_failed", recording_id=item.id, file=str(path),
                      error=str(exc), hint="the row is deleted; the file stays and is "
                                           "indexed again as recovered at the next start")
        log.info("recording_purged", recording_id=item.id, file=str(path), why=item.why.value,
                 age_days=round(item.age_s / _DAY_S, 2), size=item.size)
        done.append(item)
    if settings.max_mb is not None:
        total = sum(_size(r) for r in rows) - sum(p.size for p in done)
        if total > settings.max_mb * _MIB:
            log.warning("recordings_over_budget", total_mb=round(total / _MIB, 1),
                        max_mb=settings.max_mb,
                        hint="what is left is kept (REC.KEEP) or still recording; unmark "
                             "some with REC.KEEP keep=false or raise recording.retention.max_mb")
    if done:
        log.info("recordings_purged", count=len(done), bytes=sum(p.size for p in done),
                 directory=os.fspath(directory))
    return done


async def retention_loop(store: Store, directory: Path,
                         settings: Callable[[], RetentionSettings],
                         now: Callable[[], float], *,
                         sleep: Callable[[float], Awaitable[None]] | None = None,
                         wake: asyncio.Event | None = None) -> None:
    """Run :func:`purge` at once, then every ``settings().check_every_s`` seconds, until
    cancelled. ``settings`` is called each round; setting ``wake`` (a reload) starts a
    round at once, so new limits and a new interval apply without waiting out the old
    one. With neither ``days`` nor ``max_mb`` set a round does nothing. A failing round
    is logged (``recording_purge_failed``) and the loop goes on. ``sleep`` waits between
    rounds (tests pass a fake; default: ``check_every_s`` or until ``wake``). Never
    returns; cancel the task to stop it."""
    if sleep is None:
        sleep = _waiter(wake)
    while True:
        current = settings()
        if current.days is not None or current.max_mb is not None:
            try:
                await purge(store, directory, current, now())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("recording_purge_failed", error=f"{type(exc).__name__}: {exc}",
                          exc_info=True)
        await sleep(max(1.0, current.check_every_s))
