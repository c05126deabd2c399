"""Load YAML and remember where every key and value came from.

Why: a config error is only useful when it says where to look
(``config.yaml:17:11: ...``). PyYAML's composer keeps a start mark on every node
(``yaml.compose``); we walk the node tree ourselves, build plain Python data, and
record the mark of each mapping key and each value under its path, e.g.
``("users", 2, "role")``. Validation (``switchd.config``, the flow loader) then
maps an error's path back to a line and column, through :mod:`switchd.yamlerrors`.

Deliberate departures from PyYAML's ``SafeLoader`` (YAML 1.1):

- Only ``true``/``false`` (any case) are booleans. YAML 1.1 also reads ``yes``,
  ``no``, ``on``, ``off``, ``y``... as booleans (the "Norway problem"); here they
  stay strings, so ``enabled: yes`` is reported as a type error instead of being
  guessed at, and a DTMF option or a country code ``NO`` stays text. This follows
  the YAML 1.2 core schema.
- Numbers are decimal: ``10``, ``-3``, ``1_000``, ``2.5``, ``1.5e+3``, ``.inf``.
  YAML 1.1 also reads ``0x1F`` (hex), ``010`` (octal: 8!), ``0b101`` and
  ``1:30`` (base 60: 90) as numbers; here they stay text, so ``timeout_s: 1:30``
  is a type error and a menu key ``010`` or a phone number ``0571`` is not
  silently turned into 8 or 377. :func:`number_hint` says why to a user who
  meant a number. (The YAML 1.2 JSON schema reads numbers this way too.)
- A key repeated in one mapping is an error at the repeated key. PyYAML silently
  keeps the last value, which hides copy-paste mistakes. Keys merged in with
  ``<<:`` may still be overridden, as YAML's merge-key spec intends.

And two limits, so that a hostile or runaway file is refused at a position
instead of hanging or crashing the loader: lists and mappings nest at most
:data:`MAX_DEPTH` levels, and a document expands to at most :data:`MAX_NODES`
values, counting what every alias repeats (a few hundred bytes of nested aliases,
the "billion laughs", would otherwise expand to hundreds of millions of values).

A YAML syntax error becomes a :class:`~switchd.exceptions.ConfigError` with the
``FILE:LINE:COL`` of PyYAML's problem mark. Lines and columns are 1-based, as
editors show them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from switchd.exceptions import ConfigError

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "LocatedDocument",
    "Mark",
    "Problem",
    "YamlPath",
    "compose_located",
    "format_problems",
    "load_located",
    "number_hint",
]

#: A path into the loaded data: mapping keys and list indices, outermost first.
YamlPath = tuple[Any, ...]

_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"

#: Deepest nesting of lists and mappings (counting through aliases). A config or a
#: flow needs fewer than 10; the bound keeps the recursive composer and builder far
#: from Python's recursion limit whatever the file holds.
MAX_DEPTH = 64

#: Most values (scalars, lists, mappings) one document may expand to, each alias
#: counting as a copy of what it refers to. A real config or flow has a few
#: thousand; the bound stops an alias bomb before it is expanded.
MAX_NODES = 200_000


@dataclass(frozen=True, slots=True, order=True)
class Mark:
    """A position in the source text, 1-based like an editor's status bar."""

    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.line}:{self.column}"


