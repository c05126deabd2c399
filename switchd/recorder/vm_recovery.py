"""Start-up recovery of voicemail: messages a crash left half-written get their headers
repaired and an index row, before switchd takes any new message.

A ``kill -9`` (or a power cut) while a caller is leaving a message leaves
``<voicemail dir>/<box>/<id>.wav`` with size fields up to a hand-off stale (maybe a
partial trailing sample frame) and no row in the ``voicemail`` table: a row is only
written once the file is closed (:mod:`switchd.recorder.vm_index`), so VM.LIST would
never show it. :func:`recover_messages` finds every such file, repairs it
(:func:`switchd.recorder.wav.repair`, mono 16-bit PCM where the bytes do not say) and
inserts its row with duration, size and sha256 *from the repaired file*:

* ``id`` the file's stem, ``mailbox`` its folder's name (a box since removed from the
  config keeps the message: VM.LIST still reads removed boxes that hold messages);
* ``received`` the time in the id (a ULID minted when the message began, at the beep:
  what a normal row's ``received`` holds), else the file's last write minus its
  duration;
* ``call_id`` and ``caller`` unknown (NULL): nothing on disk says them;
* ``heard`` 0: nobody has heard it.

A message shorter than ``voicemail.min_s`` is **kept**: the service deletes a short
message because the caller chose to hang up at the beep; a crash is not the caller's
choice, and recovery never deletes what a caller may have said (the row is logged with
``short=true``, and VM.DELETE removes it). A file that is not a WAV of ours is left
alone and logged (``voicemail_file_skipped``). Each message is logged as
``voicemail_recovered``. No ``voicemail.new`` is sent: at start no client is connected;
the box's unheard count includes the message from now on.

Run it once at start, after the store is open and before the voicemail writer starts:
a file being written must never be taken for a crash's leftover.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import structlog

from switchd.core.ids import ulid_time
from switchd.recorder.mailboxes import Mailboxes, folder_problem
from switchd.recorder.vm_index import SQL_VM_INSERT
from switchd.recorder.wav import WavError, repair_dated
from switchd.store.sqlite import Store
from switchd.timefmt import iso_utc

__all__ = ["SQL_VM_KNOWN", "RecoveredMessage", "recover_messages"]

log = structlog.get_logger(__name__)

#: Every indexed message's id and file (one query per start, however many files).
SQL_VM_KNOWN = "SELECT id, file FROM voicemail"


@dataclass(frozen=True, slots=True)
class RecoveredMessage:
    """One message recovery indexed: ``file`` absolute, ``received`` epoch s,
    ``duration_s`` (s) and ``size`` (bytes) of the repaired file, ``short`` when it is
    shorter than ``min_s`` (kept all the same)."""

    id: str
    mailbox: str
    file: Path
    received: float
    duration_s: float
    size: int
    sha256: str
    short: bool


def _message_files(directory: Path) -> list[Path]:
    """Every ``<directory>/<box>/*.wav`` (blocking), sorted; none if ``directory`` does not
    exist. Folders whose name cannot be a box (:func:`folder_problem`) are passed over."""
    if not directory.is_dir():
        return []
    found: list[Path] = []
    for box in sorted(p for p in directory.iterdir() if p.is_dir()):
        if folder_problem(box.name) is None:
            found += sorted(p for p in box.glob("*.wav") if p.is_file())
    return found


def received_at(message_id: str, mtime: float, duration_s: float) -> float:
    """When a recovered message was received (epoch s): the time in its ULID id, unless
    it is not a ULID or says later than the file's last write ``mtime`` (epoch s; then
    the id cannot be ours), else ``mtime`` minus ``duration_s`` (s of audio)."""
    minted = ulid_time(message_id)
    if minted is not None and minted <= mtime:
        return minted
    return mtime - duration_s


async def _index_file(store: Store, directory: Path, path: Path,
                      min_s: float) -> RecoveredMessage | None:
    """Repair ``path`` and give it a row; None (logged) when it is not a WAV of ours.
    Raises StorageError / sqlite3.Error when the row cannot be written."""
    try:
        summary, mtime = await asyncio.to_thread(repair_dated, path, channels=1)
    except (WavError, OSError) as exc:
        log.warning("voicemail_file_skipped", file=str(path), error=str(exc),
                    hint="not a message switchd can index; move it out of the voicemail "
                         "directory")
        return None
    message_id, box = path.stem, path.parent.name
    received = received_at(message_id, mtime, summary.duration_s)
    await store.execute(SQL_VM_INSERT, {
        "id": message_id, "mailbox": box, "call_id": None, "caller": None,
        "file": path.relative_to(directory).as_posix(), "received": iso_utc(received),
        "duration_s": round(summary.duration_s, 3), "size": summary.size, "heard": 0,
        "sha256": summary.sha256})
    return RecoveredMessage(message_id, box, path, received, summary.duration_s,
                            summary.size, summary.sha256, summary.duration_s < min_s)


def _log(item: RecoveredMessage, configured: bool) -> None:
    log.warning("voicemail_recovered", message=item.id, mailbox=item.mailbox,
                file=str(item.file), duration_s=round(item.duration_s, 3), size=item.size,
                short=item.short, configured=configured, why="no index row (crash)")


async def recover_messages(store: Store, directory: Path,
                           mailboxes: Mailboxes) -> list[RecoveredMessage]:
    """Repair and index the messages a crash left in ``directory`` (the voicemail
    directory, absolute) without a row (module docstring); returns what was indexed.

    ``mailboxes``: the boxes in force (their ``min_s`` marks a message ``short``; a
    folder of a box no longer configured is recovered all the same and logged so).
    Files are repaired one at a time in a worker thread; one query reads the index. A
    second file with an id already indexed (a copy in another box) is skipped and
    logged. Raises StorageError / sqlite3.Error when the store cannot be read or
    written (nothing is lost: the files stay, and the next start tries again).
    """
    directory = Path(directory)
    rows = await store.fetch(SQL_VM_KNOWN, {})
    known_ids = {str(r["id"]) for r in rows}
    known_files = {str(r["file"]) for r in rows}
    min_s = mailboxes.settings.min_s
    done: list[RecoveredMessage] = []
    for path in await asyncio.to_thread(_message_files, directory):
        if path.relative_to(directory).as_posix() in known_files:
            continue
        if path.stem in known_ids:
            log.warning("voicemail_file_skipped", file=str(path),
                        error=f"message id {path.stem} is indexed for another file",
                        hint="a copy? move it out of the voicemail directory")
            continue
        item = await _index_file(store, directory, path, min_s)
        if item is None:
            continue
        known_ids.add(item.id)
        _log(item, mailboxes.get(item.mailbox) is not None)
        done.append(item)
    if done:
        log.info("voicemail_messages_recovered", count=len(done),
                 directory=os.fspath(directory))
    return done
