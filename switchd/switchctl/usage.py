"""What each verb takes, read from the server's ``HELP`` list.

The usage lines are the server's (``CALL.RECORD call=<id> action=start|stop|pause|resume``),
so completion offers exactly the verbs and arguments of the switchd it talks to, and
a verb added on the server is completed without a new switchctl. A usage line is
read like this:

- ``key=…`` is an argument; inside ``[…]`` it is optional;
- ``key=a|b|c`` (words only) lists the values it takes;
- a token without ``=`` is a positional: ``json|text`` lists its values, ``[verb]``
  takes a verb name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["ArgSpec", "VerbSpec", "parse_usage", "verbs_for_role"]

_KEY_RE = re.compile(r"(?<![<\w.-])([a-z][a-z0-9_.-]*)=(\S*)")
_CHOICES_RE = re.compile(r"[a-z0-9_]+(?:\|[a-z0-9_]+)+")
_POSITIONAL_RE = re.compile(r"\[?([a-z][a-z0-9_]*(?:\|[a-z0-9_]+)*)\]?")


@dataclass(frozen=True)
class ArgSpec:
    """One ``key=`` argument as its usage shows it.

    ``value`` is the usage's text after ``=`` (``<id>``, ``total|interval``,
    ``<extension>|queue:<name>``, ``<queue>[:<penalty>],...``; empty for ``[caller=]``);
    ``choices`` its literal values when it lists only words (``true|false``).
    """

    key: str
    required: bool
    choices: tuple[str, ...] = ()
    value: str = ""

    @property
    def is_list(self) -> bool:
        """True for a comma-separated list (``events=<pattern>,...``)."""
        return self.value.endswith(",...")


@dataclass(frozen=True)
class VerbSpec:
    """A verb as ``HELP`` describes it.

    ``roles`` is None for a verb anyone may use (even before ``AUTH``).
    ``positional`` lists the literal values of its positional argument
    (``FORMAT json|text``); ``takes_verb`` is true for ``HELP [verb]``.
    """

    name: str
    usage: str
    roles: frozenset[str] | None
    args: tuple[ArgSpec, ...] = ()
    positional: tuple[str, ...] = ()
    takes_verb: bool = False

    def arg(self, key: str) -> ArgSpec | None:
        """The argument ``key``, or None when the verb does not list it."""
        return next((a for a in self.args if a.key == key), None)


def _optional_spans(usage: str) -> list[tuple[int, int]]:
    """Start and end of every top-level ``[…]`` group (groups may nest: ``[q=<a>[:<b>]]``)."""
    spans: list[tuple[int, int]] = []
    depth = start = 0
    for i, ch in enumerate(usage):
        if ch == "[":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
            if depth == 0:
                spans.append((start, i))
    return spans


def parse_usage(name: str, usage: str, roles: str = "any") -> VerbSpec:
    """Read one ``HELP`` item (``verb``, ``usage``, ``roles``) into a VerbSpec.

    ``roles`` is ``any`` or a comma-separated list, as HELP sends it. Never raises:
    parts of a usage line it cannot read are simply not completed.
    """
    optional = _optional_spans(usage)
    args: list[ArgSpec] = []
    for m in _KEY_RE.finditer(usage):
        key, value = m.group(1), m.group(2)
        # The closing bracket of an optional group is not part of the value.
        while value.endswith("]") and value.count("]") > value.count("["):
            value = value[:-1]
        if any(a.key == key for a in args):
            continue
        choices = tuple(value.split("|")) if _CHOICES_RE.fullmatch(value) else ()
        required = not any(lo < m.start() < hi for lo, hi in optional)
        args.append(ArgSpec(key, required, choices, value))
    positional: tuple[str, ...] = ()
    takes_verb = False
    for token in usage.split()[1:]:
        if "=" in token or "<" in token:
            continue
        m = _POSITIONAL_RE.fullmatch(token)
        if m is None:
            continue
        word = m.group(1)
        if "|" in word:
            positional = tuple(word.split("|"))
        elif word == "verb":
            takes_verb = True
    role_set = None if roles == "any" else frozenset(r for r in roles.split(",") if r)
    return VerbSpec(name.upper(), usage, role_set, tuple(args), positional, takes_verb)


def verbs_for_role(items: Iterable[Mapping[str, object]], role: str | None) -> dict[str, VerbSpec]:
    """The verbs of a ``HELP`` list that ``role`` may use (None: not logged in), in HELP order."""
    out: dict[str, VerbSpec] = {}
    for item in items:
        spec = parse_usage(str(item.get("verb", "")), str(item.get("usage", "")),
                           str(item.get("roles", "any")))
        if not spec.name:
            continue
        if spec.roles is None or (role is not None and role in spec.roles):
            out[spec.name] = spec
    return out
