"""Writing a whole state directory in one go, outside the daemon: ``switchd sim
--records`` and ``switchd bench report`` leave what a daemon would have left — a
``switchd.db`` created and migrated by :class:`switchd.store.sqlite.Store`, its CDRs
inserted with :data:`switchd.store.schema.SQL_INSERT_CDR`, a ``queue_log`` in
Asterisk's format, and the report facts folded from it (:mod:`switchd.reports.facts`) —
so that ``switchd report --state-dir`` reads them like any other.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from switchd.events import Cdr
from switchd.store.queue_log import QUEUE_LOG_NAME

__all__ = ["DB_NAME", "write_state"]

#: The database's name in a state directory (as the daemon names it).
DB_NAME = "switchd.db"
#: Rows per INSERT transaction.
_BATCH = 50_000


def write_state(state_dir: Path, cdrs: Sequence[Cdr], queue_log: Sequence[str], *,
                facts_since: float | None = None) -> None:
    """Create ``state_dir`` (and its parents) holding ``switchd.db`` with ``cdrs`` and a
    ``queue_log`` of ``queue_log`` lines (each without its newline).

    Existing files are added to: the callers check that the folder is new when that
    matters. The report facts begin at ``facts_since`` (epoch s; default the first
    line's whole second), unless an earlier write set it. Raises StorageError when the database cannot be created or migrated,
    sqlite3.Error / OSError when it or the queue_log cannot be written.
    """
    import structlog.testing

    from switchd.store import schema
    from switchd.store.sqlite import Store

    state_dir.mkdir(parents=True, exist_ok=True)
    db = state_dir / DB_NAME

    async def create() -> None:
        store = await Store.open(db)  # the schema and its migrations, as the daemon makes it
        await store.close()

    with structlog.testing.capture_logs():  # "store_migrated" per migration would garble --json
        asyncio.run(create())
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        for i in range(0, len(cdrs), _BATCH):
            conn.execute("BEGIN")
            conn.executemany(schema.SQL_INSERT_CDR,
                             [schema.cdr_row(c) for c in cdrs[i:i + _BATCH]])
            conn.executemany(schema.SQL_FACTS_HAVE_CDR,
                             [{"uniqueid": c.uniqueid} for c in cdrs[i:i + _BATCH]])
            conn.execute("COMMIT")
        _write_facts(conn, queue_log, facts_since)
    finally:
        conn.close()
    with (state_dir / QUEUE_LOG_NAME).open("a", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in queue_log)


def _write_facts(conn: sqlite3.Connection, queue_log: Sequence[str],
                 facts_since: float | None) -> None:
    """Fold ``queue_log`` into the report facts of the database on ``conn``."""
    from switchd.reports.facts import FactsFold
    from switchd.store import schema
    from switchd.store.facts_writer import facts_steps, load_facts_state, write_facts_sync

    if facts_since is not None:
        write_facts_sync(conn, [(schema.SQL_FACTS_SINCE_SET, [(repr(float(facts_since)),)])])
    since, spans = load_facts_state(conn)
    fold = FactsFold(since, spans, run_start=facts_since)
    for i in range(0, len(queue_log), _BATCH * 4):
        fold.feed_all(queue_log[i:i + _BATCH * 4])
        write_facts_sync(conn, facts_steps(fold.take()))
