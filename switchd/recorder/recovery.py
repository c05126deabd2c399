"""Start-up recovery: recordings a crash left open get their headers repaired and their
rows corrected, before switchd records anything new.

A ``kill -9`` (or a power cut) during a call leaves (a) a WAV whose size fields are up
to ``flush_s`` stale and maybe a partial trailing sample block, and (b) an index row
still saying ``recording`` — or, when the crash came between creating the file and
committing its row, a file with no row at all. :func:`recover` fixes both: every
``recording`` row's file is repaired (``switchd.recorder.wav.repair``) and the row
becomes ``recovered`` with duration, size and sha256 *from the repaired file* (the
index never disagrees with the bytes on disk); a row whose file is gone becomes
``failed``; a ``.wav`` under the directory with no row gets a ``recovered`` row.
Each is logged as ``recording_recovered``.

Run it once at start, after the store is open and before the recording writer and
the shell start: a file being written must never be taken for a crash's leftover.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from switchd.core.ids import ulid_time
from switchd.recorder import index
from switchd.recorder.model import RecordStatus
from switchd.recorder.wav import WavError, read_info, repair_dated
from switchd.store.sqlite import Store
from switchd.timefmt import iso_utc

__all__ = ["Recovered", "recover"]

log = structlog.get_logger(__name__)

#: Why a recording needed recovery.
OPEN_AT_CRASH = "open at crash"
NO_ROW = "no index row"
FILE_MISSING = "file missing after a crash"


@dataclass(frozen=True, slots=True)
class Recovered:
    """One recording recovery dealt with: its ``status`` now (recovered or failed),
    ``why`` it needed recovery (:data:`OPEN_AT_CRASH`, :data:`NO_ROW`,
    :data:`FILE_MISSING`), the file's ``duration_s`` (s) and ``size`` (bytes) after repair."""

    id: str
    file: Path
    status: RecordStatus
    why: str
    duration_s: float = 0.0
    size: int = 0


def _wav_files(directory: Path) -> list[Path]:
    """Every ``*.wav`` under ``directory`` (blocking), sorted; none if it does not exist."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*.wav") if p.is_file())


async def _open_rows(store: Store, directory: Path) -> list[Recovered]:
    """Repair the file of every row left ``recording``; correct the rows."""
    out: list[Recovered] = []
    for row in await store.fetch(index.SQL_OPEN_ROWS, {}):
        rec_id, rel = str(row["id"]), Path(str(row["file"]))
        path = directory / rel
        params: dict[str, object] = {"id": rec_id, "duration_s": 0.0, "size": 0, "sha256": None,
                                     "end": None, "error": None}
        try:
            summary, mtime = await asyncio.to_thread(repair_dated, path)
        except FileNotFoundError:
            params.update(status=RecordStatus.FAILED.value, error=FILE_MISSING)
            item = Recovered(rec_id, path, RecordStatus.FAILED, FILE_MISSING)
        except (WavError, OSError) as exc:
            params.update(status=RecordStatus.FAILED.value, error=f"cannot repair: {exc}")
            item = Recovered(rec_id, path, RecordStatus.FAILED, f"cannot repair: {exc}")
        else:
            params.update(status=RecordStatus.RECOVERED.value, duration_s=summary.duration_s,
                          size=summary.size, sha256=summary.sha256, end=iso_utc(mtime))
            item = Recovered(rec_id, path, RecordStatus.RECOVERED, OPEN_AT_CRASH,
                             summary.duration_s, summary.size)
        await store.execute(index.SQL_RECOVERED, params)
        _log(item)
        out.append(item)
    return out


async def _orphans(store: Store, directory: Path) -> list[Recovered]:
    """Give a ``recovered`` row to every WAV under ``directory`` that has none."""
    rows = await store.fetch(index.SQL_ALL_FILES, {})
    known = {str(r["file"]) for r in rows}
    known_ids = {str(r["id"]) for r in rows}
    out: list[Recovered] = []
    for path in await asyncio.to_thread(_wav_files, directory):
        rel = path.relative_to(directory).as_posix()
        rec_id = path.stem
        if rel in known or rec_id in known_ids:
            continue
        try:
            # Repair first: a file cut short inside its header has no format to read yet.
            summary, mtime = await asyncio.to_thread(repair_dated, path)
            channels, fmt, _data = await asyncio.to_thread(read_info, path)
        except (WavError, OSError) as exc:
            # Not one of ours (or unreadable): leave it alone, but say so once.
            log.warning("recording_file_skipped", file=str(path), error=str(exc),
                        hint="not a recording switchd can index; move it out of the "
                             "recordings directory")
            continue
        row = await _cdr_facts(store, rec_id)
        # The audio ended at the file's mtime and lasted duration_s; a ULID call id
        # bounds the start from below (the recording cannot start before its call).
        start = mtime - summary.duration_s
        call_start = ulid_time(rec_id)
        if call_start is not None:
            start = max(start, call_start)
        await store.execute(index.SQL_INSERT_RECOVERED, {
            "id": rec_id, "call_id": rec_id, "file": rel, "start": iso_utc(start),
            "end": row.get("end") or iso_utc(mtime), "duration_s": summary.duration_s,
            "size": summary.size, "caller": row.get("caller"), "callee": row.get("callee"),
            "agent": row.get("agent"), "queue": row.get("queue"),
            "direction": row.get("direction") or "unknown", "mode": "unknown",
            "channels": channels, "format": fmt.value,
            "sha256": summary.sha256})
        item = Recovered(rec_id, path, RecordStatus.RECOVERED, NO_ROW, summary.duration_s,
                         summary.size)
        _log(item)
        out.append(item)
    return out


async def _cdr_facts(store: Store, call_id: str) -> dict[str, Any]:
    """Caller, callee, direction, agent, queue and end of ``call_id`` from its CDR, when
    the CDR reached the database before the crash; empty otherwise."""
    rows = await store.fetch(index.SQL_CDR_OF_CALL, {"id": call_id})
    if not rows:
        return {}
    r = rows[0]
    agent = r["agent"] if r["agent"] is not None else (
        str(r["extension"]) if r["extension"] is not None else None)
    return {"caller": r["src"] or None, "callee": r["dst"] or None, "direction": r["direction"],
            "agent": agent, "queue": r["queue"], "end": r["end"]}


def _log(item: Recovered) -> None:
    level = log.warning if item.status is RecordStatus.RECOVERED else log.error
    level("recording_recovered", recording_id=item.id, file=str(item.file),
          status=item.status.value, why=item.why, duration_s=round(item.duration_s, 3),
          size=item.size)


async def recover(store: Store, directory: Path) -> list[Recovered]:
    """Repair what a crash left in ``directory`` (the recordings directory, absolute) and
    bring the index in line with it (module docstring); returns what was done.

    Rows left ``recording`` come first (their files are repaired in a worker thread, one
    at a time), then the directory is scanned for ``.wav`` files with no row (every
    file's name is checked against one query of the index: a large archive costs one
    directory walk). A file that is not a WAV switchd can repair is logged
    (``recording_file_skipped``) and left alone. Raises StorageError /
    sqlite3.Error when the store cannot be read or written (the caller decides whether
    to start anyway: nothing is lost, the next start tries again).
    """
    directory = Path(directory)
    done = await _open_rows(store, directory)
    done += await _orphans(store, directory)
    if done:
        log.info("recordings_recovered", count=len(done), directory=os.fspath(directory))
    return done
