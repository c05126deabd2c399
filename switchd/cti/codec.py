"""Sans-IO codec of the CTI line protocol (DESIGN.md §5), both ways.

Server side: bytes in, :class:`Request` out (:class:`LineDecoder`); replies and events
in, bytes out (:func:`encode_reply`, :func:`encode_error`). Client side: requests in,
bytes out (:func:`encode_request`); bytes in, :class:`ServerLine` out
(:class:`ServerLineDecoder`, or :class:`LineFramer` plus :func:`parse_server_line`).

It never touches a socket, so the server, :mod:`switchd.cti.client` (the bench,
``switchctl``) and the tests share it, and every rule about framing, quoting and
syntax errors lives in this one module. Each encoder's output parses back to what it
was given (property-tested).

Wire format, one UTF-8 line per message, LF or CRLF terminated::

    request:  [#tag] VERB key=value key="quoted value" positional …
    replies:  [#tag] OK key=value … | [#tag] ERR code=<slug> msg="…"
              [#tag] ITEM key=value … (0..n) then [#tag] END count=<n>
    event:    EVENT <name> key=value …
    greeting: HELLO switchd/<version> proto=1

Conventions chosen here (the brief left them open):

- A line may hold at most ``max_line_bytes`` bytes *counting its terminator* (LF, or
  CR LF): with the default 8192, 8191 bytes + LF pass and 8192 bytes + LF are refused.
- A tag is stored without its ``#``: ``#7 PING`` gives ``Request(tag="7")`` and
  ``encode_reply(..., tag="7")`` writes ``#7``.
- Inside quotes the escapes are ``\\" \\\\ \\n \\r \\t`` as specified, plus ``\\xHH``
  and ``\\uXXXX``: raw control characters are refused on the wire, so without them
  :func:`quote` could not carry a C0 control character and values would not
  round-trip. :func:`quote` also escapes C1 controls, U+2028/U+2029 (which
  ``str.splitlines`` treats as line breaks) and lone surrogates (not encodable as
  UTF-8).
- Columns in error messages are 1-based character columns of the decoded line.
- ``LineDecoder.json_mode`` is flipped by the server after it accepts ``FORMAT json``;
  the decoder does not act on verbs. Lines that arrived in the same ``feed()`` call as
  the ``FORMAT`` request were decoded in the old mode, so clients must wait for the
  ``OK`` before switching (like SMTP's STARTTLS).
- At end of input (EOF or a half-close) the unterminated last line is decoded by
  ``feed_eof()`` like any other: ``nc`` sends the line typed before Ctrl-D that way.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

try:  # orjson is optional: faster JSON replies when present, same output shape.
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

__all__ = [
    "ERROR_CODES",
    "KEY_RE",
    "JSON_BACK_TO_TEXT",
    "DecodeError",
    "LineDecoder",
    "LineFramer",
    "LineKind",
    "Request",
    "ServerLine",
    "ServerLineDecoder",
    "encode_error",
    "encode_reply",
    "encode_request",
    "parse_line",
    "parse_server_line",
    "quote",
]

_T = TypeVar("_T")

ERROR_CODES: frozenset[str] = frozenset(
    {
        "bad_syntax",
        "unknown_verb",
        "missing_arg",
        "bad_arg",
        "not_authenticated",
        "forbidden",
        "not_found",
        "wrong_state",
        "busy",
        "line_too_long",
        "overloaded",
        "internal",
    }
)
"""The closed set of ``ERR code=`` slugs (DESIGN.md §5; ``docs/protocol.md``)."""

REPLY_KINDS: frozenset[str] = frozenset({"OK", "ERR", "ITEM", "END", "HELLO", "EVENT"})
"""Line kinds the server may send; :func:`encode_reply` refuses any other."""


@dataclass(frozen=True)
class Request:
    """One decoded client request.

    ``verb`` is upper-cased (verbs are case-insensitive, DESIGN.md §5); ``args`` maps
    lower-case keys to their unquoted string values; ``positional`` holds bare
    tokens without ``=`` in line order (``HELP CALLS`` → ``("CALLS",)``); ``tag`` is
    the client's ``#tag`` without the ``#`` (None when absent), to be echoed.
    """

    verb: str
    args: Mapping[str, str]
    positional: tuple[str, ...] = ()
    tag: str | None = None


@dataclass(frozen=True)
class DecodeError:
    """A line that could not be decoded; the server answers it with ``ERR``.

    ``code`` is ``bad_syntax`` or ``line_too_long``; ``msg`` names the problem and
    where it is, for a human; ``tag`` is the line's tag when it could still be read,
    so the error can be matched to the request by a pipelining client.
    """

    code: str
    msg: str
    tag: str | None = None


# --- regular expressions -----------------------------------------------------------
# Tags, verbs and keys follow the brief: tag '#' + [A-Za-z0-9_.:-]{1,64}, keys
# [a-z][a-z0-9_.-]*. Verbs are a letter then letters, digits, '_', '.', '-'
# (CDR.QUERY, SUPER.MONITOR).
_TAG_CHARS = r"[A-Za-z0-9_.:-]{1,64}"
_TAG_RE = re.compile(rf"#({_TAG_CHARS})(?=[ \t]|\Z)")
_TAG_VALUE_RE = re.compile(_TAG_CHARS)
_HEAD_TAG_RE = re.compile(rf"[ \t]*#({_TAG_CHARS})[ \t]")
_HEAD_TAG_BYTES_RE = re.compile(rf"[ \t]*#({_TAG_CHARS})[ \t]".encode())
_VERB_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*(?=[ \t]|\Z)")
_VERB_VALUE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
#: A key of ``key=value``: lower-case, a letter first (also the names ROUTE.REPLY can set).
KEY_RE = re.compile(r"[a-z][a-z0-9_.-]*")
_WS_RE = re.compile(r"[ \t]*")
_WORD_RE = re.compile(r'[^ \t"=]*')
_QCHUNK_RE = re.compile(r'[^"\\]*')
_HEX2_RE = re.compile(r"[0-9A-Fa-f]{2}")
_HEX4_RE = re.compile(r"[0-9A-Fa-f]{4}")
# Raw C0 controls (TAB excepted) and DEL are refused anywhere on a text line; inside
# quotes they must be written as escapes.
_CTRL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

# The common case, a line with no quotes, is matched in one go; anything else (or a
# duplicate key) falls through to the scanner, which also produces the error message.
_BARE = r'[^ \t"=\x00-\x1f\x7f]'
_FAST_LINE_RE = re.compile(
    rf"[ \t]*(?:#({_TAG_CHARS})[ \t]+)?([A-Za-z][A-Za-z0-9_.-]*)"
    rf"((?:[ \t]+(?:[a-z][a-z0-9_.-]*=)?{_BARE}+)*)[ \t]*"
)
_FAST_ARG_RE = re.compile(rf"(?:([a-z][a-z0-9_.-]*)=)?({_BARE}+)")

# quote(): printable ASCII minus space " # = \ needs no quotes.
_SAFE_ASCII_RE = re.compile(r"[!$-<>-\[\]-~]+")
_SPECIAL_RE = re.compile(r'[ "#=\\]')
_NEEDS_ESCAPE_RE = re.compile('["\\\\\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]')

_UNESCAPE = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
_ESCAPE = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}

_CTRL_NAMES = {0x00: "NUL", 0x0A: "LF", 0x0D: "CR", 0x1B: "ESC", 0x7F: "DEL"}

_MAX_CACHED_KEYS = 4096
_good_reply_keys: set[str] = set()


class _Problem(Exception):
    """Internal: a syntax problem found by the scanner, turned into a DecodeError."""


# --- decoding ------------------------------------------------------------------------


class _Framer(Generic[_T]):
    """Splits a byte stream into lines; subclasses say what a complete line becomes.

    The same framing serves both directions (requests read by the server, server lines
    read by a client), so the rules for terminators, blank lines and the line limit
    cannot drift apart. ``feed`` may be called with any slicing of the stream (down to
    one byte at a time); partial lines are kept between calls. The buffer never holds
    ``max_line_bytes`` bytes or more: a line that grows past the limit is reported
    once, as soon as the limit is crossed, and its remaining bytes are dropped up to
    the next LF, so a peer streaming 100 MB without a newline costs no memory.
    """

    json_mode: bool = False

    def __init__(self, max_line_bytes: int = 8192) -> None:
        """Create a framer; ``max_line_bytes`` counts a line's LF or CR LF too.

        Raises ValueError when ``max_line_bytes`` < 2 (no room for a verb and LF).
        """
        if max_line_bytes < 2:
            raise ValueError(f"max_line_bytes must be at least 2, got {max_line_bytes}")
        self.max_line_bytes = max_line_bytes
        self._buf = bytearray()
        self._discarding = False

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished line held right now (always < ``max_line_bytes``)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[_T | DecodeError]:
        """Take the next bytes from the peer; return what the complete lines say.

        Each non-blank line yields exactly one item, in order; blank lines yield none.
        Never raises for anything the peer sends.
        """
        if type(data) is not bytes:
            data = bytes(data)
        out: list[_T | DecodeError] = []
        limit = self.max_line_bytes
        n = len(data)
        pos = 0
        find = data.find
        if self._discarding:
            nl = find(b"\n")
            if nl < 0:
                return out
            self._discarding = False
            pos = nl + 1
        elif self._buf:
            nl = find(b"\n")
            if nl < 0:
                if len(self._buf) + n >= limit:
                    head = bytes(self._buf[:80]) + data[:80]
                    out.append(self._too_long(head))
                    self._buf.clear()
                    self._discarding = True
                else:
                    self._buf += data
                return out
            if len(self._buf) + nl + 1 > limit:
                out.append(self._too_long(bytes(self._buf[:80])))
            else:
                self._decode_into(bytes(self._buf) + data[:nl], out)
            self._buf.clear()
            pos = nl + 1
        while pos < n:
            nl = find(b"\n", pos)
            if nl < 0:
                if n - pos >= limit:
                    out.append(self._too_long(data[pos : pos + 80]))
                    self._discarding = True
                else:
                    self._buf += data[pos:]
                break
            if nl + 1 - pos > limit:
                out.append(self._too_long(data[pos : pos + 80]))
            else:
                self._decode_into(data[pos:nl], out)
            pos = nl + 1
        return out

    def feed_eof(self) -> list[_T | DecodeError]:
        """The peer will send no more (EOF or half-close): decode the unterminated last line.

        Why: a client that sends a last line without a newline and then closes its
        write side (``nc`` then Ctrl-D) means that line; it must be answered like any
        other, not dropped. The line had fewer than ``max_line_bytes`` bytes (the
        buffer never holds more), so it is within the limit as if an LF followed.
        Returns at most one item. The framer is then empty and may be fed again.
        Never raises.
        """
        out: list[_T | DecodeError] = []
        if self._buf:
            self._decode_into(bytes(self._buf), out)
        self._buf.clear()
        self._discarding = False
        return out

    def _decode_into(self, raw: bytes, out: list[_T | DecodeError]) -> None:
        """Decode one line (without its LF) and append the result, if any, to ``out``."""
        raise NotImplementedError

    def _too_long(self, head: bytes) -> DecodeError:
        """Build the single error for an over-long line, keeping its tag if visible and
        naming its verb when the start of the line shows it (the client learns which of
        its requests was dropped)."""
        tag = None if self.json_mode else _head_tag(head)
        verb = None if self.json_mode else _head_verb(head)
        what = f"the {verb} line" if verb else "line"
        return DecodeError(
            "line_too_long",
            f"{what} is longer than {self.max_line_bytes} bytes (terminator included); "
            "it was discarded",
            tag,
        )


class LineDecoder(_Framer[Request]):
    """Turns a client's byte stream into :class:`Request` and :class:`DecodeError` items.

    One decoder per connection; the framing rules are :class:`_Framer`'s (call
    :meth:`feed_eof` when the client half-closes, so its last line is not lost).
    ``json_mode`` selects one-JSON-object-per-line decoding; the server sets it after
    accepting ``FORMAT json`` (see the module docstring).
    """

    def __init__(self, max_line_bytes: int = 8192) -> None:
        """Create a decoder; ``max_line_bytes`` counts a line's LF or CR LF too.

        Raises ValueError when ``max_line_bytes`` < 2 (no room for a verb and LF).
        """
        super().__init__(max_line_bytes)
        self.json_mode = False

    def _decode_into(self, raw: bytes, out: list[Request | DecodeError]) -> None:
        """Decode one request line (without its LF) and append the result, if any."""
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if not raw.strip(b" \t"):
            return
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            out.append(_not_utf8(raw, exc, None if self.json_mode else _head_tag(raw)))
            return
        out.append(_parse_json_line(text) if self.json_mode else parse_line(text))


def _head_tag(raw: bytes) -> str | None:
    """The ``#tag`` at the start of a raw text line, when it can be read."""
    m = _HEAD_TAG_BYTES_RE.match(raw)
    return m.group(1).decode("ascii") if m else None


