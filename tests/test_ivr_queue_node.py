"""The IVR's ``queue`` node: hand the caller to an ACD queue and end the flow.

Loading (what ``flows check`` accepts and refuses, at FILE:LINE:COL), the check
against the config (``switchd check``: does the queue exist?), the interpreter (the
path for the CDR, ``Redirect`` with the priority, ``ivr.exit`` outcome ``queued``,
keys after the hand-over are not the flow's), and the diagram.
"""

from __future__ import annotations

import dataclasses
import textwrap
import wave
from pathlib import Path
from types import MappingProxyType

import pytest

from switchd.__main__ import main
from switchd.acd.model import AcdSettings, QueueSettings
from switchd.config import Config
from switchd.core import inputs as ci
from switchd.core.call import CallState
from switchd.core.routing import Target, TargetKind
from switchd.events import (
    CallRouted,
    IvrEnter,
    IvrExit,
    IvrLeave,
    IvrOutcome,
)
from switchd.ivr.draw import draw, node_lines
from switchd.ivr.interpreter import Ivr
from switchd.ivr.loader import (
    QUEUE_PRIORITY_MAX,
    FlowError,
    check_paths,
    load_flow,
    load_flows,
    queue_targets,
)
from switchd.ivr.model import Hangup, Mark, Menu, NodeType, Queue, SetVars, Transfer
from switchd.ivr.routed import routed_flow_names, transfer_problems
from tests.ivrhelp import Rig, flow, flowset, node

T0 = 1_764_000_000.0


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def _load(tmp_path: Path, text: str) -> Queue:
    """The node ``q`` of the flow ``text`` (loaded without prompts)."""
    f = load_flow(_write(tmp_path / "f.yaml", text), None)
    q = f.nodes["q"]
    assert isinstance(q, Queue)
    return q


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(FlowError) as info:
        load_flow(_write(tmp_path / "f.yaml", text), None)
    return [p.replace(f"{tmp_path}/", "") for p in info.value.problems]


# ------------------------------------------------------------------ loading


def test_a_queue_node_loads_with_its_queue_and_priority_0_by_default(tmp_path):
    q = _load(tmp_path, """
        timezone: Asia/Shanghai
        start: q
        nodes:
          q: {type: queue, queue: sales}
        """)
    assert (q.type, q.queue, q.priority, q.exits()) == (NodeType.QUEUE, "sales", 0, [])


@pytest.mark.parametrize("name", ["sales", "after-hours.2", "vip@sales", "q" * 64])
def test_a_queue_node_takes_a_priority_and_any_queue_name(tmp_path, name):
    q = _load(tmp_path, f"""
        timezone: Asia/Shanghai
        start: q
        nodes:
          q:
            type: queue
            queue: "{name}"
            priority: 10
        """)
    assert (q.queue, q.priority) == (name, 10)


def test_a_queue_node_ends_the_flow_so_nothing_after_it_is_checked_as_a_loop(tmp_path):
    # menu -> queue: the queue is where the call leaves; no loop, nothing unreachable.
    problems, summary = check_paths([_write(tmp_path / "main.yaml", """
        timezone: Asia/Shanghai
        start: menu
        nodes:
          menu:
            type: menu
            prompts: []
            choices: {"1": sales, "2": support}
            fallback: support
          sales: {type: queue, queue: sales, priority: 5}
          support: {type: queue, queue: support}
        """)], None)
    assert (problems, summary) == ([], "1 flow, 3 nodes, 0 prompts: OK")


