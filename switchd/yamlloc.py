"""Load YAML and remember where every key and value came from.

Why: a config error is only useful when it says where to look
(``config.yaml:17:11: ...``). PyYAML's composer keeps a start mark on every node
(``yaml.compose``); we walk the node tree ourselves, build plain Python data, and
record the mark of each mapping key and each value under its path, e.g.
``("users", 2, "role")``. Validation (``switchd.config``, the flow loader) then
maps an error's path back to a line and column, through :mod:`switchd.yamlerrors`.

Two deliberate departures from PyYAML's ``SafeLoader`` (YAML 1.1):

- Only ``true``/``false`` (any case) are booleans. YAML 1.1 also reads ``yes``,
  ``no``, ``on``, ``off``, ``y``... as booleans (the "Norway problem"); here they
  stay strings, so ``enabled: yes`` is reported as a type error instead of being
  guessed at, and a DTMF option or a country code ``NO`` stays text. This follows
  the YAML 1.2 core schema.
- A key repeated in one mapping is an error at the repeated key. PyYAML silently
  keeps the last value, which hides copy-paste mistakes. Keys merged in with
  ``<<:`` may still be overridden, as YAML's merge-key spec intends.

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
    "LocatedDocument",
    "Mark",
    "Problem",
    "YamlPath",
    "compose_located",
    "format_problems",
    "load_located",
]

#: A path into the loaded data: mapping keys and list indices, outermost first.
YamlPath = tuple[Any, ...]

_BOOL_TAG = "tag:yaml.org,2002:bool"


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


class _Loader(yaml.SafeLoader):
    """SafeLoader whose only booleans are true/false (YAML 1.2 core schema)."""


# Copy the resolver table (it is a class attribute shared with SafeLoader) without
# the YAML 1.1 bool rule, then add the strict one. Explicit tags (!!bool yes) still
# work, which is fine: whoever writes a tag means it.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|false)$", re.IGNORECASE), list("tTfF")
)


@dataclass(frozen=True)
class LocatedDocument:
    """Plain data loaded from YAML plus the source position of every node.

    ``data`` is made of dict, list, str, int, float, bool, None (and the dates
    YAML's timestamp rule produces). ``values[path]`` is where the value at
    ``path`` starts; ``keys[path]`` is where its mapping key starts. ``problems``
    holds structural faults that did not stop loading (duplicate keys, unusable
    keys); the caller reports them together with its own validation problems.
    """

    source: str
    data: Any
    values: Mapping[YamlPath, Mark] = field(default_factory=dict)
    keys: Mapping[YamlPath, Mark] = field(default_factory=dict)
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
        for key_node, value_node in node.value:
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
            result[key] = self.build(value_node, (*path, key))
        return result


def _line_col(text: str, position: int) -> Mark:
    before = text[:position]
    return Mark(before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1)


def compose_located(text: str, source: str) -> LocatedDocument:
    """Load one YAML document from ``text``, keeping marks; ``source`` names it in messages.

    An empty document (or only comments) gives ``data=None``. Duplicate keys and
    unusable keys are collected in ``problems`` rather than raised, so the caller
    can report them with everything else.

    Raises ConfigError (one problem, at PyYAML's problem mark) when the text is
    not valid YAML or holds more than one document.
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
            raise ConfigError([f"{source}:{mark}: YAML syntax error: {what}"]) from exc
        except yaml.reader.ReaderError as exc:
            mark = _line_col(text, exc.position)
            raise ConfigError(
                [f"{source}:{mark}: character U+{exc.character:04X} is not allowed in YAML text"]
            ) from exc
        if node is None:
            return LocatedDocument(source=source, data=None, values={(): _START})
        builder = _Builder(loader)
        data = builder.build(node, ())
        return LocatedDocument(
            source=source,
            data=data,
            values=builder.values,
            keys=builder.keys,
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