#: The verb at the start of a raw text line (after an optional ``#tag``), by the
#: request grammar's own tag and verb rules.
_HEAD_VERB_BYTES_RE = re.compile(
    rf"[ \t]*(?:#{_TAG_CHARS}[ \t]+)?({_VERB_VALUE_RE.pattern})(?=[ \t])".encode())


def _head_verb(raw: bytes) -> str | None:
    """The verb of a raw text line, upper-cased, when its start can be read."""
    m = _HEAD_VERB_BYTES_RE.match(raw)
    return m.group(1).decode("ascii").upper() if m else None


def _not_utf8(raw: bytes, exc: UnicodeDecodeError, tag: str | None) -> DecodeError:
    """The error for a line that is not UTF-8, naming the first bad byte and its offset."""
    return DecodeError(
        "bad_syntax",
        f"line is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
        tag,
    )


def parse_line(line: str) -> Request | DecodeError:
    """Parse one text-mode line (without its terminator) into a request.

    Never raises: a line that breaks the grammar gives ``DecodeError("bad_syntax",
    …)`` naming the problem and its 1-based column, with the tag when it was read.
    A blank line gives a ``bad_syntax`` "missing verb" error (the decoder skips blank
    lines before calling this).
    """
    m = _FAST_LINE_RE.fullmatch(line)
    if m is not None:
        tag, verb, rest = m.groups()
        if not rest:
            return Request(verb.upper(), {}, (), tag)
        args: dict[str, str] = {}
        positional: list[str] = []
        for key, value in _FAST_ARG_RE.findall(rest):
            if not key:
                positional.append(value)
            elif key in args:
                break  # duplicate: let the scanner report it with its column
            else:
                args[key] = value
        else:
            return Request(verb.upper(), args, tuple(positional), tag)
    return _parse_slow(line)