QUEUE_BROKEN = [
    pytest.param("q: {type: queue}",
                 "f.yaml:4:6: missing required key 'queue' in nodes.q (the name of an ACD queue "
                 "under queues: in config.yaml, e.g. sales)", id="no-queue"),
    pytest.param('q: {type: queue, queue: "sales desk"}',
                 "f.yaml:4:27: nodes.q.queue: 'sales desk' is not a queue name: a queue name is "
                 "1-64 letters, digits, '.', '_', '-' or '@', as under queues: in config.yaml",
                 id="bad-name"),
    pytest.param('q: {type: queue, queue: ""}',
                 "f.yaml:4:27: nodes.q.queue: '' is not a queue name: a queue name is 1-64 "
                 "letters, digits, '.', '_', '-' or '@', as under queues: in config.yaml",
                 id="empty-name"),
    pytest.param('q: {type: queue, queue: "' + "q" * 65 + '"}',
                 "f.yaml:4:27: nodes.q.queue: '" + "q" * 65 + "' is not a queue name: a queue "
                 "name is 1-64 letters, digits, '.', '_', '-' or '@', as under queues: in "
                 "config.yaml", id="name-too-long"),
    pytest.param('q: {type: queue, queue: "queue:sales"}',
                 "f.yaml:4:27: nodes.q.queue: write the queue's name only, without 'queue:': "
                 "queue: sales", id="target-form"),
    pytest.param('q: {type: queue, queue: "group:sales"}',
                 "f.yaml:4:27: nodes.q.queue: 'group:sales' is a group target; a queue node "
                 "names a queue (queue: sales); to ring an extension, a group or a number use "
                 "type: transfer", id="group-target"),
    pytest.param("q: {type: queue, queue: 5}",
                 'f.yaml:4:27: nodes.q.queue: expected text, got the number 5; put it in '
                 'quotes, e.g. "5"', id="number-name"),
    pytest.param("q: {type: queue, queue: sales, priority: -1}",
                 "f.yaml:4:44: nodes.q.priority: must be at least 0, got -1",
                 id="negative-priority"),
    pytest.param('q: {type: queue, queue: sales, priority: "5"}',
                 "f.yaml:4:44: nodes.q.priority: expected a whole number, got the text '5'",
                 id="text-priority"),
    pytest.param("q: {type: queue, queue: sales, priority: 1.5}",
                 "f.yaml:4:44: nodes.q.priority: expected a whole number, got the number 1.5 "
                 "with a fraction", id="fraction-priority"),
    pytest.param("q: {type: queue, queue: sales, prioriti: 5}",
                 "f.yaml:4:34: unknown key 'prioriti' in nodes.q; did you mean 'priority'?",
                 id="misspelt-key"),
    pytest.param("q: {type: queue, queue: sales, timeout_s: 30}",
                 "f.yaml:4:34: unknown key 'timeout_s' in nodes.q; known keys: type, queue, "
                 "priority", id="unknown-key"),
]


@pytest.mark.parametrize(("line", "expected"), QUEUE_BROKEN)
def test_a_broken_queue_node_is_reported_at_the_exact_place(tmp_path, line, expected):
    assert _problems(tmp_path, f"""
        timezone: Asia/Shanghai
        start: q
        nodes:
          {line}
        """) == [expected]


def test_the_highest_priority_is_a_32_bit_integer(tmp_path):
    text = """
        timezone: Asia/Shanghai
        start: q
        nodes:
          q: {type: queue, queue: sales, priority: PRIO}
        """
    assert _load(tmp_path, text.replace("PRIO", str(QUEUE_PRIORITY_MAX))).priority == 2**31 - 1
    [problem] = _problems(tmp_path, text.replace("PRIO", str(QUEUE_PRIORITY_MAX + 1)))
    assert problem.startswith("f.yaml:4:44: nodes.q.priority: ")


@pytest.mark.parametrize("key", ["next", "on_fail", "fallback"])
def test_a_queue_node_with_a_way_on_is_refused_saying_the_queue_decides(tmp_path, key):
    # One mistake, one message: no "unknown key" as well, and the node it names is
    # not reported unreachable because of it.
    problems = _problems(tmp_path, f"""
        timezone: Asia/Shanghai
        start: q
        nodes:
          q:
            type: queue
            queue: sales
            {key}: sorry
          sorry: {{type: hangup}}
        """)
    assert problems == [
        f"f.yaml:7:5: nodes.q.{key}: a queue node has no {key}: the caller stays in the queue "
        "until an agent answers or the caller hangs up, and the queue's own overflow "
        "(queues.NAME.overflow in config.yaml, e.g. flow:main or queue:support) decides where "
        f"a caller who waits too long goes; remove {key}"]


def test_a_queue_node_with_next_to_a_missing_node_is_one_problem(tmp_path):
    assert len(_problems(tmp_path, """
        timezone: Asia/Shanghai
        start: q
        nodes:
          q: {type: queue, queue: sales, next: nowhere}
        """)) == 1


