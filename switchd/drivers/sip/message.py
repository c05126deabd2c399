"""SIP messages: parse bytes into a request or response, and build them back (RFC 3261 §7, §20, §25).

Sans-IO and strict in the h11 manner: :func:`parse` takes one whole message (a UDP
datagram, or what :class:`StreamFramer` cut from a TCP stream) and either returns a
frozen :class:`Request` / :class:`Response` or raises :class:`SipParseError` that says
what the peer got wrong (the switch answers a request with ``400`` and that text as
the reason phrase, and drops a broken response). Nothing here touches a socket.

What is accepted:

* a start line ``METHOD SP Request-URI SP SIP/2.0`` or ``SIP/2.0 SP 3DIGIT SP Reason``;
* header lines ``name: value``, with folding (a line starting with SP/HT continues the
  previous value, RFC 3261 §7.3.1) and the compact forms (``v``, ``f``, ``t``, ``i``,
  ``m``, ``l``, ``c``, ``k``, ``s``, ``e``, ``o``, ``r``, ``u``, ``b``), stored under
  their full names;
* the body framed by ``Content-Length`` (§18.3: on a datagram bytes past it are
  dropped and a shorter body is an error; on a stream it is required).

Limits (a scanner's garbage or an attack never costs the loop more than this):
:data:`MAX_MESSAGE` bytes in all, :data:`MAX_HEADERS` header lines, header text UTF-8.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = [
    "MAX_HEADERS",
    "MAX_MESSAGE",
    "CSeq",
    "NameAddr",
    "Request",
    "Response",
    "SipParseError",
    "StreamFramer",
    "Uri",
    "Via",
    "is_number",
    "parse",
    "reason_phrase",
]

#: Largest message accepted (bytes): a UDP datagram's payload is at most 65 507.
MAX_MESSAGE = 65_535
#: Most header lines in one message.
MAX_HEADERS = 200

#: Compact forms (RFC 3261 §7.3.3 and the RFCs that added them) → the full name.
_COMPACT = {
    "v": "Via", "f": "From", "t": "To", "i": "Call-ID", "m": "Contact",
    "l": "Content-Length", "c": "Content-Type", "k": "Supported", "s": "Subject",
    "e": "Content-Encoding", "o": "Event", "r": "Refer-To", "u": "Allow-Events",
    "b": "Referred-By",
}
#: How each header is spelled when written (lower-case name → canonical).
_CANON = {n.lower(): n for n in (
    "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Length", "Content-Type",
    "Max-Forwards", "Route", "Record-Route", "Expires", "Min-Expires", "User-Agent",
    "Server", "Allow", "Supported", "Require", "Unsupported", "Authorization",
    "WWW-Authenticate", "Proxy-Authorization", "Proxy-Authenticate", "Authentication-Info",
    "Retry-After", "Accept", "Subject", "Event", "Refer-To", "Referred-By", "Allow-Events",
    "Content-Encoding", "Date", "Timestamp", "Warning", "Reason", "P-Asserted-Identity",
    "Remote-Party-ID", "Diversion")}
#: Headers whose value may be a comma-separated list of entries (RFC 3261 §7.3.1).
_LIST_HEADERS = frozenset(("via", "contact", "route", "record-route", "allow", "supported",
                           "require", "unsupported", "accept", "allow-events"))
_TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
_STATUS = re.compile(r"^SIP/2\.0 ([1-6][0-9][0-9]) ?(.*)$")

#: Reason phrases of the responses the switch sends (RFC 3261 §21, RFC 3265, RFC 4028).
_REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    407: "Proxy Authentication Required", 408: "Request Timeout", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 423: "Interval Too Brief",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 486: "Busy Here",
    487: "Request Terminated", 488: "Not Acceptable Here", 491: "Request Pending",
    500: "Server Internal Error", 501: "Not Implemented", 503: "Service Unavailable",
    504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
    603: "Decline", 604: "Does Not Exist Anywhere",
}


def is_number(text: str) -> bool:
    """``text`` is ASCII digits 0-9 (``str.isdigit`` also takes "¹" and "３", which
    ``int`` refuses)."""
    return text.isascii() and text.isdigit()


def reason_phrase(status: int) -> str:
    """The standard reason phrase of ``status`` (RFC 3261 §21), or a generic one per class."""
    return _REASONS.get(status) or {1: "Progress", 2: "OK", 3: "Redirect", 4: "Request Failure",
                                    5: "Server Failure", 6: "Global Failure"}[status // 100]


class SipParseError(ValueError):
    """A message that is not SIP as RFC 3261 writes it; ``str()`` says what is wrong.

    ``status`` is what a server answers a request that failed so (400, 513 for a
    message over the size limit, 505 for another SIP version)."""

    def __init__(self, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.status = status


def _canon(name: str) -> str:
    low = name.lower()
    full = _COMPACT.get(low)
    if full is not None:
        return full
    return _CANON.get(low) or "-".join(p[:1].upper() + p[1:] for p in name.split("-"))


def _split_commas(value: str) -> Iterator[str]:
    """Entries of a comma-separated header value; commas inside quotes and <...> do not split."""
    depth = 0
    quoted = False
    start = 0
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            part = value[start:i].strip()
            if part:
                yield part
            start = i + 1
        i += 1
    part = value[start:].strip()
    if part:
        yield part


@dataclass(frozen=True, slots=True)
class _Message:
    """What requests and responses share: headers (canonical name, value) in order, body."""

    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def get(self, name: str) -> str | None:
        """The first value of header ``name`` (any spelling, compact form too), or None."""
        want = _canon(name)
        for n, v in self.headers:
            if n == want:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        """Every entry of header ``name``: its lines in order, list headers split at commas."""
        want = _canon(name)
        split = want.lower() in _LIST_HEADERS
        out: list[str] = []
        for n, v in self.headers:
            if n == want:
                out.extend(_split_commas(v) if split else (v,))
        return out

    @property
    def call_id(self) -> str:
        """The Call-ID (present in every parsed message)."""
        return self.get("Call-ID") or ""

    @property
    def cseq(self) -> CSeq:
        """The CSeq header, parsed (present in every parsed message)."""
        return CSeq.parse(self.get("CSeq") or "")

    @property
    def vias(self) -> list[Via]:
        """The Via headers, top first."""
        return [Via.parse(v) for v in self.get_all("Via")]

    @property
    def from_(self) -> NameAddr:
        """The From header."""
        return NameAddr.parse(self.get("From") or "")

    @property
    def to(self) -> NameAddr:
        """The To header."""
        return NameAddr.parse(self.get("To") or "")

    def _head_and_body(self, start: str) -> bytes:
        lines = [start]
        lines.extend(f"{n}: {v}" for n, v in self.headers if n != "Content-Length")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body

    def with_headers(self, *changes: tuple[str, str | None]) -> _Message:
        """A copy with each ``(name, value)`` set (replacing every line of that name; the
        first one's place is kept, else appended) or removed (value None)."""
        headers = list(self.headers)
        for name, value in changes:
            want = _canon(name)
            first = next((i for i, (n, _) in enumerate(headers) if n == want), None)
            headers = [h for h in headers if h[0] != want]
            if value is not None:
                headers.insert(first if first is not None else len(headers), (want, value))
        return type(self)(**{**_fields(self), "headers": tuple(headers)})


def _fields(m: _Message) -> dict[str, object]:
    return {k: getattr(m, k) for k in m.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class Request(_Message):
    """A SIP request: ``method`` (upper-case token) and ``uri`` (the Request-URI text)."""

    method: str = "OPTIONS"
    uri: str = ""

    def to_bytes(self) -> bytes:
        """The message as sent on the wire (Content-Length set from the body)."""
        return self._head_and_body(f"{self.method} {self.uri} SIP/2.0")


@dataclass(frozen=True, slots=True)
class Response(_Message):
    """A SIP response: ``status`` (100..699) and its ``reason`` phrase."""

    status: int = 200
    reason: str = "OK"

    def to_bytes(self) -> bytes:
        """The message as sent on the wire (Content-Length set from the body)."""
        return self._head_and_body(f"SIP/2.0 {self.status} {self.reason}")


Message = Request | Response


def parse(data: bytes, *, stream: bool = False) -> Message:
    """One SIP message from ``data`` (a datagram, or one message cut from a stream).

    Raises :class:`SipParseError` naming the fault: not UTF-8 in the head, a bad start
    line, a header line without a colon, a missing mandatory header (Call-ID, CSeq,
    From, To, Via; RFC 3261 §8.1.1), a bad CSeq, Via, From or To, a Content-Length that is not a number
    or longer than the body, a message over :data:`MAX_MESSAGE` bytes (status 513) or
    with more than :data:`MAX_HEADERS` headers. ``stream``: Content-Length is required
    (RFC 3261 §18.3).
    """
    if len(data) > MAX_MESSAGE:
        raise SipParseError(f"message of {len(data)} bytes is over {MAX_MESSAGE}", 513)
    # A keep-alive (CRLF) or leading blank lines before the start line are skipped (§7.5).
    data = data.lstrip(b"\r\n")
    end = data.find(b"\r\n\r\n")
    sep = 4
    if end < 0:
        end = data.find(b"\n\n")    # bare LF line ends, as some phones send
        sep = 2
    if end < 0:
        head_bytes, body = data, b""
        if stream or not data:
            raise SipParseError("no blank line after the headers")
    else:
        head_bytes, body = data[:end], data[end + sep:]
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SipParseError(f"header bytes are not UTF-8 (byte {e.start})") from None
    lines = head.replace("\r\n", "\n").split("\n")
    start_line = lines[0].strip()
    headers: list[tuple[str, str]] = []
    for raw in lines[1:]:
        if not raw.strip():
            continue
        if raw[0] in " \t":
            if not headers:
                raise SipParseError("folded header line before any header")
            n, v = headers[-1]
            headers[-1] = (n, f"{v} {raw.strip()}")
            continue
        name, colon, value = raw.partition(":")
        name = name.strip()
        if not colon or not name or not _TOKEN.match(name):
            raise SipParseError(f"header line {raw[:40]!r} is not 'name: value'")
        headers.append((_canon(name), value.strip()))
        if len(headers) > MAX_HEADERS:
            raise SipParseError(f"more than {MAX_HEADERS} header lines")
    msg: Message
    m = _STATUS.match(start_line)
    if m:
        msg = Response(headers=tuple(headers), status=int(m.group(1)),
                       reason=m.group(2).strip())
    else:
        parts = start_line.split(" ")
        if len(parts) != 3 or not parts[1]:
            raise SipParseError(f"start line {start_line[:60]!r} is not 'METHOD URI SIP/2.0'")
        method, uri, version = parts
        if version.upper() != "SIP/2.0":
            if version.upper().startswith("SIP/"):
                raise SipParseError(f"version {version!r} is not SIP/2.0", 505)
            raise SipParseError(f"start line {start_line[:60]!r} does not end in SIP/2.0")
        if not _TOKEN.match(method):
            raise SipParseError(f"method {method[:20]!r} is not a token")
        if ":" not in uri:
            raise SipParseError(f"Request-URI {uri[:60]!r} has no scheme")
        msg = Request(headers=tuple(headers), method=method.upper(), uri=uri)
    lengths = msg.get_all("Content-Length")
    if len(set(lengths)) > 1:
        raise SipParseError(f"Content-Length given {len(lengths)} times with different values")
    if lengths:
        try:
            n = int(lengths[0])
        except ValueError:
            raise SipParseError(f"Content-Length {lengths[0][:20]!r} is not a number") from None
        if n < 0 or n > len(body):
            raise SipParseError(f"Content-Length {n} but the body has {len(body)} bytes")
        body = body[:n]
    elif stream:
        raise SipParseError("no Content-Length on a stream transport (RFC 3261 §18.3)")
    for name in ("Call-ID", "CSeq", "From", "To", "Via"):
        if msg.get(name) is None:
            raise SipParseError(f"no {name} header")
    cseq = CSeq.parse(msg.get("CSeq") or "")     # raises for a bad one
    # The headers every layer reads, parsed once here, so a message that gets past
    # parse() cannot fail later on them (a fuzzer found a Via after a NUL did).
    for v in msg.get_all("Via"):
        Via.parse(v)
    NameAddr.parse(msg.get("From") or "")
    NameAddr.parse(msg.get("To") or "")
    if isinstance(msg, Request) and cseq.method != msg.method:
        raise SipParseError(f"CSeq method {cseq.method} is not the request's {msg.method}")
    # Content-Length is framing: to_bytes() writes it from the body.
    kept = tuple(h for h in msg.headers if h[0] != "Content-Length")
    if isinstance(msg, Request):
        return Request(headers=kept, body=body, method=msg.method, uri=msg.uri)
    return Response(headers=kept, body=body, status=msg.status, reason=msg.reason)


# --------------------------------------------------------------------------- header values


def _params(text: str) -> tuple[tuple[str, str | None], ...]:
    """``;a=1;b;c="x"`` → (("a", "1"), ("b", None), ("c", "x")); names lower-cased."""
    out: list[tuple[str, str | None]] = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        name, eq, value = part.partition("=")
        v = value.strip() if eq else None
        if v is not None and len(v) >= 2 and v[0] == '"' and v[-1] == '"':
            v = v[1:-1]
        out.append((name.strip().lower(), v))
    return tuple(out)


def _fmt_params(params: Iterable[tuple[str, str | None]]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def _param(params: tuple[tuple[str, str | None], ...], name: str) -> str | None:
    for k, v in params:
        if k == name:
            return v if v is not None else ""
    return None


def _host_port(text: str) -> tuple[str, int | None]:
    """``host[:port]`` (IPv6 in brackets) → (host, port or None). Raises SipParseError."""
    text = text.strip()
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise SipParseError(f"host {text[:40]!r}: unclosed '['")
        host, rest = text[1:close], text[close + 1:]
        if rest and not rest.startswith(":"):
            raise SipParseError(f"host {text[:40]!r}: junk after ']'")
        port_text = rest[1:] if rest else ""
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise SipParseError(f"no host in {text[:40]!r}")
    if port_text:
        if not is_number(port_text) or not 0 < int(port_text) < 65536:
            raise SipParseError(f"port {port_text[:10]!r} is not 1..65535")
        return host, int(port_text)
    return host, None


@dataclass(frozen=True, slots=True)
class Uri:
    """A SIP URI ``sip:user@host:port;params`` (RFC 3261 §19.1); user and port optional."""

    host: str
    user: str = ""
    port: int | None = None
    scheme: str = "sip"
    params: tuple[tuple[str, str | None], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Uri:
        """Parse a sip:/sips: URI (``tel:`` is refused: the switch routes SIP only).
        Raises SipParseError."""
        text = text.strip()
        scheme, colon, rest = text.partition(":")
        if not colon or scheme.lower() not in ("sip", "sips"):
            raise SipParseError(f"URI {text[:60]!r} is not sip: or sips:", 416)
        rest, _, _headers = rest.partition("?")
        hostpart, _, ptext = rest.partition(";")
        user = ""
        if "@" in hostpart:
            user, _, hostpart = hostpart.rpartition("@")
            user = user.partition(":")[0]       # a password in a URI is ignored (§19.1.1)
        host, port = _host_port(hostpart)
        return cls(host=host.lower(), user=user, port=port, scheme=scheme.lower(),
                   params=_params(ptext))

    def param(self, name: str) -> str | None:
        """A URI parameter's value ("" for a flag), or None."""
        return _param(self.params, name)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        user = f"{self.user}@" if self.user else ""
        return f"{self.scheme}:{user}{host}{port}{_fmt_params(self.params)}"


@dataclass(frozen=True, slots=True)
class NameAddr:
    """A From/To/Contact/Route value: ``"Display" <uri>;params`` or a bare ``uri;params``."""

    uri: str
    display: str = ""
    params: tuple[tuple[str, str | None], ...] = ()

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        """Parse one name-addr or addr-spec. Raises SipParseError."""
        text = text.strip()
        if not text:
            raise SipParseError("empty address")
        lt = text.find("<")
        if lt >= 0:
            gt = text.find(">", lt)
            if gt < 0:
                raise SipParseError(f"address {text[:60]!r}: '<' without '>'")
            display = text[:lt].strip()
            if len(display) >= 2 and display[0] == '"' and display[-1] == '"':
                display = display[1:-1].replace('\\"', '"')
            return cls(uri=text[lt + 1:gt].strip(), display=display,
                       params=_params(text[gt + 1:]))
        # addr-spec: parameters after it belong to the header, not the URI (§20.10).
        uri, _, ptext = text.partition(";")
        return cls(uri=uri.strip(), params=_params(ptext))

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (RFC 3261 §19.3), or None."""
        return _param(self.params, "tag")

    def param(self, name: str) -> str | None:
        """A header parameter's value ("" for a flag), or None."""
        return _param(self.params, name)

    def with_tag(self, tag: str) -> NameAddr:
        """A copy carrying ``tag`` (replacing any)."""
        return NameAddr(self.uri, self.display,
                        tuple(p for p in self.params if p[0] != "tag") + (("tag", tag),))

    def __str__(self) -> str:
        name = f'"{self.display}" ' if self.display else ""
        return f"{name}<{self.uri}>{_fmt_params(self.params)}"


@dataclass(frozen=True, slots=True)
class Via:
    """One Via entry (RFC 3261 §20.42): ``SIP/2.0/UDP host:port;branch=…;rport;received=…``."""

    transport: str
    host: str
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Via:
        """Parse one Via entry. Raises SipParseError."""
        proto, _, rest = text.strip().partition(" ")
        bits = [b.strip() for b in proto.split("/")]
        if len(bits) != 3 or bits[0].upper() != "SIP" or bits[1] != "2.0" or not bits[2]:
            raise SipParseError(f"Via {text[:60]!r} does not start SIP/2.0/<transport>")
        sent_by, _, ptext = rest.strip().partition(";")
        host, port = _host_port(sent_by)
        return cls(transport=bits[2].upper(), host=host, port=port, params=_params(ptext))

    @property
    def branch(self) -> str:
        """The branch parameter ("" when absent: an RFC 2543 peer)."""
        return _param(self.params, "branch") or ""

    def param(self, name: str) -> str | None:
        """A Via parameter's value ("" for a flag), or None."""
        return _param(self.params, name)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {host}{port}{_fmt_params(self.params)}"


@dataclass(frozen=True, slots=True)
class CSeq:
    """The CSeq header (RFC 3261 §20.16): a sequence number below 2**31 and a method."""

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        """Parse ``"314159 INVITE"``. Raises SipParseError."""
        parts = text.split()
        if len(parts) != 2 or not is_number(parts[0]) or int(parts[0]) >= 2**31:
            raise SipParseError(f"CSeq {text[:40]!r} is not '<number below 2**31> METHOD'")
        return cls(int(parts[0]), parts[1].upper())

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


@dataclass
class StreamFramer:
    """Cuts SIP messages out of a TCP byte stream by their Content-Length (RFC 3261 §18.3).

    Feed bytes with :meth:`feed`; it returns the whole messages (bytes) now complete.
    CRLF keep-alives between messages (RFC 5626 §3.5.1) are skipped. Raises
    SipParseError when a head grows past :data:`MAX_MESSAGE` without its blank line or
    names no usable Content-Length: the stream cannot be re-synchronised, so the
    caller closes the connection.
    """

    _buf: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[bytes]:
        """Take ``data``; return the complete messages, in order."""
        self._buf += data
        out: list[bytes] = []
        while True:
            while self._buf[:2] == b"\r\n":
                del self._buf[:2]
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > MAX_MESSAGE:
                    raise SipParseError("no end of headers within the message size limit", 513)
                return out
            head = bytes(self._buf[:end])
            m = re.search(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\d+)[ \t]*$", head)
            if m is None:
                raise SipParseError("no Content-Length on a stream transport (RFC 3261 §18.3)")
            total = end + 4 + int(m.group(1))
            if total > MAX_MESSAGE:
                raise SipParseError(f"message of {total} bytes is over {MAX_MESSAGE}", 513)
            if len(self._buf) < total:
                return out
            out.append(bytes(self._buf[:total]))
            del self._buf[:total]
