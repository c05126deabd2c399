"""Reading the stored records a report is computed from: CDRs and the queue_log.

Both readers only read. The database is opened through SQLite's read-only URI
(``file:…?mode=ro``), so a report can run beside a live daemon (WAL mode) and can never
create or change ``switchd.db``. CDR times are stored as fixed-width ISO-8601 UTC text
(``2026-12-07T12:35:18.900Z``), so the start range is selected on the text, which the
``cdr_start_idx`` index serves; SQLite turns them into epoch seconds (``julianday``, in
whole milliseconds: the stored precision), and a time it cannot read is parsed by
:func:`epoch_of_iso`, which raises ValueError for text that is not a time.

Speed (``switchd bench report``): the CDRs become numpy columns
(:class:`~switchd.reports.model.CallColumns`, their flags worked out by SQLite), read by
a forked child while this process reads the queue_log (:func:`start_call_columns`); the
queue_log is decoded in one piece and summarised in one pass
(:mod:`switchd.reports.logsum`), never an object per line; :func:`gc_paused` keeps
Python's cyclic garbage collector from rescanning the millions of new objects.

The queue_log is Asterisk's text format, one ``epoch|call_id|queue|agent|EVENT|data…``
line per entry (:mod:`switchd.store.queue_log`). A line that does not parse (too few
fields, a time that is not a number, bad UTF-8) is skipped and counted: a rotated or
hand-edited file must not stop a report.
"""

from __future__ import annotations

import contextlib
import gc
import pickle
import shutil
import signal
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Any, BinaryIO

from switchd.reports.logsum import LogSummary, summarize
from switchd.reports.model import CallColumns
from switchd.timefmt import iso_utc

__all__ = ["CallsReader", "epoch_of_iso", "gc_paused", "load_call_columns", "require_db",
           "start_call_columns", "stored_elsewhere", "summarize_queue_log"]


def _epoch_sql(col: str) -> str:
    """SQL for the epoch seconds of ISO time column ``col``, in whole ms (NULL if unreadable)."""
    return f"CAST(round((julianday({col}) - 2440587.5) * 86400000.0) AS INTEGER) / 1000.0"


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block (reference counting still frees
    memory): building a report makes millions of objects and none of them cycles, and
    each collection would rescan them all. Restores the previous state on exit."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


_WHERE_TO_LOOK = "give --state-dir DIR, the folder holding switchd.db and queue_log, or -c CONFIG"


def require_db(db: Path) -> None:
    """Raise FileNotFoundError saying where to look when ``db`` is not a file."""
    if not Path(db).is_file():
        raise FileNotFoundError(f"no database {db}: has switchd run with this state "
                                f"directory? ({_WHERE_TO_LOOK})")


def epoch_of_iso(text: str) -> float:
    """Epoch seconds (UTC) of a stored time such as ``2026-12-07T12:35:18.900Z``.

    Raises ValueError if ``text`` is not an ISO-8601 time.
    """
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _epoch(value: object) -> float:
    """A time column as SQLite converted it (float), or its text parsed by epoch_of_iso."""
    return value if isinstance(value, float) else epoch_of_iso(str(value))


# What figures.py needs of a CDR, one row per call: its flags worked out by SQLite (in C)
# and packed in one integer (bit 0 inbound, 1 answered by a person, 2 an IVR path,
# 3 blocked, 4 a queue), since every value fetched is a Python object made per row.
# Columns of the table ``c`` (the cdr).
_TIMES_SQL = (
    f"coalesce({_epoch_sql('c.start')}, c.start), "
    f"CASE WHEN c.answer IS NULL THEN NULL ELSE coalesce({_epoch_sql('c.answer')}, c.answer) END, "
    "(c.direction = 'inbound') | ((c.disposition = 'ANSWERED' AND c.answer IS NOT NULL) << 1) | "
    "((coalesce(c.ivr_path, '') != '') << 2) | "
    "((coalesce(c.blocked_reason, '') != '' OR c.disposition IN ('BUSY', 'CONGESTION')) << 3) | "
    "((coalesce(c.queue, '') != '') << 4)"
)
#: A CDR's queue wait and talk seconds (read beside its facts on the stored path).
WAIT_TALK_SQL = "CAST(coalesce(c.wait_s, 0) AS REAL), coalesce(c.billsec, 0)"
_COLUMN_SQL = f"c.uniqueid, {_TIMES_SQL}, {WAIT_TALK_SQL}"