def test_a_transfer_to_a_queue_says_to_use_a_queue_node(tmp_path):
    assert _problems(tmp_path, """
        timezone: UTC
        start: desk
        nodes:
          desk: {type: transfer, to: "queue:sales"}
        """) == ["f.yaml:4:30: nodes.desk.to: a transfer rings extension:NUMBER, group:NAME or "
                 "number:DIGITS, not 'queue:sales': to hand the caller to an ACD queue, use "
                 "type: queue with queue: NAME"]


def test_queue_targets_give_each_queue_node_with_the_place_of_its_queue(tmp_path):
    f = load_flow(_write(tmp_path / "f.yaml", """
        timezone: Asia/Shanghai
        start: menu
        nodes:
          menu:
            type: menu
            prompts: []
            choices: {"1": sales, "2": support}
            fallback: sales
          support:
            type: queue
            priority: 3
            queue: support
          sales: {type: queue, queue: sales}
        """), None)
    got = [(n.name, target, (m.line, m.col)) for n, target, m in queue_targets(f)]
    assert got == [("support", "queue:support", (12, 12)), ("sales", "queue:sales", (13, 31))]
    # A flow built by hand has no marks: the node's own.
    bare = flow([node(Queue, "q", queue="sales")])
    assert [str(m) for _, _, m in queue_targets(bare)] == ["test.yaml:1:1"]


# ------------------------------------------------ against the config (switchd check)


def _config(*queues: str, overflow: str | None = None) -> Config:
    settings = {q: QueueSettings(q, overflow=Target.parse(overflow) if overflow and q == queues[0]
                                 else None) for q in queues}
    return Config(acd=AcdSettings(queues=MappingProxyType(settings)),
                  source=Path("config.yaml"))


def test_switchd_check_refuses_a_queue_node_naming_a_queue_the_config_lacks():
    m = Mark("flows/main.yaml", 9, 12)
    f = flow([node(Menu, "menu", prompts=[], choices={"1": "sales", "2": "help"},
                   fallback="sales"),
              node(Queue, "sales", queue="sales"), node(Queue, "help", queue="suport")])
    f = dataclasses.replace(f, marks={("help", "queue"): m})
    assert transfer_problems(_config("sales", "support"), flowset(f)) == [
        "flows/main.yaml:9:12: nodes.help.queue: no queue 'suport' in config.yaml; did you "
        "mean 'support'? (queues: sales, support)"]
    assert transfer_problems(_config("sales", "suport"), flowset(f)) == []


def test_transfers_and_queue_nodes_are_reported_together_in_file_order():
    f = flow([node(Transfer, "desk", target="extension:299"), node(Queue, "q", queue="x")])
    marks = {("desk", "to"): Mark("f.yaml", 5, 9), ("q", "queue"): Mark("f.yaml", 3, 10)}
    f = dataclasses.replace(f, marks=marks)
    problems = transfer_problems(_config("sales"), flowset(f))
    assert [p.split(": ")[0:2] for p in problems] == [["f.yaml:3:10", "nodes.q.queue"],
                                                      ["f.yaml:5:9", "nodes.desk.to"]]


def test_flows_a_queue_overflows_to_are_loaded_with_the_routed_ones():
    cfg = _config("sales", overflow="flow:after_hours")
    assert routed_flow_names(cfg) == ["after_hours"]


def _wav(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(160))