def _parse_slow(line: str) -> Request | DecodeError:
    """The full scanner: handles quotes and escapes and explains every error."""
    tag: str | None = None
    try:
        ctrl = _CTRL_RE.search(line)
        if ctrl is not None:
            m = _HEAD_TAG_RE.match(line)
            tag = m.group(1) if m else None
            code = ord(ctrl.group())
            name = _CTRL_NAMES.get(code)
            label = f"0x{code:02x} ({name})" if name else f"0x{code:02x}"
            raise _Problem(
                f"control character {label} at column {ctrl.start() + 1} is not allowed; "
                "inside quotes write it as an escape such as \\n or \\x01"
            )
        n = len(line)
        pos = _WS_RE.match(line).end()
        if pos < n and line[pos] == "#":
            m = _TAG_RE.match(line, pos)
            if m is None:
                raise _Problem(
                    f"bad tag at column {pos + 1}: a tag is '#' then 1 to 64 of "
                    "A-Z a-z 0-9 _ . : - and a space"
                )
            tag = m.group(1)
            pos = _WS_RE.match(line, m.end()).end()
        if pos >= n:
            raise _Problem("missing verb after the tag" if tag else "missing verb: empty line")
        m = _VERB_RE.match(line, pos)
        if m is None:
            word_end = _WORD_RE.match(line, pos).end()
            if line[pos] == '"' or (word_end < n and line[word_end] == "="):
                raise _Problem(
                    f"missing verb at column {pos + 1}: the line starts with an argument"
                )
            word = line[pos:word_end] or line[pos]
            raise _Problem(
                f"bad verb {word!r} at column {pos + 1}: a verb is a letter then letters, "
                "digits, '_', '.' or '-'"
            )
        verb = m.group().upper()
        pos = m.end()
        args: dict[str, str] = {}
        positional: list[str] = []
        while True:
            pos = _WS_RE.match(line, pos).end()
            if pos >= n:
                break
            if line[pos] == '"':
                value, pos = _scan_quoted(line, pos)
                positional.append(value)
                continue
            word_end = _WORD_RE.match(line, pos).end()
            if word_end >= n or line[word_end] in " \t":
                positional.append(line[pos:word_end])
                pos = word_end
                continue
            if line[word_end] == '"':
                raise _Problem(
                    f"unexpected '\"' at column {word_end + 1}: quote a whole value, "
                    'as in key="a b"'
                )
            key = line[pos:word_end]
            if not key:
                raise _Problem(f"'=' without a key at column {pos + 1}")
            if KEY_RE.fullmatch(key) is None:
                raise _Problem(
                    f"bad key {key!r} at column {pos + 1}: keys are lower-case, a letter "
                    "then a-z 0-9 _ . -"
                )
            if key in args:
                raise _Problem(f"duplicate key {key!r} at column {pos + 1}")
            vpos = word_end + 1
            if vpos >= n or line[vpos] in " \t":
                raise _Problem(
                    f"missing value after '{key}=' at column {vpos + 1}; "
                    f'write {key}="" for an empty value'
                )
            if line[vpos] == '"':
                value, pos = _scan_quoted(line, vpos)
            else:
                pos = _WORD_RE.match(line, vpos).end()
                value = line[vpos:pos]
                if pos < n and line[pos] not in " \t":
                    raise _Problem(
                        f"unexpected {line[pos]!r} in the value of {key!r} at column "
                        f"{pos + 1}; quote the value"
                    )
            args[key] = value
        return Request(verb, args, tuple(positional), tag)
    except _Problem as problem:
        return DecodeError("bad_syntax", str(problem), tag)