_START = Mark(1, 1)


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One thing wrong with a file, at a position; sorts in file order."""

    mark: Mark
    message: str

    def format(self, source: str) -> str:
        """The ``FILE:LINE:COL: message`` form that ConfigError carries."""
        return f"{source}:{self.mark}: {self.message}"


def format_problems(source: str, problems: list[Problem]) -> list[str]:
    """Sort ``problems`` by line and column, drop repeats, format each for ConfigError."""
    return [p.format(source) for p in sorted(set(problems))]


def _mark(yaml_mark: yaml.Mark | None) -> Mark:
    if yaml_mark is None:
        return _START
    return Mark(yaml_mark.line + 1, yaml_mark.column + 1)


class _LimitError(Exception):
    """The document goes past :data:`MAX_DEPTH` or :data:`MAX_NODES` at ``mark``."""

    def __init__(self, mark: yaml.Mark | None, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


def _depth_message(depth: int, alias: str | None) -> str:
    how = f"the alias *{alias} nests what it refers to" if alias else "lists and mappings nest"
    return (f"{how} {depth} levels deep here, more than the {MAX_DEPTH} allowed; the limit "
            "keeps a runaway or hostile file from exhausting the loader (no config or flow "
            "needs so many levels)")


def _size_message(alias: str | None, size: int) -> str:
    if alias is None:
        return (f"the document grows past {MAX_NODES} values here; the limit keeps a runaway "
                "or hostile file from using all memory and time (no config or flow needs so "
                "many): make it smaller")
    return (f"the document grows past {MAX_NODES} values with the alias *{alias} (a copy of "
            f"{size} values), counting what every alias repeats; the limit stops a file of "
            "nested aliases (an \"alias bomb\") from using all memory and time: write the "
            "values out, or use fewer aliases")


class _Loader(yaml.SafeLoader):
    """SafeLoader with the YAML 1.2 booleans and decimal numbers (see the module
    docstring), whose composer enforces :data:`MAX_DEPTH` and :data:`MAX_NODES`.

    PyYAML's composer builds each node once and hands the same node out for every
    alias of it; the builder below expands aliases. So the composer measures as it
    goes: each finished list or mapping gets its expanded size (values, aliases
    counted as copies) and its height (levels of nesting), kept for anchored nodes
    so that an alias adds what it will expand to, at the alias's own position.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._open: list[list[int]] = []  # per open list/mapping: [expanded size, child height]
        self._total = 0  # values the document expands to so far
        self._measured: dict[int, tuple[int, int]] = {}  # id(anchored node) -> (size, height)

    def _count(self, size: int, mark: yaml.Mark | None, alias: str | None) -> None:
        """Add ``size`` values to the document's total; raise past :data:`MAX_NODES`."""
        self._total += size
        if self._total > MAX_NODES:
            raise _LimitError(mark, _size_message(alias, size))

    def _nest(self, size: int, height: int) -> None:
        """Fold a finished value into the list or mapping that holds it."""
        if self._open:
            frame = self._open[-1]
            frame[0] += size
            frame[1] = max(frame[1], height)

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node: Node = super().compose_node(parent, index)  # raises for an undefined alias
            # An alias of a node still being composed is a cycle: the builder stops
            # there (and says so), so it adds one value.
            size, height = self._measured.get(id(node), (1, 0))
            self._count(size, event.start_mark, event.anchor)
            if len(self._open) + height > MAX_DEPTH:
                raise _LimitError(event.start_mark,
                                  _depth_message(len(self._open) + height, event.anchor))
            self._nest(size, height)
            return node
        self._count(1, event.start_mark, None)
        if not isinstance(event, yaml.CollectionStartEvent):
            node = super().compose_node(parent, index)
            if event.anchor is not None:
                self._measured[id(node)] = (1, 0)
            self._nest(1, 0)
            return node
        if len(self._open) >= MAX_DEPTH:
            raise _LimitError(event.start_mark, _depth_message(len(self._open) + 1, None))
        self._open.append([1, 0])
        node = super().compose_node(parent, index)
        size, child_height = self._open.pop()
        if event.anchor is not None:
            self._measured[id(node)] = (size, child_height + 1)
        self._nest(size, child_height + 1)
        return node


# Copy the resolver table (it is a class attribute shared with SafeLoader) without
# the YAML 1.1 bool, int and float rules, then add the strict ones. Explicit tags
# (!!bool yes, !!int 0x1F) still work, which is fine: whoever writes a tag means it.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL_TAG, _INT_TAG, _FLOAT_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|false)$", re.IGNORECASE), list("tTfF")
)
# YAML 1.1's decimal int, without its 0b/0x/leading-0 octal/base-60 forms. A leading
# 0 makes text: "010" and "0571" are not numbers (YAML 1.1 read them as octal).
_Loader.add_implicit_resolver(
    _INT_TAG, re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789")
)
# YAML 1.1's float without its base-60 form (1:30.5).
_Loader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
                    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)

_BASE60_RE = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_BASE_N_RE = re.compile(r"[-+]?0(?:x_*[0-9a-fA-F][0-9a-fA-F_]*|o_*[0-7][0-7_]*|b_*[01][01_]*)")
_LEADING_ZERO_RE = re.compile(r"[-+]?0[0-9_]+")
_BASE_NAMES = {"x": "a hexadecimal", "o": "an octal", "b": "a binary"}


