"""The ``voicemail`` node in flow files: what the loader accepts and refuses (to the line),
``voicemail:BOX`` as a transfer target, the checks against the config's mailboxes
(``switchd check``), diagrams, and ``voicemail:`` as a route / overflow target kind."""

from __future__ import annotations

import dataclasses
import textwrap
import wave
from pathlib import Path
from types import MappingProxyType

import pytest

from switchd.acd.model import OVERFLOW_KINDS
from switchd.config import Config
from switchd.core.routing import APP_KINDS, INBOUND_KINDS, ROUTE_KINDS, Target, TargetKind
from switchd.ivr.draw import draw
from switchd.ivr.loader import FlowError, load_flow, transfer_targets, voicemail_targets
from switchd.ivr.model import Mark, Transfer, Voicemail
from switchd.ivr.routed import transfer_problems
from switchd.recorder.model import Mailbox, VoicemailSettings
from tests.ivrhelp import flow, flowset, node


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("en/vm_sales", "en/bye"):
        path = tmp_path / "prompts" / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(bytes(320))
    return tmp_path


def _load(text: str) -> object:
    path = Path("f.yaml")
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return load_flow(path, Path("prompts"))


def _problems(text: str) -> list[str]:
    with pytest.raises(FlowError) as info:
        _load(text)
    return info.value.problems


def test_a_voicemail_node_with_every_option_loads(home):
    f = _load("""
        timezone: Asia/Shanghai
        start: vm
        nodes:
          vm:
            type: voicemail
            mailbox: sales
            greeting: en/vm_sales
            max_s: 90
            silence_s: 3.5
            next: bye
          bye: {type: play, prompt: en/bye, next: end}
          end: {type: hangup}
        """)
    vm = f.nodes["vm"]  # type: ignore[attr-defined]
    assert vm == Voicemail(name="vm", mark=vm.mark, mailbox="sales", greeting=("en/vm_sales",),
                           max_s=90.0, silence_s=3.5, next="bye")
    assert f.prompt_files["en/vm_sales"].name == "vm_sales.wav"  # type: ignore[attr-defined]
    assert vm.exits() == [("", "bye")]


def test_a_plain_voicemail_node_has_no_exit_and_a_list_greeting_works(home):
    f = _load("""
        timezone: UTC
        start: vm
        nodes:
          vm: {type: voicemail, mailbox: "1001", greeting: [en/vm_sales, en/bye]}
        """)
    vm = f.nodes["vm"]  # type: ignore[attr-defined]
    assert (vm.greeting, vm.next, vm.exits()) == (("en/vm_sales", "en/bye"), None, [])


@pytest.mark.parametrize("body, problem", [
    ('{type: voicemail, mailbox: "1001", greeting: en/nope}',
     "f.yaml:4:52: nodes.vm.greeting: prompt 'en/nope'"),
    ('{type: voicemail, mailbox: "1001", max_s: 0.5}', "f.yaml:4:49: nodes.vm.max_s: must be at least 1"),
    ('{type: voicemail, mailbox: "1001", silence_s: 0.1}', "f.yaml:4:53: nodes.vm.silence_s: must be at least 0.5"),
    ('{type: voicemail, mailbox: "1001", next: nowhere}',
     "f.yaml:4:48: nodes.vm.next: no node 'nowhere'"),
    ('{type: voicemail, mailbox: "queue:sales"}',
     "f.yaml:4:34: nodes.vm.mailbox: 'queue:sales' is a queue target; a voicemail node names "
     "a mailbox"),
    ('{type: voicemail, mailbox: "a b"}',
     "f.yaml:4:34: nodes.vm.mailbox: 'a b' is not a mailbox name"),
    ("{type: voicemail}", "f.yaml:4:7: missing required key 'mailbox' in nodes.vm (the "
     "mailbox: an agent id, a queue name or a box under voicemail.boxes in config.yaml)"),
])
def test_a_broken_voicemail_node_is_reported_where_it_was_written(home, body, problem):
    problems = _problems(f"""
        timezone: UTC
        start: vm
        nodes:
          vm: {body}
        """)
    assert len(problems) == 1 and problems[0].startswith(problem), problems


