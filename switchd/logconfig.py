"""structlog setup: JSON lines for machines, a coloured console for people.

Everything here is structlog's own machinery, configured: ``TimeStamper`` (ISO-8601
UTC), ``JSONRenderer`` with orjson as its serializer, ``ConsoleRenderer``, and
``BytesLoggerFactory`` (orjson returns bytes, so the lines are written as bytes
and never re-encoded). Level filtering is done by the bound logger class itself
(``structlog.make_filtering_bound_logger``: a call below the level is a bare
``return None``); loggers are cached on first use; the lines logged in one turn of
the event loop reach the stream in one ``flush()`` at its end (switchd logs every
call event, hundreds of calls/s under load; ``_Sink.flush``).

Output (DESIGN.md §7, "Logs"):

- ``json``: one object per line, ``{"timestamp": "2024-05-01T12:00:00.123456Z",
  "level": "info", "event": "...", "logger": "...", "call_id": ..., ...}``. Context
  bound with `structlog.contextvars.bound_contextvars` (``call_id``, ``line``,
  ``agent``, ``queue``) is merged into every line; an exception becomes an
  ``"exception"`` string field. Values JSON cannot hold are written as ``str()``;
  NaN and infinities as ``null`` (orjson's rule).
- ``console``: structlog's aligned, coloured (on a TTY) renderer.
- ``auto``: ``json`` unless the stream is a TTY (journald and log shippers get JSON,
  an operator at a terminal gets the console).

What is ours, and why (three small pieces around structlog's):

- ``_Sink``: the file the loggers write to. It forwards to the current stream, so
  `configure_logging` can switch streams for loggers already cached; and once the
  stream is gone (reader of the pipe exited, file closed) it goes quiet instead of
  raising into the caller: a daemon must not die because journald restarted.
- ``_drop_below_level``: a *raised* level on reload also reaches loggers cached
  before (their class has the old level built in); a *lowered* level only reaches
  loggers first used after the call.
- ``_render_json``: the JSON chain in one processor (structlog's own processors above,
  with the same output, fused because the daemon writes a dozen lines per call); it puts
  ``timestamp``, ``level`` and ``event`` first in each JSON line,
  so ``journalctl -o cat`` lines line up for a human scanning them.
"""

from __future__ import annotations

import asyncio
import atexit
import sys
import threading
import time
from collections.abc import MutableMapping
from typing import Any, BinaryIO, cast

import orjson
import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

__all__ = ["LEVELS", "FORMATS", "configure_logging", "emit", "get_logger"]

# Numeric values match the stdlib `logging` constants, which is what
# `structlog.make_filtering_bound_logger` expects.
LEVELS: dict[str, int] = {"debug": 10, "info": 20, "warning": 30, "error": 40}
FORMATS: tuple[str, ...] = ("auto", "json", "console")

# Method name -> level for the reload-time filter; mirrors structlog's add_log_level
# mapping ("exception" logs at error, "warn" is "warning").
_METHOD_LEVEL: dict[str, int] = {
    "debug": 10,
    "info": 20,
    "warning": 30,
    "warn": 30,
    "error": 40,
    "err": 40,
    "exception": 40,
    "critical": 50,
    "fatal": 50,
    "msg": 20,
}


class _Sink:
    """The one binary file every logger writes to; its stream is swapped by `configure_logging`.

    structlog's ``BytesLogger`` holds a lock per file object and writes each line
    with one ``write()`` then ``flush()``; this object is that file. It keeps the lines
    and hands them to the stream in one ``write()`` per flush (:meth:`flush`).
    """

    # __weakref__: structlog keeps its per-file lock in a WeakKeyDictionary.
    __slots__ = ("__weakref__", "_buf", "_flush_on", "_lock", "broken", "stream")

    def __init__(self, stream: BinaryIO | None) -> None:
        self.stream = stream
        self.broken = False
        self._buf: list[bytes] = []
        self._lock = threading.Lock()
        #: The event loop a flush is scheduled on (None: none pending).
        self._flush_on: asyncio.AbstractEventLoop | None = None

    def write(self, data: bytes) -> int:
        """Keep ``data`` for the next flush; after a failure of the stream, drop it."""
        if self.broken or self.stream is None:
            return 0
        with self._lock:
            self._buf.append(data)
        return len(data)

    def flush(self) -> None:
        """Write what was kept to the stream and flush it, with the same tolerance as
        :meth:`write` — at once, or, on a thread running an event loop, once at the end
        of the loop's current iteration for all the lines logged in it.

        Why: the daemon logs a dozen lines per call; a ``write()`` system call per line
        gives up the GIL each time (the systemd unit runs Python unbuffered so that
        journald gets each line at once), and under load getting the GIL back from the
        writer threads cost the loop more than the line itself (``switchd bench calls
        --live``). A line waits at most one loop iteration (the loop never blocks while
        lines wait); what is left when the process exits is written then (atexit).
        """
        if self.broken or self.stream is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush_now()
            return
        if self._flush_on is not loop:
            self._flush_on = loop
            loop.call_soon(self.flush_now)

    def flush_now(self) -> None:
        """Write the kept lines to the stream in one piece and flush it, now."""
        with self._lock:
            self._flush_on = None
            data = b"".join(self._buf)
            self._buf.clear()
            if self.broken or self.stream is None or not data:
                return
            try:
                self.stream.write(data)
                self.stream.flush()
            except (OSError, ValueError):
                # BrokenPipeError/EPIPE and other OSErrors: the reader is gone.
                # ValueError: "I/O operation on closed file".
                self.broken = True


