"""The storage schema, its forward migrations, and the named queries over it.

Everything here is portable SQL (SQLite and PostgreSQL, the planned second backend,
see DESIGN.md §6): standard types (``TEXT``, ``INTEGER``, ``DOUBLE PRECISION``),
double-quoted identifiers where a column name is a reserved word (``"end"``),
``INSERT … ON CONFLICT … DO UPDATE`` upserts, and ``:name`` placeholders (a
PostgreSQL backend rewrites them to psycopg's ``%(name)s``). Nothing here opens a
connection; ``switchd.store.sqlite`` is the one SQLite-specific module.

Representation rules, shared by every backend:

- times are ISO-8601 UTC text with milliseconds and a ``Z``
  (``2026-11-30T03:48:43.123Z``), fixed width, so text order is time order and an
  index on the column serves range queries;
- ids (``uniqueid``, ``linkedid``, phone numbers) are text;
- booleans are ``INTEGER`` 0/1 (with a ``CHECK``), read back as ``bool``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal, InvalidOperation

from switchd.events import Cdr
from switchd.timefmt import iso_utc

__all__ = [
    "CDR_COLUMNS",
    "CONTACT_COLUMNS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SQL_CALL_HISTORY_COUNT",
    "SQL_CALL_HISTORY_LAST",
    "SQL_CDR_COUNT",
    "SQL_CONTACT_FLAGS",
    "SQL_CONTACT_LAST_AGENTS",
    "SQL_CONTACT_SET",
    "SQL_CONTACT_TOUCH",
    "SQL_GET_CDR",
    "SQL_GET_CONTACT",
    "SQL_INSERT_CDR",
    "SQL_SET_CDR_NOTE",
    "SQL_UPSERT_CALL_FACT",
    "TIME_FORMATS_HELP",
    "caller_of",
    "cdr_row",
    "contact_touch_row",
    "iso_utc",
    "parse_time_bound",
    "select_cdrs_sql",
]

# Migration i brings the schema from version i to i + 1. Append only: a released
# migration is never edited, because databases in the field already ran it.
MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: CDRs and contacts.
    """
    CREATE TABLE cdr (
        uniqueid       TEXT PRIMARY KEY,
        linkedid       TEXT NOT NULL,
        src            TEXT NOT NULL,
        dst            TEXT NOT NULL,
        clid           TEXT NOT NULL,
        start          TEXT NOT NULL,
        answer         TEXT,
        "end"          TEXT NOT NULL,
        duration       INTEGER NOT NULL,
        billsec        INTEGER NOT NULL,
        disposition    TEXT NOT NULL,
        direction      TEXT NOT NULL,
        trunk          INTEGER,
        extension      INTEGER,
        agent          TEXT,
        queue          TEXT,
        wait_s         DOUBLE PRECISION NOT NULL DEFAULT 0,
        ivr_path       TEXT,
        recording_id   TEXT,
        hangup_by      TEXT,
        blocked_reason TEXT,
        dnis           TEXT
    );
    CREATE INDEX cdr_start_idx ON cdr (start);
    CREATE INDEX cdr_src_idx ON cdr (src);
    CREATE INDEX cdr_dst_idx ON cdr (dst);
    CREATE INDEX cdr_disposition_idx ON cdr (disposition);
    CREATE TABLE contacts (
        number       TEXT PRIMARY KEY,
        name         TEXT,
        vip          INTEGER NOT NULL DEFAULT 0 CHECK (vip IN (0, 1)),
        blacklisted  INTEGER NOT NULL DEFAULT 0 CHECK (blacklisted IN (0, 1)),
        notes        TEXT,
        last_agent   TEXT,
        last_call_at TEXT,
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL
    );
    """,
    # 1 -> 2: why each call ended (Q.850 cause name as FreeSWITCH spells it, and its number).
    """
    ALTER TABLE cdr ADD COLUMN hangup_cause TEXT;
    ALTER TABLE cdr ADD COLUMN q850 INTEGER;
    """,
    # 2 -> 3: the IVR's variables when the call left its flow (JSON object text);
    # ivr_path, the nodes it went through, has been there since version 1.
    """
    ALTER TABLE cdr ADD COLUMN ivr_vars TEXT;
    """,
    # 3 -> 4: the call recordings' index and the voicemail messages. ``file`` is relative
    # to the recordings (voicemail) directory, so the directory can be moved; ``marks``
    # is a JSON list of what happened in the recording (segments, pauses, members);
    # ``agent`` is the CDR's (the last agent), ``agents`` every agent who was in the
    # call, as ``,a1,a2,`` so one LIKE finds each.
    """
    CREATE TABLE recordings (
        id           TEXT PRIMARY KEY,
        call_id      TEXT NOT NULL,
        file         TEXT NOT NULL,
        start        TEXT NOT NULL,
        "end"        TEXT,
        duration_s   DOUBLE PRECISION NOT NULL DEFAULT 0,
        size         INTEGER NOT NULL DEFAULT 0,
        caller       TEXT,
        callee       TEXT,
        agent        TEXT,
        agents       TEXT,
        queue        TEXT,
        direction    TEXT NOT NULL,
        mode         TEXT NOT NULL,
        channels     INTEGER NOT NULL,
        format       TEXT NOT NULL,
        status       TEXT NOT NULL
                     CHECK (status IN ('recording', 'done', 'recovered', 'failed')),
        sha256       TEXT,
        keep         INTEGER NOT NULL DEFAULT 0 CHECK (keep IN (0, 1)),
        marks        TEXT,
        error        TEXT
    );
    CREATE INDEX recordings_start_idx ON recordings (start);
    CREATE INDEX recordings_call_idx ON recordings (call_id);
    CREATE INDEX recordings_caller_idx ON recordings (caller);
    CREATE INDEX recordings_callee_idx ON recordings (callee);
    CREATE INDEX recordings_agent_idx ON recordings (agent);
    CREATE INDEX recordings_queue_idx ON recordings (queue);
    CREATE INDEX recordings_status_idx ON recordings (status);
    CREATE TABLE voicemail (
        id           TEXT PRIMARY KEY,
        mailbox      TEXT NOT NULL,
        call_id      TEXT,
        caller       TEXT,
        file         TEXT NOT NULL,
        received     TEXT NOT NULL,
        duration_s   DOUBLE PRECISION NOT NULL,
        size         INTEGER NOT NULL,
        heard        INTEGER NOT NULL DEFAULT 0 CHECK (heard IN (0, 1)),
        sha256       TEXT
    );
    CREATE INDEX voicemail_mailbox_idx ON voicemail (mailbox, received);
    """,
    # 4 -> 5: the agent's note on a call (CALL.NOTE), and indexes that find a number's
    # calls newest first (the screen pop's history, CDR.QUERY caller= / callee=): they
    # replace the single-column ones, which they serve as well.
    """
    ALTER TABLE cdr ADD COLUMN note TEXT;
    CREATE INDEX cdr_src_start_idx ON cdr (src, start);
    CREATE INDEX cdr_dst_start_idx ON cdr (dst, start);
    DROP INDEX IF EXISTS cdr_src_idx;
    DROP INDEX IF EXISTS cdr_dst_idx;
    """,
    # 5 -> 6: what the SIP board's RTP receivers saw on the call's lines at its end
    # (packets, loss, late, jitter per line; NULL on the simulated board).
    """
    ALTER TABLE cdr ADD COLUMN media TEXT;
    """,
    # 6 -> 7: the report facts folded from the queue_log as it is written
    # (switchd.reports.facts): per call and queue ('' = all its queues; has_cdr: its
    # CDR is stored, so the calls without one are found by a small partial index), per
    # agent, queue and quarter hour, the agents' spans still open, and since when the
    # facts are complete (report_meta 'facts_since', epoch s; reports of earlier
    # periods read the queue_log file), agent_spans (spans longer than a day, whole),
    # facts_gaps (periods whose facts are incomplete: the queue_log has lines they never
    # got, after a crash or a failing disk; reports overlapping one read the file) and
    # report_meta 'facts_last' (the last line stored: its time and how many lines in a
    # row had it). WITHOUT ROWID: each table is its key's b-tree,
    # one lookup per CDR when a report joins them. The call facts' times and seconds are
    # NUMERIC: the queue_log's whole seconds come back as small integers, which a report
    # reading a million rows does not allocate one by one.
    """
    CREATE TABLE call_facts (
        uniqueid     TEXT NOT NULL,
        queue        TEXT NOT NULL,
        first_enter  NUMERIC,
        abandoned    INTEGER NOT NULL DEFAULT 0,
        abandon_wait NUMERIC,
        refused      INTEGER NOT NULL DEFAULT 0,
        callback     INTEGER NOT NULL DEFAULT 0,
        connected    INTEGER NOT NULL DEFAULT 0,
        connect_hold NUMERIC,
        first_exit   NUMERIC,
        overflow     INTEGER NOT NULL DEFAULT 0,
        wrapup_s     NUMERIC NOT NULL DEFAULT 0,
        wrapups      INTEGER NOT NULL DEFAULT 0,
        has_cdr      INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (uniqueid, queue)
    ) WITHOUT ROWID;
    CREATE INDEX call_facts_no_cdr_idx ON call_facts (queue, first_enter) WHERE has_cdr = 0;
    CREATE TABLE agent_time (
        agent    TEXT NOT NULL,
        queue    TEXT NOT NULL,
        bucket   INTEGER NOT NULL,
        events   INTEGER NOT NULL DEFAULT 0,
        handled  INTEGER NOT NULL DEFAULT 0,
        talk_s   DOUBLE PRECISION NOT NULL DEFAULT 0,
        hold_s   DOUBLE PRECISION NOT NULL DEFAULT 0,
        wrapup_s DOUBLE PRECISION NOT NULL DEFAULT 0,
        busy_s   DOUBLE PRECISION NOT NULL DEFAULT 0,
        logged_s DOUBLE PRECISION NOT NULL DEFAULT 0,
        rona     INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (queue, bucket, agent)
    ) WITHOUT ROWID;
    CREATE TABLE agent_not_ready (
        agent   TEXT NOT NULL,
        queue   TEXT NOT NULL,
        bucket  INTEGER NOT NULL,
        reason  TEXT NOT NULL,
        seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
        PRIMARY KEY (queue, bucket, agent, reason)
    ) WITHOUT ROWID;
    CREATE TABLE agent_open (
        agent  TEXT NOT NULL,
        queue  TEXT NOT NULL,
        kind   TEXT NOT NULL CHECK (kind IN ('logged', 'paused')),
        since  DOUBLE PRECISION NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (agent, queue, kind)
    );
    CREATE TABLE agent_spans (
        agent  TEXT NOT NULL,
        queue  TEXT NOT NULL,
        kind   TEXT NOT NULL CHECK (kind IN ('logged', 'paused')),
        reason TEXT NOT NULL DEFAULT '',
        t0     DOUBLE PRECISION NOT NULL,
        t1     DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX agent_spans_idx ON agent_spans (queue, t1);
    CREATE TABLE facts_gaps (
        t0 DOUBLE PRECISION NOT NULL,
        t1 DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE report_meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
)

SCHEMA_VERSION: int = len(MIGRATIONS)

# Same order as the fields of switchd.events.Cdr; tests check they agree, since a new
# Cdr field needs a migration that adds its column.
CDR_COLUMNS: tuple[str, ...] = (
    "uniqueid",
    "linkedid",
    "src",
    "dst",
    "clid",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "direction",
    "trunk",
    "extension",
    "agent",
    "queue",
    "wait_s",
    "ivr_path",
    "ivr_vars",
    "recording_id",
    "hangup_by",
    "blocked_reason",
    "dnis",
    "hangup_cause",
    "q850",
    "note",
    "media",
)

CONTACT_COLUMNS: tuple[str, ...] = (
    "number",
    "name",
    "vip",
    "blacklisted",
    "notes",
    "last_agent",
    "last_call_at",
    "created_at",
    "updated_at",
)

_TIME_COLUMNS = frozenset({"start", "answer", "end"})

#: Merge one call's facts (switchd.reports.facts.CallFact.row order) into its row: the
#: first join, first CONNECT and first exit kept, the latest ABANDON's wait, flags set
#: once stay set, wrap-up added (a row may be written again as later lines come).
SQL_UPSERT_CALL_FACT = """
INSERT INTO call_facts (uniqueid, queue, first_enter, abandoned, abandon_wait, refused,
    callback, connected, connect_hold, first_exit, overflow, wrapup_s, wrapups, has_cdr)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,
    EXISTS (SELECT 1 FROM cdr WHERE cdr.uniqueid = ?1))
ON CONFLICT (uniqueid, queue) DO UPDATE SET
    first_enter = coalesce(call_facts.first_enter, excluded.first_enter),
    abandon_wait = CASE WHEN excluded.abandoned = 1 THEN excluded.abandon_wait
                        ELSE call_facts.abandon_wait END,
    abandoned = max(call_facts.abandoned, excluded.abandoned),
    refused = max(call_facts.refused, excluded.refused),
    callback = max(call_facts.callback, excluded.callback),
    connect_hold = CASE WHEN call_facts.connected = 1 THEN call_facts.connect_hold
                        ELSE excluded.connect_hold END,
    connected = max(call_facts.connected, excluded.connected),
    first_exit = coalesce(call_facts.first_exit, excluded.first_exit),
    overflow = max(call_facts.overflow, excluded.overflow),
    wrapup_s = call_facts.wrapup_s + excluded.wrapup_s,
    wrapups = call_facts.wrapups + excluded.wrapups,
    has_cdr = max(call_facts.has_cdr, excluded.has_cdr)
"""

#: A CDR stored: its call's facts rows know (the other half of has_cdr: facts written
#: after the CDR look it up as they are inserted).
SQL_FACTS_HAVE_CDR = "UPDATE call_facts SET has_cdr = 1 WHERE uniqueid = :uniqueid AND has_cdr = 0"

#: Add one (agent, queue, quarter hour)'s increments (switchd.reports.facts.AGENT_FIELDS).
SQL_ADD_AGENT_TIME = """
INSERT INTO agent_time (agent, queue, bucket, events, handled, talk_s, hold_s, wrapup_s,
    busy_s, logged_s, rona)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (queue, bucket, agent) DO UPDATE SET
    events = agent_time.events + excluded.events,
    handled = agent_time.handled + excluded.handled,
    talk_s = agent_time.talk_s + excluded.talk_s,
    hold_s = agent_time.hold_s + excluded.hold_s,
    wrapup_s = agent_time.wrapup_s + excluded.wrapup_s,
    busy_s = agent_time.busy_s + excluded.busy_s,
    logged_s = agent_time.logged_s + excluded.logged_s,
    rona = agent_time.rona + excluded.rona
"""

#: Add not-ready seconds of one (agent, queue, quarter hour, reason).
SQL_ADD_NOT_READY = """
INSERT INTO agent_not_ready (agent, queue, bucket, reason, seconds) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (queue, bucket, agent, reason) DO UPDATE SET
    seconds = agent_not_ready.seconds + excluded.seconds
"""

#: An agent's span that is open (logged in, paused) from now on; and one that closed.
SQL_OPEN_SPAN = """
INSERT INTO agent_open (agent, queue, kind, since, reason) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (agent, queue, kind) DO UPDATE SET since = excluded.since,
    reason = excluded.reason
"""
SQL_CLOSE_SPAN = "DELETE FROM agent_open WHERE agent = ? AND queue = ? AND kind = ?"

#: Since when the facts are complete (epoch s as text), set once.
SQL_FACTS_SINCE_SET = ("INSERT INTO report_meta (key, value) VALUES ('facts_since', ?) "
                       "ON CONFLICT (key) DO NOTHING")
SQL_FACTS_SINCE_GET = "SELECT value FROM report_meta WHERE key = 'facts_since'"
SQL_OPEN_SPANS = "SELECT agent, queue, kind, since, reason FROM agent_open"
#: A span longer than a day, stored whole (switchd.reports.facts.LONG_SPAN_S).
SQL_ADD_LONG_SPAN = ("INSERT INTO agent_spans (agent, queue, kind, reason, t0, t1) "
                     "VALUES (?, ?, ?, ?, ?, ?)")
#: The last queue_log line stored: "<epoch s> <lines in a row with that time>".
SQL_FACTS_LAST_SET = ("INSERT INTO report_meta (key, value) VALUES ('facts_last', ?) "
                      "ON CONFLICT (key) DO UPDATE SET value = excluded.value")
SQL_FACTS_LAST_GET = "SELECT value FROM report_meta WHERE key = 'facts_last'"
#: A period whose facts are incomplete (epoch s; t1 far ahead while it is still open).
SQL_ADD_GAP = "INSERT INTO facts_gaps (t0, t1) VALUES (?, ?)"
#: Open gaps end at a restart (its QUEUESTART resets every agent's state).
SQL_CLOSE_GAPS = "UPDATE facts_gaps SET t1 = ? WHERE t1 > ?"




def _q(column: str) -> str:
    """Quote an identifier the standard way; ``end`` is reserved in PostgreSQL."""
    return f'"{column}"'


_CDR_SELECT_LIST = ", ".join(_q(c) for c in CDR_COLUMNS)
_CONTACT_SELECT_LIST = ", ".join(_q(c) for c in CONTACT_COLUMNS)

SQL_INSERT_CDR = (
    f"INSERT INTO cdr ({_CDR_SELECT_LIST}) VALUES ({', '.join(':' + c for c in CDR_COLUMNS)})"
)

SQL_CDR_COUNT = "SELECT COUNT(*) FROM cdr"

SQL_GET_CDR = f"SELECT {_CDR_SELECT_LIST} FROM cdr WHERE uniqueid = :uniqueid"

# CALL.NOTE after the call ended: a later note replaces the earlier one.
SQL_SET_CDR_NOTE = "UPDATE cdr SET note = :note WHERE uniqueid = :uniqueid"

# A customer number's calls, as caller_of() names it: src of an inbound call, dst of an
# outbound one. Each half is one index search (cdr_src_start_idx, cdr_dst_start_idx);
# an OR of the two would scan the table.
SQL_CALL_HISTORY_COUNT = """
SELECT (SELECT COUNT(*) FROM cdr WHERE src = :number AND direction = 'inbound')
     + (SELECT COUNT(*) FROM cdr WHERE dst = :number AND direction = 'outbound') AS calls
"""

# The newest of them: the newest of each half, walked from the index's end.
SQL_CALL_HISTORY_LAST = """
SELECT uniqueid, start, agent, extension, recording_id, note FROM (
    SELECT uniqueid, start, agent, extension, recording_id, note FROM cdr
    WHERE src = :number AND direction = 'inbound' ORDER BY start DESC LIMIT 1) AS inbound
UNION ALL
SELECT uniqueid, start, agent, extension, recording_id, note FROM (
    SELECT uniqueid, start, agent, extension, recording_id, note FROM cdr
    WHERE dst = :number AND direction = 'outbound' ORDER BY start DESC LIMIT 1) AS outbound
ORDER BY start DESC, uniqueid DESC LIMIT 1
"""

# Records that a number just called (or was called). A CDR that arrives late (older
# than the one already recorded) must not move last_call_at back nor overwrite the
# agent of the newer call; an unknown agent (NULL) keeps the previous one.
SQL_CONTACT_TOUCH = """
INSERT INTO contacts (number, vip, blacklisted, last_agent, last_call_at, created_at, updated_at)
VALUES (:number, 0, 0, :last_agent, :last_call_at, :now, :now)
ON CONFLICT (number) DO UPDATE SET
    last_agent = CASE
        WHEN excluded.last_agent IS NOT NULL
         AND (contacts.last_call_at IS NULL OR excluded.last_call_at >= contacts.last_call_at)
        THEN excluded.last_agent ELSE contacts.last_agent END,
    last_call_at = CASE
        WHEN contacts.last_call_at IS NULL OR excluded.last_call_at > contacts.last_call_at
        THEN excluded.last_call_at ELSE contacts.last_call_at END,
    updated_at = excluded.updated_at
"""

# Partial upsert: a NULL parameter means "not given, keep the stored value".
SQL_CONTACT_SET = """
INSERT INTO contacts (number, name, vip, blacklisted, notes, created_at, updated_at)
VALUES (:number, :name, COALESCE(:vip, 0), COALESCE(:blacklisted, 0), :notes, :now, :now)
ON CONFLICT (number) DO UPDATE SET
    name = COALESCE(:name, contacts.name),
    vip = COALESCE(:vip, contacts.vip),
    blacklisted = COALESCE(:blacklisted, contacts.blacklisted),
    notes = COALESCE(:notes, contacts.notes),
    updated_at = excluded.updated_at
"""

SQL_GET_CONTACT = f"SELECT {_CONTACT_SELECT_LIST} FROM contacts WHERE number = :number"

SQL_CONTACT_FLAGS = (
    "SELECT number, vip, blacklisted FROM contacts WHERE vip <> 0 OR blacklisted <> 0"
)

# Each number's last agent, for sticky queue routing (the ACD's ``last_agent``).
SQL_CONTACT_LAST_AGENTS = "SELECT number, last_agent FROM contacts WHERE last_agent IS NOT NULL"

# The only filters query_cdrs may combine; each is a fixed fragment, so composed
# queries stay a closed, reviewable set and every filter can use its index.
_CDR_FILTERS: Mapping[str, str] = {
    "caller": "src = :caller",
    "callee": "dst = :callee",
    "disposition": "disposition = :disposition",
    "since": "start >= :since",
    "until": "start < :until",
}


def select_cdrs_sql(filters: frozenset[str] | set[str]) -> str:
    """Return the CDR query for the given filter names, newest first, ``LIMIT :limit``.

    ``filters`` is a subset of ``caller``, ``callee``, ``disposition``, ``since``,
    ``until``; the caller binds a parameter of the same name for each. Raises
    ``KeyError`` for a filter name outside that set (a programming error).
    """
    where = " AND ".join(_CDR_FILTERS[name] for name in sorted(filters))
    clause = f" WHERE {where}" if where else ""
    # uniqueid breaks ties between calls that started in the same millisecond, so
    # paging and tests see a stable order.
    return (
        f"SELECT {_CDR_SELECT_LIST} FROM cdr{clause} "
        "ORDER BY start DESC, uniqueid DESC LIMIT :limit"
    )


_EPOCH = datetime(1970, 1, 1)  # naive UTC: isoformat() then carries no offset


_EPOCH_TEXT = re.compile(r"[+-]?\d+(\.\d+)?")
TIME_FORMATS_HELP: str = (
    "expected a date (2026-11-30), an ISO-8601 timestamp "
    "(2026-11-30T03:48:43Z, 2026-11-30T11:48:43+08:00; no offset means UTC) "
    "or epoch seconds (1796010523)"
)


def parse_time_bound(text: str, *, name: str = "time") -> str:
    """Turn a user's time bound into the stored text form, for comparison with ``start``.

    Accepts a date (midnight UTC), an ISO-8601 timestamp with or without ``Z`` or an
    offset (none means UTC), or epoch seconds as text. Exactly eight digits are an
    ISO-8601 basic date (``20261130``), not epoch seconds in 1970. The result is rounded *up* to the millisecond, which keeps both
    ``start >= since`` and ``start < until`` exact for millisecond-precision stored
    times. Raises ``ValueError`` naming ``name`` and the accepted formats.
    """
    raw = text.strip()
    try:
        if len(raw) == 8 and raw.isdigit():
            moment = datetime.strptime(raw, "%Y%m%d")
        elif _EPOCH_TEXT.fullmatch(raw):
            ms = int((Decimal(raw) * 1000).to_integral_value(rounding=ROUND_CEILING))
            moment = _EPOCH + timedelta(milliseconds=ms)
        else:
            # Python 3.11 reads every ISO-8601 form here, a bare date included.
            parsed = datetime.fromisoformat(raw)
            if parsed.tzinfo is not None:
                parsed = parsed.astimezone(UTC).replace(tzinfo=None)
            extra_us = parsed.microsecond % 1000
            moment = parsed - timedelta(microseconds=extra_us)
            if extra_us:
                moment += timedelta(milliseconds=1)
    except (ValueError, OverflowError, InvalidOperation) as exc:
        raise ValueError(f"bad {name} {text!r}: {TIME_FORMATS_HELP}") from exc
    return moment.isoformat(timespec="milliseconds") + "Z"


def cdr_row(cdr: Cdr) -> dict[str, object]:
    """Return the bind parameters of ``SQL_INSERT_CDR`` for one CDR.

    Epoch times become ISO-8601 text (see ``iso_utc``); everything else is stored
    as is. Raises ``ValueError`` for a non-finite time.
    """
    row: dict[str, object] = {name: getattr(cdr, name) for name in CDR_COLUMNS}
    for name in _TIME_COLUMNS:
        value = row[name]
        if value is not None:
            row[name] = iso_utc(value)    # type: ignore[arg-type]
    return row


def caller_of(cdr: Cdr) -> str | None:
    """Return the outside party's number of a CDR, the key of its contact row.

    The remote party is ``src`` for an inbound call and ``dst`` for an outbound one;
    an internal call (or any other direction) and an empty number have none.
    """
    if cdr.direction == "inbound":
        number = cdr.src
    elif cdr.direction == "outbound":
        number = cdr.dst
    else:
        return None
    return number or None


def contact_touch_row(cdr: Cdr, now_iso: str) -> dict[str, object] | None:
    """Return the bind parameters of ``SQL_CONTACT_TOUCH`` for a CDR, or None if it has no caller.

    ``last_agent`` is the agent's id, else the extension number as text, else None
    (which keeps the previously stored agent).
    """
    number = caller_of(cdr)
    if number is None:
        return None
    if cdr.agent is not None:
        agent: str | None = cdr.agent
    elif cdr.extension is not None:
        agent = str(cdr.extension)
    else:
        agent = None
    return {
        "number": number,
        "last_agent": agent,
        "last_call_at": iso_utc(cdr.end),
        "now": now_iso,
    }
