"""Turn pydantic validation errors into ``FILE:LINE:COL: message`` problems on a YAML file.

Why a module of its own: ``config.yaml`` and the IVR flow files are both read with
:mod:`switchd.yamlloc` (which remembers where every key and value is) and checked
by pydantic models. An operator should get the same kind of message from both:
the file position of the offending key or value, the dotted key as they would
navigate to it (``users[2].role``), what was expected, what was found (never a
secret), and a "did you mean" for a misspelt key (stdlib :mod:`difflib`).

The entry point is :func:`validate_located` (or :func:`validation_problems` when
only the problems matter): give it the located document, the model (a pydantic
``BaseModel`` subclass, or any type pydantic's ``TypeAdapter`` accepts, e.g. a
frozen dataclass), the data to validate and where that data sits in the file.
:class:`ProblemCollector` gathers these together with a loader's own
cross-checks ("no ring group 'x'") and raises them all at once as a
:class:`~switchd.exceptions.ConfigError`, sorted in file order.

Rules that are a model's own (``AfterValidator`` raising
``PydanticCustomError``) keep their message word for word after ``key:``.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections import abc
from collections.abc import Collection, Iterable, Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from switchd.exceptions import ConfigError
from switchd.yamlloc import LocatedDocument, Problem, YamlPath, format_problems, number_hint

__all__ = [
    "ProblemCollector",
    "describe",
    "dotted",
    "unknown_key_message",
    "validate_located",
    "validation_problems",
]

#: Keys whose value is never repeated in a message: it may be a password.
DEFAULT_HIDDEN: frozenset[str] = frozenset({"secret", "password"})

_EXPECTED = {
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
    "model_attributes_type": "a mapping of keys to values",
    "dataclass_type": "a mapping of keys to values",
}
#: What YAML 1.1 read as booleans; yamlloc keeps them as text (see its docstring).
_YAML11_BOOLS = frozenset({"yes", "no", "on", "off", "y", "n"})
_COMPARE = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}


def dotted(path: YamlPath) -> str:
    """``("users", 2, "role")`` -> ``users[2].role``: the key as the user navigates to it."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def describe(value: Any) -> str:
    """What was found, in words: ``the text 'yes'``, ``the number 8``, ``a list``."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the text {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def unknown_key_message(key: Any, parent: YamlPath, allowed: Iterable[str]) -> str:
    """``unknown key 'trunkz' in board; did you mean 'trunks'?`` (or the list of known keys)."""
    allowed = list(allowed)
    where = f"in {dotted(parent)}" if parent else "at the top level"
    message = f"unknown key {key!r} {where}"
    close = difflib.get_close_matches(str(key), allowed, n=1)
    if not close:
        close = [a for a in allowed if a.lower() == str(key).lower()]
    if close:
        return f"{message}; did you mean {close[0]!r}?"
    if allowed:
        return f"{message}; known keys: {', '.join(allowed)}"
    return message


# --------------------------------------------------------------------------
# Finding the keys a model allows at a pydantic ``loc``
# --------------------------------------------------------------------------


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated[...]`` layers."""
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _tag_of(tp: Any) -> str | None:
    """The discriminator tag (``Tag('list')``) on an ``Annotated`` union member, if any."""
    if get_origin(tp) is not Annotated:
        return None
    for meta in get_args(tp)[1:]:
        tag = getattr(meta, "tag", None)
        if isinstance(tag, str):
            return tag
    return None


