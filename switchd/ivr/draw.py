"""Flow diagrams: ``switchd flows draw FLOW --format mermaid|dot`` (issue 14, item 6).

A flow is drawn from the model alone (no files read, nothing rendered here): every
node in flow order, labelled with its name and a one-line summary of what it does
(``main_menu`` / ``menu: zh/menu``), then every edge of :meth:`Node.exits` labelled
with what takes it (a digit, a branch condition, ``open``/``closed``/``holiday``, a
timeout). The call's entry is a small start mark pointing at ``flow.start``; nodes
where the call leaves the flow (no exits: hangup, transfer without ``on_fail``,
goto, queue, voicemail) get their own shape so the ends of a flow stand out.

Output is deterministic (same flow, same text), so a diagram can be committed next
to its flow and reviewed as a diff. Names and labels are escaped for each format;
an edge to a node the flow does not have (an unchecked flow) is drawn to a dashed
``(missing)`` node rather than producing a broken diagram.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from switchd.ivr.model import (
    Collect,
    Flow,
    Goto,
    Menu,
    Node,
    NodeType,
    Play,
    Queue,
    RouteRequest,
    Say,
    Schedule,
    SetVars,
    TimeRange,
    Transfer,
    Voicemail,
)

__all__ = ["FORMATS", "draw", "edge_label", "hours_summary", "node_lines"]

#: The diagram formats :func:`draw` writes.
FORMATS = ("mermaid", "dot")

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: Node types drawn as a decision (several exits chosen by a test, not by the caller).
_DECISIONS = frozenset({NodeType.BRANCH, NodeType.SCHEDULE})


def draw(flow: Flow, fmt: str) -> str:
    """The diagram of ``flow`` as text in ``fmt`` (``"mermaid"`` or ``"dot"``), ending in a newline.

    Nodes appear in flow order, then edges in node order and exit order, so the same
    flow always gives the same text.

    Raises:
        ValueError: ``fmt`` is not one of :data:`FORMATS`.
    """
    writer = _WRITERS.get(fmt)
    if writer is None:
        raise ValueError(f"unknown diagram format {fmt!r}: use one of {', '.join(FORMATS)}")
    return writer(flow)


def node_lines(node: Node) -> list[str]:
    """The text lines of ``node``'s box: its name, then ``type: summary``.

    The summary is what a reader needs to follow the call: the prompts played, the
    value said, the opening hours, the transfer target, the flow jumped to.
    """
    return [node.name, *_summary(node)]


def edge_label(node: Node, label: str) -> str:
    """The label drawn on the edge ``label`` (from ``node.exits()``) out of ``node``.

    Exit labels are kept (digits, branch conditions, ``open``/``closed``) except where
    the edge is taken after waiting: a menu's or collect's ``fallback`` says after how
    many retries, a route request's ``timeout`` says how long it waits.
    """
    if label == "fallback" and isinstance(node, Menu):
        return (f"no key in {_secs(node.timeout_s)} or invalid, "
                f"fallback ({_retries(node.retries)})")
    if label == "fallback" and isinstance(node, Collect):
        return (f"nothing in {_secs(node.first_timeout_s)} or invalid, "
                f"fallback ({_retries(node.retries)})")
    if label == "timeout" and isinstance(node, RouteRequest):
        return f"timeout {_secs(node.timeout_s)}"
    return label


# --- labels ------------------------------------------------------------------------------


def _secs(seconds: float) -> str:
    """``3.0`` -> ``"3 s"``, ``2.5`` -> ``"2.5 s"``."""
    return f"{seconds:g} s"


def _retries(n: int) -> str:
    if n <= 0:
        return "no retries"
    return f"after {n} {'retry' if n == 1 else 'retries'}"


def _prompts(prompts: Iterable[str]) -> str:
    return ", ".join(prompts)


def _ranges(ranges: Iterable[TimeRange]) -> str:
    return ",".join(str(r) for r in ranges)


def hours_summary(schedule: Schedule) -> str:
    """Weekday opening hours in short: consecutive days with the same hours are merged,
    ``"Mon-Fri 09:00-18:00; Sat 10:00-12:00"``; ``"closed every day"`` when none."""
    groups: list[tuple[int, int, str]] = []  # first day, last day, hours text
    for day in range(7):
        text = _ranges(schedule.hours.get(day, ()))
        if not text:
            continue
        if groups and groups[-1][1] == day - 1 and groups[-1][2] == text:
            groups[-1] = (groups[-1][0], day, text)
        else:
            groups.append((day, day, text))
    if not groups:
        return "closed every day"
    parts = []
    for first, last, text in groups:
        days = _DAYS[first] if first == last else f"{_DAYS[first]}-{_DAYS[last]}"
        parts.append(f"{days} {text}")
    return "; ".join(parts)


def _summary(node: Node) -> list[str]:
    """The lines under the node's name (see :func:`node_lines`)."""
    kind = node.type.value
    if isinstance(node, Play | Menu):
        return [f"{kind}: {_prompts(node.prompts)}" if node.prompts else kind]
    if isinstance(node, Collect):
        digits = (f"{node.min_digits}" if node.min_digits == node.max_digits
                  else f"{node.min_digits}-{node.max_digits}")
        head = f"{kind}: {_prompts(node.prompts)}" if node.prompts else kind
        return [head, f"into {node.into} ({digits} digits)"]
    if isinstance(node, Say):
        # "say amount {balance}" reads as a sentence; the type word is its verb
        return [f"say {node.kind.value} {node.value}"]
    if isinstance(node, Schedule):
        lines = [f"{kind}: {hours_summary(node)}"]
        if node.dates:
            n = len(node.dates)
            lines.append(f"+{n} date {'rule' if n == 1 else 'rules'}")
        return lines
    if isinstance(node, SetVars):
        return [f"{kind}: " + ", ".join(f"{k}={v}" for k, v in node.values)]
    if isinstance(node, RouteRequest):
        return [f"{kind}: ask CRM ({_secs(node.timeout_s)})"]
    if isinstance(node, Transfer):
        ring = "" if node.timeout_s is None else f" ({_secs(node.timeout_s)})"
        return [f"{kind}: {node.target}{ring}"]
    if isinstance(node, Goto):
        where = node.flow if node.node is None else f"{node.flow}:{node.node}"
        return [f"{kind}: {where}"]
    if isinstance(node, Queue):
        # the call leaves the flow here: the queue's overflow, not the flow, goes on
        prio = f" (priority {node.priority})" if node.priority else ""
        return [f"{kind}: {node.queue}{prio}"]
    if isinstance(node, Voicemail):
        lines = [f"{kind}: {node.mailbox}"]
        if node.greeting:
            lines.append(f"greeting {_prompts(node.greeting)}")
        limits = [f"{what} {_secs(v)}" for what, v in (("max", node.max_s),
                                                        ("silence", node.silence_s))
                  if v is not None]
        if limits:
            lines.append(", ".join(limits))
        return lines
    return [kind]  # branch (its tests are on the edges), hangup, and types added later


