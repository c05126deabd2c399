"""The CTI server in-process: a real TCP socket, a stand-in verb handler."""

from __future__ import annotations

import asyncio
import json

from switchd.cti.codec import Request
from switchd.cti.server import CtiServer, Reply, Session
from switchd.events import CallNew, LineState
from switchd.exceptions import ProtocolError
from tests.daemon import Client, fields


async def _handler(session: Session, req: Request) -> Reply:
    if req.verb == "BOOM":
        raise ZeroDivisionError("a bug in a verb")
    if req.verb == "DENY":
        raise ProtocolError("forbidden", "not for you")
    if req.verb == "SUB":
        session.subscribed = True
        session.patterns = tuple(req.args.get("events", "*").split(","))
        return Reply({})
    if req.verb == "AGENT":
        session.agent_line = req.args["line"]
        return Reply({})
    if req.verb == "FORMAT":
        session.decoder.json_mode = True
        return Reply({"format": "json"})
    if req.verb == "LIST":
        n = int(req.args["n"])
        return Reply(items=[{"i": i} for i in range(n)])
    if req.verb == "SLOW":
        await asyncio.sleep(0.05)
    return Reply({"verb": req.verb, **req.args})


async def _server(**kw: object) -> CtiServer:
    server = CtiServer(_handler, host="127.0.0.1", port=0, version="9.9", **kw)  # type: ignore[arg-type]
    await server.start()
    return server


async def test_a_bug_in_a_verb_is_err_internal_and_the_connection_survives():
    server = await _server()
    c = await Client.connect(server.port)
    assert c.greeting == "HELLO switchd/9.9 proto=1"
    lines = await c.cmd("BOOM")
    assert fields(lines[-1])["code"] == "internal" and "ZeroDivisionError" in lines[-1]
    assert fields((await c.cmd("DENY"))[-1])["code"] == "forbidden"
    assert (await c.ok("PING"))["verb"] == "PING"
    await c.close()
    await server.close()


async def test_pipelined_requests_are_answered_in_order_with_their_tags():
    server = await _server()
    c = await Client.connect(server.port)
    await c.send_raw(b"#a SLOW\n#b PING x=1\n#c LIST n=3\n#d BOOM\n")
    got = [await c.line() for _ in range(7)]
    assert got[0] == "#a OK verb=SLOW"
    assert got[1] == "#b OK verb=PING x=1"
    assert got[2:6] == ["#c ITEM i=0", "#c ITEM i=1", "#c ITEM i=2", "#c END count=3"]
    assert got[6].startswith("#d ERR code=internal")
    await c.close()
    await server.close()


async def test_json_mode_after_format_reply_and_events():
    server = await _server()
    c = await Client.connect(server.port)
    await c.ok("SUB events=call.*")
    assert (await c.cmd("FORMAT json"))[-1] == "OK format=json"
    await c.send_raw(b'{"verb": "LIST", "tag": "q", "n": "2"}\n')
    got = [json.loads(await c.line()) for _ in range(3)]
    assert got == [{"type": "ITEM", "tag": "q", "i": 0}, {"type": "ITEM", "tag": "q", "i": 1},
                   {"type": "END", "tag": "q", "count": 2}]
    server.publish(CallNew("01ARZ3NDEKTSV4RRFFQ69G5FAV", 1_764_000_000.5, "inbound", "100", "8000",
                           trunk=3))
    server.publish(LineState("trunk/3", "alerting", "idle", 1_764_000_000.5))
    ev = json.loads(await c.line())
    assert ev == {"type": "EVENT", "event": "call.new", "call": "01ARZ3NDEKTSV4RRFFQ69G5FAV",
                  "time": "2025-11-24T16:00:00.500Z", "direction": "inbound", "caller": "100",
                  "callee": "8000", "trunk": 3}
    await c.close()
    await server.close()


async def test_subscription_patterns_and_agent_scope_filter_events():
    server = await _server()
    sup = await Client.connect(server.port)
    await sup.ok("SUB events=line.*")
    agent = await Client.connect(server.port)
    await agent.ok("SUB")
    await agent.ok("AGENT line=ext/201")
    server.publish(CallNew("C1", 1.0, "inbound", "100", "8000", trunk=1))
    server.publish(LineState("ext/202", "alerting", "idle", 1.0, "C2"))
    server.publish(LineState("ext/201", "alerting", "idle", 1.0, "C1"))
    server.publish(CallNew("C9", 1.0, "inbound", "100", "8000", trunk=2))
    await sup.ok("PING")
    await agent.ok("PING")
    assert [(e["event"], e.get("line")) for e in sup.events] == [
        ("line.state", "ext/202"), ("line.state", "ext/201")]
    assert [(e["event"], e.get("line")) for e in agent.events] == [("line.state", "ext/201")]
    await sup.close()
    await agent.close()
    await server.close()


