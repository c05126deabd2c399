"""VM.LIST, VM.FETCH and VM.DELETE through the real verb table and dispatch (roles, argument
checks, an agent kept to its own mailbox), on a Control whose voicemail calls are backed
by the real index on a real store."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest

from switchd.cti.codec import Request, parse_line
from switchd.cti.commands import Commands
from switchd.cti.server import Reply
from switchd.exceptions import ProtocolError
from switchd.recorder.mailboxes import Mailboxes
from switchd.recorder.model import Mailbox, VoicemailSettings
from switchd.recorder.vm_index import MessageIndex, MessageRow
from switchd.store.sqlite import Store

T0 = 1_764_000_000.0


class Control:
    """The Control calls the VM verbs use: the index behind them, as app.py wires it."""

    def __init__(self, index: MessageIndex) -> None:
        self.index = index
        self.calls: list[tuple[str, Any]] = []

    def agent_status(self) -> list[Any]:
        return [SimpleNamespace(agent_id="1001", line="ext/201"),
                SimpleNamespace(agent_id="1002", line="ext/202")]

    async def voicemail_list(self, mailbox: str | None, *, limit: int = 100) -> list[dict]:
        self.calls.append(("list", (mailbox, limit)))
        return await self.index.list(mailbox, limit=limit)

    async def voicemail_get(self, message_id: str) -> dict[str, Any]:
        self.calls.append(("get", message_id))
        return await self.index.get(message_id)

    async def voicemail_fetch(self, message_id: str) -> dict[str, Any]:
        self.calls.append(("fetch", message_id))
        return await self.index.fetch(message_id)

    async def voicemail_delete(self, message_id: str) -> dict[str, Any]:
        self.calls.append(("delete", message_id))
        return await self.index.delete(message_id)


@pytest.fixture
async def rig(tmp_path: Path):
    store = await Store.open(tmp_path / "switchd.db")
    boxes = Mailboxes(VoicemailSettings(directory=tmp_path / "vm", boxes=MappingProxyType({
        "1001": Mailbox("1001", owner="agent:1001"),
        "1002": Mailbox("1002", owner="agent:1002"),
        "sales": Mailbox("sales", owner="queue:sales")})))
    index = MessageIndex(store, tmp_path / "vm", boxes)
    index.start()
    for i, box in enumerate(["1001", "1001", "1002", "sales"], 1):
        index.save(MessageRow(f"M{i}", box, f"C{i}", f"1390000000{i}", f"{box}/M{i}.wav",
                              T0 + i, 3.0, 48_044, "ab" * 32))
    await index.flush()
    control = Control(index)
    yield Commands(control), control  # type: ignore[arg-type]
    await index.close()
    await store.close()


def _session(role: str, line: str | None = None) -> Any:
    return SimpleNamespace(role=role, user=f"{role}1", agent_line=line, peer="127.0.0.1:50000")


AGENT = ("agent", "ext/201")
SUPER = ("supervisor", None)


async def _do(commands: Commands, who: tuple[str, str | None], line: str) -> Reply:
    req = parse_line(line)
    assert isinstance(req, Request), req
    return await commands(_session(*who), req)


async def _err(commands: Commands, who: tuple[str, str | None], line: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as err:
        await _do(commands, who, line)
    return err.value


async def test_staff_list_every_box_or_one(rig):
    commands, _ = rig
    reply = await _do(commands, SUPER, "VM.LIST")
    assert [i["id"] for i in reply.items or []] == ["M4", "M3", "M2", "M1"]
    reply = await _do(commands, SUPER, "VM.LIST mailbox=sales limit=5")
    [item] = reply.items or []
    assert (item["mailbox"], item["caller"], item["heard"]) == ("sales", "13900000004", False)
    assert item["file"].endswith("vm/sales/M4.wav")


async def test_an_agent_lists_its_own_mailbox_only(rig):
    commands, control = rig
    reply = await _do(commands, AGENT, "VM.LIST")
    assert [i["id"] for i in reply.items or []] == ["M2", "M1"]
    assert control.calls == [("list", ("1001", 100))]
    err = await _err(commands, AGENT, "VM.LIST mailbox=1002")
    assert err.code == "forbidden" and "not yours" in err.msg


async def test_an_agent_sharing_a_phone_with_an_agent_without_a_box_lists_its_own(rig):
    commands, control = rig
    control.agent_status = lambda: [SimpleNamespace(agent_id="1001", line="ext/201"),
                                    SimpleNamespace(agent_id="7777", line="ext/201")]
    reply = await _do(commands, AGENT, "VM.LIST")
    assert [i["id"] for i in reply.items or []] == ["M2", "M1"]
    assert control.calls == [("list", ("1001", 100)), ("list", ("7777", 100))]
    err = await _err(commands, AGENT, "VM.LIST mailbox=7777")  # named: still not_found
    assert err.code == "not_found"
    assert (await _do(commands, AGENT, "VM.FETCH id=M1")).fields["id"] == "M1"


async def test_fetch_gives_the_file_and_marks_heard(rig):
    commands, _ = rig
    reply = await _do(commands, AGENT, "VM.FETCH id=M1")
    assert (reply.fields["id"], reply.fields["heard"]) == ("M1", True)
    assert Path(reply.fields["file"]).name == "M1.wav"
    listed = (await _do(commands, SUPER, "VM.LIST mailbox=1001")).items or []
    assert [(i["id"], i["heard"]) for i in listed] == [("M2", False), ("M1", True)]


async def test_an_agent_cannot_reach_another_box_message_and_learns_nothing_of_it(rig):
    commands, control = rig
    for verb in ("VM.FETCH", "VM.DELETE"):
        err = await _err(commands, AGENT, f"{verb} id=M3")
        assert err.code == "not_found"
        err2 = await _err(commands, AGENT, f"{verb} id=nosuch")
        assert (err2.code, err2.msg) == (err.code, err.msg.replace("'M3'", "'nosuch'"))
    assert not [c for c in control.calls if c[0] not in ("list", "get")]  # nothing fetched or deleted


async def test_delete_removes_the_message(rig):
    commands, _ = rig
    reply = await _do(commands, SUPER, "VM.DELETE id=M3")
    assert (reply.fields["id"], reply.fields["deleted"]) == ("M3", True)
    err = await _err(commands, SUPER, "VM.FETCH id=M3")
    assert err.code == "not_found"


@pytest.mark.parametrize("line, code", [
    ("VM.LIST limit=0", "bad_arg"),
    ('VM.LIST mailbox=""', "bad_arg"),
    ("VM.LIST box=1001", "bad_arg"),
    ("VM.LIST mailbox=nobody", "not_found"),
    ("VM.FETCH", "missing_arg"),
    ("VM.DELETE id=M1 extra=1", "bad_arg"),
])
async def test_bad_requests_are_refused_with_the_usage(rig, line, code):
    commands, _ = rig
    err = await _err(commands, SUPER, line)
    assert err.code == code


async def test_the_verbs_need_auth(rig):
    commands, _ = rig
    err = await _err(commands, (None, None), "VM.LIST")  # type: ignore[arg-type]
    assert err.code == "not_authenticated"
