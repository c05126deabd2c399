"""The asyncio CTI client against the real CtiServer in-process, scripted servers, and the daemon."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from switchd.cti.client import (
    ConnectionLost,
    CtiClient,
    ProtocolViolation,
    ReplyError,
    Response,
)
from switchd.cti.codec import LineKind, Request
from switchd.cti.server import CtiServer, Reply, Session
from switchd.events import LineState
from switchd.exceptions import ProtocolError
from tests.daemon import running


class _Handler:
    """A stand-in verb handler: echoes, lists, fails and waits on demand."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.hold_format = False
        self.seen: list[Request] = []
        self._arrived = asyncio.Event()

    async def wait_seen(self, n: int) -> None:
        """Wait until ``n`` requests have reached the handler (bound it with wait_for)."""
        while len(self.seen) < n:
            self._arrived.clear()
            await self._arrived.wait()

    async def __call__(self, session: Session, req: Request) -> Reply:
        self.seen.append(req)
        self._arrived.set()
        if req.verb == "AUTH":
            if req.args.get("secret") != "s3cret":
                raise ProtocolError("forbidden", "wrong user or secret")
            session.user, session.role = req.args["user"], "admin"
            return Reply({"user": session.user, "role": "admin"})
        if req.verb == "SUB":
            session.subscribed = True
            session.patterns = tuple(req.args.get("events", "*").split(","))
            return Reply({"events": req.args.get("events", "*")})
        if req.verb == "UNSUB":
            session.subscribed = False
            return Reply({})
        if req.verb == "FORMAT":
            if self.hold_format:
                await self.gate.wait()
            mode = req.positional[0] if req.positional else req.args["mode"]
            session.decoder.json_mode = mode == "json"
            return Reply({"format": mode})
        if req.verb == "LIST":
            return Reply(items=[{"i": i, "even": i % 2 == 0} for i in range(int(req.args["n"]))])
        if req.verb == "NUMBERS":
            return Reply({"n": 3, "half": 0.5, "yes": True, "s": "a b"})
        if req.verb == "DENY":
            raise ProtocolError("forbidden", "not for you")
        if req.verb == "BOOM":
            raise ZeroDivisionError("a bug")
        if req.verb == "WAIT":
            await self.gate.wait()
        if req.verb == "QUIT":
            return Reply({"bye": True}, close=True)
        return Reply({"verb": req.verb, **req.args, **{f"p{i}": p for i, p in
                                                        enumerate(req.positional)}})


async def _server(handler: _Handler | None = None, **kw: object) -> CtiServer:
    server = CtiServer(handler or _Handler(), host="127.0.0.1", port=0, version="9.9",
                       **kw)  # type: ignore[arg-type]
    await server.start()
    return server


@pytest.fixture
async def server() -> AsyncIterator[CtiServer]:
    s = await _server()
    yield s
    await s.close()


async def _client(server: CtiServer, **kw: int) -> CtiClient:
    return await CtiClient.connect("127.0.0.1", server.port, timeout=5, **kw)


# --- requests and replies ----------------------------------------------------------


async def test_connect_reads_the_greeting(server):
    async with await _client(server) as cti:
        assert cti.hello.kind is LineKind.HELLO
        assert cti.hello.fields == {"version": "switchd/9.9", "proto": "1"}
        assert cti.server_version == "switchd/9.9"
        assert not cti.closed and not cti.json_mode


async def test_a_request_returns_the_ok_fields_and_sends_its_arguments_quoted(server):
    async with await _client(server) as cti:
        reply = await cti.request("echo", "pos one", note='say "hi"\n', n=7, flag=True, gone=None)
        assert reply == Response("ECHO", {"verb": "ECHO", "note": 'say "hi"\n', "n": "7",
                                          "flag": "true", "p0": "pos one"}, None, reply.tag)
        assert reply["n"] == "7" and reply.get("nope") is None and reply.items is None


async def test_err_is_raised_with_its_code_and_message_and_the_connection_survives(server):
    async with await _client(server) as cti:
        with pytest.raises(ReplyError) as caught:
            await cti.request("DENY")
        assert (caught.value.code, caught.value.msg, caught.value.verb) == (
            "forbidden", "not for you", "DENY")
        with pytest.raises(ReplyError) as caught:
            await cti.request("BOOM")
        assert caught.value.code == "internal" and "ZeroDivisionError" in caught.value.msg
        assert (await cti.request("PING"))["verb"] == "PING"


