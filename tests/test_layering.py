"""Rooms and doors (DESIGN §2): which package may import which, and no import circle.

Read from the source with ``ast`` (module-level imports, not those under
``TYPE_CHECKING``), so a forbidden import fails here before it becomes a habit.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "switchd"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """switchd modules imported at run time by ``path`` (TYPE_CHECKING blocks skipped)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names if a.name.startswith("switchd"))
            elif isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.startswith("switchd"):
                out.add(node.module)
                # `from switchd.core import inputs` imports the module switchd.core.inputs
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    if (ROOT.parent / (sub.replace(".", "/") + ".py")).exists():
                        out.add(sub)
            elif isinstance(node, ast.If | ast.Try | ast.With):
                visit(node.body)
                visit(getattr(node, "orelse", []))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue  # imports inside functions are lazy; they cannot make a circle at import

    visit(tree.body)
    return out


GRAPH: dict[str, set[str]] = {
    _module_name(p): _imports(p) for p in ROOT.rglob("*.py")
}


@pytest.mark.parametrize("package, forbidden", [
    ("switchd.lines", ("switchd.drivers", "switchd.recorder", "switchd.cti", "switchd.app",
                       "switchd.config", "switchd.shell", "switchd.core")),
    ("switchd.core", ("switchd.drivers", "switchd.recorder", "switchd.cti", "switchd.app",
                      "switchd.config", "switchd.shell", "switchd.store", "switchd.lines.media",
                      "switchd.lines.mixer", "switchd.lines.prompts")),
    ("switchd.drivers", ("switchd.cti", "switchd.app", "switchd.config", "switchd.store")),
    ("switchd.cti", ("switchd.app", "switchd.config", "switchd.store")),
    ("switchd.engine", ("switchd.core", "switchd.lines", "switchd.drivers", "switchd.cti")),
    ("switchd.events", ("switchd.core", "switchd.drivers", "switchd.cti", "switchd.app")),
])
def test_a_package_does_not_import_what_sits_outside_its_room(package, forbidden):
    offenders = {
        (mod, imp) for mod, imps in GRAPH.items()
        if mod == package or mod.startswith(package + ".")
        for imp in imps if any(imp == f or imp.startswith(f + ".") for f in forbidden)
    }
    # lines/state.py is the pure line table the events and the core share.
    offenders = {(m, i) for m, i in offenders if i != "switchd.lines.state"}
    assert not offenders, f"{package} reaches outside its room: {sorted(offenders)}"


def test_no_module_import_circle():
    modules = set(GRAPH)

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges = {m: {r for i in imps if (r := resolve(i)) and r != m
                 and not m.startswith(r + ".")} for m, imps in GRAPH.items()}
    # Package __init__ modules re-export their own children; an edge from a child to its
    # package's __init__ is the normal "from package import name" shape, not a circle.
    seen: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> None:
        seen[m] = 1
        stack.append(m)
        for n in edges.get(m, ()):
            if seen.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                raise AssertionError(f"import circle: {' -> '.join(cycle)}")
            if n not in seen:
                dfs(n)
        stack.pop()
        seen[m] = 2

    for m in sorted(modules):
        if m not in seen:
            dfs(m)
