"""switchd.store: CDRs and contacts in one SQLite file, and the queue_log text file,
written without blocking the loop.

``Store`` is the database (named, portable queries; see ``schema``); ``CdrWriter``
queues CDRs from the event loop and commits them in the background, retrying until
they are written; ``QueueLogWriter`` appends the ACD's queue_log lines the same way.
"""

from __future__ import annotations

from switchd.store.cdr_writer import CdrWriter
from switchd.store.queue_log import QUEUE_LOG_NAME, QueueLogWriter
from switchd.store.schema import CDR_COLUMNS, SCHEMA_VERSION
from switchd.store.sqlite import Store

__all__ = ["CDR_COLUMNS", "QUEUE_LOG_NAME", "SCHEMA_VERSION", "CdrWriter", "QueueLogWriter", "Store"]
