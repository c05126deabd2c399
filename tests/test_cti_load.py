"""Delivery under load (issue 17 item 7), on the real daemon over real sockets.

A client that stops reading fills only its own outbound queue and is dropped with
``ERR overloaded``, while 50 others receive every event, in the same order; some of
them send requests all along (a softphone does), so a reply and the events around it
must not reorder the stream either. A client that reconnects mid-call finds the call,
its agent and its queue with ``CALLS``, ``AGENT.LIST`` and ``QUEUE.STATUS`` as the
events it saw left them, and follows the call from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from pathlib import Path
from typing import Any

from tests.daemon import Client, fields, make_config, running

QUEUE_DNIS = "6000"
AGENTS = 12


def _config(**overrides: Any) -> dict[str, Any]:
    """Queue ``q`` (linear, no prompts, no wrap-up) with 12 bot agents that answer at once
    and talk briefly, on 60 trunks, so a round of calls is over in about a second. No
    recording: its events come from the writer thread, after the calls."""
    agents = [{"id": f"a{i}", "extension": 201 + i, "queues": {"q": 0}, "login": True}
              for i in range(AGENTS)]
    q = {"strategy": "linear", "ring_timeout_s": 10, "wrapup_s": 0, "music": False}
    return make_config(queues={"q": q}, agents=agents, queue_routes={QUEUE_DNIS: "q"},
                       **{"board.trunks": 60, "board.extensions": AGENTS,
                          "sim.bots.mode": "auto", "sim.bots.answer_after_s": 0.05,
                          "sim.bots.talk_s": [0.05, 0.2], "recording.mode": "off",
                          **overrides})


class Reader:
    """A subscribed client that reads everything; its event lines are kept whole, in order.

    With ``ping_every`` it also sends ``PING`` that often and times each reply, so
    replies are interleaved with the events it receives.
    """

    def __init__(self, client: Client, ping_every: float | None = None) -> None:
        self.c = client
        self.events: list[str] = []
        self.pongs: list[float] = []
        self.ping_every = ping_every
        self.eof = False
        self._sent: list[float] = []
        self.task = asyncio.create_task(self._read())
        self.pinger = asyncio.create_task(self._ping()) if ping_every else None

    async def _read(self) -> None:
        while True:
            raw = await self.c.reader.readline()
            if not raw:
                self.eof = True
                return
            line = raw.decode().rstrip("\n")
            if line.startswith("EVENT "):
                self.events.append(line)
            elif line.startswith("OK pong=") and self._sent:
                self.pongs.append(time.monotonic() - self._sent.pop(0))

    async def _ping(self) -> None:
        assert self.ping_every is not None
        while True:
            self._sent.append(time.monotonic())
            self.c.writer.write(b"PING\n")
            await asyncio.sleep(self.ping_every)

    async def stop(self) -> None:
        for t in (self.pinger, self.task):
            if t is not None:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
        await self.c.close()


async def _subscribed(port: int, user: str = "crm", secret: str = "demo") -> Client:
    c = await Client.connect(port)
    await c.ok(f"AUTH user={user} secret={secret}")
    await c.ok("SUB")
    return c


async def _stalled(port: int) -> socket.socket:
    """A client that logs in, subscribes to every event and then never reads again.

    A bare socket, not a stream: asyncio's stream reader would go on reading into its
    own buffer. Its receive buffer is made small so that the kernel holds little for it.
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, b"AUTH user=crm secret=demo\nSUB\n")
    got = b""
    while got.count(b"\n") < 3:  # HELLO, OK (AUTH), OK (SUB): nothing else is sent before
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1), 10)
        assert chunk, f"closed during login: {got!r}"
        got += chunk
    assert [x.split(b" ")[0] for x in got.splitlines()] == [b"HELLO", b"OK", b"OK"], got
    return sock


async def _read_to_eof(sock: socket.socket) -> list[bytes]:
    """Everything the server still sends on ``sock``, as lines, up to its EOF."""
    loop = asyncio.get_running_loop()
    data = b""
    while chunk := await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), 10):
        data += chunk
    return data.splitlines()


async def _offer(admin: Client, first: int, n: int) -> list[str]:
    """Offer ``n`` calls to the queue at once (pipelined); returns their call ids."""
    tags = [f"c{first + i}" for i in range(n)]
    admin.writer.write(b"".join(f"#{t} SIM.CALL caller={7_000_000 + first + i} "
                                f"dnis={QUEUE_DNIS}\n".encode() for i, t in enumerate(tags)))
    await admin.writer.drain()
    ids = []
    for t in tags:
        lines = await admin.reply(t, timeout=10)
        assert lines[-1].split(" ", 1)[1].startswith("OK"), lines
        ids.append(fields(lines[-1].split(" ", 1)[1])["call"])
    return ids