# No stream until `configure_logging` names one (before it, structlog's defaults apply).
_SINK = _Sink(None)
atexit.register(_SINK.flush_now)

# Current minimum level; read by `_drop_below_level` for loggers cached before a
# reconfigure raised the level.
_min_level = LEVELS["info"]


def _drop_below_level(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Drop events below the configured level (only matters after a reload)."""
    if _METHOD_LEVEL.get(method_name, 20) < _min_level:
        raise structlog.DropEvent
    return event_dict


def _add_logger_name(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Add ``"logger"``: the name given to ``get_logger`` (``BytesLogger.name``), if any.

    Why not ``structlog.stdlib.add_logger_name``: it writes ``"logger": null`` for an
    unnamed logger, and overrides a ``logger`` value bound by the caller.
    """
    name = getattr(logger, "name", None)
    if name and "logger" not in event_dict:
        event_dict["logger"] = name
    return event_dict


def _plain(event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """The event with str keys and every value JSON can hold as it is, else its str()."""
    scalar = (int, float, bool, type(None))
    out: dict[str, Any] = {}
    for key, value in event_dict.items():
        keep = isinstance(value, scalar) and not (isinstance(value, int) and abs(value) >= 2**63)
        out[_utf8(_str_or_repr(key))] = value if keep else _utf8(_str_or_repr(value))
    return out


def _utf8(text: str) -> str:
    """``text`` with lone surrogates (undecodable file names, say) escaped: orjson refuses them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _str_or_repr(value: object) -> str:
    """``str(value)``, or a placeholder when even ``__str__`` raises."""
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:  # a broken __str__ must not lose the log line
        return f"<unprintable {type(value).__name__}>"


def _orjson_dumps(obj: Any, **kw: Any) -> bytes:
    """``orjson.dumps`` for ``JSONRenderer``; an event orjson refuses is written flattened.

    orjson refuses non-str keys, reference cycles, ints beyond 64 bits and strings
    with lone surrogates (``JSONEncodeError``, a ``TypeError``); a log call must
    never raise for them.
    """
    try:
        return orjson.dumps(obj, **kw)
    except TypeError:
        return orjson.dumps(_plain(obj), **kw)


class _IsoUtcNow:
    """``datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")``, exactly
    (structlog's ``TimeStamper(fmt="iso", utc=True)``), at a fraction of its cost.

    Why: every call event is a log line (about a dozen per call), and building a
    ``datetime`` and its ISO text per line was a visible share of the loop's time. The
    text up to the seconds is kept for the current second; the microseconds are
    floored from the same clock ``datetime.now`` reads, and, as ``isoformat`` does, left
    out when they are zero.
    """

    __slots__ = ("_head", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._head = ""

    def __call__(self) -> str:
        """The current UTC time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
        return self.at(time.time_ns())

    def at(self, ns: int) -> str:
        """The UTC time ``ns`` nanoseconds after the epoch, as :meth:`__call__` writes it."""
        second, us = divmod(ns // 1000, 1_000_000)
        if second != self._second:
            self._head = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._head}.{us:06d}Z" if us else f"{self._head}Z"


_iso_utc_now = _IsoUtcNow()
_LEVEL_NAME: dict[str, str] = {"warn": "warning", "exception": "error"}
_HEAD = ("timestamp", "level", "event")
# Told to skip this module's frames: the stack it renders starts at the caller of the
# log method, not at `_render_json` (which calls it).
_stack_info = structlog.processors.StackInfoRenderer(additional_ignores=[__name__])
_merge_contextvars = structlog.contextvars.merge_contextvars
#: structlog's registry of the context variables `bind_contextvars` made (empty until
#: one is bound); None if this structlog keeps no such registry: then always merge.
_bound_vars: dict[str, Any] | None = getattr(structlog.contextvars, "_CONTEXT_VARS", None)
_format_exc_info = structlog.processors.format_exc_info


def _render_json(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> bytes:
    """The whole JSON chain in one processor, with the output of the chain it replaces:
    ``_drop_below_level``, ``merge_contextvars``, ``add_log_level``, ``_add_logger_name``,
    ``TimeStamper(fmt="iso", utc=True)``, ``StackInfoRenderer``, ``format_exc_info``,
    putting ``timestamp``, ``level``, ``event`` first, and ``JSONRenderer`` (orjson),
    in that order.

    Why one function: the daemon writes about a dozen lines per call, and nine processor
    calls per line cost more than the line's content. Raises ``structlog.DropEvent``
    below the configured level.
    """
    if _METHOD_LEVEL.get(method_name, 20) < _min_level:
        raise structlog.DropEvent
    if _bound_vars is None or _bound_vars:
        # Only when a context variable was ever bound: merging walks every variable of
        # the context, a few µs a line on the daemon's hot path, which binds none.
        event_dict = _merge_contextvars(logger, method_name, event_dict)
    event_dict["level"] = _LEVEL_NAME.get(method_name, method_name)
    name = getattr(logger, "name", None)
    if name and "logger" not in event_dict:
        event_dict["logger"] = name
    event_dict["timestamp"] = _iso_utc_now()
    if "stack_info" in event_dict:
        event_dict = _stack_info(logger, method_name, event_dict)
    if "exc_info" in event_dict:
        event_dict = _format_exc_info(logger, method_name, event_dict)
    head = {k: event_dict.pop(k) for k in _HEAD if k in event_dict}
    head.update(event_dict)
    return _orjson_dumps(head, default=_str_or_repr)


class _Named:
    """Stands for the logger ``_render_json`` reads the name of (:func:`emit`)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


_NAMED: dict[str, _Named] = {}


def emit(name: str, method: str, event: str, fields: dict[str, Any]) -> bool:
    """Log ``event`` with ``fields`` (this dict is used up) at ``method``'s level as the
    logger ``name`` would — the same JSON line — straight through ``_render_json`` to
    the sink, without structlog's bound-logger layers. Returns False, having done
    nothing, when the lines are not JSON (console, or logging not configured): the
    caller then logs through structlog.

    Why: the shell logs every call event (a dozen lines a call); the layers between
    the log call and ``_render_json`` cost about as much as the line itself.
    """
    if not _PROCESSORS or _PROCESSORS[0] is not _render_json:
        return False
    if _METHOD_LEVEL.get(method, 20) < _min_level:
        return True
    named = _NAMED.get(name)
    if named is None:
        named = _NAMED[name] = _Named(name)
    fields["event"] = event
    try:
        data = _render_json(named, method, fields)
    except structlog.DropEvent:
        return True
    _SINK.write(data + b"\n")
    _SINK.flush()
    return True


# The list object handed to structlog never changes; `configure_logging` replaces
# its contents, so loggers cached under an earlier configuration use the new chain.
_PROCESSORS: list[Processor] = []


def _is_tty(stream: BinaryIO) -> bool:
    """True when ``stream`` is a terminal; False for pipes, files, closed streams."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _encode(logger: WrappedLogger, method_name: str, line: str) -> bytes:
    """After ``ConsoleRenderer``: its text as UTF-8 bytes for ``BytesLogger``."""
    return line.encode("utf-8", "backslashreplace")


def configure_logging(
    fmt: str = "auto", level: str = "info", stream: BinaryIO | None = None
) -> None:
    """Set up structlog for the whole process; safe to call again to switch output.

    Args:
        fmt: ``"auto"`` (JSON lines unless ``stream`` is a TTY, then console),
            ``"json"`` or ``"console"`` (coloured only when ``stream`` is a TTY).
        level: minimum level, one of ``debug info warning error`` (case-insensitive).
        stream: a *binary* stream the lines go to; default ``sys.stdout.buffer`` as
            it is when called (under systemd that is the journal).

    Raises:
        ValueError: unknown ``fmt`` or ``level`` (the message lists the valid ones),
            or no ``stream`` given while ``sys.stdout`` has no binary buffer.
    """
    global _min_level
    fmt_key = fmt.lower()
    if fmt_key not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; use one of: {', '.join(FORMATS)}")
    level_key = level.lower()
    if level_key not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of: {', '.join(LEVELS)}")
    out = stream if stream is not None else getattr(sys.stdout, "buffer", None)
    if out is None:
        raise ValueError("sys.stdout has no binary buffer; pass a binary stream to log to")
    tty = _is_tty(out)
    if fmt_key == "auto":
        fmt_key = "console" if tty else "json"

    shared: list[Processor] = [
        _drop_below_level,
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _add_logger_name,
        # Wall-clock time: log lines are correlated with CDRs and other hosts' logs,
        # not with the loop's monotonic clock.
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if fmt_key == "json":
        # `shared`, format_exc_info, the reordering and JSONRenderer in one.
        chain: list[Processor] = [_render_json]
    else:
        # ConsoleRenderer formats exc_info itself (prettier); format_exc_info must
        # not run before it.
        chain = [*shared, structlog.dev.ConsoleRenderer(colors=tty), _encode]

    _SINK.flush_now()        # what the previous stream was given goes to it
    _SINK.stream = out
    _SINK.broken = False
    _min_level = LEVELS[level_key]
    _PROCESSORS[:] = chain
    structlog.configure(
        processors=_PROCESSORS,
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level_key]),
        context_class=dict,
        logger_factory=structlog.BytesLoggerFactory(cast(BinaryIO, _SINK)),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str | None = None) -> FilteringBoundLogger:
    """Return a structlog logger; ``name`` (e.g. ``__name__``) appears as ``"logger"``.

    Equivalent to ``structlog.get_logger(name)`` once `configure_logging` ran;
    the logger is lazy, so it may be created at import time, before configuration.
    """
    proxy = structlog.get_logger(name) if name is not None else structlog.get_logger()
    return cast(FilteringBoundLogger, proxy)
