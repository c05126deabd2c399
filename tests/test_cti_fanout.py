"""The CTI server's fan-out paths: more subscribers than one flush chunk, a transport
that must drain before the outbox is handed over, replies before events, and one
broken transport that must not cut the others off."""
from __future__ import annotations

import asyncio
import socket

from switchd.cti import server as cti_server
from switchd.cti.server import CtiServer, Reply, Session
from switchd.events import LineState
from tests.daemon import Client


async def _handler(session: Session, req) -> Reply:
    if req.verb == "SUB":
        session.subscribed = True
    if req.verb == "LIST":
        return Reply(items=[{"i": "x" * 100} for _ in range(300)])
    return Reply({})


async def _subscribed(server: CtiServer, n: int) -> list[Client]:
    out = []
    for _ in range(n):
        c = await Client.connect(server.port)
        await c.ok("SUB")
        out.append(c)
    return out


def _ev(i: int) -> LineState:
    return LineState(f"ext/{i}", "alerting", "idle", 1.0)


async def test_more_sessions_than_a_flush_chunk_get_every_event_in_order(monkeypatch):
    monkeypatch.setattr(cti_server, "FLUSH_CHUNK", 2)
    server = CtiServer(_handler, host="127.0.0.1", port=0, version="9.9")
    await server.start()
    clients = await _subscribed(server, 7)
    calls = []
    orig = server._flush_due
    monkeypatch.setattr(server, "_flush_due", lambda: (calls.append(len(server._due)), orig()))
    for i in range(5):
        server.publish(_ev(i))
    # the last client's reply goes out ahead of the chunks still waiting
    for c in clients:
        await c.ok("PING")
        assert [e["line"] for e in c.events] == [f"ext/{i}" for i in range(5)]
    assert max(calls) > 2                      # the callback really ran in chunks
    await asyncio.sleep(0.05)
    assert server._flush_handle is None and not server._due and not server._urgent
    for c in clients:
        await c.close()
    await server.close()


async def test_a_transport_that_raises_does_not_stop_delivery_to_the_others():
    server = CtiServer(_handler, host="127.0.0.1", port=0, version="9.9")
    await server.start()
    clients = await _subscribed(server, 5)
    sessions = list(server.sessions)
    bad = sessions[0]

    def boom(data: bytes) -> None:
        raise RuntimeError("a transport that raises")

    bad.writer.transport.write = boom  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda *_: None)
    server.publish(_ev(0))
    await asyncio.sleep(0.05)
    for i in range(1, 4):
        server.publish(_ev(i))
        await asyncio.sleep(0.01)
    for s in sessions[1:]:
        assert not s.outbox, "an event stays queued for a session that reads"
    for c in clients:
        if c.writer.get_extra_info("sockname") != bad.writer.get_extra_info("peername"):
            for _ in range(4):
                line = await asyncio.wait_for(c.reader.readline(), 2)
                assert line.startswith(b"EVENT ")
    for c in clients:
        await c.close()
    await server.close()


async def test_a_client_that_pauses_reading_gets_everything_once_its_transport_drains():
    server = CtiServer(_handler, host="127.0.0.1", port=0, version="9.9")
    await server.start()
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", server.port))
    await loop.sock_sendall(sock, b"SUB\n")
    await asyncio.sleep(0.05)
    s = next(iter(server.sessions))
    n, saw_task = 2500, False
    for i in range(n):
        server.publish(LineState(f"ext/{i}", "alerting", "idle", 1.0, "C" + "x" * 150))
        if i % 50 == 49:
            await asyncio.sleep(0.002)
            saw_task |= s.writer_task is not None
    assert saw_task and not s.closed
    data = b""
    while data.count(b"\n") < n + 2:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), 5)
        assert chunk
        data += chunk
    assert [x.split(b" ")[2] for x in data.splitlines()[2:]] == [b"line=ext/%d" % i for i in range(n)]
    await asyncio.sleep(0.05)
    assert s.writer_task is None
    sock.close()
    await server.close()


async def test_a_pipelining_client_that_reads_slowly_is_throttled_not_dropped():
    server = CtiServer(_handler, host="127.0.0.1", port=0, version="9.9", outbound_queue=4)
    await server.start()
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", server.port))
    await loop.sock_sendall(sock, b"".join(b"#%d LIST\n" % i for i in range(60)))
    data = b""
    while data.count(b" END count=300\n") < 60:
        await asyncio.sleep(0.01)               # slow, never 2 s
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), 5)
        assert chunk and b"ERR" not in chunk
        data += chunk
    ends = [x.split(b" ")[0] for x in data.splitlines() if b" END " in x]
    assert ends == [b"#%d" % i for i in range(60)]
    sock.close()
    await server.close()