def test_a_voicemail_node_waits_so_a_loop_through_it_is_not_a_spin(home):
    f = _load("""
        timezone: UTC
        start: vm
        nodes:
          vm: {type: voicemail, mailbox: "1001", next: again}
          again: {type: set, vars: {tries: "x"}, next: vm}
        """)
    assert set(f.nodes) == {"vm", "again"}  # type: ignore[attr-defined]


def test_a_transfer_to_a_box_loads_and_is_listed_as_a_voicemail_target(home):
    f = _load("""
        timezone: UTC
        start: t
        nodes:
          t: {type: transfer, to: "voicemail:sales", on_fail: vm}
          vm: {type: voicemail, mailbox: "1001"}
        """)
    assert f.nodes["t"].target == "voicemail:sales"  # type: ignore[attr-defined]
    assert transfer_targets(f) == []  # type: ignore[arg-type]
    got = [(n.name, t, (m.line, m.col), k) for n, t, m, k in voicemail_targets(f)]  # type: ignore[arg-type]
    assert got == [("t", "voicemail:sales", (4, 27), "to"), ("vm", "voicemail:1001", (5, 34),
                                                              "mailbox")]


def test_a_transfer_to_a_box_named_only_with_dots_is_refused(home):
    [problem] = _problems("""
        timezone: UTC
        start: t
        nodes:
          t: {type: transfer, to: "voicemail:.."}
        """)
    assert "cannot be a folder name" in problem


def _config(*boxes: str) -> Config:
    return Config(voicemail=VoicemailSettings(boxes=MappingProxyType(
        {b: Mailbox(b) for b in boxes})), source=Path("config.yaml"))


def test_switchd_check_holds_every_mailbox_against_the_config():
    f = flow([node(Transfer, "t", target="voicemail:sale", on_fail="vm"),
              node(Voicemail, "vm", mailbox="1001")])
    f = dataclasses.replace(f, marks={("t", "to"): Mark("main.yaml", 7, 9),
                                      ("vm", "mailbox"): Mark("main.yaml", 3, 14)})
    problems = transfer_problems(_config("sales", "1002"), flowset(f))
    assert [p.split(": ", 2)[:2] for p in problems] == [["main.yaml:3:14", "nodes.vm.mailbox"],
                                                        ["main.yaml:7:9", "nodes.t.to"]]
    assert "no mailbox '1001' in config.yaml; did you mean '1002'?" in problems[0]
    assert "did you mean 'sales'?" in problems[1]
    assert transfer_problems(_config("sale", "1001"), flowset(f)) == []


def test_a_diagram_shows_the_box_its_greeting_and_its_limits():
    f = flow([node(Voicemail, "vm", mailbox="sales", greeting=["en/vm_sales"], max_s=60,
                   silence_s=3)])
    text = draw(f, "mermaid")
    assert "voicemail: sales<br>greeting en/vm_sales<br>max 60 s, silence 3 s" in text


def test_voicemail_is_a_target_for_routes_and_overflows_but_rings_nothing():
    t = Target.parse("voicemail:afterhours")
    assert (t.kind, t.value, str(t)) == (TargetKind.VOICEMAIL, "afterhours",
                                         "voicemail:afterhours")
    assert TargetKind.VOICEMAIL in APP_KINDS and TargetKind.VOICEMAIL in INBOUND_KINDS
    assert TargetKind.VOICEMAIL in OVERFLOW_KINDS and TargetKind.VOICEMAIL not in ROUTE_KINDS
    with pytest.raises(ValueError, match="a mailbox name, e.g. voicemail:afterhours"):
        Target.parse("voicemail:a b")
