"""Flow diagrams (issue 14, item 6): ``switchd.ivr.draw.draw(flow, "mermaid" | "dot")``.

Flows are built straight from the model (no loader). Mermaid has no renderer here, so
its output is checked for structure (every node declared once, every edge between
declared nodes) and escaping; DOT is rendered by ``dot -Tsvg`` when Graphviz is
installed, and checked with a small tokenizer either way.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from switchd.ivr.draw import FORMATS, draw, edge_label, hours_summary, node_lines
from switchd.ivr.model import (
    Branch,
    Case,
    Collect,
    Cond,
    CondOp,
    CondSubject,
    DateRule,
    Flow,
    Goto,
    Hangup,
    Mark,
    Menu,
    Node,
    Play,
    Queue,
    RouteRequest,
    Say,
    SayKind,
    Schedule,
    SetVars,
    TimeRange,
    Transfer,
    Voicemail,
)

M = Mark("flows/main.yaml", 1, 1)


def hm(text: str) -> TimeRange:
    """``"09:00-18:00"`` -> TimeRange in seconds since midnight."""
    a, b = text.split("-")
    secs = [int(x[:2]) * 3600 + int(x[3:]) * 60 for x in (a, b)]
    return TimeRange(secs[0], secs[1])


def make_flow(nodes: list[Node], start: str | None = None, name: str = "main") -> Flow:
    return Flow(name=name, version="abc123", path=Path(f"flows/{name}.yaml"),
                start=start or nodes[0].name, nodes={n.name: n for n in nodes},
                timezone="Asia/Shanghai", language="zh")


def every_type_flow() -> Flow:
    """One node of every type, wired like the demo flow."""
    week = hm("09:00-18:00")
    return make_flow([
        Play(name="welcome", mark=M, prompts=("zh/welcome", "en/welcome"), barge_in=False,
             next="hours"),
        Schedule(name="hours", mark=M,
                 hours={0: (week,), 1: (week,), 2: (week,), 3: (week,), 4: (week,),
                        5: (hm("10:00-12:00"),)},
                 dates=(DateRule(dt.date(2026, 11, 11), dt.date(2026, 11, 11),
                                 (hm("00:00-24:00"),)),),
                 open="vip_check", closed="vm", holiday="bye"),
        Branch(name="vip_check", mark=M, cases=(
            Case((Cond(CondSubject.VIP, CondOp.IS, True),), "sales"),
            Case((Cond(CondSubject.VAR, CondOp.EQUALS, "en", name="lang"),), "other"),
            Case((Cond(CondSubject.CALLER, CondOp.PREFIX, "138"),), "q"),
        ), otherwise="main_menu"),
        Menu(name="main_menu", mark=M, prompts=("zh/menu",),
             choices={"1": "sales", "2": "account", "3": "remember", "9": "main_menu"},
             retries=2, fallback="bye"),
        Collect(name="account", mark=M, prompts=("zh/enter_account",), into="account",
                min_digits=8, max_digits=8, retries=1, next="lookup", fallback="bye"),
        RouteRequest(name="lookup", mark=M, timeout_s=3, choices=("say_balance",),
                     next="say_balance", fallback="bye", sets=("balance",)),
        Say(name="say_balance", mark=M, kind=SayKind.AMOUNT, value="{balance}",
            next="main_menu"),
        SetVars(name="remember", mark=M, values=(("lang", "en"),), next="support"),
        Transfer(name="support", mark=M, target="group:support", timeout_s=20,
                 on_fail="bye"),
        Transfer(name="sales", mark=M, target="group:sales"),
        Goto(name="other", mark=M, flow="other_flow", node="somewhere"),
        Queue(name="q", mark=M, queue="sales"),
        Voicemail(name="vm", mark=M, mailbox="100"),
        Hangup(name="bye", mark=M),
    ])


# --- mermaid structure ------------------------------------------------------------------

DECL = re.compile(r"^    ([A-Za-z][A-Za-z0-9_]*)(\(\(start\)\)|\(\[\"[^\"]*\"\]\)|"
                  r"\{\{\"[^\"]*\"\}\}|\[\"[^\"]*\"\])(:::[a-z]+)?$")
EDGE = re.compile(r"^    ([A-Za-z][A-Za-z0-9_]*) -->(?:\|\"([^\"]*)\"\|)? ([A-Za-z][A-Za-z0-9_]*)$")


def parse_mermaid(text: str) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """(id -> shape text, [(from, to, label)]); fails on a line it does not understand."""
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    decls: dict[str, str] = {}
    edges: list[tuple[str, str, str]] = []
    for line in lines[1:]:
        if (m := DECL.match(line)) is not None:
            assert m.group(1) not in decls, f"node {m.group(1)} declared twice"
            decls[m.group(1)] = m.group(2)
        elif (m := EDGE.match(line)) is not None:
            edges.append((m.group(1), m.group(3), m.group(2) or ""))
        elif not line.startswith("    classDef "):
            pytest.fail(f"unexpected mermaid line: {line!r}")
    for src, dst, _ in edges:
        assert src in decls and dst in decls, f"edge {src} -> {dst} to an undeclared node"
    return decls, edges


def test_mermaid_declares_every_node_once_and_links_only_declared_nodes():
    flow = every_type_flow()
    decls, edges = parse_mermaid(draw(flow, "mermaid"))
    assert len(decls) == len(flow.nodes) + 1  # + the start mark
    assert edges[0] == ("start", "n_welcome", "")
    want = sum(len(n.exits()) for n in flow.nodes.values()) + 1
    assert len(edges) == want


def test_mermaid_lists_nodes_in_flow_order():
    flow = every_type_flow()
    decls, _ = parse_mermaid(draw(flow, "mermaid"))
    ids = [i for i in decls if i != "start"]
    assert ids == ["n_" + name.replace("_", "__") for name in flow.nodes]


def test_mermaid_labels_say_what_each_node_does():
    text = draw(every_type_flow(), "mermaid")
    for label in [
        'n_main__menu["main_menu<br>menu: zh/menu"]',
        "play: zh/welcome, en/welcome",
        "say amount {balance}",
        "schedule: Mon-Fri 09:00-18:00; Sat 10:00-12:00<br>+1 date rule",
        "transfer: group:sales",
        "transfer: group:support (20 s)",
        "goto: other_flow:somewhere",
        "route_request: ask CRM (3 s)",
        "collect: zh/enter_account<br>into account (8 digits)",
        "set: lang=en",
        "queue: sales",
        "voicemail: 100",
        '"bye<br>hangup"',
    ]:
        assert label in text, label


def test_mermaid_edges_carry_digits_conditions_and_timeouts():
    _, edges = parse_mermaid(draw(every_type_flow(), "mermaid"))
    have = set(edges)
    for edge in [
        ("n_main__menu", "n_sales", "1"),
        ("n_main__menu", "n_main__menu", "9"),
        ("n_main__menu", "n_bye", "no key in 5 s or invalid, fallback (after 2 retries)"),
        ("n_account", "n_bye", "nothing in 5 s or invalid, fallback (after 1 retry)"),
        ("n_lookup", "n_bye", "timeout 3 s"),
        ("n_hours", "n_vip__check", "open"),
        ("n_hours", "n_vm", "closed"),
        ("n_hours", "n_bye", "holiday"),
        ("n_vip__check", "n_sales", "vip is true"),
        ("n_vip__check", "n_other", "var lang equals en"),
        ("n_vip__check", "n_q", "caller prefix 138"),
        ("n_vip__check", "n_main__menu", "else"),
        ("n_support", "n_bye", "busy/no answer"),
        ("n_welcome", "n_hours", ""),
    ]:
        assert edge in have, edge


def test_terminal_nodes_have_their_own_shape():
    decls, _ = parse_mermaid(draw(every_type_flow(), "mermaid"))
    terminal = {i for i, shape in decls.items() if shape.startswith("([")}
    assert terminal == {"n_sales", "n_other", "n_q", "n_vm", "n_bye"}
    assert decls["n_support"].startswith('["')  # a transfer with on_fail goes on
    assert decls["n_hours"].startswith("{{")     # decisions are hexagons
    assert decls["start"] == "((start))"


def test_mermaid_ids_are_safe_and_distinct_for_dotted_and_dashed_names():
    flow = make_flow([
        Play(name="a.b", mark=M, prompts=("p",), next="a_b"),
        Play(name="a_b", mark=M, prompts=("p",), next="a-b"),
        Play(name="a-b", mark=M, prompts=("p",), next="end"),
        Play(name="end", mark=M, prompts=("p",), next="start"),  # mermaid keyword, start mark
        Play(name="start", mark=M, prompts=("p",), next="菜单"),
        Hangup(name="菜单", mark=M),  # not a legal name in a file, but still a safe id
    ])
    decls, edges = parse_mermaid(draw(flow, "mermaid"))
    assert len(decls) == 7
    assert ("n_start", "n__x83dc__x5355_", "") in edges
    assert ("start", "n_a_db", "") in edges
    assert ("n_end", "n_start", "") in edges


def test_mermaid_escapes_quotes_brackets_hash_and_keeps_chinese():
    flow = make_flow([
        Menu(name="menu", mark=M, prompts=('zh/菜单"[1]#', "en/<b>&|`x`"),
             choices={"#": "bye", "*": "bye"}, fallback="bye"),
        Branch(name="check", mark=M, cases=(
            Case((Cond(CondSubject.VAR, CondOp.MATCHES, 'a"]|[#quot;', name="x"),), "bye"),
        ), otherwise="bye"),
        Hangup(name="bye", mark=M),
    ])
    text = draw(flow, "mermaid")
    decls, edges = parse_mermaid(text)  # a stray quote would break the line patterns
    assert "zh/菜单#quot;[1]#35;" in decls["n_menu"]
    assert "en/#lt;b#gt;#amp;#124;#96;x#96;" in decls["n_menu"]
    assert ("n_menu", "n_bye", "#35;") in edges
    assert ("n_check", "n_bye", "var x matches a#quot;]#124;[#35;quot;") in edges
    assert "<b>" not in text


def test_edge_to_a_node_the_flow_lacks_is_drawn_as_missing():
    flow = make_flow([Play(name="welcome", mark=M, prompts=("p",), next="nowhere")],
                     start="welcome")
    decls, _ = parse_mermaid(draw(flow, "mermaid"))
    assert decls["n_nowhere"] == '["nowhere<br>(missing)"]'
    assert 'label="nowhere\\n(missing)", style=dashed' in draw(flow, "dot")


# --- dot ----------------------------------------------------------------------------------

DOT_TOKEN = re.compile(r'\s*(?:"(?:[^"\\]|\\.)*"'            # quoted string, \" inside
                       r'|->|[{}\[\];,=]'                     # punctuation
                       r'|[A-Za-z_][A-Za-z0-9_]*'             # bare name (attribute, keyword)
                       r'|-?(?:\d+(?:\.\d*)?|\.\d+))')        # number


def dot_tokens(text: str) -> list[str]:
    """Tokens of a DOT text; fails on anything else (e.g. an unterminated quote)."""
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = DOT_TOKEN.match(text, pos)
        assert m is not None and m.end() > pos, f"bad DOT at {text[pos:pos + 40]!r}"
        out.append(m.group(0).strip())
        pos = m.end()
    return out


def dot_statements(text: str) -> tuple[list[str], list[tuple[str, str, str]]]:
    """(declared node ids, [(from, to, label)]) from the body of our DOT output."""
    toks = dot_tokens(text)
    assert toks[:3] == ["digraph", toks[1], "{"] and toks[-1] == "}"
    stmts: list[list[str]] = [[]]
    for t in toks[3:-1]:
        if t == ";":
            stmts.append([])
        else:
            stmts[-1].append(t)
    assert stmts.pop() == []
    nodes: list[str] = []
    edges: list[tuple[str, str, str]] = []
    for s in stmts:
        if s[0] in ("node", "edge") or s[1] == "=":
            continue
        if len(s) > 1 and s[1] == "->":
            label = ""
            if "label" in s:
                label = s[s.index("label") + 2]
            edges.append((s[0], s[2], label))
        else:
            assert s[0] not in nodes, f"{s[0]} declared twice"
            nodes.append(s[0])
    for src, dst, _ in edges:
        assert src in nodes and dst in nodes, (src, dst)
    return nodes, edges


def test_dot_structure_labels_and_shapes():
    flow = every_type_flow()
    text = draw(flow, "dot")
    nodes, edges = dot_statements(text)
    assert nodes == ['"start"'] + [f'"{n}"' for n in flow.nodes]
    assert edges[0] == ('"start"', '"welcome"', "")
    assert ('"main_menu"', '"sales"', '"1"') in edges
    assert ('"main_menu"', '"bye"',
            '"no key in 5 s or invalid, fallback (after 2 retries)"') in edges
    assert ('"lookup"', '"bye"', '"timeout 3 s"') in edges
    assert ('"hours"', '"bye"', '"holiday"') in edges
    assert '"main_menu" [label="main_menu\\nmenu: zh/menu"];' in text
    assert '"start" [shape=point' in text
    assert '"bye" [label="bye\\nhangup", shape=oval, peripheries=2' in text
    assert '"support" [label="support\\ntransfer: group:support (20 s)"];' in text


def test_dot_escapes_quotes_and_backslashes():
    flow = make_flow([
        Branch(name="start", mark=M, cases=(
            Case((Cond(CondSubject.VAR, CondOp.MATCHES, '"\\d{8}\\', name="x"),), "bye"),
        ), otherwise="bye"),
        Play(name="p", mark=M, prompts=('zh/欢迎"[x]#',), next="bye"),
        Hangup(name="bye", mark=M),
    ])
    text = draw(flow, "dot")
    _, edges = dot_statements(text)
    # the start mark steps aside for a node called "start"
    assert edges[0] == ('"_start"', '"start"', "")
    assert ('"start"', '"bye"', '"var x matches \\"\\\\d{8}\\\\ "') in edges
    assert 'label="p\\nplay: zh/欢迎\\"[x]#"' in text


@pytest.mark.skipif(shutil.which("dot") is None,
                    reason="Graphviz `dot` is not installed; DOT output checked by tokenizer only")
@pytest.mark.parametrize("flow", [every_type_flow(), make_flow([
    Play(name="a.b-c", mark=M, prompts=('zh/欢迎"\\[x]#',), next="nowhere")])])
def test_dot_renders_with_graphviz(flow, tmp_path):
    src = tmp_path / "flow.dot"
    src.write_text(draw(flow, "dot"), encoding="utf-8")
    done = subprocess.run(["dot", "-Tsvg", str(src)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "<svg" in done.stdout


# --- both ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_flow_gives_same_text(fmt):
    assert draw(every_type_flow(), fmt) == draw(every_type_flow(), fmt)
    assert draw(every_type_flow(), fmt).endswith("}\n" if fmt == "dot" else "\n")


def test_unknown_format_names_the_accepted_ones():
    with pytest.raises(ValueError, match="'svg'.*mermaid, dot"):
        draw(every_type_flow(), "svg")


def test_hours_summary_merges_days_with_the_same_hours():
    week = (hm("09:00-12:00"), hm("13:00-18:00"))
    s = Schedule(name="h", mark=M, hours={0: week, 1: week, 3: week, 6: (hm("10:00-24:00"),)},
                 open="a", closed="b")
    assert hours_summary(s) == "Mon-Tue 09:00-12:00,13:00-18:00; Thu 09:00-12:00,13:00-18:00; " \
        "Sun 10:00-24:00"
    assert hours_summary(Schedule(name="h", mark=M, hours={2: ()}, open="a", closed="b")) \
        == "closed every day"


def test_node_lines_and_edge_labels_without_a_diagram():
    menu = Menu(name="m", mark=M, prompts=(), choices={"1": "x"}, retries=0, fallback="y")
    assert node_lines(menu) == ["m", "menu"]
    assert edge_label(menu, "fallback") == "no key in 5 s or invalid, fallback (no retries)"
    assert edge_label(menu, "1") == "1"
    rr = RouteRequest(name="r", mark=M, timeout_s=2.5, fallback="y")
    assert edge_label(rr, "timeout") == "timeout 2.5 s"
    assert node_lines(Goto(name="g", mark=M, flow="f")) == ["g", "goto: f"]
