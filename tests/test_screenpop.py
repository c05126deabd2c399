"""The screen pop (``call.offered``): which rings pop, the caller's history from the stored
CDRs, a look-up slower than the phone, a failing database; then on the real daemon, who
receives it and what a returning caller's pop says.

The service tests drive :class:`~switchd.screenpop.ScreenPop` with real core ``Call`` and
``Offer`` values and a store that answers when the test says so; the daemon tests go
through real sockets, SQLite and recordings.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from switchd.core.call import Call, Offer, OfferPurpose
from switchd.events import (
    CallEnded,
    CallNew,
    CallOffered,
    CallRinging,
    Cdr,
    Direction,
    Disposition,
    Event,
    HangupCause,
    QueueCallback,
)
from switchd.screenpop import ScreenPop
from switchd.store import Store, schema
from switchd.timefmt import iso_utc
from tests.daemon import Client, fields, make_config, running

T0 = 1_796_000_000.0
CALL = "01M98CALL000000000000000001"
NUMBER = "13900000001"


class FakeStore:
    """Answers ``call_history`` with ``answer`` (raises it when an exception), after
    ``gate`` opens when one is set."""

    def __init__(self, answer: dict[str, object] | Exception | None = None) -> None:
        self.answer: dict[str, object] | Exception = (
            answer if answer is not None else {"calls": 0, "last": None})
        self.gate: asyncio.Event | None = None
        self.asked: list[str] = []

    async def call_history(self, number: str) -> dict[str, object]:
        self.asked.append(number)
        if self.gate is not None:
            await self.gate.wait()
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def make_call(direction: Direction = Direction.INBOUND, *, caller: str = NUMBER,
              callee: str = "6000", **kw: Any) -> Call:
    return Call(CALL, direction, caller, callee, T0, "trunk/1", dnis=callee, trunk=1, **kw)


def ring(call: Call, line: str, purpose: OfferPurpose = OfferPurpose.CONNECT, *,
         routed: bool = False, at: float = T0 + 10) -> CallRinging:
    """Put an offer of ``line`` on ``call`` as the core does, and its call.ringing."""
    call.offers[line] = Offer(line, purpose, at + 15, routed)
    return CallRinging(call.call_id, at, line, call.caller, call.callee)


def service(call: Call, store: FakeStore, sent: list[Event], **kw: Any) -> ScreenPop:
    async def flush() -> None:
        return None
    return ScreenPop({call.call_id: call}, store, flush=flush, publish=sent.append,
                     agent_at=lambda line: {"ext/201": "a1", "ext/202": "a2"}.get(line), **kw)


async def settle() -> None:
    """Let the look-up task and its done callback run (no time passes)."""
    for _ in range(10):
        await asyncio.sleep(0)


def pops(sent: list[Event]) -> list[CallOffered]:
    return [e for e in sent if isinstance(e, CallOffered)]


# --- which rings pop ------------------------------------------------------------------


@pytest.mark.parametrize("purpose, routed, agent", [
    (OfferPurpose.CONNECT, False, "a1"),   # the ACD's offer: a queue, a ring group
    (OfferPurpose.CONNECT, True, None),    # the core's own: a direct call, a transfer
    (OfferPurpose.CONSULT, True, None),    # the agent consulted
])
async def test_rings_that_take_the_call_pop_once_with_the_acd_agent_only_for_acd_offers(
        purpose, routed, agent):
    call, sent = make_call(), []
    pop_service = service(call, FakeStore(), sent)
    pop_service.on_event(ring(call, "ext/201", purpose, routed=routed))
    await settle()
    [pop] = pops(sent)
    assert (pop.line, pop.agent, pop.caller, pop.dnis, pop.direction) == (
        "ext/201", agent, NUMBER, "6000", Direction.INBOUND)
    assert pop.new == 1 and pop.previous_calls == 0


@pytest.mark.parametrize("purpose", [OfferPurpose.MONITOR, OfferPurpose.ORIGINATE])
async def test_a_supervisors_monitor_ring_and_the_agents_own_dial_ring_do_not_pop(purpose):
    call, sent = make_call(), []
    pop_service = service(call, FakeStore(), sent)
    pop_service.on_event(ring(call, "ext/208", purpose, routed=True))
    await settle()
    assert pops(sent) == []


async def test_a_queue_callback_pops_on_the_agents_phone_with_the_customer_to_call_back():
    # The ACD rings agent a1 first (an Originate: no pop by itself), then says which
    # callback it dials (queue.callback dialling): that is the pop.
    call, sent = make_call(Direction.OUTBOUND, caller="201", callee="13900001111"), []
    pop_service = service(call, FakeStore(), sent)
    pop_service.on_event(ring(call, "ext/201", OfferPurpose.ORIGINATE, routed=True))
    await settle()
    assert pops(sent) == []
    pop_service.on_event(QueueCallback(CALL, T0 + 10, "sales", "13900001111", "dialling",
                                       1, CALL, "a1"))
    await settle()
    [pop] = pops(sent)
    assert (pop.line, pop.agent, pop.queue, pop.callee, pop.direction) == (
        "ext/201", "a1", "sales", "13900001111", Direction.OUTBOUND)
    assert pop.new == 1


async def test_a_trunk_dialled_out_does_not_pop():
    call, sent = make_call(Direction.OUTBOUND, caller="201", callee="84001234"), []
    pop_service = service(call, FakeStore(), sent)
    pop_service.on_event(ring(call, "trunk/3", routed=True))
    await settle()
    assert pops(sent) == []


async def test_wait_is_the_queue_wait_while_queued_and_the_call_age_otherwise():
    queued = make_call(queue="q", queue_wait_s=2.0, queue_since=T0 + 5)
    after_queue = make_call(queue="q", queue_wait_s=3.0)   # answered, then transferred
    direct = make_call()
    waits = []
    for call in (queued, after_queue, direct):
        sent: list[Event] = []
        service(call, FakeStore(), sent).on_event(ring(call, "ext/201", at=T0 + 10))
        await settle()
        [pop] = pops(sent)
        waits.append((pop.queue, pop.wait_s))
    assert waits == [("q", 7.0), (None, 3.0), (None, 10.0)]


async def test_the_pop_carries_the_calls_ivr_path_vars_and_vip_flag():
    call, sent = make_call(ivr_path="desk:tag>wait", ivr_vars='{"topic": "billing"}',
                           vip=True), []
    service(call, FakeStore(), sent).on_event(ring(call, "ext/201"))
    await settle()
    wire = pops(sent)[0].fields()
    assert (wire["ivr_path"], json.loads(wire["ivr_vars"]), wire["vip"]) == (
        "desk:tag>wait", {"topic": "billing"}, True)


# --- history --------------------------------------------------------------------------


async def test_history_started_at_call_new_is_ready_when_the_phone_rings():
    last = {"uniqueid": "01OLD", "start": "2026-12-01T09:00:00.000Z", "agent": "a1",
            "extension": 201, "recording_id": "01OLD", "note": "wants a refund"}
    call, sent = make_call(), []
    store = FakeStore({"calls": 2, "last": last})
    pop_service = service(call, store, sent)
    pop_service.on_event(CallNew(CALL, T0, Direction.INBOUND, NUMBER, "6000", trunk=1))
    await settle()
    pop_service.on_event(ring(call, "ext/201"))
    # Out at once, in the same dispatch as the ring: nothing left to wait for.
    [pop] = pops(sent)
    assert (pop.new, pop.previous_calls, pop.last_time, pop.last_agent, pop.last_extension,
            pop.last_recording, pop.last_note) == (
        0, 2, "2026-12-01T09:00:00.000Z", "a1", 201, "01OLD", "wants a refund")
    assert store.asked == [NUMBER]   # one look-up per call, however many rings


async def test_with_nobody_listening_for_pops_the_history_is_read_at_the_ring_not_ahead():
    call, sent = make_call(), []
    store = FakeStore({"calls": 2, "last": None})
    listening = [False]
    pop_service = service(call, store, sent, listened=lambda: listening[0])
    pop_service.on_event(CallNew(CALL, T0, Direction.INBOUND, NUMBER, "6000", trunk=1))
    await settle()
    assert store.asked == []          # no client, no read: a busy switch saves the query
    listening[0] = True               # a softphone subscribed meanwhile; its phone rings
    pop_service.on_event(ring(call, "ext/201"))
    await settle()
    [pop] = pops(sent)
    assert pop.previous_calls == 2 and store.asked == [NUMBER]


async def test_a_pop_waits_for_a_slow_lookup_and_goes_only_to_phones_still_ringing():
    call, sent = make_call(), []
    store = FakeStore({"calls": 1, "last": None})
    store.gate = asyncio.Event()
    pop_service = service(call, store, sent)
    for line in ("ext/201", "ext/202", "ext/203"):   # a ring-all group
        pop_service.on_event(ring(call, line))
    await settle()
    assert pops(sent) == []
    del call.offers["ext/202"]                  # it rang out
    del call.offers["ext/203"]                  # it answered: the pop is its all the more
    call.legs["ext/203"] = None
    store.gate.set()
    await settle()
    assert [(p.line, p.previous_calls) for p in pops(sent)] == [("ext/201", 1), ("ext/203", 1)]


async def test_the_lookup_waits_for_the_cdr_writer_first_but_a_stuck_writer_only_costs_flush_s():
    order: list[str] = []
    written = asyncio.Event()

    class Recording(FakeStore):
        async def call_history(self, number: str) -> dict[str, object]:
            order.append("query")
            return await super().call_history(number)

    async def flush() -> None:
        order.append("flush")
        await written.wait()   # the CDRs of calls that just ended are being written
        order.append("flushed")

    call, sent = make_call(), []
    pop_service = ScreenPop({CALL: call}, Recording(), flush=flush, publish=sent.append,
                            agent_at=lambda line: None, flush_s=5.0)
    pop_service.on_event(ring(call, "ext/201"))
    await settle()
    assert order == ["flush"] and pops(sent) == []
    written.set()
    await settle()
    assert order == ["flush", "flushed", "query"] and pops(sent)[0].new == 1

    # A writer that never finishes: the query runs after flush_s all the same.
    order.clear()
    written.clear()
    other, sent = make_call(), []
    pop_service = ScreenPop({CALL: other}, Recording(), flush=flush, publish=sent.append,
                            agent_at=lambda line: None, flush_s=0.05)
    pop_service.on_event(ring(other, "ext/201"))
    for _ in range(100):
        if pops(sent):
            break
        await asyncio.sleep(0.01)
    assert order == ["flush", "query"] and pops(sent)[0].history_error is None


async def test_an_ended_call_drops_its_lookup_and_the_pops_waiting_for_it():
    call, sent = make_call(), []
    store = FakeStore()
    store.gate = asyncio.Event()
    pop_service = service(call, store, sent)
    pop_service.on_event(ring(call, "ext/201"))
    cdr = Cdr(CALL, CALL, NUMBER, "6000", NUMBER, T0, None, T0 + 11, 11, 0, "NO ANSWER",
              "inbound")
    pop_service.on_event(CallEnded(CALL, T0 + 11, Disposition.NO_ANSWER, 11, 0, "caller",
                                   HangupCause.NORMAL_CLEARING, 16, cdr))
    store.gate.set()
    await settle()
    assert pops(sent) == []


async def test_an_internal_call_pops_at_once_without_history():
    call, sent = make_call(Direction.INTERNAL, caller="205", callee="202"), []
    store = FakeStore()
    service(call, store, sent).on_event(ring(call, "ext/202", routed=True))
    [pop] = pops(sent)
    assert pop.new is None and "previous_calls" not in pop.fields() and store.asked == []


async def test_an_outbound_call_looks_up_the_number_it_dialled():
    call, sent = make_call(Direction.OUTBOUND, caller="201", callee="84001234"), []
    store = FakeStore()
    service(call, store, sent).on_event(ring(call, "ext/202", routed=True))  # a transfer
    await settle()
    assert store.asked == ["84001234"] and pops(sent)[0].new == 1


async def test_a_failing_database_sends_pops_without_history_and_logs_once_until_it_recovers():
    store = FakeStore(sqlite3.OperationalError("disk I/O error"))
    sent: list[Event] = []
    calls = {f"01M98CALL00000000000000000{n}": make_call() for n in range(3)}
    for cid, call in calls.items():
        call.call_id = cid

    async def flush() -> None:
        return None
    pop_service = ScreenPop(calls, store, flush=flush, publish=sent.append,
                            agent_at=lambda line: None)
    with capture_logs() as logs:
        for n, call in enumerate(calls.values()):
            if n == 2:
                store.answer = {"calls": 0, "last": None}
            pop_service.on_event(ring(call, "ext/201"))
            await settle()
    got = pops(sent)
    assert [p.history_error is not None for p in got] == [True, True, False]
    assert got[0].new is None and "call_history_failed" in (got[0].history_error or "")
    failed = [e for e in logs if e["event"] == "call_history_failed"]
    assert len(failed) == 1 and "disk I/O error" in failed[0]["error"]
    assert [e["failed"] for e in logs if e["event"] == "call_history_recovered"] == [2]


async def test_a_database_slower_than_the_bound_sends_the_pop_without_history():
    call, sent = make_call(), []
    store = FakeStore()
    store.gate = asyncio.Event()   # never opens
    pop_service = service(call, store, sent, timeout_s=0.05)
    with capture_logs():
        pop_service.on_event(ring(call, "ext/201"))
        for _ in range(100):
            if pops(sent):
                break
            await asyncio.sleep(0.01)
    [pop] = pops(sent)
    assert "longer than 0.05 s" in (pop.history_error or "") and pop.previous_calls is None


async def test_close_cancels_the_lookups_still_running():
    call, sent = make_call(), []
    store = FakeStore()
    store.gate = asyncio.Event()
    pop_service = service(call, store, sent)
    pop_service.on_event(ring(call, "ext/201"))
    await settle()
    await pop_service.close()
    store.gate.set()
    await settle()
    assert pops(sent) == []


# --- the store's query ----------------------------------------------------------------


def cdr(n: int, direction: str, src: str, dst: str, **kw: Any) -> Cdr:
    start = T0 + n * 100
    return Cdr(f"01M98CDR{n:018d}", f"01M98CDR{n:018d}", src, dst, src, start, None,
               start + 5, 5, 0, "NO ANSWER", direction, **kw)


async def test_the_store_counts_inbound_calls_from_and_outbound_calls_to_the_number(tmp_path):
    store = await Store.open(tmp_path / "switchd.db")
    try:
        await store.insert_cdrs([
            cdr(1, "inbound", NUMBER, "6000", agent="a1"),
            cdr(2, "outbound", "201", NUMBER, extension=201, note="called back"),
            cdr(3, "inbound", "13900000009", "6000"),          # someone else
            cdr(4, "internal", "201", "202"),
            cdr(5, "inbound", "6000", NUMBER),                  # dialled it: not its call
        ])
        history = await store.call_history(NUMBER)
        nobody = await store.call_history("13999999999")
    finally:
        await store.close()
    assert history["calls"] == 2
    assert history["last"] == {"uniqueid": f"01M98CDR{2:018d}", "start": iso_utc(T0 + 200),
                               "agent": None,
                               "extension": 201, "recording_id": None, "note": "called back"}
    assert nobody == {"calls": 0, "last": None}


def test_the_history_query_searches_indexes_and_never_scans_the_cdr_table(tmp_path):
    async def create() -> None:
        await (await Store.open(tmp_path / "switchd.db")).close()
    asyncio.run(create())
    with sqlite3.connect(tmp_path / "switchd.db") as db:
        plans = [" ".join(str(r[3]) for r in db.execute(f"EXPLAIN QUERY PLAN {sql}",
                                                          {"number": NUMBER}))
                 for sql in (schema.SQL_CALL_HISTORY_COUNT, schema.SQL_CALL_HISTORY_LAST)]
    for plan in plans:
        assert "SCAN cdr" not in plan, plan
        assert "cdr_src_start_idx" in plan and "cdr_dst_start_idx" in plan, plan


# --- on the real daemon ---------------------------------------------------------------

FLOW = """\
timezone: Asia/Shanghai
language: zh
start: tag
nodes:
  tag:
    type: set
    vars: {topic: billing}
    next: wait
  wait:
    type: queue
    queue: q
