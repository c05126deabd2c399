"""structlog setup: JSON lines for machines, a coloured console for people.

switchd logs every call event (200+ calls/s under load), so this module keeps the
per-event path short: level filtering is done by the bound logger class itself
(`structlog.make_filtering_bound_logger`: a call below the level is a bare
``return None``), loggers are cached on first use, and each event costs one
``write()`` and one ``flush()`` of a single line.

Output (DESIGN.md §7, "Logs"):

- ``json``: one object per line, ``{"timestamp": "2024-05-01T12:00:00.123Z",
  "level": "info", "event": "...", "logger": "...", "call_id": ..., ...}``. Context
  bound with `structlog.contextvars.bound_contextvars` (``call_id``, ``line``,
  ``agent``, ``queue``) is merged into every line; an exception becomes an
  ``"exception"`` string field. Values JSON cannot hold are written as ``str()``.
- ``console``: structlog's aligned, coloured (on a TTY) renderer.
- ``auto``: ``json`` unless the stream is a TTY (journald and log shippers get JSON,
  an operator at a terminal gets the console).

`configure_logging` may be called again (tests, SIGHUP reload): loggers that were
already cached keep working and follow the new format and stream, because the
processor chain and the output sink are the same objects, changed in place. A
*raised* level also applies to them; a *lowered* level only reaches loggers first
used after the call, since a cached logger's class has its level built in.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import Any, TextIO, cast

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

__all__ = ["LEVELS", "FORMATS", "configure_logging", "get_logger"]

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
    """The one place log lines go; its stream is swapped by `configure_logging`.

    A lock keeps lines whole when a worker thread (e.g. ``asyncio.to_thread``) logs
    at the same time as the loop. Once the stream is gone (reader of the pipe
    exited, file closed) the sink goes quiet instead of raising into the caller:
    a daemon must not die because journald restarted.
    """

    __slots__ = ("_lock", "broken", "stream")

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.broken = False
        self._lock = threading.Lock()

    def write_line(self, line: str) -> None:
        """Write ``line`` plus a newline in one ``write()``, then flush."""
        if self.broken:
            return
        with self._lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                # BrokenPipeError/EPIPE and other OSErrors: the reader is gone.
                # ValueError: "I/O operation on closed file".
                self.broken = True


_SINK = _Sink(sys.stdout)


class _LineLogger:
    """The wrapped logger structlog hands the rendered line to.

    One instance per ``get_logger(name)`` so the name can be reported; all share
    the module sink, which is why a reconfigure reaches already-cached loggers.
    """

    __slots__ = ("name",)

    def __init__(self, name: str | None = None) -> None:
        self.name = name

    def msg(self, message: str) -> None:
        """Write one rendered event."""
        _SINK.write_line(message)

    log = debug = info = warn = warning = err = error = critical = exception = fatal = msg


def _logger_factory(*args: Any) -> _LineLogger:
    """structlog logger factory: ``get_logger("x")`` names the logger ``x``."""
    name = args[0] if args and isinstance(args[0], str) else None
    return _LineLogger(name)


# --- processors -----------------------------------------------------------------

# Current minimum level; read by `_drop_below_level` for loggers cached before a
# reconfigure raised the level.
_min_level = LEVELS["info"]


def _drop_below_level(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Drop events below the configured level (only matters after a reload)."""
    if _METHOD_LEVEL.get(method_name, 20) < _min_level:
        raise structlog.DropEvent
    return event_dict


