"""``CALL.NOTE``: a note on a live call reaches its CDR through the core, a note right
after hang-up updates the stored CDR, a later note replaces an earlier one; who may note
which call; the text's bounds; and schema migration 4 -> 5, which adds ``cdr.note``.

Daemon tests go through real sockets and SQLite; the permission matrix for ended calls
(the CDR's extension, or the agent at the phone) drives the verb with a fake switch.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from switchd.control import CallInfo, UserInfo
from switchd.core.engine import CoreError
from switchd.core.inputs import Annotate
from switchd.cti.codec import Request, parse_line
from switchd.cti.commands import VERBS
from switchd.cti.note_verbs import NOTE_MAX, NoteVerbs
from switchd.events import Cdr
from switchd.exceptions import ProtocolError
from switchd.store import SCHEMA_VERSION, Store, schema
from tests.daemon import Client, fields, make_config, running

GHOST = "01M98ZZZZZZZZZZZZZZZZZZZZZ"


async def login(port: int, user: str, secret: str = "demo") -> Client:
    c = await Client.connect(port)
    await c.ok(f"AUTH user={user} secret={secret}")
    await c.ok("SUB events=call.*")
    return c


async def answered_call(admin: Client, agent1: Client, caller: str) -> str:
    """A call to 8200 (extension 201's direct line) that agent1 answered."""
    call = (await admin.ok(f"SIM.CALL caller={caller} dnis=8200"))["call"]
    await agent1.wait_event("call.ringing", call=call, line="ext/201")
    await agent1.ok(f"CALL.ANSWER call={call}")
    return call


async def cdr_note(crm: Client, caller: str) -> str | None:
    rows = (await crm.cmd(f"CDR.QUERY caller={caller} limit=1"))[:-1]
    assert len(rows) == 1, rows
    return fields(rows[0].replace("ITEM", "X", 1)).get("note")


def error(lines: list[str]) -> tuple[str, str]:
    f = fields(lines[-1].replace("ERR", "X", 1))
    return f["code"], f["msg"]


async def test_notes_on_a_live_call_and_right_after_hang_up_reach_the_cdr_the_last_one_kept(
        tmp_path):
    with running(tmp_path, make_config(**{"sim.bots.mode": "manual"})) as d:
        admin = await login(d.port, "admin", "demo-admin")
        agent1 = await login(d.port, "agent1")
        crm = await login(d.port, "crm")

        live = await answered_call(admin, agent1, "13800000011")
        await agent1.ok(f"CALL.NOTE call={live} text=first")
        ok = await agent1.ok(f'CALL.NOTE call={live} text="wants a refund"')
        assert ok == {"call": live, "note": "wants a refund"}
        await admin.ok(f"SIM.HANGUP call={live}")
        await agent1.wait_event("call.ended", call=live)

        ended = await answered_call(admin, agent1, "13800000012")
        await admin.ok(f"SIM.HANGUP call={ended}")
        await agent1.wait_event("call.ended", call=ended)
        # Wrap-up: at once, while the CDR may still wait in the writer's queue.
        await agent1.ok(f"CALL.NOTE call={ended} text=draft")
        text = '客户说 "退款"; CALL.HANGUP call=' + live
        quoted = text.replace('"', '\\"')
        ok = await agent1.ok(f'CALL.NOTE call={ended} text="{quoted}"')
        assert ok["note"] == text

        assert await cdr_note(crm, "13800000011") == "wants a refund"
        assert await cdr_note(crm, "13800000012") == text
        # Staff note any call, ended or live.
        await crm.ok(f"CALL.NOTE call={live} text=reviewed")
        assert await cdr_note(crm, "13800000011") == "reviewed"
        for c in (admin, agent1, crm):
            await c.close()
        d.stop()
    with sqlite3.connect(d.db) as db:
        notes = dict(db.execute("SELECT src, note FROM cdr").fetchall())
    assert notes == {"13800000011": "reviewed", "13800000012": text}


async def test_note_refusals_name_the_problem_and_never_tell_an_agent_which_calls_exist(tmp_path):
    with running(tmp_path, make_config(**{"sim.bots.mode": "manual"})) as d:
        admin = await login(d.port, "admin", "demo-admin")
        agent1 = await login(d.port, "agent1")
        agent2 = await login(d.port, "agent2")
        crm = await login(d.port, "crm")

        live = await answered_call(admin, agent1, "13800000021")
        answers = {}
        for name, call in (("live", live), ("ghost", GHOST)):
            answers[name] = error(await agent2.cmd(f"CALL.NOTE call={call} text=mine"))
        await admin.ok(f"SIM.HANGUP call={live}")
        await agent1.wait_event("call.ended", call=live)
        answers["ended"] = error(await agent2.cmd(f"CALL.NOTE call={live} text=mine"))
        # One answer whatever the call: the id the agent gave is all that differs.
        assert {(code, msg.replace(GHOST, live)) for code, msg in answers.values()} == {
            answers["live"]}
        code, msg = answers["live"]
        assert code == "forbidden" and "ext/202" in msg
        assert await cdr_note(crm, "13800000021") is None   # nothing was stored

        assert error(await crm.cmd(f"CALL.NOTE call={GHOST} text=x"))[0] == "not_found"
        long = "x" * (NOTE_MAX + 1)
        code, msg = error(await agent1.cmd(f"CALL.NOTE call={live} text={long}"))
        assert code == "bad_arg" and "1 to 1000 characters, got 1001" in msg
        assert error(await agent1.cmd(f'CALL.NOTE call={live} text=""'))[0] == "bad_arg"
        assert error(await agent1.cmd(f"CALL.NOTE call={live}"))[0] == "missing_arg"
        assert error(await agent1.cmd("CALL.NOTE text=hello"))[0] == "missing_arg"
        assert error(await agent1.cmd(f"CALL.NOTE call={live} text=a tag=b"))[0] == "bad_arg"
        await agent1.ok(f"CALL.NOTE call={live} text={'y' * NOTE_MAX}")
        assert await cdr_note(crm, "13800000021") == "y" * NOTE_MAX
        for c in (admin, agent1, agent2, crm):
            await c.close()
        d.stop()
    refusals = [json.loads(x) for x in d.log_lines() if '"cti_forbidden"' in x]
    assert [(r["user"], r["verb"]) for r in refusals] == [("agent2", "CALL.NOTE")] * 3


# --- the permission matrix on ended calls, with a fake switch ------------------------


@dataclass
class FakeSwitch:
    """The few Control methods CALL.NOTE uses: one live call, stored CDRs, the ACD."""

    live: dict[str, CallInfo] = field(default_factory=dict)
    cdrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    agents: list[Any] = field(default_factory=list)
    submitted: list[Any] = field(default_factory=list)
    extensions: dict[str, int | None] = field(default_factory=lambda: {"agent1": 201})

    def user(self, name: str) -> UserInfo | None:
        role = "agent" if name.startswith("agent") else "crm"
        return UserInfo(name, role, "", self.extensions.get(name))

    def call_info(self, call_id: str) -> CallInfo:
        if call_id not in self.live:
            raise CoreError("not_found", f"no active call {call_id}")
        return self.live[call_id]

    def submit(self, item: Any) -> list[Any]:
        self.submitted.append(item)
        return []

    async def stored_cdr(self, call_id: str) -> dict[str, Any] | None:
        return self.cdrs.get(call_id)

    async def set_stored_note(self, call_id: str, text: str) -> bool:
        if call_id not in self.cdrs:
            return False
        self.cdrs[call_id]["note"] = text
        return True

    def agent_at(self, line: str) -> str | None:
        return next((a.agent_id for a in self.agents
                     if a.line == line and a.state != "logged_out"), None)


def note(switch: FakeSwitch, user: str, call: str = "C1", text: str = "hi") -> dict[str, Any]:
    role = "agent" if user.startswith("agent") else "crm"
    ext = switch.extensions.get(user)
    session = SimpleNamespace(user=user, role=role, peer="test",
                              agent_line=(f"ext/{ext}" if ext else "ext/none")
                              if role == "agent" else None)
    req = parse_line(f"CALL.NOTE call={call} text={text}")
    assert isinstance(req, Request) and req.verb in VERBS   # commands registered the verb
    reply = asyncio.run(NoteVerbs(switch).call_note(session, req))  # type: ignore[arg-type]
    return reply.fields


def at(agent_id: str, line: str, state: str = "wrap_up") -> Any:
    return SimpleNamespace(agent_id=agent_id, line=line, state=state)


@pytest.mark.parametrize("cdr, agents, allowed", [
    ({"extension": 201, "agent": None}, [], True),                      # its phone took it
    ({"extension": 205, "agent": "1001"}, [at("1001", "ext/201")], True),  # answered, transferred
    ({"extension": 205, "agent": "1001"}, [at("1001", "ext/201", "logged_out")], False),
    ({"extension": 205, "agent": "1001"}, [at("1001", "ext/202")], False),  # sits elsewhere
    ({"extension": 205, "agent": "1005"}, [at("1001", "ext/201")], False),
    ({"extension": None, "agent": None}, [at("1001", "ext/201")], False),
])
def test_an_agent_notes_an_ended_call_its_phone_took_or_its_logged_in_agent_answered(
        cdr, agents, allowed):
    switch = FakeSwitch(cdrs={"C1": dict(cdr)}, agents=agents)
    if allowed:
        assert note(switch, "agent1") == {"call": "C1", "note": "hi"}
        assert switch.cdrs["C1"]["note"] == "hi"
    else:
        with pytest.raises(ProtocolError) as exc:
            note(switch, "agent1")
        assert exc.value.code == "forbidden" and "note" not in switch.cdrs["C1"]


def test_a_live_call_is_noted_through_the_core_only_when_it_is_on_the_agents_phone():
    switch = FakeSwitch(live={
        "C1": CallInfo("C1", "answered", "trunk/1", ("trunk/1", "ext/201"), True),
        "C2": CallInfo("C2", "answered", "trunk/2", ("trunk/2", "ext/202"), True)})
    assert note(switch, "agent1", "C1") == {"call": "C1", "note": "hi"}
    with pytest.raises(ProtocolError) as exc:
        note(switch, "agent1", "C2")
    assert exc.value.code == "forbidden"
    assert note(switch, "crm", "C2")["call"] == "C2"
    assert switch.submitted == [Annotate("C1", note="hi"), Annotate("C2", note="hi")]


def test_an_agent_user_without_a_phone_notes_nothing():
    switch = FakeSwitch(cdrs={"C1": {"extension": None, "agent": None}},
                        extensions={"agent9": None})
    with pytest.raises(ProtocolError) as exc:
        note(switch, "agent9")
    assert exc.value.code == "forbidden" and "users[].extension" in exc.value.msg


# --- schema 4 -> 5 --------------------------------------------------------------------


async def test_a_version_4_database_gains_the_note_column_and_keeps_its_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "switchd.db"
    with monkeypatch.context() as m:
        m.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:4])
        m.setattr(schema, "SCHEMA_VERSION", 4)
        await (await Store.open(path)).close()
    old = Cdr("01M98OLD", "01M98OLD", "13800000031", "8200", "13800000031", 1796000000.0,
              1796000001.5, 1796000060.0, 60, 59, "ANSWERED", "inbound", extension=201,
              recording_id="01M98OLD")
    row = {k: v for k, v in schema.cdr_row(old).items() if k not in ("note", "media")}
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 4
        columns = ", ".join(f'"{k}"' for k in row)   # "end" is a reserved word
        db.execute(f"INSERT INTO cdr ({columns}) VALUES ({', '.join(':' + k for k in row)})",
                   row)

    store = await Store.open(path)
    try:
        assert SCHEMA_VERSION >= 5
        assert await store.get_cdr("01M98OLD") == schema.cdr_row(old) | {"note": None,
                                                                            "media": None}
        assert await store.set_cdr_note("01M98OLD", "noted after the upgrade") is True
        assert await store.set_cdr_note("01M98NONE", "no such call") is False
        history = await store.call_history("13800000031")
    finally:
        await store.close()
    assert history["calls"] == 1 and history["last"]["note"] == "noted after the upgrade"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        indexes = {r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'cdr'")}
    assert {"cdr_src_start_idx", "cdr_dst_start_idx"} <= indexes
    assert not {"cdr_src_idx", "cdr_dst_idx"} & indexes