# --- graph -------------------------------------------------------------------------------


def _edges(flow: Flow) -> list[tuple[str, str, str]]:
    """(from, to, label) of every edge, in node order then exit order."""
    return [(node.name, target, edge_label(node, label))
            for node in flow.nodes.values() for label, target in node.exits()]


def _missing(flow: Flow, edges: list[tuple[str, str, str]]) -> list[str]:
    """Names pointed at (start or an edge) that the flow has no node for, first use first."""
    out: list[str] = []
    for name in [flow.start, *(to for _, to, _ in edges)]:
        if name not in flow.nodes and name not in out:
            out.append(name)
    return out


def _is_terminal(node: Node) -> bool:
    # no exit = the call leaves the flow here (hangs up, is handed on, jumps elsewhere)
    return not node.exits()


# --- mermaid -----------------------------------------------------------------------------


def _mermaid_id(name: str) -> str:
    """A safe, injective mermaid id for node ``name``.

    Prefixed with ``n_`` so no name can become a keyword (``end``), the start mark's id
    or be read as an edge head (``o``/``x``); ``_``, ``.``, ``-`` and anything else
    are spelled out so ``a.b`` and ``a_b`` stay different nodes.
    """
    out = ["n_"]
    for ch in name:
        if ch == "_":
            out.append("__")
        elif ch == ".":
            out.append("_d")
        elif ch == "-":
            out.append("_h")
        elif ch.isascii() and ch.isalnum():
            out.append(ch)
        else:
            out.append(f"_x{ord(ch):x}_")
    return "".join(out)