async def test_a_list_reply_is_gathered_into_one_response(server):
    async with await _client(server) as cti:
        reply = await cti.request("LIST", n=3)
        assert reply.items == ({"i": "0", "even": "true"}, {"i": "1", "even": "false"},
                               {"i": "2", "even": "true"})
        assert reply.fields == {"count": "3"}
        empty = await cti.request("LIST", n=0)
        assert empty.items == () and empty.fields == {"count": "0"}


async def test_concurrent_requests_are_pipelined_and_each_gets_its_own_reply():
    handler = _Handler()
    server = await _server(handler)
    async with await _client(server) as cti:
        slow = asyncio.create_task(cti.request("WAIT", id="slow"))
        fast = [asyncio.create_task(cti.request("PING", id=str(i))) for i in range(50)]
        # All 51 requests are on the wire before the first is answered (pipelining).
        await asyncio.wait_for(handler.wait_seen(1), 5)
        assert cti.pending == 51 and not any(t.done() for t in fast)
        handler.gate.set()
        assert (await slow)["id"] == "slow"
        assert [(await t)["id"] for t in fast] == [str(i) for i in range(50)]
        assert cti.pending == 0
    await server.close()


async def test_submit_many_then_drain_once(server):
    async with await _client(server) as cti:
        futures = [cti.submit("LIST", n=i % 3) for i in range(200)]
        await cti.drain()
        replies = await asyncio.wait_for(asyncio.gather(*futures), 5)
        assert [len(r.items or ()) for r in replies] == [i % 3 for i in range(200)]
        assert len({r.tag for r in replies}) == 200


async def test_a_request_given_up_by_its_caller_does_not_confuse_later_replies():
    handler = _Handler()
    server = await _server(handler)
    async with await _client(server) as cti:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(cti.request("WAIT"), 0.05)
        later = asyncio.create_task(cti.request("PING", id="after"))
        handler.gate.set()
        assert (await asyncio.wait_for(later, 5))["id"] == "after"
        assert not cti.closed
    await server.close()


async def test_arguments_the_wire_cannot_carry_are_refused_before_sending(server):
    async with await _client(server) as cti:
        with pytest.raises(ValueError, match="bad key"):
            await cti.request("PING", **{"Bad": 1})
        with pytest.raises(ValueError, match="bad verb"):
            cti.submit("P NG")
        assert cti.pending == 0 and (await cti.request("PING"))["verb"] == "PING"


# --- auth, events, format ----------------------------------------------------------


async def test_auth_sets_user_and_role_and_a_wrong_secret_is_forbidden(server):
    async with await _client(server) as cti:
        with pytest.raises(ReplyError, match="forbidden"):
            await cti.auth("ann", "guess")
        assert cti.user is None
        reply = await cti.auth("ann", "s3cret")
        assert reply.fields == {"user": "ann", "role": "admin"}
        assert (cti.user, cti.role) == ("ann", "admin")


async def test_events_after_sub_arrive_in_order_and_replies_are_not_mixed_in(server):
    async with await _client(server) as cti:
        await cti.sub("line.*")
        for i in range(3):
            server.publish(LineState(f"ext/20{i}", "alerting", "idle", 1.0, f"C{i}"))
        assert (await cti.request("PING"))["verb"] == "PING"
        got = [await asyncio.wait_for(cti.next_event(), 5) for _ in range(3)]
        assert [e.event_name for e in got] == ["line.state"] * 3
        assert [e.fields["line"] for e in got] == ["ext/200", "ext/201", "ext/202"]
        assert got[0].fields["call"] == "C0" and got[0].tag is None


async def test_the_event_iterator_ends_when_the_client_closes(server):
    cti = await _client(server)
    await cti.sub()
    server.publish(LineState("ext/201", "alerting", "idle", 1.0))
    seen: list[str] = []

    async def consume() -> None:
        async for event in cti.events():
            seen.append(str(event.fields["line"]))
            await cti.close()

    await asyncio.wait_for(consume(), 5)
    assert seen == ["ext/201"] and cti.closed


