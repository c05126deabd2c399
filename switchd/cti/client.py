"""An asyncio client of the CTI protocol (DESIGN.md §5, ``docs/protocol.md``).

One :class:`CtiClient` per connection. It reads the greeting, tags every request so
that many can be in flight at once (replies are matched by tag, not by order),
gathers a list reply (``ITEM`` … ``END``) into one :class:`Response`, raises
:class:`ReplyError` for ``ERR``, and hands events (after ``SUB``) to
:meth:`CtiClient.events`. The wire rules live in :mod:`switchd.cti.codec`; this
module only adds asyncio, so the live bench, the tests and ``switchctl`` talk to the
server the same way::

    async with await CtiClient.connect("127.0.0.1", 7070) as cti:
        await cti.auth("admin", "demo-admin")
        await cti.sub("call.*")
        ok = await cti.request("SIM.CALL", caller="84001234")
        async for event in cti.events():
            print(event.event_name, event.fields)

A client that falls behind is not allowed to grow without bound, on either side: the
server drops a connection whose outbound queue is full (``ERR overloaded``), and this
client drops its own connection when more than ``max_events`` events wait unread
(both are reported as :class:`ConnectionLost`, never as a silent gap).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType

from switchd.cti.codec import (
    CLIENT_MAX_LINE_BYTES,
    DecodeError,
    FieldValue,
    LineFramer,
    LineKind,
    ServerLine,
    encode_request,
    parse_server_line,
)
from switchd.exceptions import SwitchdError

__all__ = [
    "DEFAULT_MAX_EVENTS",
    "ConnectionLost",
    "CtiClient",
    "CtiError",
    "ProtocolViolation",
    "ReplyError",
    "Response",
]

#: Events a client keeps unread before it gives up on the connection (see the module doc).
DEFAULT_MAX_EVENTS = 10_000

_READ_CHUNK = 65536


class CtiError(SwitchdError):
    """Base of the errors this client raises."""


class ReplyError(CtiError):
    """The server answered a request with ``ERR``.

    ``code`` is one of the closed set (``docs/protocol.md``, "Errors"); branch on it,
    not on ``msg``, which is for humans. ``verb`` and ``tag`` name the request.
    """

    def __init__(self, code: str, msg: str, *, verb: str, tag: str | None) -> None:
        super().__init__(f"{verb}: {code}: {msg}")
        self.code = code
        self.msg = msg
        self.verb = verb
        self.tag = tag


class ConnectionLost(CtiError):
    """The connection is gone (closed by either side, reset, or given up); ``reason`` says how.

    Every request still waiting for its reply fails with it, and so does every later
    request on this client.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ProtocolViolation(ConnectionLost):
    """The server sent something this client cannot read; the client closed the connection.

    A subclass of :class:`ConnectionLost` because the effect is the same: after a line
    it cannot place, the client no longer knows which reply belongs to which request.
    """


@dataclass(frozen=True)
class Response:
    """The reply to one request: ``OK`` with its fields, or a whole ``ITEM`` … ``END`` list.

    ``items`` is None for an ``OK`` and a tuple (possibly empty) for a list, whose
    ``fields`` are then the ``END`` line's (``count``). Values are ``str`` in text mode
    and JSON scalars after :meth:`CtiClient.format_json` (see
    :class:`~switchd.cti.codec.ServerLine`).
    """

    verb: str
    fields: Mapping[str, FieldValue]
    items: tuple[Mapping[str, FieldValue], ...] | None = None
    tag: str | None = None

    def __getitem__(self, key: str) -> FieldValue:
        """The field ``key``. Raises KeyError when the reply has no such field."""
        return self.fields[key]

    def get(self, key: str, default: FieldValue | None = None) -> FieldValue | None:
        """The field ``key``, or ``default`` when the reply has no such field."""
        return self.fields.get(key, default)