async def test_a_long_list_reply_does_not_count_as_falling_behind():
    server = await _server(outbound_queue=4)
    c = await Client.connect(server.port)
    lines = await c.cmd("LIST n=5000", timeout=10)
    assert lines[-1] == "END count=5000" and len(lines) == 5001
    await c.close()
    await server.close()


async def test_quit_replies_and_then_the_server_closes_the_connection():
    from switchd.cti.commands import Commands

    class _App:
        pass

    server = CtiServer(Commands(_App()), host="127.0.0.1", port=0, version="9.9")  # type: ignore[arg-type]
    await server.start()
    c = await Client.connect(server.port)
    await c.send_raw(b"#q QUIT\n")
    assert await c.line() == "#q OK bye=true"
    assert await asyncio.wait_for(c.reader.read(), 2) == b""
    await c.close()
    await server.close()


async def test_events_held_during_a_slow_verb_are_bounded_like_the_queue():
    server = await _server(outbound_queue=8)
    c = await Client.connect(server.port)
    await c.ok("SUB")
    await c.send_raw(b"SLOW\n")
    await asyncio.sleep(0.01)  # the verb is now running and holding this session's events
    for i in range(20):
        server.publish(LineState(f"ext/{i}", "alerting", "idle", 1.0))
    data = await asyncio.wait_for(c.reader.read(), 5)
    assert b"ERR code=overloaded" in data
    await c.close()
    await server.close()


async def test_an_agent_forgets_a_call_when_it_ends_even_without_subscribing_to_call_ended():
    from switchd.events import CallEnded, Cdr, Disposition, HangupCause

    server = await _server()
    agent = await Client.connect(server.port)
    await agent.ok("SUB events=line.state")
    await agent.ok("AGENT line=ext/201")
    session = next(iter(server.sessions))
    for i in range(50):
        server.publish(LineState("ext/201", "alerting", "idle", 1.0, f"C{i}"))
        cdr = Cdr(f"C{i}", f"C{i}", "1", "2", "", 1.0, None, 2.0, 1, 0, "NO ANSWER", "inbound")
        cause = HangupCause.NO_USER_RESPONSE
        server.publish(CallEnded(f"C{i}", 2.0, Disposition.NO_ANSWER, 1, 0, "caller", cause,
                                 cause.value[1], cdr))
    await agent.ok("PING")
    assert session.own_calls == set()
    await agent.close()
    await server.close()


async def _half_close(port: int, data: bytes) -> bytes:
    """Send ``data``, half-close (as ``nc`` does on Ctrl-D) and read until the server closes."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        assert (await asyncio.wait_for(r.readline(), 5)).startswith(b"HELLO ")
        w.write(data)
        w.write_eof()
        return await asyncio.wait_for(r.read(), 5)
    finally:
        w.close()


async def test_a_last_line_without_newline_is_answered_after_a_half_close():
    server = await _server()
    got = await _half_close(server.port, b"#a PING\n#last SLOW x=1")
    assert got == b"#a OK verb=PING\n#last OK verb=SLOW x=1\n"
    await server.close()


async def test_a_lone_last_line_with_cr_but_no_lf_is_answered_after_a_half_close():
    server = await _server()
    assert await _half_close(server.port, b"#only LIST n=2\r") == (
        b"#only ITEM i=0\n#only ITEM i=1\n#only END count=2\n"
    )
    await server.close()


async def test_a_bad_last_line_gets_its_error_after_a_half_close():
    server = await _server()
    got = await _half_close(server.port, b'#bad PING a="open')
    assert got.startswith(b"#bad ERR code=bad_syntax msg=\"unterminated quote")
    await server.close()


async def test_an_over_long_last_line_is_refused_once_after_a_half_close():
    server = await _server(max_line_bytes=64)
    got = await _half_close(server.port, b"#ok PING\n#big PING " + b"x" * 200)
    lines = got.decode().splitlines()
    assert lines[0] == "#ok OK verb=PING"
    assert len(lines) == 2 and lines[1].startswith("#big ERR code=line_too_long")
    await server.close()


async def test_a_last_json_line_without_newline_is_answered_after_a_half_close():
    server = await _server()
    r, w = await asyncio.open_connection("127.0.0.1", server.port)
    await asyncio.wait_for(r.readline(), 5)
    w.write(b"FORMAT json\n")
    assert await asyncio.wait_for(r.readline(), 5) == b"OK format=json\n"
    w.write(b'{"verb":"PING","tag":"j","n":1}')
    w.write_eof()
    assert json.loads(await asyncio.wait_for(r.read(), 5)) == {
        "type": "OK", "tag": "j", "verb": "PING", "n": "1"}
    w.close()
    await server.close()