def test_switchd_check_holds_queue_nodes_against_the_config(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _wav(tmp_path / "prompts" / "en" / "welcome.wav")
    _write(tmp_path / "config.yaml", """
        routes:
          - {dnis: "8000", to: "flow:main"}
        queues:
          sales: {overflow: "flow:late"}
          support: {}
        """)
    _write(tmp_path / "flows" / "main.yaml", """
        timezone: Asia/Shanghai
        start: welcome
        nodes:
          welcome: {type: play, prompt: en/welcome, next: q}
          q:
            type: queue
            queue: suport
        """)
    # Reached only by the sales queue's overflow: checked all the same.
    _write(tmp_path / "flows" / "late.yaml", """
        timezone: Asia/Shanghai
        start: b
        nodes:
          b: {type: queue, queue: nosuch, priority: 3}
        """)
    assert main(["check", "-c", "config.yaml"]) == 1
    out, err = capsys.readouterr()
    lines = [ln.replace(f"{tmp_path}/", "") for ln in (out + err).splitlines()]
    assert "flows/main.yaml:7:12: nodes.q.queue: no queue 'suport' in config.yaml; did you " \
           "mean 'support'? (queues: sales, support)" in lines
    assert "flows/late.yaml:4:27: nodes.b.queue: no queue 'nosuch' in config.yaml (queues: " \
           "sales, support)" in lines
    _write(tmp_path / "flows" / "main.yaml", (tmp_path / "flows" / "main.yaml").read_text()
           .replace("suport", "support"))
    _write(tmp_path / "flows" / "late.yaml", (tmp_path / "flows" / "late.yaml").read_text()
           .replace("nosuch", "sales"))
    assert main(["check", "-c", "config.yaml"]) == 0, capsys.readouterr()


def test_the_shipped_flow_sends_sales_and_support_to_their_queues():
    f = load_flows(Path(__file__).resolve().parent.parent / "flows", ["main"], None).flows["main"]
    queues = {n.name: (n.queue, n.priority) for n in f.nodes.values() if isinstance(n, Queue)}
    assert queues == {"sales": ("sales", 0), "support": ("support", 0),
                      "vip_desk": ("sales", 10), "on_call": ("support", 0),
                      "operator": ("sales", 5)}
    menu = f.nodes["main_menu"]
    assert isinstance(menu, Menu)
    assert (menu.choices["1"], menu.choices["2"], menu.choices["0"]) == (
        "sales", "support", "operator")
    # Nobody is sent to one desk that may be busy while others are free.
    assert not any(isinstance(n, Transfer) for n in f.nodes.values())
    assert not any(isinstance(n, Transfer) and n.target.startswith("group:")
                   for n in f.nodes.values())


# ------------------------------------------------------------------ running


def test_entering_a_queue_node_annotates_the_path_then_exits_queued_then_redirects():
    f = flow([node(SetVars, "tier", values={"tier": "gold"}, next="q"),
              node(Queue, "q", queue="sales", priority=5)])
    ivr = Ivr(flowset(f))
    out = ivr.handle(T0, CallRouted("c1", T0, "flow:main", "trunk/1", "13800000000", "8000", 1))
    kinds = [type(o).__name__ for o in out]
    assert kinds == ["IvrEnter", "IvrLeave", "IvrEnter", "IvrLeave", "Annotate", "IvrExit",
                     "Redirect"]
    enter, leave = out[2], out[3]
    assert isinstance(enter, IvrEnter) and (enter.node, enter.node_type) == ("q", "queue")
    assert isinstance(leave, IvrLeave)
    assert (leave.node, leave.next, leave.why) == ("q", None, "queued in sales, priority 5")
    annotate = out[4]
    assert isinstance(annotate, ci.Annotate)
    assert (annotate.call_id, annotate.ivr_path, annotate.ivr_vars) == (
        "c1", "main:tier>q", '{"tier": "gold"}')
    exit_ = out[5]
    assert isinstance(exit_, IvrExit)
    assert (exit_.outcome, exit_.node, exit_.flow) == (IvrOutcome.QUEUED, "q", "main")
    assert exit_.outcome == "queued"
    assert out[6] == ci.Redirect("c1", Target(TargetKind.QUEUE, "sales"), 5)
    # The flow is over for this call: no session, no timer.
    assert ivr.sessions == {} and ivr.next_deadline() is None


def test_a_queue_node_without_priority_redirects_with_priority_0():
    ivr = Ivr(flowset(flow([node(Queue, "q", queue="support")])))
    out = ivr.handle(T0, CallRouted("c1", T0, "flow:main", "trunk/1", "1", "8000", 1))
    assert out[-1] == ci.Redirect("c1", Target(TargetKind.QUEUE, "support"), 0)
    assert out[-4].why == "queued in support"  # type: ignore[attr-defined]


def _menu_to_queue() -> list:
    return [node(Menu, "menu", prompts=["menu"], choices={"1": "q", "2": "bye"}, timeout_s=5,
                 retries=0, fallback="bye"),
            node(Queue, "q", queue="sales", priority=7),
            node(Hangup, "bye")]


def test_a_call_queued_by_its_flow_is_held_by_the_switch_for_the_queue():
    rig = Rig(flow(_menu_to_queue()))
    c = rig.call()
    rig.run(2.5)  # the menu prompt (2 s) has ended
    rig.press(c, "1")
    routed = [(e.target, e.priority) for e in rig.events
              if isinstance(e, CallRouted) and e.call_id == c]
    assert routed == [("flow:main", 0), ("queue:sales", 7)]
    assert (rig.exit(c).outcome, rig.exit(c).node) == ("queued", "q")
    # The caller stays connected and held by the switch, nothing rings: the ACD's turn.
    call = rig.core.calls[c]
    assert call.state is CallState.SWITCH and call.offers == {}
    assert rig.core.lines[rig.lines[c]].status.value == "connected"
    assert rig.ivr.sessions == {} and rig.ivr.next_deadline() is None
    assert not rig.player.busy()
    rig.run(30)
    rig.hangup(c)
    cdr = rig.cdr(c)
    assert (cdr.ivr_path, cdr.disposition, cdr.hangup_by) == ("main:menu>q", "NO ANSWER",
                                                              "caller")
    # One ivr.exit: the caller's hang-up in the queue is not the flow's any more.
    assert len(rig.of("ivr.exit", c)) == 1


def test_keys_after_the_hand_over_are_not_the_flows():
    rig = Rig(flow(_menu_to_queue()))
    c = rig.call()
    rig.run(2.5)
    rig.press(c, "1")
    ivr_events = [e for e in rig.events if e.name.startswith("ivr.")]
    rig.press(c, "2", gap=0.5)
    rig.press(c, "12#", gap=0.3)
    rig.run(10)
    # The keys reach the bus (the queue may use them: an exit key) ...
    assert [e.digit for e in rig.of("call.dtmf", c)][-4:] == ["2", "1", "2", "#"]
    # ... but the flow says and does nothing more: no node entered, no "ignored" keys,
    # no prompt, and the call is still waiting in the switch.
    assert [e for e in rig.events if e.name.startswith("ivr.")] == ivr_events
    assert rig.entered(c) == ["menu", "q"] and rig.ignored(c) == []
    assert rig.core.calls[c].state is CallState.SWITCH
    rig.hangup(c)


def test_a_failed_transfer_may_go_on_to_a_queue():
    f = flow([node(Transfer, "desk", target="extension:201", timeout_s=3, on_fail="q"),
              node(Queue, "q", queue="support")])
    rig = Rig(f)
    c = rig.call()
    rig.run(3)  # nobody answers extension 201
    assert (rig.exit(c).outcome, rig.exit(c).node) == ("queued", "q")
    assert [e.target for e in rig.events if isinstance(e, CallRouted) and e.call_id == c] == [
        "flow:main", "queue:support"]
    assert rig.core.calls[c].state is CallState.SWITCH
    rig.hangup(c)
    assert rig.cdr(c).ivr_path == "main:desk>q"


def test_a_queue_may_send_its_caller_back_into_a_flow():
    # As a queue's overflow does: the caller enters the flow again, from its start.
    rig = Rig(flow(_menu_to_queue()))
    c = rig.call()
    rig.run(2.5)
    rig.press(c, "1")
    rig.run(60)
    rig.submit(ci.Redirect(c, Target(TargetKind.FLOW, "main")))
    assert rig.entered(c) == ["menu", "q", "menu"]
    assert c in rig.ivr.sessions
    rig.run(2.5)
    rig.press(c, "2")
    assert [e.outcome for e in rig.of("ivr.exit", c)] == ["queued", "hangup"]
    assert rig.cdr(c).hangup_by == "system"


# ------------------------------------------------------------------ drawing


def test_the_diagram_shows_the_queue_and_its_priority_as_an_end_of_the_flow():
    q = node(Queue, "vip", queue="sales", priority=10)
    assert node_lines(q) == ["vip", "queue: sales (priority 10)"]
    assert node_lines(node(Queue, "q", queue="support")) == ["q", "queue: support"]
    f = flow([node(Menu, "menu", prompts=[], choices={"1": "vip"}, fallback="vip"), q])
    mermaid = draw(f, "mermaid")
    assert '    n_vip(["vip<br>queue: sales (priority 10)"])' in mermaid  # an end: stadium
    assert "n_vip -->" not in mermaid  # nothing leaves it
    dot = draw(f, "dot")
    assert '"vip" [label="vip\\nqueue: sales (priority 10)", shape=oval, peripheries=2' in dot