@dataclass(slots=True)
class _Pending:
    """A request sent and not yet fully answered; ``items`` collects its ITEM lines."""

    verb: str
    future: asyncio.Future[Response]
    items: list[Mapping[str, FieldValue]] = field(default_factory=list)


_END_OF_EVENTS = object()


class CtiClient:
    """One CTI connection. Create it with :meth:`connect`; use it as an async context manager.

    Requests may be sent concurrently from several tasks (:meth:`request`) or fired
    without waiting (:meth:`submit`); each gets its own tag. Not thread-safe: use it
    from the event loop that connected it.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        max_line_bytes: int = CLIENT_MAX_LINE_BYTES,
        max_events: int = DEFAULT_MAX_EVENTS,
    ) -> None:
        """Wrap an open stream pair; :meth:`connect` is the usual way in.

        Must be called inside a running event loop. Raises ValueError for
        ``max_events`` < 1 or ``max_line_bytes`` < 2.
        """
        if max_events < 1:
            raise ValueError(f"max_events must be at least 1, got {max_events}")
        loop = asyncio.get_running_loop()
        self._reader = reader
        self._writer = writer
        self._framer = LineFramer(max_line_bytes)
        self._max_events = max_events
        self._json_mode = False
        self._next_tag = 0
        self._pending: dict[str, _Pending] = {}
        self._events: asyncio.Queue[ServerLine | object] = asyncio.Queue()
        self._hello: asyncio.Future[ServerLine] = loop.create_future()
        # Cleared while a FORMAT request is in flight: a line sent before its OK would be
        # read by the server in the old format (like SMTP's STARTTLS).
        self._format_done = asyncio.Event()
        self._format_done.set()
        self._lost: ConnectionLost | None = None
        self._clean_end = False  # closed by us, or by the server after QUIT
        self._quit_sent = False
        self._overloaded: str | None = None
        # Lines submitted in one turn of the loop go out in one write: one send() and one
        # server read per batch instead of per request, which is what pipelining is for.
        self._outbox: list[bytes] = []
        #: The user and role after a successful :meth:`auth`.
        self.user: str | None = None
        self.role: str | None = None
        self._task = loop.create_task(self._read_loop(), name="cti-client-reader")

    # ------------------------------------------------------------ connecting

    @classmethod
    async def connect(
        cls,
        host: str = "127.0.0.1",
        port: int = 7070,
        *,
        timeout: float | None = 10.0,
        max_line_bytes: int = CLIENT_MAX_LINE_BYTES,
        max_events: int = DEFAULT_MAX_EVENTS,
    ) -> CtiClient:
        """Connect to a CTI server and read its ``HELLO``.

        ``timeout`` bounds the TCP connect and the wait for the greeting (None: no
        bound). ``max_line_bytes`` is the longest server line accepted (terminator
        included); ``max_events`` the number of unread events kept before the
        connection is given up (see the module docstring).

        Raises OSError when the TCP connection cannot be made, TimeoutError when the
        server does not greet within ``timeout``, ConnectionLost when it closes before
        greeting, ProtocolViolation when its first line is not ``HELLO``.
        """
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=_READ_CHUNK * 4), timeout
        )
        client = cls(reader, writer, max_line_bytes=max_line_bytes, max_events=max_events)
        try:
            await asyncio.wait_for(asyncio.shield(client._hello), timeout)
        except BaseException:
            await client.close()
            raise
        return client

    @property
    def hello(self) -> ServerLine:
        """The server's greeting (``fields["version"]``, ``fields["proto"]``).

        Raises RuntimeError before the greeting was read (only when the client was
        built from streams directly rather than with :meth:`connect`).
        """
        if not self._hello.done() or self._hello.exception() is not None:
            raise RuntimeError("the server has not greeted yet")
        return self._hello.result()

    @property
    def server_version(self) -> str:
        """The version the server announced, e.g. ``switchd/0.1.0``. Raises as :attr:`hello`."""
        return str(self.hello.fields["version"])

    @property
    def json_mode(self) -> bool:
        """True after :meth:`format_json`: requests and replies are JSON objects."""
        return self._json_mode

    @property
    def closed(self) -> bool:
        """True once the connection is gone, for whatever reason (see :attr:`lost`)."""
        return self._lost is not None

    @property
    def lost(self) -> ConnectionLost | None:
        """Why the connection ended, or None while it is open."""
        return self._lost

    @property
    def pending(self) -> int:
        """Requests sent whose final reply line has not arrived yet."""
        return len(self._pending)

    # ------------------------------------------------------------ requests

    def submit(self, verb: str, /, *positional: object, **args: object) -> asyncio.Future[Response]:
        """Send one request now, without waiting; the returned future gets its Response.

        This is the pipelining primitive: call it many times, then :meth:`drain` once.
        ``positional`` are bare tokens (``HELP CALLS``; text mode only), ``args`` are
        ``key=value`` arguments (None values are left out; keys that are not Python
        names go through ``**{"a.b": 1}``). The future fails with ReplyError for
        ``ERR``, ConnectionLost when the connection ends first.

        Raises ConnectionLost when the connection is already gone, RuntimeError while
        a ``FORMAT`` request is in flight (await it first; :meth:`request` waits by
        itself), and ValueError for what the wire cannot carry (a bad verb or key,
        positional arguments in JSON mode: see
        :func:`~switchd.cti.codec.encode_request`).
        """
        if self._lost is not None:
            raise ConnectionLost(self._lost.reason)
        if not self._format_done.is_set():
            raise RuntimeError("a FORMAT request is in flight; await it before sending more")
        self._next_tag += 1
        tag = str(self._next_tag)
        data = encode_request(verb, args, positional, tag=tag, json_mode=self._json_mode)
        name = verb.upper()
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._pending[tag] = _Pending(name, future)
        if name == "FORMAT":
            self._format_done.clear()
        elif name == "QUIT":
            self._quit_sent = True
        if not self._outbox:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outbox.append(data)
        return future

    def _flush(self) -> None:
        """Write every line submitted since the last flush, in one write."""
        if not self._outbox:
            return
        data = b"".join(self._outbox)
        self._outbox.clear()
        if self._lost is None:
            self._writer.write(data)

    async def drain(self) -> None:
        """Send what :meth:`submit` queued and wait until the socket accepts more.

        Submitted lines go out by themselves at the next turn of the event loop; this
        sends them now and applies flow control after many :meth:`submit` calls.
        Raises ConnectionLost when the connection is gone.
        """
        self._flush()
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise ConnectionLost(f"connection lost while sending: {exc}") from exc

    async def request(self, verb: str, /, *positional: object, **args: object) -> Response:
        """Send one request and wait for its reply; see :meth:`submit` for the arguments.

        Safe to call from many tasks at once: the requests are pipelined and each
        gets its own reply. Bound the wait with ``asyncio.timeout`` if needed; a
        request given up that way keeps its tag until its reply arrives.

        Raises ReplyError when the server answers ``ERR``, ConnectionLost when the
        connection ends first, ValueError for arguments the wire cannot carry.
        """
        while not self._format_done.is_set():
            await self._format_done.wait()
        future = self.submit(verb, *positional, **args)
        await self.drain()
        return await future

    async def auth(self, user: str, secret: str) -> Response:
        """Log in (``AUTH``); the reply has ``user``, ``role`` and maybe ``extension``.

        Sets :attr:`user` and :attr:`role`. Raises ReplyError (``forbidden`` for a
        wrong user or secret, ``wrong_state`` when already logged in) and
        ConnectionLost.
        """
        return await self.request("AUTH", user=user, secret=secret)

    async def sub(self, *patterns: str) -> Response:
        """Subscribe to events (``SUB``): names or glob patterns, all events when none.

        Read them with :meth:`events` or :meth:`next_event`. Raises ReplyError
        (``bad_arg`` for a bad pattern, ``not_authenticated``) and ConnectionLost.
        """
        if patterns:
            return await self.request("SUB", events=",".join(patterns))
        return await self.request("SUB")

    async def unsub(self) -> Response:
        """Stop receiving events (``UNSUB``). Raises ReplyError and ConnectionLost."""
        return await self.request("UNSUB")

    async def format_json(self) -> Response:
        """Switch this connection to JSON lines (``FORMAT json``) both ways.

        Later requests wait for the reply before they are sent, and the reply is
        parsed in text while every line after it is parsed as JSON, as the server
        does; reply values then keep their JSON types. Raises ReplyError and
        ConnectionLost.
        """
        return await self._format("json")

    async def format_text(self) -> Response:
        """Switch this connection back to text lines (``FORMAT text``). Raises as :meth:`format_json`."""
        return await self._format("text")

    async def _format(self, mode: str) -> Response:
        # JSON requests have no positionals: the JSON spelling is {"verb":"FORMAT","mode":…}.
        if self._json_mode:
            return await self.request("FORMAT", mode=mode)
        return await self.request("FORMAT", mode)

    async def quit(self) -> Response:
        """Say goodbye (``QUIT``), wait for the server to close, and close this client.

        Raises ReplyError and ConnectionLost (when the connection was already gone).
        """
        reply = await self.request("QUIT")
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({self._task}, timeout=5.0)
        await self.close()
        return reply

    # ------------------------------------------------------------ events

    async def next_event(self) -> ServerLine:
        """Wait for the next event (an ``EVENT`` line; its name is ``event_name``).

        Raises ConnectionLost once the connection has ended and every event received
        before that was read.
        """
        item = await self._events.get()
        if item is _END_OF_EVENTS:
            self._events.put_nowait(item)  # every other reader ends too
            assert self._lost is not None
            raise ConnectionLost(self._lost.reason)
        return item  # type: ignore[return-value]

    async def events(self) -> AsyncIterator[ServerLine]:
        """Iterate over events as they arrive (after :meth:`sub`).

        The iteration ends when this client is closed or the server closes after
        ``QUIT``. Raises ConnectionLost when the connection is lost any other way
        (reset, server gone, overload), after the events received before it.
        """
        while True:
            try:
                event = await self.next_event()
            except ConnectionLost:
                if self._clean_end:
                    return
                raise
            yield event

    # ------------------------------------------------------------ closing

    async def close(self) -> None:
        """Close the connection (idempotent). Never raises.

        Requests still waiting fail with ConnectionLost; :meth:`events` ends.
        """
        if self._lost is None:
            self._clean_end = True
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._lost is None:
            self._finish(ConnectionLost("closed by this client"))
        with contextlib.suppress(Exception):
            self._writer.close()
            await self._writer.wait_closed()

    async def __aenter__(self) -> CtiClient:
        """Return self; the connection is already open."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the connection. Never raises."""
        await self.close()

    # ------------------------------------------------------------ reading

    async def _read_loop(self) -> None:
        """Read until the connection ends; then fail what waits, with the reason."""
        reason: ConnectionLost
        try:
            while True:
                data = await self._reader.read(_READ_CHUNK)
                if not data:
                    for raw in self._framer.feed_eof():
                        self._on_line(raw)
                    reason = ConnectionLost(self._eof_reason())
                    break
                for raw in self._framer.feed(data):
                    self._on_line(raw)
        except asyncio.CancelledError:
            self._finish(ConnectionLost("closed by this client"))
            raise
        except ConnectionLost as exc:
            reason = exc
        except (ConnectionError, OSError) as exc:
            reason = ConnectionLost(f"connection lost: {exc or type(exc).__name__}")
        except Exception as exc:  # a bug here must not leave requests waiting forever
            reason = ConnectionLost(f"the client failed reading: {type(exc).__name__}: {exc}")
        self._finish(reason)

    def _eof_reason(self) -> str:
        """Why the server closed, as far as this client can tell."""
        if self._overloaded is not None:
            return f"the server dropped the connection: overloaded: {self._overloaded}"
        if self._quit_sent and not self._pending:
            self._clean_end = True
            return "the server closed the connection after QUIT"
        return "the server closed the connection"

    def _finish(self, reason: ConnectionLost) -> None:
        """Record why the connection ended and release everything that waits on it."""
        if self._lost is not None:
            return
        self._lost = reason
        kind = type(reason)
        pending, self._pending = self._pending, {}
        for p in pending.values():
            if not p.future.done():
                p.future.set_exception(kind(reason.reason))
        if not self._hello.done():
            self._hello.set_exception(kind(reason.reason))
            self._hello.exception()  # retrieved: connect() re-raises it when it waits
        self._format_done.set()
        self._events.put_nowait(_END_OF_EVENTS)
        with contextlib.suppress(Exception):
            self._writer.close()

    def _on_line(self, raw: bytes | DecodeError) -> None:
        """Place one server line: greeting, event, or part of a reply. Raises ConnectionLost."""
        if isinstance(raw, DecodeError):
            raise ProtocolViolation(f"the server sent a line this client cannot read: {raw.msg}")
        line = parse_server_line(raw, json_mode=self._json_mode)
        if isinstance(line, DecodeError):
            raise ProtocolViolation(
                f"the server sent a line this client cannot read ({line.msg}): {raw[:200]!r}"
            )
        kind = line.kind
        if kind is LineKind.EVENT:
            if self._events.qsize() >= self._max_events:
                raise ConnectionLost(
                    f"{self._max_events} events arrived that nobody read; read events() "
                    "or raise max_events"
                )
            self._events.put_nowait(line)
            return
        if kind is LineKind.HELLO:
            if self._hello.done():
                raise ProtocolViolation("the server greeted twice")
            self._hello.set_result(line)
            return
        if not self._hello.done():
            raise ProtocolViolation(f"expected HELLO first, the server sent {raw[:200]!r}")
        tag = line.tag
        if tag is None:
            if kind is LineKind.ERR and line.fields.get("code") == "overloaded":
                self._overloaded = str(line.fields.get("msg", ""))
                return
            if kind is LineKind.ERR and self._pending:
                # The server answers in order; an untagged ERR is for the oldest request
                # (its tag could not be read, e.g. a line the server could not decode).
                tag = next(iter(self._pending))
            else:
                raise ProtocolViolation(f"untagged {kind.value} line: {raw[:200]!r}")
        p = self._pending.get(tag)
        if p is None:
            raise ProtocolViolation(f"a reply with tag {tag!r}, which no request is waiting for")
        if kind is LineKind.ITEM:
            p.items.append(line.fields)
            return
        fields = line.fields
        if kind is LineKind.END:
            count = fields.get("count")
            if count is not None and str(count) != str(len(p.items)):
                raise ProtocolViolation(
                    f"{p.verb} ended with count={count} after {len(p.items)} ITEM lines"
                )
        del self._pending[tag]
        outcome: Response | ReplyError
        if kind is LineKind.ERR:
            outcome = ReplyError(
                str(fields["code"]), str(fields.get("msg", "")), verb=p.verb, tag=tag
            )
        elif kind is LineKind.OK:
            outcome = Response(p.verb, fields, None, tag)
        else:  # END
            outcome = Response(p.verb, fields, tuple(p.items), tag)
        if kind is LineKind.OK:
            if p.verb == "FORMAT" and fields.get("format") in ("json", "text"):
                # The server switched right after this line; so does the parsing here.
                self._json_mode = fields["format"] == "json"
            elif p.verb == "AUTH":
                self.user = str(fields.get("user")) if "user" in fields else None
                self.role = str(fields.get("role")) if "role" in fields else None
        if p.verb == "FORMAT":
            self._format_done.set()
        if p.future.done():
            return  # the caller gave up waiting (cancelled); the reply is dropped
        if isinstance(outcome, ReplyError):
            p.future.set_exception(outcome)
        else:
            p.future.set_result(outcome)