def load_call_columns(db: Path, start: float, end: float, *,
                      names: bool = True) -> CallColumns:
    """The CDRs whose ``start`` is in [start, end) (epoch seconds) as :class:`CallColumns`
    (one CDR is one call: ``uniqueid`` is the table's key). ``names`` False leaves the
    queue and agent columns out (all None: a report that filters by neither does not
    look at them). Raises FileNotFoundError naming ``db`` when it does not exist, and
    ``sqlite3.Error`` when it is not a switchd database (no ``cdr`` table), cannot be
    read, or holds a CDR time that is not ISO-8601 (``sqlite3.DataError`` naming it)."""
    calls, _ = _load(db, start, end, names=names, rowids=False)
    return calls


def _load(db: Path, start: float, end: float, *, names: bool,
          rowids: bool) -> tuple[CallColumns, Any]:
    """:func:`load_call_columns`; with ``rowids`` (the stored facts' path) also each CDR's
    rowid (int64 array, for :func:`switchd.reports.stored.align_facts`), which then
    stands for the uniqueid in ``uid``, and ``wait_s``/``billsec`` left zero: they are
    read beside the facts, in the other process (else None)."""
    import numpy as np

    db = Path(db)
    require_db(db)
    uri = f"{db.absolute().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        columns = (f"c.rowid, {_TIMES_SQL}" if rowids else _COLUMN_SQL) + (
            ", c.queue, c.agent" if names else "")
        rows = conn.execute(f"SELECT {columns} FROM cdr c WHERE c.start >= ? AND c.start < ?",
                            (iso_utc(start), iso_utc(end))).fetchall()
    finally:
        conn.close()
    if not rows:
        return CallColumns.from_rows([]), (np.zeros(0, dtype=np.int64) if rowids else None)
    cols = list(zip(*rows, strict=True))
    if names:
        queue, agent = cols[-2], cols[-1]
        del cols[-2:]
    ids = None
    if rowids:
        ids = np.array(cols[0], dtype=np.int64)
        uid: Any = ids
        t0, ans, packed = cols[1:4]
        wait_s = bill_s = np.zeros(len(rows))
    else:
        uid, t0, ans, packed, wait, bill = cols[:6]
        uid = list(uid)
        wait_s = np.array(wait, dtype=np.float64)
        bill_s = np.array(bill, dtype=np.float64)
    try:
        start_s = np.array(t0, dtype=np.float64)
        # No answer: NaN (the conversion itself turns None into nan).
        answer_s = np.array(ans, dtype=np.float64)
    except (TypeError, ValueError):
        # A time SQLite could not read (not switchd's format): parse it, or say which.
        try:
            start_s = np.array([_epoch(x) for x in t0], dtype=np.float64)
            answer_s = np.array([np.nan if x is None else _epoch(x) for x in ans],
                                dtype=np.float64)
        except ValueError as exc:
            raise sqlite3.DataError(f"a CDR in {db} has a time that is not ISO-8601 "
                                    f"({exc})") from None
    objects = np.full((2, len(rows)), None, dtype=object)
    if names:
        objects[0, :] = queue
        objects[1, :] = agent
    flags = np.array(packed, dtype=np.int64)
    return CallColumns(
        uid=uid, start=start_s, answer=answer_s,
        inbound=(flags & 1).astype(bool), answered=(flags & 2).astype(bool),
        queue=objects[0], agent=objects[1], wait_s=wait_s, billsec=bill_s,
        ivr=(flags & 4).astype(bool), blocked=(flags & 8).astype(bool),
        has_queue=(flags & 16).astype(bool)), ids