def _scan_quoted(line: str, start: int) -> tuple[str, int]:
    """Read the quoted string opening at ``start``; return (value, index after it).

    Raises _Problem for an unterminated string, an unknown or short escape, or a
    character glued to the closing quote.
    """
    n = len(line)
    pos = start + 1
    parts: list[str] = []
    while True:
        end = _QCHUNK_RE.match(line, pos).end()
        if end > pos:
            parts.append(line[pos:end])
        pos = end
        if pos >= n:
            raise _Problem(f"unterminated quote starting at column {start + 1}")
        if line[pos] == '"':
            pos += 1
            if pos < n and line[pos] not in " \t":
                raise _Problem(
                    f"unexpected {line[pos]!r} right after the closing quote at column "
                    f"{pos + 1}; separate arguments with a space"
                )
            return "".join(parts), pos
        if pos + 1 >= n:
            raise _Problem(f"unterminated quote starting at column {start + 1}")
        esc = line[pos + 1]
        simple = _UNESCAPE.get(esc)
        if simple is not None:
            parts.append(simple)
            pos += 2
        elif esc == "x" and _HEX2_RE.fullmatch(line, pos + 2, pos + 4):
            parts.append(chr(int(line[pos + 2 : pos + 4], 16)))
            pos += 4
        elif esc == "u" and _HEX4_RE.fullmatch(line, pos + 2, pos + 6):
            parts.append(chr(int(line[pos + 2 : pos + 6], 16)))
            pos += 6
        else:
            shown = f"'\\{esc}'"
            if esc in "xu":
                raise _Problem(
                    f"bad escape {shown} at column {pos + 1}: \\x takes 2 hex digits, \\u takes 4"
                )
            raise _Problem(
                f"unknown escape {shown} at column {pos + 1}; inside quotes use "
                '\\" \\\\ \\n \\r \\t \\xHH or \\uXXXX'
            )


def _reject_constant(name: str) -> Any:
    """json.loads hook: NaN and Infinity are not JSON (RFC 8259 §6)."""
    raise ValueError(f"{name} is not valid JSON")


def _pairs_no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads hook: a duplicate key is ambiguous, so it is an error, as in text mode."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen.add(key)
    return obj


JSON_BACK_TO_TEXT = '{"verb":"FORMAT","mode":"text"}'
"""The JSON request that switches a connection back to text lines (``FORMAT text``)."""

# Someone typing text lines into a connection they (or a script) switched to JSON
# needs to learn how to get out; a bare "not valid JSON" leaves them stuck.
_JSON_HINT = f"; this connection is in JSON mode: send {JSON_BACK_TO_TEXT} to go back to text"


