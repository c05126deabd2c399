"""The voicemail message index: the ``voicemail`` table's SQL, its writer, its queries.

A message becomes a row once its file is closed (duration, size and sha256 come from
the file, so the index never disagrees with the bytes on disk). Rows are written by
:class:`MessageIndex`, a background writer (DESIGN §6, like the CDR writer): the loop
hands a row over and never waits; a transient SQLite failure (locked, full, I/O) is
logged and retried with a doubling delay, so a message is never lost to it. The same
task deletes the files of messages too short to keep, off the loop. After each row is
committed, ``on_saved(row, waiting)`` reports it with the box's unheard count (what
``voicemail.new`` says).

``VM.LIST``/``VM.FETCH``/``VM.DELETE`` read and change the table through
:meth:`MessageIndex.list`, :meth:`~MessageIndex.fetch` and :meth:`~MessageIndex.delete`
(the daemon's ``Control`` delegates to them). ``file`` is stored relative to the
voicemail directory (``<box>/<id>.wav``) and handed out absolute. All SQL is portable
(``switchd.store.schema`` rules: ISO-8601 UTC text times, ``:name`` placeholders).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from switchd.exceptions import ProtocolError, StorageError
from switchd.recorder.mailboxes import Mailboxes, missing_mailbox
from switchd.store.background import BackgroundWriter
from switchd.store.sqlite import Store
from switchd.timefmt import iso_utc

__all__ = [
    "LIST_LIMIT_MAX",
    "SQL_VM_DELETE",
    "SQL_VM_GET",
    "SQL_VM_HEARD",
    "SQL_VM_INSERT",
    "SQL_VM_WAITING",
    "MessageIndex",
    "MessageRow",
    "select_messages_sql",
]

log = structlog.get_logger(__name__)

#: Most rows one VM.LIST returns.
LIST_LIMIT_MAX = 10_000

_COLUMNS = ("id", "mailbox", "call_id", "caller", "file", "received", "duration_s", "size",
            "heard", "sha256")
SQL_VM_INSERT = (f"INSERT INTO voicemail ({', '.join(_COLUMNS)}) "
                 f"VALUES ({', '.join(':' + c for c in _COLUMNS)})")
SQL_VM_WAITING = "SELECT COUNT(*) AS waiting FROM voicemail WHERE mailbox = :mailbox AND heard = 0"
SQL_VM_GET = f"SELECT {', '.join(_COLUMNS)} FROM voicemail WHERE id = :id"
SQL_VM_HEARD = "UPDATE voicemail SET heard = 1 WHERE id = :id"
SQL_VM_DELETE = "DELETE FROM voicemail WHERE id = :id"


def select_messages_sql(by_mailbox: bool) -> str:
    """Messages newest first (``:limit`` rows), of ``:mailbox`` when ``by_mailbox``."""
    where = "WHERE mailbox = :mailbox " if by_mailbox else ""
    return (f"SELECT {', '.join(_COLUMNS)} FROM voicemail {where}"
            "ORDER BY received DESC, id DESC LIMIT :limit")


@dataclass(frozen=True, slots=True)
class MessageRow:
    """One message as the index stores it: ``file`` relative to the voicemail directory,
    ``received`` epoch s (when the caller started it), ``duration_s``/``size`` (bytes)/
    ``sha256`` (hex) of the closed file."""

    id: str
    mailbox: str
    call_id: str
    caller: str
    file: str
    received: float
    duration_s: float
    size: int
    sha256: str | None

    def params(self) -> dict[str, object]:
        """The row's SQL parameters (``received`` as ISO-8601 UTC text, heard 0)."""
        return {"id": self.id, "mailbox": self.mailbox, "call_id": self.call_id,
                "caller": self.caller or None, "file": self.file,
                "received": iso_utc(self.received), "duration_s": round(self.duration_s, 3),
                "size": self.size, "heard": 0, "sha256": self.sha256}


@dataclass(frozen=True, slots=True)
class _Save:
    row: MessageRow


@dataclass(frozen=True, slots=True)
class _Discard:
    path: Path


_Job = _Save | _Discard
#: ``on_saved(row, waiting)``: ``row`` is committed; ``waiting``: the box's unheard messages.
OnSaved = Callable[[MessageRow, int], None]


