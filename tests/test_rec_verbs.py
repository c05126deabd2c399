"""REC.QUERY, REC.KEEP and CALL.RECORD over a real CTI socket, through the real verb
table, with a stand-in switch whose recordings live in a real SQLite index."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from switchd.control import CallInfo, UserInfo
from switchd.core.engine import CoreError
from switchd.cti.commands import VERBS, Commands
from switchd.cti.server import CtiServer
from switchd.exceptions import ProtocolError
from switchd.recorder import index
from switchd.recorder.index import RecordingIndex
from switchd.recorder.model import RecordAction
from switchd.store import Store
from tests.daemon import FAST_HASH, Client, fields
from tests.test_rec_index import CALL, T0, done, ended, insert_row, started

AGENT_CALL = "01M8N9PQKJ3VW8KMB3BPJ1M79X"
OTHER_CALL = "01M8N9KMYDGDA9P097V8HTTDJN"


class FakeSwitch:
    """The part of Control the recording verbs use, as app.py would give it: the index on
    a real Store, and live calls whose recordings can be driven."""

    def __init__(self, store: Store, directory: Path) -> None:
        self.store = store
        self.directory = directory
        self.recorded: list[tuple[str, str, str | None]] = []
        self.paused: set[str] = set()
        self.live = {
            AGENT_CALL: CallInfo(AGENT_CALL, "answered", "trunk/1", ("trunk/1", "ext/201"), True),
            OTHER_CALL: CallInfo(OTHER_CALL, "answered", "trunk/2", ("trunk/2", "ext/202"), True),
        }

    def now(self) -> float:
        return T0

    def user(self, name: str) -> UserInfo | None:
        users = {"admin": UserInfo("admin", "admin", FAST_HASH["demo-admin"], None),
                 "sup": UserInfo("sup", "supervisor", FAST_HASH["demo"], None),
                 "agent1": UserInfo("agent1", "agent", FAST_HASH["demo"], 201)}
        return users.get(name)

    def calls(self) -> list[dict[str, str]]:
        return [{"call": c.call_id, "lines": ",".join(c.lines)} for c in self.live.values()]

    def call_info(self, call_id: str) -> CallInfo:
        if call_id not in self.live:
            raise CoreError("not_found", f"no call {call_id}")
        return self.live[call_id]

    def record(self, call_id: str, action: str, user: str | None) -> str:
        if call_id not in self.live:
            raise ProtocolError("not_found", f"no call {call_id}")
        act = RecordAction(action)
        if act is RecordAction.RESUME and call_id not in self.paused:
            raise ProtocolError("wrong_state", f"the recording of call {call_id} is not "
                                "paused; action=pause first")
        if act is RecordAction.PAUSE:
            self.paused.add(call_id)
        elif act is RecordAction.RESUME:
            self.paused.discard(call_id)
        self.recorded.append((call_id, action, user))
        return call_id

    async def query_recordings(self, **filters: Any) -> list[dict[str, Any]]:
        return await index.query(self.store, directory=self.directory, **filters)

    async def keep_recording(self, recording_id: str, keep: bool) -> dict[str, Any]:
        row = await index.set_keep(self.store, recording_id, keep, directory=self.directory)
        if row is None:
            raise ProtocolError("not_found", f"no recording {recording_id}; REC.QUERY lists them")
        return row


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[tuple[FakeSwitch, CtiServer]]:
    store = await Store.open(tmp_path / "switchd.db")
    switch = FakeSwitch(store, tmp_path / "recordings")
    server = CtiServer(Commands(switch), host="127.0.0.1", port=0, version="9.9")  # type: ignore[arg-type]
    await server.start()
    yield switch, server
    await server.close()
    await store.close()


async def login(server: CtiServer, user: str) -> Client:
    c = await Client.connect(server.port)
    secret = "demo-admin" if user == "admin" else "demo"
    await c.ok(f"AUTH user={user} secret={secret}")
    return c


async def test_rec_query_lists_recordings_written_from_events_with_status_and_file(rig):
    switch, server = rig
    idx = RecordingIndex(switch.store)
    idx.start()
    for ev in (started(), ended(), done()):
        idx.on_event(ev)
    idx.on_event(started(OTHER_CALL, T0 + 100, caller="13900000002"))
    await idx.close()
    c = await login(server, "sup")
    lines = await c.cmd("REC.QUERY")
    assert lines[-1] == "END count=2"
    newest, first = fields(lines[0]), fields(lines[1])
    assert (newest["id"], newest["status"]) == (OTHER_CALL, "recording")
    assert first == {
        "id": CALL, "call": CALL, "status": "done",
        "file": str(switch.directory / "2026/11/30" / f"{CALL}.wav"),
        "start": "2026-11-30T03:48:43.123Z", "end": "2026-11-30T03:49:43.123Z",
        "duration_s": "60.0", "size": "1920044", "caller": "13800000001", "callee": "8000",
        "agent": "a1", "queue": "sales", "direction": "inbound", "mode": "on_answer",
        "channels": "2", "format": "pcm", "keep": "false", "sha256": "ab" * 32}
    lines = await c.cmd("REC.QUERY caller=13900000002 status=recording limit=5")
    assert [fields(x)["id"] for x in lines[:-1]] == [OTHER_CALL]
    await c.close()


async def test_rec_query_in_json_mode_gives_native_types_and_marks(rig):
    switch, server = rig
    from switchd.events import RecordingMark, RecordingMarks

    idx = RecordingIndex(switch.store)
    idx.start()
    idx.on_event(started())
    idx.on_event(done(marks=RecordingMarks((RecordingMark(T0, 0.0, "start", "answer"),))))
    await idx.close()
    c = await login(server, "admin")
    await c.ok("FORMAT json")
    await c.send_raw(b'{"verb":"REC.QUERY","tag":"q","call":"' + CALL.encode() + b'"}\n')
    item = json.loads(await c.line())
    assert item["type"] == "ITEM" and item["keep"] is False and item["channels"] == 2
    assert item["duration_s"] == 60.0
    assert json.loads(item["marks"]) == [{"at": "2026-11-30T03:48:43.123Z", "offset_s": 0.0,
                                          "kind": "start", "detail": "answer"}]
    assert json.loads(await c.line()) == {"type": "END", "tag": "q", "count": 1}
    await c.close()


@pytest.mark.parametrize("request_, code, message", [
    ("REC.QUERY status=finished", "bad_arg",
     "status='finished': use recording, done, recovered or failed"),
    ("REC.QUERY since=yesterday", "bad_arg", "bad since 'yesterday': expected a date"),
    ("REC.QUERY limit=0", "bad_arg", "limit=0 must be between 1 and 10000"),
    ("REC.QUERY who=me", "bad_arg", "REC.QUERY takes no argument 'who'; usage: REC.QUERY"),
    ("REC.KEEP", "missing_arg", "REC.KEEP needs id=; usage: REC.KEEP id=<recording> "
                                "[keep=true|false]"),
    ("REC.KEEP id=NOPE", "not_found", "no recording NOPE"),
    ("REC.KEEP id=R1 keep=maybe", "bad_arg", "keep='maybe' must be true or false"),
    ("CALL.RECORD call=" + AGENT_CALL + " action=rewind", "bad_arg",
     "action='rewind': use start, stop, pause or resume"),
    ("CALL.RECORD action=start", "missing_arg", "CALL.RECORD needs call="),
    ("CALL.RECORD call=01NOSUCHCALL0000000000000 action=start", "not_found", "no call"),
    ("CALL.RECORD call=" + AGENT_CALL + " action=resume", "wrong_state", "is not paused"),
])
async def test_refusals_say_what_to_fix(rig, request_, code, message):
    switch, server = rig
    await insert_row(switch.store, "R1", T0, end=T0 + 60)
    c = await login(server, "sup")
    err = fields((await c.cmd(request_))[-1])
    assert err["code"] == code and message in err["msg"], err
    await c.close()


async def test_rec_keep_marks_a_recording_and_unmarks_it(rig):
    switch, server = rig
    await insert_row(switch.store, "R1", T0, end=T0 + 60)
    c = await login(server, "sup")
    got = await c.ok("REC.KEEP id=R1")
    assert (got["id"], got["keep"]) == ("R1", "true")
    assert (await c.ok("REC.KEEP id=R1 keep=false"))["keep"] == "false"
    assert (await index.get(switch.store, "R1"))["keep"] is False  # type: ignore[index]
    await c.close()


async def test_an_agent_records_its_own_calls_only_and_cannot_search(rig):
    switch, server = rig
    c = await login(server, "agent1")
    got = await c.ok(f"CALL.RECORD call={AGENT_CALL} action=pause")
    assert got == {"call": AGENT_CALL, "recording": AGENT_CALL, "action": "pause"}
    assert (await c.ok(f"CALL.RECORD call={AGENT_CALL} action=RESUME"))["action"] == "resume"
    assert switch.recorded == [(AGENT_CALL, "pause", "agent1"), (AGENT_CALL, "resume", "agent1")]
    err = fields((await c.cmd(f"CALL.RECORD call={OTHER_CALL} action=stop"))[-1])
    assert err["code"] == "forbidden" and "not on your extension ext/201" in err["msg"]
    # A call that does not exist gets the same answer: an agent cannot probe for call ids.
    err = fields((await c.cmd("CALL.RECORD call=01NOSUCHCALL0000000000000 action=stop"))[-1])
    assert err["code"] == "forbidden" and "not on your extension ext/201" in err["msg"]
    for verb in ("REC.QUERY", "REC.KEEP id=R1"):
        err = fields((await c.cmd(verb))[-1])
        assert err["code"] == "forbidden" and "admin, crm, supervisor" in err["msg"]
    assert len(switch.recorded) == 2
    await c.close()


async def test_staff_record_any_call(rig):
    switch, server = rig
    c = await login(server, "sup")
    assert (await c.ok(f"CALL.RECORD call={OTHER_CALL} action=start"))["recording"] == OTHER_CALL
    assert switch.recorded == [(OTHER_CALL, "start", "sup")]
    await c.close()


async def test_help_shows_the_recording_verbs_and_who_may_use_them(rig):
    _switch, server = rig
    c = await Client.connect(server.port)
    for verb, roles in (("REC.QUERY", "admin,crm,supervisor"), ("REC.KEEP", "admin,crm,supervisor"),
                        ("CALL.RECORD", "admin,agent,crm,supervisor")):
        got = await c.ok(f"HELP {verb}")
        assert got["usage"] == VERBS[verb].usage and got["roles"] == roles
    err = fields((await c.cmd("REC.QUERY"))[-1])
    assert err["code"] == "not_authenticated"
    await c.close()
