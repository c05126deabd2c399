"""The CTI control socket: asyncio streams around the sans-IO codec.

One :class:`Session` per TCP connection. Requests on a connection are handled in
order (clients may pipeline with ``#tag``); replies and events go through a
bounded outbound queue (the session's outbox), so a client that stops reading
fills only its own queue and is then told ``ERR overloaded`` and disconnected,
without ever making the event loop wait for it (DESIGN §5, §9).

Fan-out cost: an event is encoded once per wire format, filtered per session before
it is queued, and every outbox that received something during one turn of the event
loop is handed to its transport in one write by one callback at the next turn (not
one task per client): with hundreds of subscribers, task switches and ``send()``
calls, not encoding, are what the loop spends its time on. Only a client whose
transport is full (it is not reading) gets a task, which waits for it to drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from switchd.cti.codec import DecodeError, LineDecoder, Request, encode_error, encode_reply
from switchd.events import CallEnded, CallTransferred, Event
from switchd.exceptions import ProtocolError
from switchd.timefmt import iso_utc

__all__ = ["CtiServer", "Reply", "Session", "event_wire_fields"]

#: A tuple, not ``A | B``: the check runs for every event to every agent's session.
_CALL_OVER = (CallEnded, CallTransferred)

log = structlog.get_logger("switchd.cti")

#: Seconds a reply waits for room in a full outbound queue before the client is overloaded.
REPLY_WAIT_S = 2.0
#: Requests handled from one read before yielding, so one pipelining client cannot hog the loop.
YIELD_EVERY = 32

#: Bytes of kernel send buffer per CTI connection (SO_SNDBUF).
KERNEL_SNDBUF = 256 * 1024

#: Seconds an overloaded client gets to read its final ERR before the connection is aborted.
OVERLOAD_LINGER_S = 30.0

#: Outboxes handed over per callback. Each write is a send() through the kernel (5-20 µs
#: on loopback), so 500 of them in one callback would keep a request waiting several ms;
#: between chunks the loop reads its sockets again.
FLUSH_CHUNK = 64

_LINE_KEYS = ("line", "line_a", "line_b", "held_line")


def event_wire_fields(event: Event) -> dict[str, Any]:
    """The fields of ``event`` as they go on the wire.

    ``call_id`` is sent as ``call`` (the key every verb takes) and ``time`` as
    ISO-8601 UTC with milliseconds, like CDR times.
    """
    out: dict[str, Any] = {"event": event.name}
    for key, value in event.fields().items():
        if key == "call_id":
            out["call"] = value
        elif key == "time":
            out["time"] = iso_utc(value)
        else:
            out[key] = value
    return out


@dataclass(slots=True)
class Reply:
    """What a verb handler returns: an ``OK`` with fields, or ``ITEM`` lines then ``END``."""

    fields: dict[str, Any] = field(default_factory=dict)
    items: list[dict[str, Any]] | None = None
    close: bool = False


class Session:
    """One CTI connection: its auth, its subscriptions and its bounded outbound queue."""

    def __init__(self, server: CtiServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.decoder = LineDecoder(server.max_line_bytes)
        #: Replies and events not yet handed to the transport, in order; an entry is one
        #: line or one block (a whole list reply). At most ``server.outbound_queue``.
        self.outbox: list[bytes] = []
        #: True while this session is in the server's list of outboxes to hand over.
        self.flush_due = False
        #: Set each time the outbox is handed over: a reply waiting for room waits on it.
        self._room = asyncio.Event()
        self.user: str | None = None
        self.role: str | None = None
        #: ``ext/201`` for an agent: an agent sees only its own line and calls.
        self.agent_line: str | None = None
        self.own_calls: set[str] = set()
        self.subscribed = False
        self._patterns: tuple[str, ...] = ("*",)
        #: Event name -> whether the patterns match it: publish looks each name up once
        #: per session instead of running fnmatch for every event and every client.
        self._matched: dict[str, bool] = {}
        self.closed = False
        #: Events caused by this session's own request wait here until its reply is queued,
        #: so ``OK call=<id>`` reaches the client before the events about that call.
        self.held: list[bytes] | None = None
        #: Runs only while the transport is full (the client is not reading): waits for
        #: it to drain, then hands the outbox over.
        self.writer_task: asyncio.Task[None] | None = None
        #: Set when the session was dropped for overload: input is read and discarded.
        self.dropped = False
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    @property
    def json_mode(self) -> bool:
        """True after ``FORMAT json``: one JSON object per line both ways."""
        return self.decoder.json_mode

    def send(self, data: bytes) -> bool:
        """Queue ``data`` for the client without waiting. False (and disconnect) when the queue is full."""
        if self.closed:
            return False
        if len(self.outbox) >= self.server.outbound_queue:
            self.overloaded()
            return False
        self.outbox.append(data)
        if not self.flush_due:
            self.server.flush_soon(self)
        return True

    async def send_reply(self, data: bytes) -> None:
        """Queue a reply, waiting up to :data:`REPLY_WAIT_S` for room.

        A client pipelining many requests is throttled (its next request is not read
        until its replies have room) rather than dropped; one that still has not read
        after the wait is overloaded. Events never wait: see :meth:`send`.
        """
        if self.closed:
            return
        limit = self.server.outbound_queue
        if len(self.outbox) >= limit:
            # Queued at once when there is room: an event published while this waited
            # would otherwise overtake the reply (or the held events).
            loop = asyncio.get_running_loop()
            deadline = loop.time() + REPLY_WAIT_S
            while len(self.outbox) >= limit:
                self._room.clear()
                try:
                    await asyncio.wait_for(self._room.wait(), deadline - loop.time())
                except TimeoutError:
                    self.overloaded()
                    return
                if self.closed:
                    return
        self.outbox.append(data)
        # A reply goes out ahead of the sessions that only have events to send.
        self.server.flush_soon(self, urgent=True)

    def flush(self) -> None:
        """Hand the outbox to the transport in one write; never waits.

        A transport holding more than its high-water mark (the client is not reading)
        gets nothing more: :attr:`writer_task` waits for it to drain, while the outbox
        fills up to the bound.
        """
        if not self.outbox or self.dropped:
            return
        transport = self.writer.transport
        if transport.is_closing():
            self.closed = True
            self.outbox.clear()
            return
        if transport.get_write_buffer_size() > transport.get_write_buffer_limits()[1]:
            if self.writer_task is None:
                self.writer_task = asyncio.create_task(self._drain())
            return
        data = self.outbox[0] if len(self.outbox) == 1 else b"".join(self.outbox)
        self.outbox.clear()
        self._room.set()
        transport.write(data)

    async def _drain(self) -> None:
        """Wait for a full transport to drain, hand the outbox over, until it is empty."""
        try:
            while self.outbox and not self.dropped:
                await self.writer.drain()
                self.flush()
        except (ConnectionError, RuntimeError):
            self.closed = True
        finally:
            self.writer_task = None

    async def finish(self, timeout: float) -> None:
        """Hand over what is queued, waiting up to ``timeout`` s for a client that reads slowly."""
        self.flush()
        task = self.writer_task
        if task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout)

    def overloaded(self) -> None:
        """Tell the client it fell behind and drop it.

        What it has not yet been sent is discarded; ``ERR overloaded`` goes after the
        bytes already in the transport, which is then closed gracefully (so a client
        that resumes reading sees why), and aborted if it still does not read within
        :data:`OVERLOAD_LINGER_S`.
        """
        if self.closed:
            return
        log.warning("cti_client_overloaded", peer=self.peer, user=self.user,
                    queued=len(self.outbox))
        self.closed = True
        if self.writer_task is not None:
            self.writer_task.cancel()
        self.outbox.clear()
        self._room.set()
        transport = self.writer.transport
        with contextlib.suppress(Exception):
            transport.write(encode_error("overloaded", "you did not read fast enough; "
                                         "your outbound queue is full", json_mode=self.json_mode))
            # Half-close after the ERR and keep reading (and discarding): closing a socket
            # with unread input makes the kernel send RST, and the client would lose the ERR.
            transport.write_eof()
            asyncio.get_running_loop().call_later(OVERLOAD_LINGER_S, transport.abort)
        self.dropped = True

    def close(self) -> None:
        """Stop this session (idempotent)."""
        if self.closed:
            return
        self.closed = True
        # What is queued still goes out (flush ignores ``closed``); nothing more is queued.
        if self.outbox and not self.flush_due:
            self.server.flush_soon(self)

    @property
    def patterns(self) -> tuple[str, ...]:
        """The glob patterns of the last ``SUB`` (``("*",)``: every event)."""
        return self._patterns

    @patterns.setter
    def patterns(self, value: tuple[str, ...]) -> None:
        self._patterns = tuple(value)
        self._matched = {}

    def matches(self, name: str) -> bool:
        """True when the event name ``name`` matches one of this session's SUB patterns."""
        hit = self._matched.get(name)
        if hit is None:
            hit = self._matched[name] = any(p == "*" or fnmatch.fnmatchcase(name, p)
                                            for p in self._patterns)
        return hit

    def wants(self, event: Event, fields: dict[str, Any]) -> bool:
        """True when this session subscribed to ``event`` and its role may see it."""
        if not self.subscribed or not self.matches(event.name):
            return False
        return self.agent_line is None or self._agent_sees(event, fields)

    def _agent_sees(self, event: Event, fields: dict[str, Any]) -> bool:
        """An agent's scope: its own line, and the calls that were on it (noted here)."""
        call = fields.get("call")
        if any(fields.get(k) == self.agent_line for k in _LINE_KEYS):
            if call is not None and not isinstance(event, CallEnded):
                self.own_calls.add(call)
            return True
        # CtiServer.publish forgets the call once it ended, for every agent session.
        return call is not None and call in self.own_calls