def _add_logger_name(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Add ``"logger"`` from the name given to ``get_logger``, unless already bound."""
    name = getattr(logger, "name", None)
    if name and "logger" not in event_dict:
        event_dict["logger"] = name
    return event_dict


# Formatting a datetime costs more than the rest of the chain; the part up to the
# second only changes once a second, so it is cached.
_ts_cache: tuple[int, str] = (-1, "")


def _add_timestamp(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Add ``"timestamp"``: ISO-8601 UTC with milliseconds and ``Z``.

    Example ``2024-05-01T12:00:00.123Z``; `datetime.fromisoformat` reads it back
    (Python >= 3.11). Wall-clock time, because log lines are correlated with CDRs
    and other hosts' logs, not with the loop's monotonic clock.
    """
    global _ts_cache
    now_ns = time.time_ns()
    sec, rem_ns = divmod(now_ns, 1_000_000_000)
    cached_sec, prefix = _ts_cache
    if sec != cached_sec:
        prefix = _dt.datetime.fromtimestamp(sec, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _ts_cache = (sec, prefix)
    event_dict["timestamp"] = f"{prefix}.{rem_ns // 1_000_000:03d}Z"
    return event_dict


def _safe_fallback(event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """Make an event dict JSON can always hold: str keys, plain scalars, else str()."""
    plain = (str, int, float, bool, type(None))
    out: dict[str, Any] = {}
    for key, value in event_dict.items():
        if isinstance(value, float) and not math.isfinite(value):
            out[str(key)] = str(value)  # NaN and infinities are not JSON
        elif isinstance(value, plain):
            out[str(key)] = value
        else:
            out[str(key)] = _str_or_repr(value)
    return out


def _str_or_repr(value: object) -> str:
    """``str(value)``, or a placeholder when even ``__str__`` raises."""
    try:
        return str(value)
    except Exception:  # a broken __str__ must not lose the log line
        return f"<unprintable {type(value).__name__}>"


def _make_dumps() -> Callable[[MutableMapping[str, Any]], str]:
    """Pick the JSON encoder: orjson when installed (several times faster), else json.

    Both fall back to ``str()`` for values they do not know, and to
    `_safe_fallback` for what still fails (non-str keys, NaN, reference cycles,
    ints beyond 64 bits in orjson), so a log call never raises.
    """
    try:
        import orjson  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        encoder = json.JSONEncoder(default=_str_or_repr, ensure_ascii=False, allow_nan=False)

        def dumps(event_dict: MutableMapping[str, Any]) -> str:
            try:
                return encoder.encode(event_dict)
            except (TypeError, ValueError, RecursionError):
                return encoder.encode(_safe_fallback(event_dict))

        return dumps

    def dumps_orjson(event_dict: MutableMapping[str, Any]) -> str:
        try:
            return orjson.dumps(event_dict, default=_str_or_repr).decode()
        except (TypeError, ValueError, RecursionError):
            return orjson.dumps(_safe_fallback(event_dict), default=_str_or_repr).decode()

    return dumps_orjson


def _json_renderer(dumps: Callable[[MutableMapping[str, Any]], str]) -> Processor:
    """Final processor for ``json``: event dict -> one line of JSON."""

    def render(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
        # Fixed keys first so a human scanning `journalctl -o cat` sees them aligned.
        ordered: dict[str, Any] = {
            "timestamp": event_dict.pop("timestamp", None),
            "level": event_dict.pop("level", None),
            "event": event_dict.pop("event", None),
        }
        ordered.update(event_dict)
        return dumps(ordered)

    return render


# The list object handed to structlog never changes; `configure_logging` replaces
# its contents, so loggers cached under an earlier configuration use the new chain.
_PROCESSORS: list[Processor] = []


def _is_tty(stream: TextIO) -> bool:
    """True when ``stream`` is a terminal; False for pipes, files, closed streams."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def configure_logging(fmt: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Set up structlog for the whole process; safe to call again to switch output.

    Args:
        fmt: ``"auto"`` (JSON lines unless ``stream`` is a TTY, then console),
            ``"json"`` or ``"console"`` (coloured only when ``stream`` is a TTY).
        level: minimum level, one of ``debug info warning error`` (case-insensitive).
        stream: where lines go; default ``sys.stdout`` as it is when called (under
            systemd that is the journal).

    Raises:
        ValueError: unknown ``fmt`` or ``level``; the message lists the valid ones.
    """
    global _min_level
    fmt_key = fmt.lower()
    if fmt_key not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; use one of: {', '.join(FORMATS)}")
    level_key = level.lower()
    if level_key not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of: {', '.join(LEVELS)}")
    out = stream if stream is not None else sys.stdout
    tty = _is_tty(out)
    if fmt_key == "auto":
        fmt_key = "console" if tty else "json"

    shared: list[Processor] = [
        _drop_below_level,
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _add_logger_name,
        _add_timestamp,
        structlog.processors.StackInfoRenderer(),
    ]
    if fmt_key == "json":
        chain = [
            *shared,
            structlog.processors.format_exc_info,
            _json_renderer(_make_dumps()),
        ]
    else:
        # ConsoleRenderer formats exc_info itself (prettier); format_exc_info must
        # not run before it.
        chain = [*shared, structlog.dev.ConsoleRenderer(colors=tty)]

    _SINK.stream = out
    _SINK.broken = False
    _min_level = LEVELS[level_key]
    _PROCESSORS[:] = chain
    structlog.configure(
        processors=_PROCESSORS,
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level_key]),
        context_class=dict,
        logger_factory=_logger_factory,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str | None = None) -> FilteringBoundLogger:
    """Return a structlog logger; ``name`` (e.g. ``__name__``) appears as ``"logger"``.

    Equivalent to ``structlog.get_logger(name)`` once `configure_logging` ran;
    the logger is lazy, so it may be created at import time, before configuration.
    """
    proxy = structlog.get_logger(name) if name is not None else structlog.get_logger()
    return cast(FilteringBoundLogger, proxy)