def _fields(tp: Any) -> dict[str, Any] | None:
    """Key -> annotation of a model or dataclass (by the key written in the file); else None."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        info: dict[str, FieldInfo] = tp.model_fields
        out: dict[str, Any] = {}
        for name, f in info.items():
            # A field's own Annotated metadata moves into FieldInfo; union members keep theirs.
            out[f.alias or name] = f.annotation
        return out
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp, include_extras=True)
        return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(tp)}
    return None


def _step(tp: Any, part: Any) -> list[Any]:
    """The types one element of a pydantic ``loc`` leads to from ``tp``."""
    origin = get_origin(_unwrap(tp))
    if origin is Union or origin is types.UnionType:
        members = get_args(_unwrap(tp))
        if isinstance(part, str):
            # pydantic names the union member it tried: a Tag, or the class name.
            named = [
                _unwrap(m)
                for m in members
                if _tag_of(m) == part or getattr(_unwrap(m), "__name__", None) == part
            ]
            if named:
                return named
        return [t for m in members for t in _step(m, part)]
    tp = _unwrap(tp)
    fields = _fields(tp)
    if fields is not None:
        return [fields[part]] if part in fields else []
    args = get_args(tp)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return [args[0]]
        return [args[part]] if isinstance(part, int) and 0 <= part < len(args) else []
    if isinstance(origin, type) and issubclass(origin, abc.Mapping):
        return [args[1]] if len(args) == 2 else []
    if isinstance(origin, type) and issubclass(origin, abc.Sequence | abc.Set):
        return [args[0]] if args else []
    return []


def _allowed_keys(model: Any, loc: tuple[Any, ...]) -> list[str]:
    """Keys the model allows in the mapping at ``loc`` (empty when it cannot be told)."""
    current = [model]
    for part in loc:
        current = [t for tp in current for t in _step(tp, part)]
    for tp in current:
        fields = _fields(_unwrap(tp))
        if fields is not None:
            return list(fields)
    return []


# --------------------------------------------------------------------------
# One pydantic error -> one located message
# --------------------------------------------------------------------------


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[YamlPath, bool]:
    """Map a pydantic ``loc`` onto a path through ``data``; True if it names a key.

    pydantic inserts union tags (``extensions -> list -> 0``) that are not in the
    data; they are skipped. The last element may be absent (a missing key).
    """
    path: list[Any] = []
    current = data
    for i, part in enumerate(loc):
        if part == "[key]":
            return tuple(path), True
        last = i == len(loc) - 1
        if isinstance(current, dict):
            if part in current:
                path.append(part)
                current = current[part]
            elif last:
                path.append(part)
        elif (
            isinstance(current, list)
            and isinstance(part, int)
            and not isinstance(part, bool)
            and 0 <= part < len(current)
        ):
            path.append(part)
            current = current[part]
    return tuple(path), False


def _message(
    error: Mapping[str, Any],
    path: YamlPath,
    allowed: list[str],
    hints: Mapping[str, str],
    hidden: Collection[str],
) -> tuple[str, bool]:
    """Human message for one pydantic error at ``path``; True if it points at the key."""
    kind = error["type"]
    name = dotted(path)
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "missing":
        key, parent = path[-1], path[:-1]
        where = f"in {dotted(parent)}" if parent else "at the top level"
        hint = hints.get(str(key))
        return f"missing required key {key!r} {where}" + (f" ({hint})" if hint else ""), False
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return unknown_key_message(path[-1], path[:-1], allowed), True
    secret = bool(path) and path[-1] in hidden
    got = "a value that is not shown because it may be a password" if secret else describe(value)
    if kind in _EXPECTED:
        text = f"{name}: expected {_EXPECTED[kind]}, got {got}"
        if kind == "bool_type" and isinstance(value, str) and value.lower() in _YAML11_BOOLS:
            text += "; only true and false are booleans in this file"
        elif kind == "string_type" and isinstance(value, int | float) and not secret:
            text += f'; put it in quotes, e.g. "{value}"'
        elif kind == "int_type" and isinstance(value, float):
            text += " with a fraction"
        elif kind in ("int_type", "float_type") and isinstance(value, str) and not secret:
            # YAML 1.1 would have read 1:30, 0x1F or 010 as a number; we keep them text.
            hint = number_hint(value)
            if hint is not None:
                text += f"; {hint}"
        return text, False
    if kind == "literal_error" or kind == "enum":
        return f"{name}: {got} is not allowed; use {ctx.get('expected', '?')}", False
    if kind in _COMPARE:
        key, words = _COMPARE[kind]
        bound = ctx.get(key)
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)  # "greater than 0", not "0.0", for a float field
        return f"{name}: must be {words} {bound}, got {value!r}", False
    if kind == "too_short":
        return f"{name}: needs at least {ctx.get('min_length')} item(s)", False
    if kind == "too_long":
        return f"{name}: allows at most {ctx.get('max_length')} item(s)", False
    if kind == "finite_number":
        return f"{name}: must be a finite number, got {value!r}", False
    # A model's own rules (PydanticCustomError) and anything rarer: pydantic's sentence.
    return f"{name}: {error['msg']}", False


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(model: Any) -> TypeAdapter[Any]:
    try:
        found = _ADAPTERS.get(model)
    except TypeError:  # an unhashable annotation: build it each time
        return TypeAdapter(model)
    if found is None:
        found = _ADAPTERS[model] = TypeAdapter(model)
    return found


def validate_located(
    doc: LocatedDocument,
    model: Any,
    data: Any,
    *,
    at: YamlPath = (),
    hints: Mapping[str, str] | None = None,
    hidden: Collection[str] = DEFAULT_HIDDEN,
) -> tuple[Any | None, list[Problem]]:
    """Validate ``data`` as ``model``; return ``(value, [])`` or ``(None, problems)``.

    Args:
        doc: the document ``data`` was loaded from (:func:`switchd.yamlloc.compose_located`);
            it gives each problem its line and column.
        model: a pydantic ``BaseModel`` subclass, or any type ``TypeAdapter`` accepts
            (a frozen dataclass, ``list[Model]``, ...). Its ``extra="forbid"`` setting
            is what turns an unknown key into a "did you mean" problem.
        data: the plain data to validate, normally ``doc.data`` or a part of it.
        at: where ``data`` sits in the document, e.g. ``("ring_groups", "sales")``;
            messages name keys from the top of the file.
        hints: extra words for "missing required key" by key name, e.g.
            ``{"secret": "run `switchd passwd` and paste the hash it prints"}``.
        hidden: keys whose value is never shown in a message.

    Every pydantic error becomes one :class:`~switchd.yamlloc.Problem` at the
    offending value (or key, for unknown keys), so *all* shape errors are
    reported in one pass. Nothing is raised for invalid data.
    """
    try:
        return _adapter(model).validate_python(data), []
    except ValidationError as exc:
        problems: list[Problem] = []
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            rel, is_key = _data_path(data, loc)
            path = (*at, *rel)
            allowed = (
                _allowed_keys(model, loc[:-1])
                if error["type"] in ("extra_forbidden", "unexpected_keyword_argument")
                else []
            )
            text, points_at_key = _message(error, path, allowed, hints or {}, hidden)
            problems.append(Problem(doc.mark_for(path, key=is_key or points_at_key), text))
        return None, problems


def validation_problems(
    doc: LocatedDocument,
    model: Any,
    data: Any,
    *,
    at: YamlPath = (),
    hints: Mapping[str, str] | None = None,
    hidden: Collection[str] = DEFAULT_HIDDEN,
) -> list[Problem]:
    """The problems of ``data`` against ``model``, empty when it is valid.

    Same arguments as :func:`validate_located`; format them for the operator with
    :func:`switchd.yamlloc.format_problems`. Never raises for invalid data.
    """
    return validate_located(doc, model, data, at=at, hints=hints, hidden=hidden)[1]


class ProblemCollector:
    """Gathers every problem found in one located document, then raises them together.

    ``hints`` and ``hidden`` are used by every :meth:`validate` call (see
    :func:`validate_located`). The document's own structural problems (duplicate
    keys) are included from the start.
    """

    def __init__(
        self,
        doc: LocatedDocument,
        *,
        hints: Mapping[str, str] | None = None,
        hidden: Collection[str] = DEFAULT_HIDDEN,
    ) -> None:
        self.doc = doc
        self.problems: list[Problem] = list(doc.problems)
        self._hints = dict(hints or {})
        self._hidden = hidden

    def add(self, path: YamlPath, message: str, *, key: bool = False) -> None:
        """Record ``message`` at the value at ``path`` (or at its key with ``key=True``)."""
        self.problems.append(Problem(self.doc.mark_for(path, key=key), message))

    def line_of(self, path: YamlPath) -> int:
        """The 1-based line of the value at ``path`` (for "first given at line N")."""
        return self.doc.mark_for(path).line

    def validate(self, model: Any, data: Any, at: YamlPath = ()) -> Any | None:
        """Validate ``data`` (found at ``at``) as ``model``; None, with its problems kept, if invalid."""
        value, problems = validate_located(
            self.doc, model, data, at=at, hints=self._hints, hidden=self._hidden
        )
        self.problems.extend(problems)
        return value

    def raise_if_any(self) -> None:
        """Raise ConfigError with every problem as ``FILE:LINE:COL: message``, in file order."""
        if self.problems:
            raise ConfigError(format_problems(self.doc.source, self.problems))