"""


def pop_config(tmp: Path) -> dict[str, Any]:
    """One queue ``q`` (6000 direct, 8100 through the flow above) answered by agent a1 at
    201; the simulated phones answer only when told."""
    flows = tmp / "flows"
    flows.mkdir(parents=True, exist_ok=True)
    (flows / "desk.yaml").write_text(FLOW, encoding="utf-8")
    cfg = make_config(queues={"q": {"strategy": "linear", "wrapup_s": 0, "ring_timeout_s": 30}},
                      agents=[{"id": "a1", "extension": 201, "queues": {"q": 0}, "login": True}],
                      queue_routes={"6000": "q"}, **{"sim.bots.mode": "manual"})
    cfg["ivr"]["flows_dir"] = str(flows)
    cfg["routes"].insert(0, {"dnis": "8100", "to": "flow:desk"})
    return cfg


async def login(port: int, user: str, secret: str = "demo", events: str = "*") -> Client:
    c = await Client.connect(port)
    await c.ok(f"AUTH user={user} secret={secret}")
    await c.ok(f"SUB events={events}")
    return c


async def test_a_returning_callers_pop_shows_the_last_call_and_reaches_only_the_offered_agent_and_the_crm(
        tmp_path):
    with running(tmp_path, pop_config(tmp_path)) as d:
        admin = await login(d.port, "admin", "demo-admin", "call.ended")
        agent1 = await login(d.port, "agent1")
        agent2 = await login(d.port, "agent2")
        crm = await login(d.port, "crm", events="call.offered")

        first = (await admin.ok(f"SIM.CALL caller={NUMBER} dnis=6000"))["call"]
        pop = await agent1.wait_event("call.offered", call=first)
        assert {k: pop[k] for k in ("line", "agent", "caller", "callee", "dnis", "direction",
                                    "queue", "vip", "new", "previous_calls")} == {
            "line": "ext/201", "agent": "a1", "caller": NUMBER, "callee": "6000",
            "dnis": "6000", "direction": "inbound", "queue": "q", "vip": "false",
            "new": "1", "previous_calls": "0"}
        assert float(pop["wait_s"]) >= 0 and "last_time" not in pop
        assert await crm.wait_event("call.offered", call=first) == pop
        await agent1.ok(f"CALL.ANSWER call={first}")
        await agent1.ok(f'CALL.NOTE call={first} text="wants a refund"')
        await agent1.ok(f"CALL.HANGUP call={first}")
        await admin.wait_event("call.ended", call=first)

        # At once: the first call's CDR may still be in the writer's queue.
        again = (await admin.ok(f"SIM.CALL caller={NUMBER} dnis=6000"))["call"]
        pop = await agent1.wait_event("call.offered", call=again)
        [row] = [fields(x.replace("ITEM", "X", 1))
                 for x in (await crm.cmd(f"CDR.QUERY caller={NUMBER}"))[:-1]
                 if f"uniqueid={first}" in x]
        assert row["recording_id"] == first   # recording.mode on_answer, the default
        assert {k: pop.get(k) for k in ("new", "previous_calls", "last_time", "last_agent",
                                        "last_extension", "last_recording", "last_note")} == {
            "new": "0", "previous_calls": "1", "last_time": row["start"],
            "last_agent": "a1", "last_extension": "201", "last_recording": first,
            "last_note": "wants a refund"}
        assert (await crm.wait_event("call.offered", call=again))["last_note"] == "wants a refund"

        # Another agent's own call reaches it, and is the first pop it ever gets.
        own = (await admin.ok("SIM.DIAL ext=205 number=202"))["call"]
        mine = await agent2.wait_event("call.offered", call=own)
        assert (mine["line"], mine["direction"], mine.get("new")) == ("ext/202", "internal", None)
        assert [e["call"] for e in agent2.events if e["event"] == "call.offered"] == [own]
        assert not [e for e in agent2.events if e.get("call") in (first, again)]
        for c in (admin, agent1, agent2, crm):
            await c.close()
        d.stop()


async def test_a_queue_call_from_a_flow_pops_with_its_queue_wait_and_ivr_variables(tmp_path):
    with running(tmp_path, pop_config(tmp_path)) as d:
        agent1 = await login(d.port, "agent1", events="call.*,queue.*")
        await agent1.ok("AGENT.NOTREADY reason=lunch")
        admin = await login(d.port, "admin", "demo-admin", "queue.join")
        call = (await admin.ok("SIM.CALL caller=13900000002 dnis=8100"))["call"]
        await admin.wait_event("queue.join", call=call, timeout=10)
        await asyncio.sleep(1.0)   # the caller waits: the pop must say how long
        await agent1.ok("AGENT.READY")
        pop = await agent1.wait_event("call.offered", call=call)
        assert (pop["queue"], pop["agent"], pop["ivr_path"], pop["new"]) == (
            "q", "a1", "desk:tag>wait", "1")
        assert json.loads(pop["ivr_vars"]) == {"topic": "billing"}
        assert 1.0 <= float(pop["wait_s"]) < 10
        # The pop follows the ring it is about.
        names = [e["event"] for e in agent1.events if e.get("call") == call]
        assert names.index("call.ringing") < names.index("call.offered")

        await admin.ok(f"SIM.HANGUP call={call}")
        await agent1.wait_event("call.ended", call=call)
        # A direct line rings the phone itself: no queue, no ACD agent.
        direct = (await admin.ok("SIM.CALL caller=13900000003 dnis=8200"))["call"]
        pop = await agent1.wait_event("call.offered", call=direct)
        assert "queue" not in pop and "agent" not in pop and pop["new"] == "1"
        for c in (admin, agent1):
            await c.close()
        d.stop()
    assert sum('"event":"call.offered"' in x for x in d.log_lines()) == 2


# --- the history kept in memory ---------------------------------------------------------


def _ended(call_id: str, start: float, *, agent: str | None = None,
           note: str | None = None) -> CallEnded:
    """call.ended of an answered inbound call from NUMBER, with its CDR."""
    cdr = Cdr(call_id, call_id, NUMBER, "6000", NUMBER, start, start + 1, start + 30, 30, 29,
              "ANSWERED", "inbound", trunk=1, extension=201, agent=agent,
              recording_id=call_id, note=note)
    return CallEnded(call_id, start + 30, Disposition.ANSWERED, 30, 29, "caller",
                     HangupCause.NORMAL_CLEARING, 16, cdr)


async def test_a_number_read_once_is_kept_current_from_the_calls_that_end():
    store = FakeStore({"calls": 2, "last": {"uniqueid": "01OLD", "start": "2026-11-01T09:00:00.000Z",
                                            "agent": "a1", "extension": 201,
                                            "recording_id": "01OLD", "note": None}})
    calls: dict[str, Call] = {}
    sent: list[Event] = []

    async def flush() -> None:
        return None
    pop_service = ScreenPop(calls, store, flush=flush, publish=sent.append,
                            agent_at=lambda line: None)
    first = make_call()
    calls[CALL] = first
    pop_service.on_event(CallNew(CALL, T0, Direction.INBOUND, NUMBER, "6000", trunk=1))
    await settle()
    pop_service.on_event(ring(first, "ext/201"))
    assert pops(sent)[-1].previous_calls == 2
    pop_service.on_event(_ended(CALL, T0, agent="a2", note="call back"))
    del calls[CALL]
    # The same number calls again: no read, and the call that just ended counts.
    second_id = "01M98CALL000000000000000002"
    second = Call(second_id, Direction.INBOUND, NUMBER, "6000", T0 + 60, "trunk/1",
                  dnis="6000", trunk=1)
    calls[second_id] = second
    pop_service.on_event(CallNew(second_id, T0 + 60, Direction.INBOUND, NUMBER, "6000",
                                 trunk=1))
    pop_service.on_event(ring(second, "ext/202"))
    pop = pops(sent)[-1]       # in the same dispatch as the ring
    assert (pop.previous_calls, pop.last_agent, pop.last_note, pop.last_recording) == (
        3, "a2", "call back", CALL)
    assert pop.last_time == iso_utc(T0)
    assert store.asked == [NUMBER]
    # A note written later on that ended call: the next pop reads the store again.
    pop_service.note_changed(CALL)
    pop_service.on_event(_ended(second_id, T0 + 60))
    third_id = "01M98CALL000000000000000003"
    calls[third_id] = Call(third_id, Direction.INBOUND, NUMBER, "6000", T0 + 120, "trunk/1",
                           dnis="6000", trunk=1)
    pop_service.on_event(CallNew(third_id, T0 + 120, Direction.INBOUND, NUMBER, "6000",
                                 trunk=1))
    await settle()
    assert store.asked == [NUMBER, NUMBER]


async def test_a_read_that_a_call_of_the_number_overtook_is_used_once_not_kept():
    store = FakeStore()
    store.gate = asyncio.Event()
    call, sent = make_call(), []
    pop_service = service(call, store, sent)
    pop_service.on_event(CallNew(CALL, T0, Direction.INBOUND, NUMBER, "6000", trunk=1))
    await settle()
    # Another call of the same number ends while the read is under way: the read may
    # or may not hold it, so its answer is not kept for the next call.
    pop_service.on_event(_ended("01M98CALL000000000000000009", T0 - 100))
    store.gate.set()
    await settle()
    pop_service.on_event(CallNew("01M98CALL00000000000000000A", T0 + 1, Direction.INBOUND,
                                 NUMBER, "6000", trunk=1))
    await settle()
    assert store.asked == [NUMBER, NUMBER]


def _ended_at(call_id: str, start: float, end: float, *, agent: str | None = None,
          number: str = NUMBER, direction: str = "inbound") -> CallEnded:
    src, dst = (number, "6000") if direction == "inbound" else ("201", number)
    cdr = Cdr(uniqueid=call_id, linkedid=call_id, src=src, dst=dst, clid="", start=start,
              answer=start + 1, end=end, duration=int(end - start), billsec=int(end - start - 1),
              disposition="ANSWERED", direction=direction, extension=201, agent=agent,
              recording_id=call_id)
    return CallEnded(call_id, end, Disposition.ANSWERED, 1, 1, "caller",
                     HangupCause.NORMAL_CLEARING, 16, cdr)


def _inbound(call_id: str, at: float) -> Call:
    return Call(call_id, Direction.INBOUND, NUMBER, "6000", at, "trunk/1", dnis="6000", trunk=1)


async def test_a_read_after_a_flush_that_timed_out_is_used_once_not_kept():
    """A CDR still in the writer's backlog when the read runs (flush timed out): the read
    does not hold it, nothing flags it, and the short count is kept for good."""
    store = FakeStore({"calls": 5, "last": None})   # the DB without the backlogged call
    calls: dict[str, Call] = {}
    sent: list[Event] = []
    stuck = asyncio.Event()

    async def flush() -> None:
        await stuck.wait()          # a writer behind by more than flush_s
    pop = ScreenPop(calls, store, flush=flush, publish=sent.append, agent_at=lambda line: None,
                    flush_s=0.01)
    # call A of NUMBER ends (its CDR waits in the writer); nothing known yet: no flag
    pop.on_event(_ended_at("01A", T0, T0 + 30))
    b = calls["01B"] = _inbound("01B", T0 + 40)
    pop.on_event(CallNew("01B", T0 + 40, Direction.INBOUND, NUMBER, "6000", trunk=1))
    await asyncio.sleep(0.05)
    pop.on_event(ring(b, "ext/201", at=T0 + 41))
    assert pops(sent)[-1].previous_calls == 5           # this pop: one call short (as before)
    # The writer catches up; B ends too: the stored CDRs now hold A and B (7).
    stuck.set()
    pop.on_event(_ended_at("01B", T0 + 40, T0 + 50))        # cache (if kept): 5 + 1 = 6
    store.answer = {"calls": 7, "last": None}
    c = calls["01C"] = _inbound("01C", T0 + 100)
    pop.on_event(CallNew("01C", T0 + 100, Direction.INBOUND, NUMBER, "6000", trunk=1))
    await asyncio.sleep(0.05)
    pop.on_event(ring(c, "ext/201", at=T0 + 101))
    await asyncio.sleep(0.05)
    shown = pops(sent)[-1].previous_calls
    assert shown == 7, f"cache says {shown}, the stored CDRs say 7 (and stays off by one)"


async def test_the_newest_call_is_the_latest_start_whichever_call_ends_last(tmp_path):
    """Two overlapping calls of one number: B starts after A but ends first. The store's
    'last' is B (newest start); the cache's is A (ended last)."""
    st = await Store.open(tmp_path / "db.sqlite")
    calls: dict[str, Call] = {}
    sent: list[Event] = []

    async def flush() -> None:
        return None
    # Seed one old call so the number is read once and cached.
    old = _ended_at("01OLD", T0 - 1000, T0 - 900, agent="a0")
    await st.insert_cdrs([old.cdr])
    pop = ScreenPop(calls, st, flush=flush, publish=sent.append, agent_at=lambda line: None)
    calls["01A"] = _inbound("01A", T0)
    pop.on_event(CallNew("01A", T0, Direction.INBOUND, NUMBER, "6000", trunk=1))
    await settle()
    await asyncio.sleep(0.05)
    calls["01B"] = _inbound("01B", T0 + 10)
    pop.on_event(CallNew("01B", T0 + 10, Direction.INBOUND, NUMBER, "6000", trunk=1))
    eb, ea = _ended_at("01B", T0 + 10, T0 + 20, agent="aB"), _ended_at("01A", T0, T0 + 60, agent="aA")
    for ev in (eb, ea):                # B ends first, then A (the long call)
        pop.on_event(ev)
        await st.insert_cdrs([ev.cdr])
    c = calls["01C"] = _inbound("01C", T0 + 100)
    pop.on_event(CallNew("01C", T0 + 100, Direction.INBOUND, NUMBER, "6000", trunk=1))
    pop.on_event(ring(c, "ext/201", at=T0 + 101))
    cached = pops(sent)[-1]
    fresh = await st.call_history(NUMBER)
    await st.close()
    assert (cached.previous_calls, cached.last_agent) == (fresh["calls"], fresh["last"]["agent"])