async def test_format_json_switches_both_ways_and_keeps_json_types(server):
    async with await _client(server) as cti:
        await cti.sub()
        # Requests issued while FORMAT is in flight wait for its reply, then go as JSON.
        fmt, numbers = await asyncio.gather(cti.format_json(), cti.request("NUMBERS"))
        assert fmt.fields == {"format": "json"} and cti.json_mode
        assert numbers.fields == {"n": 3, "half": 0.5, "yes": True, "s": "a b"}
        listed = await cti.request("LIST", n=2)
        assert listed.items == ({"i": 0, "even": True}, {"i": 1, "even": False})
        assert listed.fields == {"count": 2}
        server.publish(LineState("ext/201", "alerting", "idle", 1.5))
        event = await asyncio.wait_for(cti.next_event(), 5)
        assert event.event_name == "line.state" and event.fields["line"] == "ext/201"
        assert (await cti.format_text()).fields == {"format": "text"}
        assert not cti.json_mode and (await cti.request("NUMBERS"))["n"] == "3"


async def test_submit_refuses_while_a_format_switch_is_in_flight():
    handler = _Handler()
    handler.hold_format = True
    server = await _server(handler)
    async with await _client(server) as cti:
        switching = asyncio.create_task(cti.format_json())
        await asyncio.wait_for(handler.wait_seen(1), 5)
        with pytest.raises(RuntimeError, match="FORMAT request is in flight"):
            cti.submit("PING")
        handler.gate.set()
        await asyncio.wait_for(switching, 5)
        assert (await cti.request("PING"))["verb"] == "PING"
    await server.close()


# --- the end of a connection -------------------------------------------------------


async def test_after_close_requests_raise_connection_lost(server):
    cti = await _client(server)
    await cti.close()
    await cti.close()  # idempotent
    with pytest.raises(ConnectionLost, match="closed by this client"):
        await cti.request("PING")


async def test_quit_ends_the_connection_cleanly(server):
    cti = await _client(server)
    await cti.sub()
    assert (await cti.quit()).fields == {"bye": "true"}
    assert cti.closed and cti.lost is not None
    assert [e async for e in cti.events()] == []


async def test_the_server_going_away_fails_pending_requests_and_the_event_iterator():
    handler = _Handler()
    server = await _server(handler)
    cti = await _client(server)
    await cti.sub()
    waiting = asyncio.create_task(cti.request("WAIT"))
    await asyncio.wait_for(handler.wait_seen(2), 5)
    await server.close()
    with pytest.raises(ConnectionLost, match="the server closed the connection"):
        await asyncio.wait_for(waiting, 5)
    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(anext(cti.events()), 5)
    with pytest.raises(ConnectionLost):
        await cti.request("PING")
    await cti.close()


async def test_a_client_that_does_not_read_its_events_gives_up_loudly(server):
    cti = await _client(server, max_events=5)
    await cti.sub()
    for i in range(6):
        server.publish(LineState(f"ext/{i}", "alerting", "idle", 1.0))
    with pytest.raises(ConnectionLost, match="5 events arrived that nobody read"):
        await asyncio.wait_for(cti.request("PING"), 5)
    # The events it did keep are still readable, then the iterator reports the loss.
    got: list[str] = []
    with pytest.raises(ConnectionLost):
        async for event in cti.events():
            got.append(str(event.fields["line"]))
    assert got == [f"ext/{i}" for i in range(5)]
    await cti.close()


# --- scripted servers: what a broken or overloaded server looks like --------------

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class _Scripted:
    """A TCP server that runs ``script`` for each connection; ``stop`` waits for them."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.tasks: list[asyncio.Task[None]] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.tasks.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await self.script(r, w)
        finally:
            w.close()

    async def stop(self) -> None:
        """Wait for every connection's script to finish (each ends when the client goes)."""
        await asyncio.wait_for(asyncio.gather(*self.tasks), 5)
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def _answer_each_request_with(*lines: bytes, greet: bytes = b"HELLO x/1 proto=1\n") -> Script:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(greet)
        await r.readline()
        for line in lines:
            w.write(line)
        await w.drain()
        await r.read()  # until the client goes

    return script


async def test_a_first_line_that_is_not_hello_is_a_protocol_violation():
    srv = _Scripted(await _answer_each_request_with(greet=b"220 smtp ready\n"))
    port = await srv.start()
    with pytest.raises(ProtocolViolation, match="cannot read"):
        await CtiClient.connect("127.0.0.1", port, timeout=5)
    await srv.stop()


async def test_a_server_that_never_greets_times_out():
    async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.read()

    srv = _Scripted(silent)
    port = await srv.start()
    with pytest.raises(TimeoutError):
        await CtiClient.connect("127.0.0.1", port, timeout=0.2)
    await srv.stop()