class CallsReader:
    """The CDRs being read for a report (:func:`start_call_columns`): :meth:`result`
    waits for them, :meth:`cancel` stops the reader. Call one of the two: each reaps a
    forked reader."""

    def __init__(self, pid: int | None, folder: Path | None,
                 ready: tuple[CallColumns, Any] | None = None) -> None:
        self._pid, self._folder, self._ready = pid, folder, ready

    @property
    def pid(self) -> int | None:
        """The reading child's process id while it is not reaped yet, else None."""
        return self._pid

    def result(self) -> tuple[CallColumns, Any]:
        """The columns and their rowids (an int64 array; None unless asked for), raising what the load raised (and OSError naming the signal when
        the reading process died: out of memory?). Interrupted (Ctrl-C), it cancels."""
        import os

        if self._pid is None:
            assert self._ready is not None
            return self._ready
        try:
            _, status = os.waitpid(self._pid, 0)
            self._pid = None
            if os.WIFSIGNALED(status):
                raise OSError(f"the process reading the CDRs died of signal "
                              f"{os.WTERMSIG(status)} (out of memory?)")
            code = os.WEXITSTATUS(status)
            if code not in (0, 3):
                raise OSError(f"the process reading the CDRs failed (exit {code})")
            assert self._folder is not None
            with (self._folder / "calls.pickle").open("rb") as fh:
                value = pickle.load(fh)
            if code == 3:
                raise value
            self._ready = value
            return value
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Stop and reap the reader if it still runs; remove its handover file."""
        import os

        if self._pid is not None:
            with contextlib.suppress(OSError):
                os.kill(self._pid, signal.SIGKILL)
                os.waitpid(self._pid, 0)
            self._pid = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def start_call_columns(db: Path, start: float, end: float, *, names: bool = True,
                       rowids: bool = False) -> CallsReader:
    """Start :func:`load_call_columns`; returns the :class:`CallsReader` to wait for it:
    its result is (the columns, with ``rowids`` each CDR's rowid as int64, else None).

    In a single-threaded process that can fork (``switchd report``) the CDRs are read by
    a forked child while this process goes on (it reads the queue_log meanwhile: the
    two reads use both cores, and a month of a busy centre is seconds of each). The
    child ignores Ctrl-C (the terminal sends it to both; this process decides), dies
    with this process (Linux ``PR_SET_PDEATHSIG``), and hands its result over in a
    private temporary file, never a pipe that a stopped reader could leave half-read.
    Anywhere else — the daemon's worker thread for ``REPORT``, a platform without fork —
    the CDRs are read here, before this returns (raising as :func:`load_call_columns`).
    """
    import os
    import threading

    if not hasattr(os, "fork") or threading.active_count() > 1:
        return CallsReader(None, None, _load(db, start, end, names=names, rowids=rowids))
    require_db(db)
    folder = Path(tempfile.mkdtemp(prefix="switchd-report-"))
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:   # pragma: no cover - the child (coverage does not follow a fork)
        code = 4
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            _die_with_parent(parent)
            try:
                value: object = _load(db, start, end, names=names, rowids=rowids)
                code = 0
            except Exception as exc:   # handed over and raised by the parent
                value, code = exc, 3
            part = folder / "calls.part"
            with part.open("wb") as fh:
                try:
                    pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
                except Exception:   # an error that does not pickle: its text does
                    fh.seek(0)
                    fh.truncate()
                    pickle.dump(OSError(str(value)), fh)
            os.replace(part, folder / "calls.pickle")
        except BaseException:
            code = 4
        finally:
            os._exit(code)
    return CallsReader(pid, folder)


def _die_with_parent(parent: int) -> None:
    """In a forked child: be killed when ``parent`` dies (Linux), and exit at once if it
    is gone already."""
    import os

    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)          # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(4)


def stored_elsewhere(db: Path, call_ids: Iterable[str]) -> set[str]:
    """Those of ``call_ids`` (calls the queue_log joined to a queue in the report's window
    without a CDR among those read) that have a CDR in ``db`` after all: it starts outside
    the range (in an IVR before midnight, say), so the call counts in the report of its
    start, never as a call without a CDR (:func:`switchd.reports.figures.compute_columns`
    asks). Raises sqlite3.Error when ``db`` cannot be read."""
    unknown = list(call_ids)
    found: set[str] = set()
    conn = sqlite3.connect(f"{Path(db).absolute().as_uri()}?mode=ro", uri=True)
    try:
        for i in range(0, len(unknown), 500):
            chunk = unknown[i:i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in conn.execute(
                f"SELECT uniqueid FROM cdr WHERE uniqueid IN ({marks})", chunk))
    finally:
        conn.close()
    return found


#: The queue_log is read in blocks of this many bytes (a year of a busy centre is GBs).
CHUNK_BYTES = 32 << 20
#: Bisection of the file by time stops at spans this short (bytes).
BISECT_BYTES = 1 << 16
#: The ACD writes lines in time order; a clock step may put one out of order by less than
#: this (s): the read starts and stops that much beyond the window.
ORDER_SLACK_S = 3600.0


def _time_after(fh: BinaryIO, pos: int) -> float | None:
    """The time of the first whole line after byte ``pos`` that has one (None: none
    before the end or within a bisection span)."""
    fh.seek(pos)
    if pos:
        fh.readline()                       # the rest of a line cut in the middle
    read = 0
    while read < BISECT_BYTES:
        raw = fh.readline()
        if not raw:
            return None
        read += len(raw)
        head = raw.split(b"|", 1)[0]
        with contextlib.suppress(ValueError):
            t = float(head)
            if t == t and abs(t) != float("inf"):
                return t
    return None


def _start_offset(fh: BinaryIO, size: int, t0: float) -> int:
    """A line start at or before the first line with a time >= ``t0`` (a bisection of the
    time-ordered file: a month's report of a year's log reads about a month of it)."""
    lo, hi = 0, size
    while hi - lo > BISECT_BYTES:
        mid = (lo + hi) // 2
        t = _time_after(fh, mid)
        if t is None or t >= t0:
            hi = mid
        else:
            lo = mid
    if lo == 0:
        return 0
    fh.seek(lo)
    fh.readline()
    return fh.tell()


def summarize_queue_log(path: Path, *, start: float, end: float, margin_s: float,
                        queue: str | None = None, agent: str | None = None) -> LogSummary:
    """:func:`switchd.reports.logsum.summarize` of the queue_log file at ``path`` for a
    report of [start, end), using the lines within ``margin_s`` either side.

    The file is time-ordered (the ACD appends): the read starts at a bisection of it and
    stops past the window (:data:`ORDER_SLACK_S` beyond), in blocks of
    :data:`CHUNK_BYTES`, so memory stays bounded however long the log. Malformed lines
    read (bad UTF-8 included) are skipped and counted in ``skipped``. Raises
    FileNotFoundError naming ``path`` when it does not exist, OSError when it cannot be
    read."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no queue_log {path}: has the ACD run with this state "
                                f"directory? ({_WHERE_TO_LOOK})")
    window = (start - margin_s, end + margin_s)
    bad = 0

    def decode(body: bytes) -> list[str]:
        nonlocal bad
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            lines = []
            for raw in body.split(b"\n"):
                try:
                    lines.append(raw.decode("utf-8").rstrip("\r"))
                except UnicodeDecodeError:
                    bad += 1
            return lines
        lines = text.split("\n")
        if "\r" in text:
            lines = [line.rstrip("\r") for line in lines]   # CRLF line ends (an edited file)
        return lines

    def blocks(fh: BinaryIO) -> Iterator[list[str]]:
        stop = window[1] + ORDER_SLACK_S
        rest = b""
        while True:
            block = fh.read(CHUNK_BYTES)
            if not block:
                if rest:
                    yield decode(rest)
                return
            data = rest + block
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data
                continue
            rest = data[cut + 1:]
            lines = decode(data[:cut])
            yield lines
            last = lines[-1].split("|", 1)[0] if lines else ""
            with contextlib.suppress(ValueError):
                if float(last) > stop:
                    return                  # past the window: the rest is later still

    with path.open("rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(_start_offset(fh, size, window[0] - ORDER_SLACK_S))
        out = summarize(chain.from_iterable(blocks(fh)), start=start, end=end,
                        window=window, queue=queue, agent=agent)
    out.lines += bad
    out.skipped += bad
    return out