def _pop_json_tag(obj: dict[str, Any]) -> str | None | DecodeError:
    """Take ``"tag"`` out of a JSON line: a string or integer of the text tag's characters."""
    raw_tag = obj.pop("tag", None)
    if raw_tag is None:
        return None
    if type(raw_tag) is int:
        raw_tag = str(raw_tag)
    if not isinstance(raw_tag, str) or _TAG_VALUE_RE.fullmatch(raw_tag) is None:
        return DecodeError("bad_syntax", f"bad tag {raw_tag!r}: a tag is 1 to 64 of "
                           "A-Z a-z 0-9 _ . : - (string or integer)")
    return raw_tag


def _parse_json_line(text: str) -> Request | DecodeError:
    """Parse one JSON-mode line: a flat object with a string ``verb``.

    Scalars become strings (booleans ``true``/``false``, floats by ``repr``), null
    drops the key, nested objects or arrays are refused. ``tag`` may be a string or
    an integer. Never raises.
    """
    try:
        obj = json.loads(
            text, object_pairs_hook=_pairs_no_duplicates, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as exc:
        return DecodeError(
            "bad_syntax", f"not valid JSON: {exc.msg} at column {exc.colno}{_JSON_HINT}"
        )
    except (ValueError, RecursionError) as exc:
        return DecodeError("bad_syntax", f"not valid JSON: {exc}{_JSON_HINT}")
    if not isinstance(obj, dict):
        return DecodeError(
            "bad_syntax",
            f"a JSON request must be an object, got {_json_type_name(obj)}{_JSON_HINT}",
        )
    tag = _pop_json_tag(obj)
    if isinstance(tag, DecodeError):
        return tag
    verb = obj.pop("verb", None)
    if not isinstance(verb, str):
        what = "missing" if verb is None else f"{_json_type_name(verb)}, not a string"
        return DecodeError("bad_syntax", f'missing verb: "verb" is {what}', tag)
    if _VERB_VALUE_RE.fullmatch(verb) is None:
        return DecodeError(
            "bad_syntax",
            f"bad verb {verb!r}: a verb is a letter then letters, digits, '_', '.' or '-'",
            tag,
        )
    args: dict[str, str] = {}
    for key, value in obj.items():
        if KEY_RE.fullmatch(key) is None:
            return DecodeError(
                "bad_syntax",
                f"bad key {key!r}: keys are lower-case, a letter then a-z 0-9 _ . -",
                tag,
            )
        if value is None:
            continue
        if isinstance(value, str):
            args[key] = value
        elif value is True or value is False:
            args[key] = "true" if value else "false"
        elif isinstance(value, int | float):
            args[key] = repr(value) if isinstance(value, float) else str(value)
        else:
            return DecodeError(
                "bad_syntax",
                f"nested value for key {key!r} ({_json_type_name(value)}); "
                "requests are flat objects",
                tag,
            )
    return Request(verb.upper(), args, (), tag)


def _json_type_name(value: object) -> str:
    """Name a decoded JSON value's type the way a JSON user would."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return "a string"


# --- encoding ------------------------------------------------------------------------


def _format_float(x: float) -> str:
    """Compact text for a float: rounded to 3 decimals (ms for seconds), ``-0.0`` → ``0.0``."""
    if math.isfinite(x):
        return repr(round(x, 3) + 0.0)
    return repr(x)  # 'nan', 'inf', '-inf'


def _escape_char(m: re.Match[str]) -> str:
    """Escape one character inside quotes (see _NEEDS_ESCAPE_RE for which ones)."""
    ch = m.group()
    short = _ESCAPE.get(ch)
    if short is not None:
        return short
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def quote(value: object) -> str:
    """Render one value for a text line, adding quotes only when needed.

    bool → ``true``/``false``; int → decimal; float → rounded to 3 decimals
    (``1.0`` stays ``1.0``); Enum → its value; str as is when it is non-empty,
    printable and free of space, ``"``, ``\\``, ``=`` and ``#``, else double-quoted
    with escapes. Any other object is rendered with ``str()``. The result never
    contains a raw CR or LF. Raises TypeError for None (callers drop None fields).
    """
    t = type(value)
    if t is str:
        s: str = value  # type: ignore[assignment]
    elif t is int:
        return str(value)
    elif t is bool:
        return "true" if value else "false"
    elif t is float:
        return _format_float(value)  # type: ignore[arg-type]
    elif value is None:
        raise TypeError("quote(None): drop None values instead of sending them")
    elif isinstance(value, Enum):
        return quote(value.value)
    elif isinstance(value, bool):
        return "true" if value else "false"
    elif isinstance(value, int):
        return str(int(value))
    elif isinstance(value, float):
        return _format_float(float(value))
    else:
        s = str(value)
    if _SAFE_ASCII_RE.fullmatch(s):
        return s
    if s and not s.isascii() and s.isprintable() and _SPECIAL_RE.search(s) is None:
        return s
    return '"' + _NEEDS_ESCAPE_RE.sub(_escape_char, s) + '"'


def _check_reply_key(key: object) -> None:
    """Refuse a field name the wire cannot carry; remembers good ones to stay cheap."""
    if key in _good_reply_keys:
        return
    if not isinstance(key, str) or KEY_RE.fullmatch(key) is None:
        raise ValueError(f"bad field name {key!r}: keys are lower-case [a-z][a-z0-9_.-]*")
    if key in ("type", "tag"):
        raise ValueError(f"field name {key!r} is reserved (JSON mode uses it for the line itself)")
    if len(_good_reply_keys) < _MAX_CACHED_KEYS:
        _good_reply_keys.add(key)


def _json_default(value: object) -> Any:
    """JSON fallback for non-native values: an Enum's value, else ``str()``."""
    if isinstance(value, Enum):
        return value.value
    return str(value)


def _dump_json(obj: dict[str, Any]) -> bytes:
    """One compact JSON object as bytes, with orjson when it is installed."""
    if _orjson is not None:
        try:
            return _orjson.dumps(obj, default=_json_default)
        except _orjson.JSONEncodeError:
            pass  # e.g. a lone surrogate; the stdlib escapes it
    # ensure_ascii keeps the output valid UTF-8 even for lone surrogates.
    return json.dumps(obj, separators=(",", ":"), default=_json_default).encode("ascii")


def encode_reply(
    kind: str,
    fields: Mapping[str, object] | None = None,
    *,
    tag: str | None = None,
    json_mode: bool = False,
) -> bytes:
    """Encode one server line (``OK ERR ITEM END HELLO EVENT``), LF-terminated.

    ``fields`` values of None are dropped. For EVENT the ``event`` field is the event
    name and for HELLO the ``version`` field is the version string; text mode writes
    them as the first positional token (``EVENT call.new k=v``, ``HELLO switchd/0.1.0
    proto=1``), JSON mode keeps them as keys. JSON mode writes ``{"type": KIND,
    "tag": …, …fields}`` with native JSON types (non-finite floats become null).

    Raises ValueError for an unknown kind, a bad tag, a field name outside
    ``[a-z][a-z0-9_.-]*`` or equal to ``type``/``tag``, or EVENT/HELLO without their
    name/version field.
    """
    if kind not in REPLY_KINDS:
        raise ValueError(f"unknown reply kind {kind!r}; expected one of {sorted(REPLY_KINDS)}")
    if tag is not None and (type(tag) is not str or _TAG_VALUE_RE.fullmatch(tag) is None):
        raise ValueError(f"bad tag {tag!r}: 1 to 64 of A-Z a-z 0-9 _ . : - without '#'")
    fields = fields or {}
    lead_key = "event" if kind == "EVENT" else "version" if kind == "HELLO" else None
    if lead_key is not None and fields.get(lead_key) is None:
        raise ValueError(f"{kind} needs a {lead_key!r} field")
    if json_mode:
        obj: dict[str, Any] = {"type": kind}
        if tag is not None:
            obj["tag"] = tag
        for key, value in fields.items():
            if value is None:
                continue
            _check_reply_key(key)
            if type(value) is float and not math.isfinite(value):
                value = None
            obj[key] = value
        return _dump_json(obj) + b"\n"
    parts = [f"#{tag} {kind}" if tag is not None else kind]
    if lead_key is not None:
        parts.append(quote(fields[lead_key]))
    for key, value in fields.items():
        if value is None or key == lead_key:
            continue
        _check_reply_key(key)
        parts.append(f"{key}={quote(value)}")
    return (" ".join(parts) + "\n").encode("utf-8")


def encode_error(code: str, msg: str, *, tag: str | None = None, json_mode: bool = False) -> bytes:
    """Encode ``[#tag] ERR code=<slug> msg="…"``; the code must be in ERROR_CODES.

    Raises ValueError for a code outside the closed set, so a typo in the server
    cannot invent a code that clients do not know.
    """
    if code not in ERROR_CODES:
        raise ValueError(f"unknown error code {code!r}; expected one of {sorted(ERROR_CODES)}")
    return encode_reply("ERR", {"code": code, "msg": msg}, tag=tag, json_mode=json_mode)


# --- the client side: requests out, server lines in ---------------------------------


class LineKind(Enum):
    """What a server line is: its first word (after the tag)."""

    HELLO = "HELLO"
    OK = "OK"
    ERR = "ERR"
    ITEM = "ITEM"
    END = "END"
    EVENT = "EVENT"

    @property
    def final(self) -> bool:
        """True for the line that ends a reply (``OK``, ``ERR``, ``END``)."""
        return self in _FINAL_KINDS


_FINAL_KINDS = frozenset({LineKind.OK, LineKind.ERR, LineKind.END})
# EVENT and HELLO carry one positional token in text mode, a named key in JSON mode.
_LEAD_KEYS = {LineKind.EVENT: ("event", "event name"), LineKind.HELLO: ("version", "version")}
_KINDS_TEXT = "HELLO, OK, ERR, ITEM, END or EVENT"
_KIND_START_RE = re.compile(rf"[ \t]*(?:#{_TAG_CHARS}[ \t]+)?")
_KINDS_BY_WORD = {k.value: k for k in LineKind}

FieldValue = str | int | float | bool
"""A field value of a server line: always ``str`` in text mode, a JSON scalar in JSON mode."""


@dataclass(frozen=True)
class ServerLine:
    """One decoded line from the server, the inverse of :func:`encode_reply`.

    ``fields`` are what the server's encoder was given, nulls left out: the event
    name of an EVENT is ``fields["event"]`` and the version of HELLO is
    ``fields["version"]`` (text mode writes them as the token after the kind, JSON
    mode as keys), and an ERR always has ``code`` (and normally ``msg``). In text
    mode every value is the ``str`` on the wire (``pong=true`` gives ``"true"``); in
    JSON mode values keep their JSON type. ``tag`` is the echoed tag without ``#``.
    """

    kind: LineKind
    fields: Mapping[str, FieldValue]
    tag: str | None = None

    @property
    def event_name(self) -> str | None:
        """The event's name for an EVENT line (``call.new``), else None."""
        return self.fields.get("event") if self.kind is LineKind.EVENT else None  # type: ignore[return-value]


def parse_server_line(line: str | bytes, *, json_mode: bool = False) -> ServerLine | DecodeError:
    """Parse one line the server sent (LF or CR LF terminator optional) into a ServerLine.

    ``json_mode`` says how the line is framed: the server switches only after its
    ``OK`` to ``FORMAT``, so the caller decides line by line. Never raises: a line that
    is not what switchd sends gives ``DecodeError("bad_syntax", …)`` naming the problem
    (and its 1-based column when it has one), with the line's tag when it was read.
    """
    if isinstance(line, bytes | bytearray):
        raw = bytes(line).removesuffix(b"\n").removesuffix(b"\r")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _not_utf8(raw, exc, None if json_mode else _head_tag(raw))
    else:
        text = line.removesuffix("\n").removesuffix("\r")
    if not text.strip(" \t"):
        return DecodeError("bad_syntax", "empty line: a server line starts with " + _KINDS_TEXT)
    return _parse_server_json(text) if json_mode else _parse_server_text(text)


def _parse_server_text(text: str) -> ServerLine | DecodeError:
    """Text-mode server line: the request grammar, with a kind for a verb."""
    parsed = parse_line(text)
    if isinstance(parsed, DecodeError):
        return parsed
    tag = parsed.tag
    # The server writes kinds in capitals; parse_line upper-cased the word, so look at
    # the line itself: a lower-case "ok" is not something switchd sends.
    start = _KIND_START_RE.match(text).end()
    word = text[start : start + len(parsed.verb)]
    kind = _KINDS_BY_WORD.get(word)
    if kind is None:
        return DecodeError(
            "bad_syntax",
            f"unknown line kind {word!r} at column {start + 1}; the server sends {_KINDS_TEXT}",
            tag,
        )
    lead = _LEAD_KEYS.get(kind)
    fields: dict[str, FieldValue]
    if lead is not None:
        key, what = lead
        if not parsed.positional:
            return DecodeError(
                "bad_syntax",
                f"{kind.value} line without its {what}: expected {kind.value} <{what}> key=value …",
                tag,
            )
        if len(parsed.positional) > 1:
            return DecodeError(
                "bad_syntax",
                f"unexpected {parsed.positional[1]!r} in the {kind.value} line: "
                f"only the {what} comes without a key",
                tag,
            )
        if key in parsed.args:
            return DecodeError("bad_syntax", f"{kind.value} line has both a {what} and {key}=", tag)
        fields = {key: parsed.positional[0], **parsed.args}
    else:
        if parsed.positional:
            return DecodeError(
                "bad_syntax",
                f"unexpected {parsed.positional[0]!r} in the {kind.value} line: "
                "its fields are key=value",
                tag,
            )
        fields = dict(parsed.args)
    if kind is LineKind.ERR and "code" not in fields:
        return DecodeError("bad_syntax", "ERR line without code=", tag)
    return ServerLine(kind, fields, tag)


def _parse_server_json(text: str) -> ServerLine | DecodeError:
    """JSON-mode server line: ``{"type": KIND, "tag": …, …fields}`` with scalar values."""
    try:
        obj = json.loads(
            text, object_pairs_hook=_pairs_no_duplicates, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as exc:
        return DecodeError("bad_syntax", f"not valid JSON: {exc.msg} at column {exc.colno}")
    except (ValueError, RecursionError) as exc:
        return DecodeError("bad_syntax", f"not valid JSON: {exc}")
    if not isinstance(obj, dict):
        return DecodeError(
            "bad_syntax", f"a JSON server line must be an object, got {_json_type_name(obj)}"
        )
    tag = _pop_json_tag(obj)
    if isinstance(tag, DecodeError):
        return tag
    raw_kind = obj.pop("type", None)
    if not isinstance(raw_kind, str):
        what = "missing" if raw_kind is None else f"{_json_type_name(raw_kind)}, not a string"
        return DecodeError("bad_syntax", f'"type" is {what}; the server sends {_KINDS_TEXT}', tag)
    try:
        kind = LineKind(raw_kind)
    except ValueError:
        return DecodeError(
            "bad_syntax", f'unknown "type" {raw_kind!r}; the server sends {_KINDS_TEXT}', tag
        )
    fields: dict[str, FieldValue] = {}
    for key, value in obj.items():
        if KEY_RE.fullmatch(key) is None:
            return DecodeError(
                "bad_syntax", f"bad field name {key!r}: keys are lower-case [a-z][a-z0-9_.-]*", tag
            )
        if value is None:
            continue  # the encoder writes null only for a non-finite float: unknown
        if isinstance(value, dict | list):
            return DecodeError(
                "bad_syntax",
                f"nested value for {key!r} ({_json_type_name(value)}); "
                "server lines are flat objects",
                tag,
            )
        fields[key] = value
    lead = _LEAD_KEYS.get(kind)
    if lead is not None and not isinstance(fields.get(lead[0]), str):
        return DecodeError("bad_syntax", f'{kind.value} line without a string "{lead[0]}"', tag)
    if kind is LineKind.ERR and not isinstance(fields.get("code"), str):
        return DecodeError("bad_syntax", 'ERR line without a string "code"', tag)
    return ServerLine(kind, fields, tag)


class LineFramer(_Framer[bytes]):
    """Splits a byte stream into raw lines (terminator and one CR removed, blanks skipped).

    For a client that must change how it parses in the middle of a read: after its
    ``FORMAT json`` is answered, the very next line is JSON even when both came in one
    read, so it frames here and calls :func:`parse_server_line` line by line. A line
    over ``max_line_bytes`` gives one ``DecodeError("line_too_long")`` instead.
    """

    def _decode_into(self, raw: bytes, out: list[bytes | DecodeError]) -> None:
        """Append the line without its CR, unless it is blank."""
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if raw.strip(b" \t"):
            out.append(raw)


#: Default line limit on the client side. The server bounds requests, not replies: an
#: ITEM with escaped free text can exceed 8 KiB, so a client allows much longer lines.
CLIENT_MAX_LINE_BYTES = 1 << 20


class ServerLineDecoder(_Framer[ServerLine]):
    """Turns the server's byte stream into :class:`ServerLine` and :class:`DecodeError` items.

    The client-side twin of :class:`LineDecoder`: the same framing (LF or CR LF, the
    line limit counting the terminator, :meth:`feed_eof` for a last line without LF)
    and ``json_mode`` for lines after ``FORMAT json``. A client that pipelines
    requests behind ``FORMAT`` needs to switch between two lines of one read; it uses
    :class:`LineFramer` and :func:`parse_server_line` instead.
    """

    def __init__(self, max_line_bytes: int = CLIENT_MAX_LINE_BYTES) -> None:
        """Create a decoder; ``max_line_bytes`` counts a line's LF or CR LF too.

        Raises ValueError when ``max_line_bytes`` < 2.
        """
        super().__init__(max_line_bytes)
        self.json_mode = False

    def _decode_into(self, raw: bytes, out: list[ServerLine | DecodeError]) -> None:
        """Decode one server line (without its LF) and append the result, if any."""
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if raw.strip(b" \t"):
            out.append(parse_server_line(raw, json_mode=self.json_mode))


def _request_text(value: object) -> str:
    """One request argument as text: bools as ``true``/``false``, floats exactly (``repr``).

    Raises ValueError for a non-finite float (the server would refuse it anyway).
    """
    if isinstance(value, Enum):
        value = value.value
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot send the float {value!r}")
        return repr(value)
    return str(value)


def encode_request(
    verb: str,
    args: Mapping[str, object] | None = None,
    positional: tuple[object, ...] | list[object] = (),
    *,
    tag: str | None = None,
    json_mode: bool = False,
) -> bytes:
    """Encode one client request, LF-terminated; :class:`LineDecoder` reads it back exactly.

    Text mode writes ``[#tag] VERB positional… key=value…`` with :func:`quote`'s
    quoting; JSON mode writes ``{"verb": …, "tag": …, …args}`` (the shape the server
    reads). Arguments that are None are left out; bools become ``true``/``false``,
    floats are written exactly (requests are not rounded like replies).

    Raises ValueError for a bad verb, tag or key, a non-finite float, positional
    arguments in JSON mode (the JSON shape has none: pass them by key), or the keys
    ``verb``/``tag`` in JSON mode (they name the request itself there).
    """
    if type(verb) is not str or _VERB_VALUE_RE.fullmatch(verb) is None:
        raise ValueError(f"bad verb {verb!r}: a letter then letters, digits, '_', '.' or '-'")
    if tag is not None and (type(tag) is not str or _TAG_VALUE_RE.fullmatch(tag) is None):
        raise ValueError(f"bad tag {tag!r}: 1 to 64 of A-Z a-z 0-9 _ . : - without '#'")
    args = args or {}
    for key in args:
        if type(key) is not str or KEY_RE.fullmatch(key) is None:
            raise ValueError(f"bad key {key!r}: keys are lower-case [a-z][a-z0-9_.-]*")
    if json_mode:
        if positional:
            raise ValueError(
                f"{verb} {' '.join(map(str, positional))}: a JSON request has no positional "
                "arguments; pass them by key"
            )
        obj: dict[str, Any] = {"verb": verb}
        if tag is not None:
            obj["tag"] = tag
        for key, value in args.items():
            if value is None:
                continue
            if key in ("verb", "tag"):
                raise ValueError(f"key {key!r} cannot be sent in JSON mode: it names the request")
            if isinstance(value, Enum):
                value = value.value
            if type(value) is float and not math.isfinite(value):
                raise ValueError(f"cannot send the float {value!r}")
            obj[key] = value if isinstance(value, str | int | float) else str(value)
        return _dump_json(obj) + b"\n"
    parts = [f"#{tag} {verb}" if tag is not None else verb]
    parts.extend(quote(_request_text(p)) for p in positional)
    parts.extend(f"{k}={quote(_request_text(v))}" for k, v in args.items() if v is not None)
    return (" ".join(parts) + "\n").encode("utf-8")