Handler = Callable[[Session, Request], Awaitable[Reply]]


class CtiServer:
    """The TCP server. ``handler`` carries out verbs; :meth:`publish` fans events out."""

    def __init__(self, handler: Handler, *, host: str, port: int, version: str,
                 max_line_bytes: int = 8192, outbound_queue: int = 1024) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.version = version
        self.max_line_bytes = max_line_bytes
        self.outbound_queue = outbound_queue
        self.sessions: set[Session] = set()
        #: Sessions whose outbox received something since it was last handed over; those
        #: with a reply queued are also in ``_urgent``, handed over first.
        self._due: list[Session] = []
        self._urgent: list[Session] = []
        self._flush_handle: asyncio.Handle | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        """Listen; returns the bound port (useful with port 0)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port,
                                                  limit=self.max_line_bytes * 2)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        return self.port

    async def close(self) -> None:
        """Stop listening, flush what each client has queued (briefly), close every connection."""
        if self._server is not None:
            self._server.close()
        sessions = list(self.sessions)
        for s in sessions:
            s.close()
            s.flush()
        writers = [s.writer_task for s in sessions if s.writer_task is not None]
        if writers:
            await asyncio.wait(writers, timeout=0.5)
        for s in sessions:
            # Closing the transport ends the session's pending read with EOF, so its
            # task finishes by itself instead of being cancelled.
            with contextlib.suppress(Exception):
                s.writer.close()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=0.5)
        for t in list(self._tasks):
            t.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 0.5)

    def flush_soon(self, session: Session, *, urgent: bool = False) -> None:
        """Hand ``session``'s outbox over at the next turn of the loop, with the other
        outboxes filled meanwhile: one callback for up to :data:`FLUSH_CHUNK` of them,
        one write for each. ``urgent`` (a reply is queued): before the others."""
        if urgent:
            self._urgent.append(session)
        elif not session.flush_due:
            session.flush_due = True
            self._due.append(session)
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush_due)

    def _flush_due(self) -> None:
        self._flush_handle = None
        urgent, self._urgent = self._urgent, []
        due = self._due
        batch = due[:FLUSH_CHUNK]
        del due[:FLUSH_CHUNK]
        for s in batch:
            s.flush_due = False
        try:
            # Urgent first: all of its outbox, in order; its place in _due then finds it empty.
            for s in (*urgent, *batch):
                try:
                    s.flush()
                except Exception:
                    # One broken transport must not stop the others: drop that client only.
                    log.exception("cti_flush_failed", peer=s.peer, user=s.user)
                    s.closed = s.dropped = True
                    s.outbox.clear()
                    s._room.set()
                    with contextlib.suppress(Exception):
                        s.writer.transport.abort()
        finally:
            if (self._due or self._urgent) and self._flush_handle is None:
                self._flush_handle = asyncio.get_running_loop().call_soon(self._flush_due)

    def anyone_subscribed(self, name: str) -> bool:
        """True when a connected session subscribed to events named ``name`` (what its
        role may see aside): False means an event of that name would reach nobody."""
        return any(s.subscribed and s.matches(name) for s in self.sessions)

    def publish(self, event: Event) -> None:
        """Send ``event`` to every subscribed session that may see it. Never waits."""
        if not self.sessions:
            return
        fields: dict[str, Any] | None = None
        encoded: dict[bool, bytes] = {}
        name = event.name
        for s in list(self.sessions):
            # Filters first, and cheaply: this loop runs for every event and every client.
            if not s.subscribed:
                continue
            hit = s._matched.get(name)
            if hit is None:
                hit = s.matches(name)
            if not hit:
                continue
            if fields is None:
                fields = event_wire_fields(event)
            if s.agent_line is not None and not s._agent_sees(event, fields):
                continue
            jm = s.decoder.json_mode
            data = encoded.get(jm)
            if data is None:
                data = encoded[jm] = encode_reply("EVENT", fields, json_mode=jm)
            if s.held is not None:
                # Held events count against the same bound as the queue.
                if len(s.held) >= self.outbound_queue:
                    s.overloaded()
                else:
                    s.held.append(data)
            else:
                s.send(data)
        if isinstance(event, _CALL_OVER):
            # An agent stops following a call when it ends, or when the agent transferred
            # it away, whether or not it subscribed to those events.
            for s in self.sessions:
                if s.agent_line is not None and (
                        isinstance(event, CallEnded) or event.line == s.agent_line):
                    s.own_calls.discard(event.call_id)

    # ------------------------------------------------------------ per connection

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # Bound what the kernel buffers for one client too (Linux would otherwise
            # autotune it to megabytes), so a stalled client is noticed by its queue.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, KERNEL_SNDBUF)
        session = Session(self, reader, writer)
        self.sessions.add(session)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)  # type: ignore[arg-type]
        log.info("cti_connected", peer=session.peer)
        try:
            session.send(encode_reply("HELLO", {"version": f"switchd/{self.version}", "proto": 1}))
            await self._reader(session)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # Only at shutdown; finishing normally keeps asyncio's stream callback from
            # printing a traceback for a cancelled connection task.
            pass
        finally:
            session.close()
            self.sessions.discard(session)
            await session.finish(2.0)
            if session.writer_task is not None:
                session.writer_task.cancel()
            with contextlib.suppress(Exception):
                writer.close()
            log.info("cti_disconnected", peer=session.peer, user=session.user)
            if task is not None:
                self._tasks.discard(task)  # type: ignore[arg-type]

    async def _reader(self, session: Session) -> None:
        while True:
            data = await session.reader.read(65536)
            if not data:
                # EOF or a half-close (``nc`` then Ctrl-D): a last line without LF is
                # still a request and is answered; _serve then flushes and closes.
                if not session.closed:
                    await self._handle(session, session.decoder.feed_eof())
                return
            if session.closed:
                if session.dropped:
                    continue
                return
            await self._handle(session, session.decoder.feed(data))
            if session.closed and not session.dropped:
                # QUIT (or shutdown): stop reading; _serve flushes the replies and closes.
                return

    async def _handle(self, session: Session, items: list[Request | DecodeError]) -> None:
        """Answer decoded lines in order, yielding now and then so one client cannot hog the loop."""
        for n, item in enumerate(items, 1):
            if session.closed:
                return
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            if isinstance(item, DecodeError):
                await session.send_reply(encode_error(item.code, item.msg, tag=item.tag,
                                                      json_mode=session.json_mode))
                continue
            await self._dispatch(session, item)

    async def _dispatch(self, session: Session, req: Request) -> None:
        session.held = []
        try:
            await self._dispatch_held(session, req)
        finally:
            # Events published while the held ones wait for room are held behind them,
            # so no event overtakes another.
            while session.held and not session.closed:
                held, session.held = session.held, []
                await session.send_reply(b"".join(held))
            session.held = None

    async def _dispatch_held(self, session: Session, req: Request) -> None:
        jm = session.json_mode
        try:
            reply = await self.handler(session, req)
        except Exception as exc:  # a bug in a verb must not take the connection down
            if isinstance(exc, ProtocolError):
                await session.send_reply(encode_error(exc.code, exc.msg, tag=req.tag,
                                                      json_mode=jm))
                return
            log.exception("cti_verb_failed", verb=req.verb, peer=session.peer)
            await session.send_reply(encode_error("internal", f"{req.verb} failed inside switchd: "
                                      f"{type(exc).__name__}; see the log", tag=req.tag,
                                      json_mode=jm))
            return
        # The reply uses the format the request came in: FORMAT json is answered in text,
        # and everything after it in JSON, so a client always knows how to read the reply.
        if reply.items is None:
            await session.send_reply(encode_reply("OK", reply.fields, tag=req.tag, json_mode=jm))
        else:
            chunks = [encode_reply("ITEM", it, tag=req.tag, json_mode=jm) for it in reply.items]
            chunks.append(encode_reply("END", {"count": len(reply.items), **reply.fields},
                                       tag=req.tag, json_mode=jm))
            # One queue entry for the whole list: a long answer is not "falling behind".
            await session.send_reply(b"".join(chunks))
        if reply.close:
            session.close()