async def _until(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_a_client_that_stops_reading_is_dropped_while_50_others_receive_every_event(
        tmp_path: Path) -> None:
    with running(tmp_path, _config(**{"cti.outbound_queue": 256})) as d:
        readers = [Reader(await _subscribed(d.port), ping_every=0.05 if i % 10 == 0 else None)
                   for i in range(50)]
        sock = await _stalled(d.port)
        admin = await Client.connect(d.port)
        await admin.ok("AUTH user=admin secret=demo-admin")
        await admin.ok("SUB events=call.ended")
        offered: list[str] = []
        # Rounds of calls until the stalled client has been dropped (its kernel buffers
        # hold a few hundred kB first), then one more round that only the 50 see.
        dropped_at = None
        for rnd in range(40):
            ids = await _offer(admin, len(offered), 20)
            offered += ids
            for call in ids:
                await admin.wait_event("call.ended", timeout=30, call=call)
            if dropped_at is not None:
                break
            if any('"cti_client_overloaded"' in x for x in d.log_lines()):
                dropped_at = rnd
        assert dropped_at is not None, "the client that stopped reading was never dropped"
        # A last event after all the others: a reader that has it has everything before it.
        await admin.ok("SUPER.AGENT agent=a0 state=not_ready reason=sentinel")
        sentinel = "EVENT agent.state agent=a0 state=not_ready"

        def done(r: Reader) -> bool:
            return r.eof or any(e.startswith(sentinel) for e in r.events)

        await _until(lambda: all(done(r) for r in readers), 30, "every reader to see the end")
        for r in readers:
            if not r.eof:
                del r.events[next(i for i, e in enumerate(r.events) if e.startswith(sentinel)):]

        # The daemon still answers at once.
        t0 = time.monotonic()
        assert (await admin.cmd("PING"))[-1].startswith("OK")
        assert time.monotonic() - t0 < 0.5

        ref = readers[0].events
        assert len(ref) > 20 * 10, len(ref)
        assert {fields("X " + e.split(" ", 2)[2])["call"] for e in ref
                if e.startswith("EVENT call.ended ")} == set(offered)
        for i, r in enumerate(readers):
            assert not r.eof, f"reader {i} was disconnected"
            if r.events != ref:
                pairs = enumerate(zip(r.events, ref, strict=False))
                diff = next((k for k, (a, b) in pairs if a != b), min(len(r.events), len(ref)))
                raise AssertionError(
                    f"reader {i} ({'pinging' if r.ping_every else 'quiet'}) got "
                    f"{len(r.events)} events, reader 0 {len(ref)}; first difference at "
                    f"{diff}: {r.events[diff:diff + 2]} vs {ref[diff:diff + 2]}")
        pongs = [p for r in readers for p in r.pongs]
        assert len(pongs) > 20 and max(pongs) < 2.0, (len(pongs), max(pongs, default=None))

        # The stalled client: whatever was in flight, then ERR overloaded, then EOF.
        lines = await _read_to_eof(sock)
        assert lines[-1].startswith(b"ERR code=overloaded"), lines[-3:]
        assert all(x.startswith(b"EVENT ") for x in lines[:-1])
        assert len(lines) - 1 < len(ref), "the stalled client should have missed events"
        overloaded = [x for x in d.log_lines() if '"cti_client_overloaded"' in x]
        assert len(overloaded) == 1, overloaded
        sock.close()
        for r in readers:
            await r.stop()
        await admin.close()


def _items(lines: list[str]) -> list[dict[str, str]]:
    assert lines[-1].startswith("END"), lines
    return [fields(x.replace("ITEM", "X", 1)) for x in lines[:-1]]


async def test_a_client_reconnecting_mid_call_resyncs_with_calls_agent_list_and_queue_status(
        tmp_path: Path) -> None:
    cfg = _config(**{"sim.bots.talk_s": [3600, 3600], "sim.caller_talk_s": [3600, 3600]})
    with running(tmp_path, cfg) as d:
        admin = await Client.connect(d.port)
        await admin.ok("AUTH user=admin secret=demo-admin")
        await admin.ok("SUB events=queue.connected")
        crm = await _subscribed(d.port)
        call = (await _offer(admin, 0, 1))[0]
        connected = await crm.wait_event("queue.connected", call=call)
        agent = connected["agent"]
        # The agent's last state change the client saw before it went away.
        await crm.wait_event("agent.state", agent=agent, state="on_call")
        seen = [e for e in crm.events if e.get("call") == call or e.get("agent") == agent]
        await crm.close()

        # Away: a second caller queues up and is answered by the next agent.
        second = (await _offer(admin, 1, 1))[0]
        await admin.wait_event("queue.connected", call=second)

        back = await _subscribed(d.port)
        calls = {c["call"]: c for c in _items(await back.cmd("CALLS"))}
        assert set(calls) == {call, second}, calls
        line_state = [e for e in seen if e["event"] == "line.state" and e.get("call") == call]
        lines_seen = {e["line"] for e in line_state if e["state"] == "connected"}
        assert lines_seen <= set(calls[call]["lines"].split(",")), (lines_seen, calls[call])
        agents = {a["agent"]: a for a in _items(await back.cmd("AGENT.LIST"))}
        assert agents[agent]["state"] == "on_call" and agents[agent]["call"] == call
        # The second call's agent is on a call too, though this client never saw it happen.
        busy = {a["agent"] for a in agents.values() if a["state"] == "on_call"}
        assert len(busy) == 2 and agent in busy, busy
        status = _items(await back.cmd("QUEUE.STATUS queue=q"))
        head = status[0]
        assert head["kind"] == "queue" and head["on_call"] == "2" and head["waiting"] == "0"
        members = {s["agent"]: s for s in status if s["kind"] == "agent"}
        assert members[agent]["state"] == "on_call"
        assert int(head["ready"]) == AGENTS - 2

        # It follows the call from here: the caller hangs up, the reconnected client sees it.
        await admin.ok(f"SIM.HANGUP call={call}")
        ended = await back.wait_event("call.ended", call=call)
        assert ended["disposition"] == "ANSWERED"
        await back.wait_event("agent.state", agent=agent, state="ready")
        calls = {c["call"] for c in _items(await back.cmd("CALLS"))}
        assert calls == {second}
        await back.close()
        await admin.close()