@pytest.mark.parametrize(
    ("reply", "fragment"),
    [
        (b"#99 OK\n", "tag '99', which no request is waiting for"),
        (b"#1 ITEM a=1\n#1 END count=5\n", "count=5 after 1 ITEM lines"),
        (b"#1 OK a=\n", "cannot read (missing value after 'a='"),
        (b"OK\n", "untagged OK line"),
    ],
)
async def test_a_reply_the_client_cannot_place_closes_the_connection(reply, fragment):
    srv = _Scripted(await _answer_each_request_with(reply))
    cti = await CtiClient.connect("127.0.0.1", await srv.start(), timeout=5)
    with pytest.raises(ProtocolViolation, match=re.escape(fragment)):
        await asyncio.wait_for(cti.request("PING"), 5)
    assert cti.closed
    await cti.close()
    await srv.stop()


async def test_an_untagged_err_answers_the_oldest_request():
    srv = _Scripted(await _answer_each_request_with(
        b'ERR code=bad_syntax msg="could not read your tag"\n#2 OK\n'))
    cti = await CtiClient.connect("127.0.0.1", await srv.start(), timeout=5)
    first, second = cti.submit("PING"), cti.submit("PING")
    await cti.drain()
    with pytest.raises(ReplyError, match="could not read your tag"):
        await asyncio.wait_for(first, 5)
    assert (await asyncio.wait_for(second, 5)).fields == {}
    await cti.close()
    await srv.stop()


async def test_overloaded_then_closed_is_reported_as_overload():
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"HELLO x/1 proto=1\n")
        await r.readline()
        w.write(b'ERR code=overloaded msg="you did not read fast enough"\n')
        await w.drain()

    srv = _Scripted(script)
    cti = await CtiClient.connect("127.0.0.1", await srv.start(), timeout=5)
    with pytest.raises(ConnectionLost, match="dropped the connection: overloaded: you did not"):
        await asyncio.wait_for(cti.request("PING"), 5)
    await cti.close()
    await srv.stop()


async def test_a_last_reply_without_newline_before_the_server_closes_is_not_lost():
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"HELLO x/1 proto=1\n")
        await r.readline()
        w.write(b"#1 OK last=true")  # then close: the reply must still arrive

    srv = _Scripted(script)
    cti = await CtiClient.connect("127.0.0.1", await srv.start(), timeout=5)
    assert (await asyncio.wait_for(cti.request("PING"), 5)).fields == {"last": "true"}
    await cti.close()
    await srv.stop()


# --- the real daemon ---------------------------------------------------------------


async def test_the_client_drives_the_real_daemon(tmp_path):
    with running(tmp_path) as d:
        async with await CtiClient.connect("127.0.0.1", d.port, timeout=5) as cti:
            assert cti.server_version.startswith("switchd/")
            with pytest.raises(ReplyError) as caught:
                await cti.request("CALLS")
            assert caught.value.code == "not_authenticated"
            with pytest.raises(ReplyError, match="forbidden"):
                await cti.auth("admin", "wrong")
            await cti.auth("admin", "demo-admin")
            assert cti.role == "admin"
            verbs = await cti.request("HELP")
            assert verbs.items is not None and verbs["count"] == str(len(verbs.items))
            assert (await cti.request("HELP", "PING"))["usage"] == "PING"
            await cti.sub("call.*")
            await cti.request("SIM.AGENT", ext=201, mode="auto", answer_after=0, talk=3600)
            call = str((await cti.request("SIM.CALL", caller="13800138000", dnis="8200"))["call"])
            names = []
            async for event in cti.events():
                if event.fields.get("call") == call:
                    names.append(event.event_name)
                if event.event_name == "call.bridged":
                    break
            assert names == ["call.new", "call.ringing", "call.answered", "call.bridged"]
            await cti.format_json()
            assert (await cti.request("PING"))["pong"] is True
            calls = await cti.request("CALLS")
            assert [c["call"] for c in calls.items or ()] == [call]
            await cti.request("SIM.HANGUP", call=call)
            async for event in cti.events():
                if event.event_name == "call.ended":
                    assert event.fields["call"] == call
                    assert event.fields["duration"] >= 0  # a JSON number now
                    break
            await cti.quit()
        assert d.stop() == 0
        if d.proc.stderr is not None:
            d.proc.stderr.close()
