"""switchd.store: CDRs and contacts in one SQLite file, written without blocking the loop.

``Store`` is the database (named, portable queries; see ``schema``); ``CdrWriter``
queues CDRs from the event loop and commits them in the background, retrying until
they are written.
"""

from __future__ import annotations

from switchd.store.cdr_writer import CdrWriter
from switchd.store.schema import CDR_COLUMNS, SCHEMA_VERSION
from switchd.store.sqlite import Store

__all__ = ["CDR_COLUMNS", "SCHEMA_VERSION", "CdrWriter", "Store"]