def number_hint(text: str) -> str | None:
    """Why ``text``, which YAML 1.1 read as a number, is text here; None for other text.

    For a type error on a value that should be a number: ``"1:30"`` -> "1:30 is not
    read as hours/minutes:seconds (base 60); write the plain number, e.g. 90";
    ``"0x1F"``, ``"0o17"``, ``"0b101"`` and ``"010"`` likewise.
    """
    text = text.strip()
    sign = "-" if text.startswith("-") else ""
    body = text.lstrip("+-").replace("_", "")
    if _BASE60_RE.fullmatch(text):
        value = 0.0
        for part in body.split(":"):
            value = value * 60 + float(part)
        return (f"{text} is not read as hours/minutes:seconds (base 60); write the plain "
                f"number, e.g. {sign}{value:g}")
    if _BASE_N_RE.fullmatch(text):
        return (f"{text} is not read as {_BASE_NAMES[body[1]]} number; write the number in "
                f"decimal, e.g. {sign}{int(body, 0)}")
    if _LEADING_ZERO_RE.fullmatch(text):
        return (f"{text} is not read as a number (YAML 1.1 read a leading 0 as octal); write "
                f"{sign}{int(body)}, or quote it as text")
    return None


@dataclass(frozen=True)
class LocatedDocument:
    """Plain data loaded from YAML plus the source position of every node.

    ``data`` is made of dict, list, str, int, float, bool, None (and the dates
    YAML's timestamp rule produces). ``values[path]`` is where the value at
    ``path`` starts; ``keys[path]`` is where its mapping key starts.
    ``key_texts[path]`` is the key as written when YAML read it as something other
    than text (a number, null, a date): a checker can insist on the form (a menu key
    ``1`` but not ``+1`` or ``1_``). ``duplicates`` holds the path and position of
    each repeated key (also in ``problems``), for a caller that words it its own way
    (a menu's "key '1' is given twice"). ``problems``
    holds structural faults that did not stop loading (duplicate keys, unusable
    keys); the caller reports them together with its own validation problems.
    """

    source: str
    data: Any
    values: Mapping[YamlPath, Mark] = field(default_factory=dict)
    keys: Mapping[YamlPath, Mark] = field(default_factory=dict)
    key_texts: Mapping[YamlPath, str] = field(default_factory=dict)
    duplicates: tuple[tuple[YamlPath, Mark], ...] = ()
    problems: tuple[Problem, ...] = ()

    def mark_for(self, path: YamlPath, *, key: bool = False) -> Mark:
        """Where to point for a problem at ``path``.

        With ``key=True`` the mapping key's position (for unknown or duplicate
        keys), otherwise the value's. A path that does not exist in the file (a
        missing key, a default) falls back to its nearest existing ancestor, so
        "missing key 'role'" points at the user entry that lacks it.
        """
        path = tuple(path)
        if key and path in self.keys:
            return self.keys[path]
        for end in range(len(path), -1, -1):
            found = self.values.get(path[:end])
            if found is not None:
                return found
        return _START

    def where(self, path: YamlPath, *, key: bool = False) -> str:
        """``FILE:LINE:COL`` for a problem at ``path`` (see :meth:`mark_for`)."""
        return f"{self.source}:{self.mark_for(path, key=key)}"