async def test_a_read_started_after_a_call_ended_is_kept_though_an_older_read_overlaps():
    """Read 1 in flight; a call ends; read 2 starts after (its flush covers that call);
    both end: neither is kept (the flag is per number, not per read)."""
    store = FakeStore({"calls": 1, "last": None})
    store.gate = asyncio.Event()
    calls: dict[str, Call] = {}
    sent: list[Event] = []

    async def flush() -> None:
        return None
    pop = ScreenPop(calls, store, flush=flush, publish=sent.append, agent_at=lambda line: None)
    calls["01A"] = _inbound("01A", T0)
    pop.on_event(CallNew("01A", T0, Direction.INBOUND, NUMBER, "6000", trunk=1))
    await settle()
    pop.on_event(_ended_at("01Z", T0 - 50, T0 + 1))        # another call of it ends
    calls["01B"] = _inbound("01B", T0 + 2)
    pop.on_event(CallNew("01B", T0 + 2, Direction.INBOUND, NUMBER, "6000", trunk=1))
    await settle()
    store.gate.set()
    await settle()
    calls["01C"] = _inbound("01C", T0 + 3)
    pop.on_event(CallNew("01C", T0 + 3, Direction.INBOUND, NUMBER, "6000", trunk=1))
    await settle()
    assert len(store.asked) == 2, f"{len(store.asked)} reads: read 2 (after the end) was not kept"
