"""What Tab offers at the prompt: verbs, their arguments, and live values for each.

:func:`suggest` is pure (text before the cursor, the user's verbs, the live state →
suggestions) so it is tested without a terminal; :class:`SwitchctlCompleter` hands
its answers to prompt_toolkit. Values come from the argument's placeholder in the
verb's usage line, so a verb the server adds is completed without a new switchctl:

- ``call=<id>`` → live call ids; ``agent=<id>`` → agent ids;
- ``<extension>``, ``ext=<number>`` → extensions seen; ``line=<line>`` → lines seen;
- ``queue=<name>``, ``queues=<queue>…,...`` and ``queue:<name>`` → queue names;
- ``events=<pattern>,...`` → event families and names seen;
- ``a|b|c`` → those words; ``flow:<name>``, ``number:<digits>`` → the prefix itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from switchd.cti.codec import quote
from switchd.switchctl.live import LiveState
from switchd.switchctl.usage import ArgSpec, VerbSpec

__all__ = ["Suggestion", "SwitchctlCompleter", "suggest"]

_ALT_RE = re.compile(r"([a-z_]+:)?<([a-z_]+)>.*")
#: Placeholder names (``<extension>``) and keys (``[queue=]``) to the values they take.
_KIND_OF_PLACEHOLDER = {"extension": "ext", "line": "line", "queue": "queue", "pattern": "event",
                        "box": "mailbox"}
_KIND_OF_KEY = {"call": "call", "agent": "agent", "ext": "ext", "extension": "ext",
                "line": "line", "queue": "queue", "queues": "queue", "events": "event",
                "mailbox": "mailbox"}


@dataclass(frozen=True)
class Suggestion:
    """Replace the ``-start`` characters before the cursor with ``text``; ``meta`` explains it."""

    text: str
    start: int
    meta: str = ""
    display: str | None = None


def _kind(arg: ArgSpec, placeholder: str | None, prefix: str | None) -> str | None:
    """Which live values an argument (or one alternative of it) takes."""
    if prefix == "queue:":
        return "queue"
    if prefix is not None:  # voicemail:<box>; not flow:<name>, number:<digits>
        return _KIND_OF_PLACEHOLDER.get(placeholder or "")
    if placeholder is None or placeholder == "id":
        return _KIND_OF_KEY.get(arg.key)
    if placeholder in ("number", "name"):
        return _KIND_OF_KEY.get(arg.key) if arg.key in ("ext", "queue") else None
    return _KIND_OF_PLACEHOLDER.get(placeholder)


def _live_values(kind: str | None, live: LiveState) -> dict[str, str]:
    if kind == "call":
        return live.call_choices()
    if kind == "agent":
        return live.agent_choices()
    if kind == "ext":
        return live.extensions()
    if kind == "queue":
        return live.queue_choices()
    if kind == "line":
        return live.line_choices()
    if kind == "event":
        return live.event_choices()
    if kind == "mailbox":
        boxes = live.agent_choices()
        boxes.update((q, "queue") for q in live.queue_choices() if ":" not in q)
        return boxes
    return {}


def values_for(arg: ArgSpec, live: LiveState) -> dict[str, str]:
    """Every value ``arg`` may take that switchctl knows of, each with a hint."""
    if arg.choices:
        return dict.fromkeys(arg.choices, "")
    spec = arg.value.removesuffix(",...")
    if not spec:
        return _live_values(_kind(arg, None, None), live)
    out: dict[str, str] = {}
    for alt in spec.split("|"):
        m = _ALT_RE.fullmatch(alt)
        if m is None:
            if alt.isidentifier():
                out[alt] = ""
            continue
        prefix, placeholder = m.group(1), m.group(2)
        found = _live_values(_kind(arg, placeholder, prefix), live)
        if prefix == "queue:":
            found = {q: hint for q, hint in found.items() if ":" not in q}
        if prefix and not found:
            out[prefix] = alt
        for value, hint in found.items():
            out[f"{prefix or ''}{value}"] = hint
    return out


def _matching(options: Mapping[str, str], partial: str) -> Iterator[tuple[str, str]]:
    low = partial.lower()
    return ((v, hint) for v, hint in options.items() if v.lower().startswith(low))


def _verb_suggestions(word: str, verbs: Mapping[str, VerbSpec]) -> list[Suggestion]:
    return [Suggestion(name, -len(word), spec.usage.removeprefix(name).strip() or "no arguments")
            for name, spec in sorted(verbs.items()) if name.startswith(word.upper())]


def suggest(text: str, verbs: Mapping[str, VerbSpec], live: LiveState) -> list[Suggestion]:
    """Completions for ``text`` (the line up to the cursor).

    The first word completes to the user's verbs (case-insensitive); after a verb,
    a word without ``=`` completes to the ``key=`` arguments not given yet (then
    the verb's positional values), and ``key=partial`` to that argument's values.
    Inside an open quote nothing is offered. Never raises.
    """
    if text.count('"') % 2:
        return []
    words = text.split()
    current = "" if not words or text[-1].isspace() else words[-1]
    before = words[:-1] if current else words
    if not before:
        return _verb_suggestions(current, verbs)
    spec = verbs.get(before[0].upper())
    if spec is None:
        return []
    key, eq, partial = current.partition("=")
    if eq:
        arg = spec.arg(key)
        if arg is None:
            return []
        head = partial[: partial.rfind(",") + 1] if arg.is_list else ""
        last = partial[len(head):]
        return [Suggestion(head + quote(value), -len(partial), hint, display=value)
                for value, hint in _matching(values_for(arg, live), last)]
    given = {w.partition("=")[0] for w in before[1:] if "=" in w}
    out = [Suggestion(f"{a.key}=", -len(current), _arg_hint(a))
           for a in sorted(spec.args, key=lambda a: not a.required)
           if a.key not in given and a.key.startswith(current.lower())]
    positional_given = any("=" not in w for w in before[1:])
    if not positional_given:
        out.extend(Suggestion(v, -len(current), "") for v, _ in
                   _matching(dict.fromkeys(spec.positional, ""), current))
        if spec.takes_verb:
            out.extend(_verb_suggestions(current, verbs))
    return out


def _arg_hint(arg: ArgSpec) -> str:
    need = "required" if arg.required else "optional"
    return f"{need} {arg.value}".rstrip()


class SwitchctlCompleter(Completer):
    """prompt_toolkit's view of :func:`suggest`; reads the verbs and live state on every key."""

    def __init__(self, verbs: Callable[[], Mapping[str, VerbSpec]], live: LiveState) -> None:
        """``verbs`` returns the user's verbs now (they change after an ``AUTH``)."""
        self._verbs = verbs
        self._live = live

    def get_completions(self, document: Document,
                        complete_event: CompleteEvent) -> Iterable[Completion]:
        """The completions at the cursor (prompt_toolkit calls this)."""
        for s in suggest(document.text_before_cursor, self._verbs(), self._live):
            yield Completion(s.text, start_position=s.start, display=s.display,
                             display_meta=s.meta)