class MessageIndex(BackgroundWriter[_Job]):
    """The ``voicemail`` table: rows written in the background, queries for the verbs.

    ``directory``: the voicemail directory (``file`` columns are relative to it).
    ``mailboxes``: the boxes in force (which names VM.LIST accepts). ``on_saved``: see
    :data:`OnSaved` (an exception in it is logged and ignored). Retry delays in s.
    ``save``/``discard`` raise ``StorageError`` once ``close()`` has begun.
    """

    _label = "voicemail index"
    _unit = "messages"
    _error = StorageError

    def __init__(self, store: Store, directory: Path, mailboxes: Mailboxes, *,
                 on_saved: OnSaved | None = None, retry_initial_s: float = 0.5,
                 retry_max_s: float = 30.0) -> None:
        super().__init__(retry_initial_s=retry_initial_s, retry_max_s=retry_max_s)
        self.store = store
        self.directory = Path(directory)
        self.mailboxes = mailboxes
        self.on_saved = on_saved
        #: Rows committed since start.
        self.saved = 0
        #: The job at the head of the queue whose row is committed but whose box count
        #: failed: its retry only counts (inserting again would be a duplicate).
        self._inserted: _Save | None = None

    # ----------------------------------------------------------------- writing

    def save(self, row: MessageRow) -> None:
        """Queue ``row`` for insertion; never blocks. Raises StorageError after close()."""
        if self._closing:
            raise StorageError(f"voicemail index is closed; message {row.id} in {row.mailbox} "
                               f"({self.directory / row.file}) was not indexed")
        self._put(_Save(row))

    def discard(self, relpath: Path) -> None:
        """Queue the deletion of a message file that is not kept (shorter than ``min_s``);
        never blocks. Raises StorageError after close()."""
        if self._closing:
            raise StorageError(f"voicemail index is closed; {self.directory / relpath} "
                               "was not deleted")
        self._put(_Discard(Path(relpath)))

    def _left_unwritten(self, left: int) -> None:
        if left:
            log.error("voicemail_index_closed_with_pending", pending=left, saved=self.saved)

    async def _run(self) -> None:
        while (batch := await self._take(1)) is not None:
            job = batch[0]
            try:
                waiting = await self._do(job)
            except asyncio.CancelledError:
                raise
            except sqlite3.IntegrityError as exc:
                # The same message id twice: a bug, never a transient state; skip it.
                log.error("voicemail_rejected", error=str(exc), job=repr(job), action="skipped")
                waiting = None
            except Exception as exc:
                log.error("voicemail_index_failed", error=f"{type(exc).__name__}: {exc}",
                          pending=self.pending, retry_in_s=self._delay_s,
                          exc_info=not isinstance(exc, sqlite3.OperationalError | StorageError
                                                  | OSError))
                if not await self._back_off():
                    return
                continue
            self._queue.popleft()
            self._inserted = None
            self._delay_s = self._retry_initial_s
            self._advance(1)
            if isinstance(job, _Save) and waiting is not None:
                self.saved += 1
                if self.on_saved is not None:
                    try:
                        self.on_saved(job.row, waiting)
                    except Exception:
                        log.exception("voicemail_on_saved_failed", message=job.row.id)

    async def _do(self, job: _Job) -> int | None:
        """Carry out one job; the box's unheard count for a saved row.

        The row is inserted once: when the count after it fails (a transient error),
        the retry only counts. Raises sqlite3.IntegrityError for a message id already
        indexed (never retried), sqlite3.OperationalError / StorageError / OSError for
        the caller to retry.
        """
        if isinstance(job, _Discard):
            path = self.directory / job.path
            await asyncio.to_thread(path.unlink, missing_ok=True)
            return None
        if self._inserted is not job:
            await self.store.execute(SQL_VM_INSERT, job.row.params())
            self._inserted = job
        return await self.waiting(job.row.mailbox)

    # ----------------------------------------------------------------- queries

    async def list(self, mailbox: str | None, *, limit: int = 100) -> list[dict[str, Any]]:
        """Messages of ``mailbox`` (None: every box), newest first, at most ``limit``
        (1..:data:`LIST_LIMIT_MAX`), each as :meth:`_out` shows it.

        Raises ProtocolError: ``bad_arg`` for a limit out of range, ``not_found`` for a
        box that neither exists nor holds messages (one removed from the config keeps
        its messages readable).
        """
        if not 1 <= limit <= LIST_LIMIT_MAX:
            raise ProtocolError("bad_arg", f"limit={limit} must be between 1 and "
                                f"{LIST_LIMIT_MAX}")
        params: dict[str, object] = {"limit": limit}
        if mailbox is not None:
            params["mailbox"] = mailbox
        rows = await self.store.fetch(select_messages_sql(mailbox is not None), params)
        if mailbox is not None and not rows and self.mailboxes.get(mailbox) is None:
            problem = missing_mailbox(mailbox, self.mailboxes.settings.boxes)
            raise ProtocolError("not_found", problem or f"no mailbox {mailbox!r}")
        return [self._out(r) for r in rows]

    async def get(self, message_id: str) -> dict[str, Any]:
        """One message, unchanged. Raises ProtocolError(not_found)."""
        return self._out(await self._row(message_id))

    async def fetch(self, message_id: str) -> dict[str, Any]:
        """One message with its absolute ``file``; marks it heard (``heard`` true in what is
        returned). Raises ProtocolError(not_found)."""
        await self._row(message_id)
        await self.store.execute(SQL_VM_HEARD, {"id": message_id})
        return self._out(await self._row(message_id))

    async def delete(self, message_id: str) -> dict[str, Any]:
        """Delete a message: its row, then its file (off the loop; a file already gone is
        fine; one the OS refuses to delete is logged, the row is gone anyway). Returns the
        row it had. Raises ProtocolError(not_found)."""
        row = await self._row(message_id)
        await self.store.execute(SQL_VM_DELETE, {"id": message_id})
        path = self.directory / str(row["file"])
        try:
            await asyncio.to_thread(path.unlink, missing_ok=True)
        except OSError as exc:
            log.error("voicemail_file_not_deleted", message=message_id, file=str(path),
                      error=exc.strerror or str(exc))
        return self._out(row)

    async def waiting(self, mailbox: str) -> int:
        """Unheard messages in ``mailbox``."""
        rows = await self.store.fetch(SQL_VM_WAITING, {"mailbox": mailbox})
        return int(rows[0]["waiting"]) if rows else 0  # type: ignore[call-overload]

    async def _row(self, message_id: str) -> dict[str, object]:
        rows = await self.store.fetch(SQL_VM_GET, {"id": message_id})
        if not rows:
            raise ProtocolError("not_found", f"no voicemail message {message_id!r}; VM.LIST "
                                "shows the messages there are")
        return rows[0]

    def _out(self, row: dict[str, object]) -> dict[str, Any]:
        """A row as the verbs show it: ``call`` (the call id), ``heard`` a bool, ``file``
        absolute."""
        return {"id": row["id"], "mailbox": row["mailbox"], "call": row["call_id"],
                "caller": row["caller"], "received": row["received"],
                "duration_s": row["duration_s"], "size": row["size"],
                "heard": bool(row["heard"]), "sha256": row["sha256"],
                "file": str(self.directory / str(row["file"]))}