#: Characters mermaid would read inside a quoted label, as its ``#code;`` entities: ``#``
#: itself (it starts an entity, so ``#quot;`` typed in a prompt name must stay text), the
#: quote, HTML (labels are HTML), ``|`` (edge-label delimiter), backquote (markdown label).
_MERMAID_ESCAPES = {
    "#": "#35;",
    '"': "#quot;",
    "<": "#lt;",
    ">": "#gt;",
    "&": "#amp;",
    "|": "#124;",
    "`": "#96;",
    "\n": " ",
    "\r": " ",
}


def _mermaid_text(lines: Iterable[str]) -> str:
    """Lines as the inside of a quoted mermaid label (``<br>`` between lines)."""
    return "<br>".join("".join(_MERMAID_ESCAPES.get(ch, ch) for ch in line) for line in lines)


def _mermaid(flow: Flow) -> str:
    out = ["flowchart TD", "    start((start))"]
    for node in flow.nodes.values():
        text = _mermaid_text(node_lines(node))
        if _is_terminal(node):
            shape = f'(["{text}"])'      # stadium
        elif node.type in _DECISIONS:
            shape = f'{{{{"{text}"}}}}'  # hexagon
        else:
            shape = f'["{text}"]'
        out.append(f"    {_mermaid_id(node.name)}{shape}")
    edges = _edges(flow)
    missing = _missing(flow, edges)
    for name in missing:
        out.append(f'    {_mermaid_id(name)}["{_mermaid_text([name, "(missing)"])}"]:::missing')
    out.append(f"    start --> {_mermaid_id(flow.start)}")
    for src, dst, label in edges:
        arrow = f'-->|"{_mermaid_text([label])}"|' if label else "-->"
        out.append(f"    {_mermaid_id(src)} {arrow} {_mermaid_id(dst)}")
    if missing:
        out.append("    classDef missing stroke-dasharray: 5 5")
    return "\n".join(out) + "\n"


# --- dot ---------------------------------------------------------------------------------


def _dot_str(text: str) -> str:
    """``text`` as a quoted DOT string: ``\\`` and ``"`` escaped, line breaks dropped.

    Backslashes are doubled so a ``\\d`` in a condition stays text rather than a DOT
    escape (``\\N`` = node name); a string that would end in a backslash gets a space,
    because older Graphviz reads a final ``\\\\"`` as an escaped quote.
    """
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    text = text.replace("\r", " ").replace("\n", " ")
    if text.endswith("\\"):
        text += " "
    return '"' + text + '"'


def _dot_label(lines: Iterable[str]) -> str:
    """Lines as one quoted DOT label, ``\\n`` (centred line break) between them."""
    return '"' + "\\n".join(_dot_str(line)[1:-1] for line in lines) + '"'


def _dot(flow: Flow) -> str:
    start = "start"
    while start in flow.nodes:  # the start mark must not merge with a node named "start"
        start = "_" + start
    out = [
        f"digraph {_dot_str(flow.name)} {{",
        "    rankdir=TB;",
        '    node [shape=box, style=rounded, fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=10];',
        f'    {_dot_str(start)} [shape=point, width=0.15, label=""];',
    ]
    for node in flow.nodes.values():
        attrs = [f"label={_dot_label(node_lines(node))}"]
        if _is_terminal(node):
            attrs.append("shape=oval, peripheries=2, style=solid")
        elif node.type in _DECISIONS:
            attrs.append("shape=hexagon, style=solid")
        out.append(f"    {_dot_str(node.name)} [{', '.join(attrs)}];")
    edges = _edges(flow)
    for name in _missing(flow, edges):
        out.append(f"    {_dot_str(name)} [label={_dot_label([name, '(missing)'])}, "
                   "style=dashed];")
    out.append(f"    {_dot_str(start)} -> {_dot_str(flow.start)};")
    for src, dst, label in edges:
        attr = f" [label={_dot_str(label)}]" if label else ""
        out.append(f"    {_dot_str(src)} -> {_dot_str(dst)}{attr};")
    out.append("}")
    return "\n".join(out) + "\n"


_WRITERS: dict[str, Callable[[Flow], str]] = {"mermaid": _mermaid, "dot": _dot}
