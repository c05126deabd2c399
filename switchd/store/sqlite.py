"""The SQLite backend: one database file in WAL mode, driven through aiosqlite.

This is the one SQLite-specific module (pragmas, ``BEGIN IMMEDIATE``, the migration
runner over ``PRAGMA user_version``); the SQL it runs comes from
``switchd.store.schema`` and is portable (DESIGN.md §6). aiosqlite runs every
statement on its own thread, so queries never block the event loop; a lock
serialises this connection's transactions, because two coroutines interleaving
``BEGIN … COMMIT`` on one connection would share a transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import aiosqlite
import structlog

from switchd.events import Cdr
from switchd.exceptions import StorageError
from switchd.store import schema

__all__ = ["Store"]

log = structlog.get_logger(__name__)

# How long a statement waits for another process's write lock before failing with
# "database is locked" (ms). Long enough to ride out a checkpoint or a backup, short
# enough that the CDR writer's retry loop gets to log the problem.
BUSY_TIMEOUT_MS = 5000

def _split_statements(script: str) -> list[str]:
    """Split a migration script into statements, respecting quoted semicolons.

    ``executescript`` would commit on its own and so could not run a migration and
    its ``user_version`` bump in one transaction; this lets us execute statements one
    by one inside ours.
    """
    statements: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                statements.append(pending.strip())
            pending = ""
    if pending.strip(" \t\r\n;"):
        raise ValueError(f"incomplete SQL statement in migration: {pending.strip()!r}")
    return statements


def _contact_dict(row: sqlite3.Row) -> dict[str, object]:
    """Return a contacts row as a dict, flags as bool."""
    out: dict[str, object] = dict(row)
    out["vip"] = bool(out["vip"])
    out["blacklisted"] = bool(out["blacklisted"])
    return out


class Store:
    """switchd's database: CDRs and contacts in one SQLite file.

    Create it with ``await Store.open(path)``, not the constructor. All methods are
    coroutines that run SQL on aiosqlite's thread. Errors: ``StorageError`` when the
    file cannot be opened or migrated or the store is closed; ``ValueError`` for a
    bad query argument; ``insert_cdrs`` lets ``sqlite3.OperationalError`` (transient:
    locked, disk full, I/O) and ``sqlite3.IntegrityError`` (duplicate ``uniqueid``)
    through unchanged, because ``CdrWriter`` retries the first and skips the second.
    """

    path: Path

    def __init__(self, path: Path, conn: aiosqlite.Connection) -> None:
        """Wrap an open, migrated connection; use ``Store.open`` instead."""
        self.path = path
        self._conn: aiosqlite.Connection | None = conn
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Store:
        """Open (creating if needed) the database at ``path`` and migrate it to ``SCHEMA_VERSION``.

        Creates the parent directory, sets WAL journaling (readers never wait for the
        writer), ``synchronous=NORMAL`` (durable across process crashes; in WAL the
        last commits may be lost only on power loss), a busy timeout and foreign
        keys. Raises ``StorageError`` naming the path when the file cannot be used,
        and one asking to upgrade switchd when the file's schema is newer than ours.
        """
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the directory of database {path}: {exc}") from exc
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so the sqlite3
            # module never opens a transaction behind our back.
            conn = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open database {path}: {exc}") from exc
        try:
            conn.row_factory = sqlite3.Row
            await cls._configure(conn, path)
            await cls._migrate(conn, path)
        except BaseException as exc:
            await conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"cannot use database {path}: {exc}") from exc
            raise
        return cls(path, conn)

    @staticmethod
    async def _configure(conn: aiosqlite.Connection, path: Path) -> None:
        """Apply the connection pragmas; warn if the file refuses WAL."""
        async with conn.execute("PRAGMA journal_mode=WAL") as cur:
            row = await cur.fetchone()
        mode = str(row[0]).lower() if row else "?"
        if mode != "wal":
            # e.g. a file system without shared memory; still usable, but readers
            # now block the writer, so say so.
            log.warning("store_not_wal", path=str(path), journal_mode=mode)
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA foreign_keys=ON")

    @staticmethod
    async def _user_version(conn: aiosqlite.Connection) -> int:
        """Return the file's ``PRAGMA user_version`` (0 for a new file)."""
        async with conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    @classmethod
    async def _migrate(cls, conn: aiosqlite.Connection, path: Path) -> None:
        """Run each missing migration in its own transaction, bumping ``user_version`` with it.

        The version is re-read under the write lock, so two processes opening the
        same new file at once do not both run a migration.
        """
        target = schema.SCHEMA_VERSION
        version = await cls._user_version(conn)
        if version > target:
            raise StorageError(
                f"database {path} has schema version {version}, but this switchd only "
                f"knows versions up to {target}: it was written by a newer switchd; "
                "upgrade switchd (or point it at another database file)"
            )
        while version < target:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                version = await cls._user_version(conn)
                if version < target:
                    for statement in _split_statements(schema.MIGRATIONS[version]):
                        await conn.execute(statement)
                    # PRAGMA takes no bound parameters; version is our own int.
                    await conn.execute(f"PRAGMA user_version={version + 1}")
                await conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                raise
            if version < target:
                log.info(
                    "store_migrated", path=str(path), from_version=version, to_version=version + 1
                )
                version += 1

    def _connection(self) -> aiosqlite.Connection:
        """Return the open connection or raise ``StorageError`` if the store is closed."""
        if self._conn is None:
            raise StorageError(f"database {self.path} is closed")
        return self._conn

    async def close(self) -> None:
        """Close the connection; safe to call twice. Later calls raise ``StorageError``."""
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is None:
                return
            try:
                # Lets SQLite refresh planner statistics it found stale; cheap.
                await conn.execute("PRAGMA optimize")
            except sqlite3.Error as exc:
                log.warning("store_optimize_failed", path=str(self.path), error=str(exc))
            finally:
                await conn.close()

    async def insert_cdrs(self, cdrs: Sequence[Cdr]) -> None:
        """Insert CDRs and touch each caller's contact row, all in one transaction.

        The contact ("caller") is ``src`` for inbound calls and ``dst`` for outbound
        ones; internal calls touch none. Its ``last_call_at`` becomes the CDR's end,
        ``last_agent`` the agent (or extension) when known; a missing row is created.
        On any error nothing is written and the error propagates:
        ``sqlite3.IntegrityError`` for a duplicate ``uniqueid``,
        ``sqlite3.OperationalError`` for locked / full / I/O failures,
        ``StorageError`` if the store is closed, ``ValueError`` for a non-finite time.
        """
        if not cdrs:
            return
        rows = [schema.cdr_row(cdr) for cdr in cdrs]
        now = schema.iso_utc(time.time())
        touches = [t for cdr in cdrs if (t := schema.contact_touch_row(cdr, now)) is not None]
        async with self._lock:
            conn = self._connection()
            # IMMEDIATE takes the write lock up front, so a busy database fails here
            # (after busy_timeout) instead of half-way through the batch.
            await conn.execute("BEGIN IMMEDIATE")
            try:
                await conn.executemany(schema.SQL_INSERT_CDR, rows)
                await conn.executemany(schema.SQL_FACTS_HAVE_CDR,
                                       [{"uniqueid": c.uniqueid} for c in cdrs])
                if touches:
                    await conn.executemany(schema.SQL_CONTACT_TOUCH, touches)
                await conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                raise

    async def query_cdrs(
        self,
        *,
        caller: str | None = None,
        callee: str | None = None,
        since: str | None = None,
        until: str | None = None,
        disposition: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, object]]:
        """Return CDRs newest first (by ``start``), as dicts keyed by column name.

        ``caller`` matches ``src`` and ``callee`` matches ``dst`` exactly; ``since``
        (inclusive) and ``until`` (exclusive) bound ``start`` and take a date, an
        ISO-8601 timestamp (no offset = UTC) or epoch seconds; ``limit`` is 1..10000.
        Times come back as stored (ISO-8601 UTC text), NULLs as None. Raises
        ``ValueError`` for a bad bound or limit (the message names the expected
        format), ``StorageError`` if the store is closed.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10000:
            raise ValueError(f"bad limit {limit!r}: expected an integer from 1 to 10000")
        params: dict[str, object] = {"limit": limit}
        for name, value in (("caller", caller), ("callee", callee), ("disposition", disposition)):
            if value is not None:
                params[name] = value
        if since is not None:
            params["since"] = schema.parse_time_bound(since, name="since")
        if until is not None:
            params["until"] = schema.parse_time_bound(until, name="until")
        sql = schema.select_cdrs_sql(set(params) - {"limit"})
        async with self._lock:
            rows = await self._connection().execute_fetchall(sql, params)
        return [dict(row) for row in rows]

    async def execute(self, sql: str, params: Mapping[str, object] | Sequence[Mapping[str, object]]
                      = MappingProxyType({})) -> int:
        """Run one write statement (``params`` a mapping) or the same statement for each
        mapping of a sequence, in one transaction. Returns the rows changed.

        For the modules that own a table's SQL (``switchd.recorder.index``, voicemail):
        they keep their statements next to their rows, the store keeps the connection.
        Raises ``sqlite3.OperationalError`` (locked, full, I/O) for the caller to retry,
        ``StorageError`` if the store is closed.
        """
        async with self._lock:
            conn = self._connection()
            await conn.execute("BEGIN IMMEDIATE")
            try:
                if isinstance(params, Mapping):
                    cur = await conn.execute(sql, dict(params))
                else:
                    cur = await conn.executemany(sql, [dict(p) for p in params])
                changed = cur.rowcount
                await conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                raise
        return max(changed, 0)

    async def execute_steps(self, steps: Sequence[tuple[str, Sequence[Mapping[str, object]]]]
                            ) -> int:
        """Run ``steps`` — each a write statement and the mappings to run it for — in order,
        in one transaction: one commit (one sync to disk) for a whole batch of different
        statements. Returns the rows changed. Raises as :meth:`execute`; on any error
        nothing of the batch is kept."""
        async with self._lock:
            conn = self._connection()
            await conn.execute("BEGIN IMMEDIATE")
            changed = 0
            try:
                for sql, params in steps:
                    cur = await conn.executemany(sql, [dict(p) for p in params])
                    changed += max(cur.rowcount, 0)
                await conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                raise
        return changed

    async def write_rows(self, steps: Sequence[tuple[str, Sequence[Sequence[object]]]]) -> None:
        """Run ``steps`` — each a write statement with ``?`` placeholders and its rows — in
        order, in one transaction (the report facts: thousands of rows a batch, as
        tuples). Raises as :meth:`execute`; on any error nothing of the batch is kept."""
        async with self._lock:
            conn = self._connection()
            await conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, rows in steps:
                    await conn.executemany(sql, rows)
                await conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                raise

    async def fetch_rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        """Rows of a read-only ``sql`` with ``?`` placeholders, as tuples."""
        async with self._lock:
            cur = await self._connection().execute(sql, tuple(params))
            rows = await cur.fetchall()
            await cur.close()
        return [tuple(r) for r in rows]

    async def fetch(self, sql: str, params: Mapping[str, object] = MappingProxyType({})
                    ) -> list[dict[str, object]]:
        """Run one query; rows as dicts keyed by column name. Raises ``StorageError`` if the
        store is closed, ``sqlite3.Error`` for a bad statement."""
        async with self._lock:
            rows = await self._connection().execute_fetchall(sql, dict(params))
        return [dict(row) for row in rows]

    async def cdr_count(self) -> int:
        """Return the number of stored CDRs."""
        async with self._lock:
            rows = await self._connection().execute_fetchall(schema.SQL_CDR_COUNT)
        return int(next(iter(rows))[0])

    async def get_cdr(self, uniqueid: str) -> dict[str, object] | None:
        """Return the stored CDR ``uniqueid`` like ``query_cdrs`` rows, or None. Raises
        ``StorageError`` if the store is closed, ``sqlite3.Error`` when it cannot be read."""
        async with self._lock:
            rows = list(await self._connection().execute_fetchall(
                schema.SQL_GET_CDR, {"uniqueid": uniqueid}))
        return dict(rows[0]) if rows else None

    async def set_cdr_note(self, uniqueid: str, note: str) -> bool:
        """Store ``note`` on the CDR ``uniqueid``, replacing its note; False when there is no
        such CDR. Raises ``sqlite3.OperationalError`` (locked, full, I/O), ``StorageError``
        if the store is closed."""
        return await self.execute(schema.SQL_SET_CDR_NOTE,
                                  {"uniqueid": uniqueid, "note": note}) > 0

    async def call_history(self, number: str) -> dict[str, object]:
        """A customer number's stored calls: ``calls`` (how many: inbound calls from it and
        outbound calls to it, ``schema.caller_of``) and ``last`` (the newest one's
        ``uniqueid start agent extension recording_id note``, or None when there is none).
        One read under the store's lock, two index searches. Raises ``StorageError`` if the
        store is closed, ``sqlite3.Error`` when it cannot be read."""
        params = {"number": number}
        async with self._lock:
            conn = self._connection()
            counted = list(await conn.execute_fetchall(schema.SQL_CALL_HISTORY_COUNT, params))
            last = list(await conn.execute_fetchall(schema.SQL_CALL_HISTORY_LAST, params))
        return {"calls": int(counted[0][0]), "last": dict(last[0]) if last else None}

    async def get_contact(self, number: str) -> dict[str, object] | None:
        """Return the contact for ``number`` (flags as bool), or None if there is none."""
        async with self._lock:
            rows = list(
                await self._connection().execute_fetchall(
                    schema.SQL_GET_CONTACT, {"number": number}
                )
            )
        return _contact_dict(rows[0]) if rows else None

    async def set_contact(
        self,
        number: str,
        *,
        name: str | None = None,
        vip: bool | None = None,
        blacklisted: bool | None = None,
        notes: str | None = None,
    ) -> dict[str, object]:
        """Create or update the contact for ``number``; only the fields given change.

        None means "leave as is" (a new contact gets NULL text and False flags).
        Returns the stored row like ``get_contact``. Raises ``ValueError`` for an
        empty number, ``StorageError`` if the store is closed.
        """
        if not number:
            raise ValueError("contact number must not be empty")
        params: dict[str, object] = {
            "number": number,
            "name": name,
            "vip": None if vip is None else int(bool(vip)),
            "blacklisted": None if blacklisted is None else int(bool(blacklisted)),
            "notes": notes,
            "now": schema.iso_utc(time.time()),
        }
        async with self._lock:
            conn = self._connection()
            await conn.execute("BEGIN IMMEDIATE")
            try:
                await conn.execute(schema.SQL_CONTACT_SET, params)
                rows = list(await conn.execute_fetchall(schema.SQL_GET_CONTACT, {"number": number}))
                await conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                raise
        return _contact_dict(rows[0])

    async def contact_flags(self) -> dict[str, tuple[bool, bool]]:
        """Return ``number -> (vip, blacklisted)`` for every contact with a flag set.

        The shell caches this so that routing decisions stay synchronous and never
        wait on the database.
        """
        async with self._lock:
            rows = await self._connection().execute_fetchall(schema.SQL_CONTACT_FLAGS)
        return {str(r["number"]): (bool(r["vip"]), bool(r["blacklisted"])) for r in rows}

    async def contact_last_agents(self) -> dict[str, str]:
        """Return ``number -> last_agent`` for every contact with a last agent.

        ``last_agent`` is the agent id of the number's last call when an agent took
        it, else the extension number as text (``schema.contact_touch_row``). The ACD
        reads this at start for sticky routing, so that a decision never waits on the
        database. Raises ``StorageError`` if the store is closed.
        """
        async with self._lock:
            rows = await self._connection().execute_fetchall(schema.SQL_CONTACT_LAST_AGENTS)
        return {str(r["number"]): str(r["last_agent"]) for r in rows}