class _Builder:
    """Walks a composed node tree into plain data, recording marks as it goes."""

    def __init__(self, loader: _Loader) -> None:
        self._loader = loader
        self.values: dict[YamlPath, Mark] = {}
        self.keys: dict[YamlPath, Mark] = {}
        self.key_texts: dict[YamlPath, str] = {}
        self.duplicates: list[tuple[YamlPath, Mark]] = []
        self.problems: list[Problem] = []
        self._stack: set[int] = set()  # ids of nodes being built, to stop alias cycles

    def _problem(self, mark: Mark, message: str) -> None:
        self.problems.append(Problem(mark, message))

    def build(self, node: Node, path: YamlPath) -> Any:
        self.values[path] = _mark(node.start_mark)
        if id(node) in self._stack:
            self._problem(_mark(node.start_mark), "an alias refers to its own parent (cycle)")
            return None
        self._stack.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            if isinstance(node, SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            return self._scalar(node)
        finally:
            self._stack.discard(id(node))

    def _scalar(self, node: Node) -> Any:
        try:
            return self._loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            mark = _mark(exc.problem_mark or node.start_mark)
            self._problem(mark, f"cannot read this value: {exc.problem or exc}")
            return None
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            # e.g. `!!int x`, or a date such as 2024-13-45 that matches YAML's
            # timestamp pattern but is not a real date.
            self._problem(_mark(node.start_mark), f"cannot read this value: {exc}")
            return None

    def _mapping(self, node: MappingNode, path: YamlPath) -> dict[Any, Any]:
        own = {id(k) for k, _ in node.value}
        try:
            self._loader.flatten_mapping(node)  # resolves `<<:` merge keys in place
        except yaml.MarkedYAMLError as exc:
            self._problem(_mark(exc.problem_mark or node.start_mark), str(exc.problem or exc))
        result: dict[Any, Any] = {}
        first_seen: dict[Any, tuple[Mark, bool]] = {}
        done: set[int] = set()
        for key_node, value_node in node.value:
            if id(key_node) in done:
                continue  # the same pair twice: a mapping merged into itself (`&a {<<: *a}`)
            done.add(id(key_node))
            key_mark = _mark(key_node.start_mark)
            if not isinstance(key_node, ScalarNode):
                self._problem(key_mark, "a key must be a plain value, not a list or mapping")
                continue
            key = self._scalar(key_node)
            try:
                hash(key)
            except TypeError:
                self._problem(key_mark, f"this key cannot be used: {key!r}")
                continue
            is_own = id(key_node) in own
            if key in first_seen:
                prev_mark, prev_own = first_seen[key]
                if prev_own and is_own:
                    self.duplicates.append(((*path, key), key_mark))
                    self._problem(
                        key_mark,
                        f"duplicate key {key!r} (first given at line {prev_mark.line}); "
                        "remove one of them",
                    )
                    continue
                if not is_own:
                    continue  # a merged-in key never overrides an earlier key
            first_seen[key] = (key_mark, is_own)
            self.keys[(*path, key)] = key_mark
            if not isinstance(key, str):
                self.key_texts[(*path, key)] = key_node.value
            result[key] = self.build(value_node, (*path, key))
        return result


def _line_col(text: str, position: int) -> Mark:
    before = text[:position]
    return Mark(before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1)


def _syntax_hint(exc: yaml.MarkedYAMLError) -> str | None:
    """What to do about the YAML mistakes people make most in these files, or None."""
    problem = exc.problem or ""
    context = exc.context or ""
    if "'\\t'" in problem or "\t" in problem:
        return "indent with spaces: YAML does not allow tabs for indentation"
    if "while scanning an alias" in context or "while scanning an anchor" in context:
        return ('a key or value starting with * or & must be quoted, e.g. "*": operator '
                '(unquoted, YAML reads it as an alias or anchor)')
    return None


def compose_located(text: str, source: str) -> LocatedDocument:
    """Load one YAML document from ``text``, keeping marks; ``source`` names it in messages.

    An empty document (or only comments) gives ``data=None``. Duplicate keys and
    unusable keys are collected in ``problems`` rather than raised, so the caller
    can report them with everything else.

    Raises ConfigError (one problem, at PyYAML's problem mark) when the text is
    not valid YAML or holds more than one document, and (at the value where the
    limit is passed) when it nests deeper than :data:`MAX_DEPTH` or expands to more
    than :data:`MAX_NODES` values.
    """
    loader: _Loader | None = None
    try:
        try:
            loader = _Loader(text)
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = _mark(exc.problem_mark or exc.context_mark)
            what = exc.problem or "invalid YAML"
            if exc.context:
                what = f"{what} ({exc.context}"
                if exc.context_mark is not None and _mark(exc.context_mark) != mark:
                    what += f" at line {exc.context_mark.line + 1}"
                what += ")"
            hint = _syntax_hint(exc)
            raise ConfigError([f"{source}:{mark}: YAML syntax error: {what}"
                               + (f"; {hint}" if hint else "")]) from exc
        except yaml.reader.ReaderError as exc:
            mark = _line_col(text, exc.position)
            raise ConfigError(
                [f"{source}:{mark}: character U+{exc.character:04X} is not allowed in YAML text"]
            ) from exc
        except _LimitError as exc:
            raise ConfigError([f"{source}:{_mark(exc.mark)}: {exc.message}"]) from None
        if node is None:
            return LocatedDocument(source=source, data=None, values={(): _START})
        builder = _Builder(loader)
        data = builder.build(node, ())
        return LocatedDocument(
            source=source,
            data=data,
            values=builder.values,
            keys=builder.keys,
            key_texts=builder.key_texts,
            duplicates=tuple(builder.duplicates),
            problems=tuple(builder.problems),
        )
    finally:
        if loader is not None:
            loader.dispose()


def load_located(text: str, source: str) -> LocatedDocument:
    """Like :func:`compose_located`, but structural problems raise ConfigError at once.

    For loaders that have no validation of their own to merge the problems into.
    """
    doc = compose_located(text, source)
    if doc.problems:
        raise ConfigError(format_problems(source, list(doc.problems)))
    return doc
