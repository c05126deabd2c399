"""Load IVR flow files (``flows/NAME.yaml``) into the flow model, checked to the line.

Why this shape: a flow is the caller's whole experience, and designers write it as
text, so every mistake must be found before a call meets it (issue 14, item 4) and
reported where it was written, all at once, as ``FILE:LINE:COL: message``. The file
is read with :mod:`switchd.yamlloc` (marks on every key and value; only
``true``/``false`` are booleans) and each part is validated by a strict pydantic
model with unknown keys forbidden, through :mod:`switchd.yamlerrors` (the same
messages and "did you mean" as ``config.yaml``). Then come the checks no schema can
make, in three passes:

1. per file (:func:`_parse`): node types, names, references to nodes, menu keys,
   digit counts, patterns, time ranges, dates, time zone, holiday country, prompts
   (found and decodable), ``say`` fragments, transfer targets, queue names (and no
   ``next`` on a queue node), mailbox names, templates, values longer than 1024
   characters;
2. across the flows loaded together (:func:`_graph_checks`): ``goto`` targets,
   unreachable nodes, loops with no exit (a cycle that never waits for a key or a
   timeout; a transfer does not count, it can fail at once) and variables read
   before they are set (a must-be-set dataflow analysis over every path from the
   start);
3. the model (:mod:`switchd.ivr.model`) is built only for a file without problems.

docs/flows.md is the language reference and lists every check with its rule.

Everything here reads files (and decodes prompts): call it off the event loop.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import difflib
import errno
import hashlib
import importlib
import os
import re
import stat
import zoneinfo
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from switchd.core.routing import ROUTE_KINDS, Target, TargetKind
from switchd.cti.codec import KEY_RE
from switchd.exceptions import ConfigError
from switchd.ivr.model import (
    BUILTIN_VARS,
    NAME_RE,
    TEMPLATE_RE,
    Branch,
    Case,
    Collect,
    Cond,
    CondOp,
    CondSubject,
    DateRule,
    Flow,
    FlowSet,
    Goto,
    Hangup,
    Holidays,
    Mark,
    Menu,
    Node,
    NodeType,
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
    template_vars,
)
from switchd.recorder.mailboxes import folder_problem
from switchd.yamlerrors import ProblemCollector, describe, dotted, unknown_key_message
from switchd.yamlloc import (
    LocatedDocument,
    Problem,
    YamlPath,
    compose_located,
    format_problems,
)
from switchd.yamlloc import Mark as YMark

if TYPE_CHECKING:
    from switchd.lines.prompts import PromptCache

__all__ = [
    "MAX_VALUE_CHARS",
    "PROMPT_SUFFIXES",
    "QUEUE_PRIORITY_MAX",
    "FlowError",
    "check_paths",
    "load_flow",
    "load_flows",
    "prompt_path",
    "queue_targets",
    "transfer_targets",
    "voicemail_targets",
]

#: Longest text value a flow may hold (the same bound as a variable's value).
MAX_VALUE_CHARS = 1024
#: Highest caller priority a ``queue`` node may give (a 32-bit signed integer).
QUEUE_PRIORITY_MAX = 2**31 - 1
#: Keys that lead on from other node types and that a ``queue`` node cannot have: once
#: queued, the queue (its ``overflow``) decides where the caller goes next.
_QUEUE_NO_EXIT = ("next", "on_fail", "fallback")

#: Suffixes tried, in order, for a prompt named without one ("zh/welcome").
PROMPT_SUFFIXES = (".wav", ".mp3", ".ogg", ".flac", ".aiff")

#: Node types that wait for the caller (a key) or a timer before they move on; a
#: cycle must pass one of them, or a call could go round it for ever. Not transfer:
#: it can fail in the same instant (an unknown or busy target, no free trunk), and
#: its on_fail may lead straight back to it. A voicemail node records until the
#: caller presses # or is silent for silence_s (at least 0.5 s).
_WAITING = frozenset({NodeType.MENU, NodeType.COLLECT, NodeType.ROUTE_REQUEST,
                      NodeType.VOICEMAIL})

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # for messages
_MENU_KEYS = "0123456789*#ABCD"
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NAME_RULE = ("names use ASCII letters (a-z, A-Z), digits, '_', '.' and '-', starting with a "
              "letter or '_', at most 64 characters")
#: A ``ROUTE.REPLY`` key, by the CTI codec's own rule: a route_request's ``sets`` must
#: be names a reply can carry.
_REPLY_KEY_RE = KEY_RE
#: ROUTE.REPLY's own arguments: a reply cannot set variables of these names.
_REPLY_ARGS = {"call": "call_ref", "next": "next_step"}  # -> a name to suggest instead
_TOP_KEYS = ("timezone", "language", "holidays", "vars", "start", "nodes")

#: Node types of the language this build cannot run, and what to write instead (none
#: now: voicemail came with the recorder).
_REFUSED: dict[NodeType, str] = {}
#: A voicemail node's limits, as config.yaml's ``voicemail:`` section bounds them (s).
_VM_MAX_S = (1.0, 3600.0)
_VM_SILENCE_S = (0.5, 600.0)

_HINTS = {
    "timezone": "the IANA time zone schedules and time conditions use, e.g. Asia/Shanghai",
    "start": "the name of the node a call enters first",
    "nodes": "a mapping of node name to node",
    "type": "one of " + ", ".join(t.value for t in NodeType),
    "next": "the node to go to next",
    "fallback": "the node to go to when the caller gives no usable answer",
    "into": "the variable that receives the digits",
    "to": "extension:NUMBER, group:NAME or number:DIGITS",
    "flow": "the flow to continue in",
    "say": "one of " + ", ".join(k.value for k in SayKind),
    "value": 'what to say, e.g. "{balance}"',
    "hours": 'weekday -> open hours, e.g. {mon-fri: ["09:00-18:00"]}',
    "open": "the node to go to when open",
    "closed": "the node to go to when closed",
    "cases": "a list of {when: ..., next: NODE}",
    "when": "the conditions, e.g. {var: lang, equals: en}",
    "else": "the node to go to when no case holds",
    "vars": "a mapping of variable name to value",
    "choices": 'key -> node, e.g. {"1": sales}',
    "queue": "the name of an ACD queue under queues: in config.yaml, e.g. sales",
    "priority": "the caller's priority in the queue, an integer >= 0 (higher goes first)",
    "mailbox": "the mailbox: an agent id, a queue name or a box under voicemail.boxes in "
               "config.yaml",
    "from": "the first date, YYYY-MM-DD",
}


class FlowError(ConfigError):
    """One or more flow files cannot be used.

    ``problems`` holds one ``FILE:LINE:COL: message`` per problem (``FILE: message``
    when there is no position, e.g. a file that does not exist), in file order, so
    the CLI prints them all at once.
    """


# --------------------------------------------------------------------------
# Raw schema: the YAML shape, strict, unknown keys forbidden
# --------------------------------------------------------------------------


class _Raw(BaseModel):
    # strict: YAML already gives real ints/floats/bools, so coercion would only hide
    # a mistake ("5" for 5, 1 for true).
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


Seconds = Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)]
Retries = Annotated[int, Field(ge=0, le=20)]
DigitCount = Annotated[int, Field(ge=1, le=64)]
Prompts = list[str]


class _RawTop(_Raw):
    timezone: str
    language: Literal["zh", "en"] = "en"
    start: str
    holidays: Any = None  # checked by _RawHolidays, so its errors are not reported twice
    vars: Any = None
    nodes: Any


class _RawHolidays(_Raw):
    country: str | None = None
    subdivision: str | None = None
    dates: list[Any] = Field(default_factory=list)
    workdays: list[Any] = Field(default_factory=list)


class _RawNode(_Raw):
    type: str


class _RawPlay(_RawNode):
    prompts: Prompts | None = None
    prompt: str | None = None
    barge_in: bool = True
    next: str


class _RawMenu(_RawNode):
    prompts: Prompts | None = None
    prompt: str | None = None
    choices: dict[Any, Any]
    timeout_s: Seconds = 5.0
    retries: Retries = 2
    invalid_prompts: Prompts = Field(default_factory=list)
    timeout_prompts: Prompts = Field(default_factory=list)
    into: str | None = None
    fallback: str
    barge_in: bool = True


class _RawCollect(_RawNode):
    prompts: Prompts | None = None
    prompt: str | None = None
    into: str
    digits: DigitCount | None = None
    min_digits: DigitCount | None = None
    max_digits: DigitCount | None = None
    terminator: str | None = "#"
    pattern: str | None = None
    first_timeout_s: Seconds = 5.0
    inter_digit_timeout_s: Seconds = 3.0
    retries: Retries = 2
    invalid_prompts: Prompts = Field(default_factory=list)
    next: str
    fallback: str
    barge_in: bool = True


class _RawSay(_RawNode):
    say: Literal["digits", "number", "amount", "date", "time", "datetime"]
    value: str
    language: Literal["zh", "en"] | None = None
    currency: Literal["CNY", "USD"] | None = None
    barge_in: bool = True
    next: str


class _RawSchedule(_RawNode):
    hours: dict[Any, Any]
    dates: list[Any] = Field(default_factory=list)
    workday_hours: Any = None
    open: str
    closed: str
    holiday: str | None = None


class _RawDateRule(_Raw):
    first: Any = Field(alias="from")
    to: Any = None
    hours: Any


class _RawBranch(_RawNode):
    cases: list[Any]
    otherwise: str = Field(alias="else")


class _RawCase(_Raw):
    when: Any
    next: str


class _RawSet(_RawNode):
    vars: dict[Any, Any]
    next: str


class _RawRouteRequest(_RawNode):
    timeout_s: Seconds = 3.0
    choices: list[str] = Field(default_factory=list)
    next: str | None = None
    fallback: str
    prompts: Prompts | None = None
    prompt: str | None = None
    sets: list[str] = Field(default_factory=list)


class _RawQueue(_RawNode):
    queue: str
    priority: Annotated[int, Field(ge=0, le=QUEUE_PRIORITY_MAX)] = 0


class _RawTransfer(_RawNode):
    to: str
    timeout_s: Seconds | None = None
    on_fail: str | None = None


class _RawVoicemail(_RawNode):
    mailbox: str
    greeting: Prompts | str | None = None
    max_s: Annotated[float, Field(ge=_VM_MAX_S[0], le=_VM_MAX_S[1], allow_inf_nan=False)] | None \
        = None
    silence_s: Annotated[float, Field(ge=_VM_SILENCE_S[0], le=_VM_SILENCE_S[1],
                                      allow_inf_nan=False)] | None = None
    next: str | None = None


class _RawHangup(_RawNode):
    pass


class _RawGoto(_RawNode):
    flow: str
    node: str | None = None


_RAW_BY_TYPE: dict[NodeType, type[_RawNode]] = {
    NodeType.PLAY: _RawPlay,
    NodeType.MENU: _RawMenu,
    NodeType.COLLECT: _RawCollect,
    NodeType.SAY: _RawSay,
    NodeType.SCHEDULE: _RawSchedule,
    NodeType.BRANCH: _RawBranch,
    NodeType.SET: _RawSet,
    NodeType.ROUTE_REQUEST: _RawRouteRequest,
    NodeType.QUEUE: _RawQueue,
    NodeType.TRANSFER: _RawTransfer,
    NodeType.VOICEMAIL: _RawVoicemail,
    NodeType.HANGUP: _RawHangup,
    NodeType.GOTO: _RawGoto,
}

#: Keys of each node type whose value names a node of the same flow.
_REF_KEYS: dict[NodeType, tuple[str, ...]] = {
    NodeType.PLAY: ("next",),
    NodeType.MENU: ("fallback",),
    NodeType.COLLECT: ("next", "fallback"),
    NodeType.SAY: ("next",),
    NodeType.SCHEDULE: ("open", "closed", "holiday"),
    NodeType.BRANCH: ("else",),
    NodeType.SET: ("next",),
    NodeType.ROUTE_REQUEST: ("next", "fallback"),
    NodeType.TRANSFER: ("on_fail",),
    NodeType.VOICEMAIL: ("next",),
}

#: Branch conditions: comparisons of a variable, and what caller/dnis may use.
_VAR_OPS = ("equals", "not_equals", "in", "prefix", "matches", "gt", "ge", "lt", "le", "set")
_NUMBER_OPS = ("equals", "not_equals", "in", "prefix", "matches", "gt", "ge", "lt", "le")
_WHEN_KEYS = ("var", *_VAR_OPS, "caller", "dnis", "vip", "blacklisted", "time", "weekday")

_BAD = object()  # a value already reported (or of the wrong type): skip further checks


# --------------------------------------------------------------------------
# What the per-file pass leaves for the graph pass
# --------------------------------------------------------------------------


@dataclasses.dataclass
class _Edge:
    """An edge out of a node: to ``node`` of ``flow`` (None = this flow / its start).

    ``sets``: variables set when the call takes this edge (a collect's ``into`` on
    ``next``, a menu's ``into`` on a choice, a route_request's ``sets`` on a reply).
    """

    node: str | None
    via: str
    flow: str | None = None
    sets: frozenset[str] = frozenset()


@dataclasses.dataclass
class _GNode:
    """A node as the graph checks see it, even when its body has problems.

    ``waits``: it waits for a key or a timer (menu, collect, route_request; see
    ``_WAITING``). ``sets``: variables it sets on every way out; None = it could not be
    read, so it is taken to set anything (no false "read before set" after it).
    ``reads``: (variable, where, variables the same node set before that read).
    """

    name: str
    mark: YMark
    waits: bool
    type: NodeType | None = None  # None: not given or unknown
    edges: list[_Edge] = dataclasses.field(default_factory=list)
    sets: frozenset[str] | None = frozenset()
    reads: list[tuple[str, YamlPath, frozenset[str]]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _GotoRef:
    node: str
    flow: str
    target: str | None
    flow_path: YamlPath
    node_path: YamlPath


@dataclasses.dataclass
class _Parsed:
    """One flow file after the per-file pass."""

    name: str
    path: Path
    source: str
    problems: list[Problem]
    doc: LocatedDocument | None = None
    flow: Flow | None = None
    start: str | None = None
    var_names: frozenset[str] = frozenset()
    gnodes: dict[str, _GNode] | None = None
    gotos: list[_GotoRef] = dataclasses.field(default_factory=list)
    prompt_names: set[str] = dataclasses.field(default_factory=set)
    #: A route_request without ``choices`` (the CRM may name any node, but the checks
    #: follow only its next/fallback): worth a hint when a node is unreachable.
    open_crm: bool = False

    def add(self, path: YamlPath, message: str, *, key: bool = False) -> None:
        assert self.doc is not None
        self.problems.append(Problem(self.doc.mark_for(path, key=key), message))

    def formatted(self) -> list[str]:
        return format_problems(self.source, self.problems)


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------


def _in_the_way(path: Path) -> str | None:
    """Why ``path`` is no file to read although something is there: a folder, a
    symbolic link that loops or leads nowhere, a special file, a folder on the way
    that cannot be searched. None when nothing is there at all (or it is a file).

    The sentence follows the path: ``f"{path} {reason}"``. Never raises.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return ("is a symbolic link that loops (it leads back to itself)"
                    if os.path.islink(path) else "cannot be reached: a symbolic link on the way "
                    "to it loops (it leads back to itself)")
        if os.path.islink(path):
            try:
                dest = f" {os.readlink(path)}"
            except OSError:
                dest = ""
            return f"is a symbolic link to{dest}, which does not exist"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        return f"cannot be read: {exc.strerror or exc}"
    if stat.S_ISDIR(st.st_mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    return None


def _missing(path: Path, absent: str = "does not exist") -> str:
    """``f"{path} ..."`` for a file that cannot be read: what is in the way, or ``absent``."""
    return f"{path} {_in_the_way(path) or absent}"


# --------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------


def prompt_path(prompts_dir: Path, name: str) -> Path | None:
    """The file prompt ``name`` plays, or None when there is none.

    ``name`` is a path under ``prompts_dir`` without a suffix (``zh/welcome`` ->
    ``prompts_dir/zh/welcome.wav``, else ``.mp3``, ``.ogg``, ``.flac``, ``.aiff``,
    first found wins); a name that ends in an audio suffix (``zh/welcome.sln``) is
    taken as is. Only looks at the disk (is it a file); never raises.
    """
    for candidate in _prompt_candidates(prompts_dir, name):
        if os.path.isfile(candidate):
            return candidate
    return None


def _prompt_candidates(prompts_dir: Path, name: str) -> list[Path]:
    """The files prompt ``name`` may be, in the order :func:`prompt_path` tries them."""
    from switchd.lines.prompts import AUDIO_SUFFIXES

    base = Path(prompts_dir) / name
    if PurePosixPath(name).suffix.lower() in AUDIO_SUFFIXES:
        return [base]
    return [base.with_name(base.name + suffix) for suffix in PROMPT_SUFFIXES]


def _prompt_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a prompt name, or None."""
    if not name.strip():
        return "a prompt name cannot be empty"
    if "{" in name or "}" in name:
        return "prompt names cannot hold templates ({var}); use a branch to choose the prompt"
    pure = PurePosixPath(name)
    if name.startswith("/") or "\\" in name or ".." in pure.parts:
        return (
            f"{name!r} is not a prompt name; name a file under media.prompts_dir without "
            "its suffix, e.g. zh/welcome"
        )
    return None


class _PromptChecker:
    """Finds and (optionally) decodes prompts, each once per load."""

    def __init__(self, prompts_dir: Path | None, decode: bool, cache: PromptCache | None) -> None:
        self.prompts_dir = prompts_dir
        self.decode = decode
        self.cache = cache
        self._memo: dict[str, tuple[Path | None, str | None]] = {}

    def check(self, name: str) -> tuple[Path | None, str | None]:
        """(file to play, why it cannot be played); (None, None) when there is no prompts dir."""
        if self.prompts_dir is None:
            return None, None
        found = self._memo.get(name)
        if found is None:
            found = self._memo[name] = self._check(self.prompts_dir, name)
        return found

    def _check(self, prompts_dir: Path, name: str) -> tuple[Path | None, str | None]:
        path = prompt_path(prompts_dir, name)
        if path is None:
            candidates = _prompt_candidates(prompts_dir, name)
            for candidate in candidates:
                why = _in_the_way(candidate)
                if why is not None:  # e.g. zh/welcome.wav is a folder or a looping link
                    return None, f"{candidate} {why}"
            base = prompts_dir / name
            if len(candidates) == 1:
                looked = f"{candidates[0]} does not exist"
            else:
                looked = f"{base}.wav does not exist (nor {', '.join(PROMPT_SUFFIXES[1:])})"
            folder = base.parent
            if not os.path.isdir(folder):
                return None, f"{looked}: the folder " + _missing(
                    folder, "is a file, not a folder" if os.path.lexists(folder)
                    else "does not exist")
            return None, looked + self._did_you_mean(prompts_dir, name)
        if not self.decode:
            return path, None
        from switchd.lines.prompts import PromptError, load_prompt

        if self.cache is not None:
            failed = self.cache.preload([path])
            return path, (f"{path}: {failed[0][1]}" if failed else None)
        try:
            load_prompt(path)
        except PromptError as exc:
            return path, f"{exc.path}: {exc.reason}"
        return path, None

    @staticmethod
    def _did_you_mean(prompts_dir: Path, name: str) -> str:
        folder = (prompts_dir / name).parent
        prefix = str(PurePosixPath(name).parent)
        prefix = "" if prefix == "." else prefix + "/"
        try:
            stems = sorted({p.stem for p in folder.iterdir() if os.path.isfile(p)})
        except OSError:
            return ""
        close = difflib.get_close_matches(PurePosixPath(name).name, stems, n=1)
        return f"; did you mean {prefix + close[0]!r}?" if close else ""


def _say_fragments(language: str) -> list[str] | None:
    """Prompt names ``say`` needs in ``language`` (``switchd.ivr.say.all_fragments``);
    None when that module is not there."""
    try:
        say = importlib.import_module("switchd.ivr.say")
    except ModuleNotFoundError as exc:
        if exc.name != "switchd.ivr.say":
            raise
        return None
    fragments: Callable[[str], Iterable[str]] | None = getattr(say, "all_fragments", None)
    return None if fragments is None else list(fragments(language))


# --------------------------------------------------------------------------
# Small value checks
# --------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def _zone_problem(name: str) -> str | None:
    """Why ``name`` is not an IANA time zone zoneinfo can load, or None."""
    try:
        zoneinfo.ZoneInfo(name)
        return None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass
    names = _zone_names()
    close = difflib.get_close_matches(name, names, n=1) or [
        z for z in names if z.lower() == name.lower()
    ][:1]
    hint = f"; did you mean {close[0]!r}?" if close else "; use a name like Asia/Shanghai or UTC"
    return f"{name!r} is not an IANA time zone{hint}"


def _country_problem(country: str, subdivision: str | None) -> tuple[str | None, str | None]:
    """(problem with the country, problem with the subdivision) for the holidays library."""
    import holidays

    supported: Mapping[str, Sequence[str]] = holidays.list_supported_countries()
    if country not in supported:
        if country.upper() in supported:
            return f"write the country code in capitals: {country.upper()!r}", None
        return (
            f"{country!r} is not a country code the holidays library knows; use an ISO 3166 "
            "code such as CN, US or GB",
            None,
        )
    if subdivision is None:
        return None, None
    try:
        holidays.country_holidays(country, subdiv=subdivision)
    except (NotImplementedError, ValueError, KeyError):
        known = ", ".join(supported[country]) or "none"
        return None, f"{subdivision!r} is not a subdivision of {country} (known: {known})"
    return None, None


def _time_range(text: str) -> TimeRange | str:
    """``"09:00-18:00"`` -> TimeRange, or why it is not one (the grammar of
    :func:`switchd.ivr.schedule.parse_time_range`, so the loader and the schedule agree)."""
    from switchd.ivr.schedule import parse_time_range

    try:
        return parse_time_range(text)
    except ValueError as exc:
        return str(exc)


def _day_key(text: str) -> tuple[int, ...] | str:
    """``"mon"`` -> (0,), ``"mon-fri"`` -> (0..4), ``"sat,sun"`` -> (5, 6); or why not
    (:func:`switchd.ivr.schedule.parse_weekdays`)."""
    from switchd.ivr.schedule import parse_weekdays

    try:
        return parse_weekdays(text)
    except ValueError as exc:
        return str(exc)


_TRANSFER_FORMS = "extension:NUMBER, group:NAME or number:DIGITS"
#: Target kinds a transfer cannot ring, and what to write instead.
_NOT_TRANSFER = {
    "queue": "to hand the caller to an ACD queue, use type: queue with queue: NAME",
    "flow": "use type: goto to continue in another flow",
    "busy": "to end the call, use type: hangup",
}


def _transfer_target(text: str) -> tuple[str | None, str | None]:
    """(target as the interpreter rings it, None) or (None, why not) for a transfer's ``to``.

    Only the kinds a transfer rings (``ROUTE_KINDS``) are named in the messages: a
    route's ``flow:`` and ``busy`` are no help here.
    """
    kinds = sorted(k.value for k in ROUTE_KINDS)
    kind = text.strip().partition(":")[0]
    if kind == TargetKind.VOICEMAIL.value:
        # Not rung: the transfer node takes a message for the box (see Transfer).
        try:
            target = Target.parse(text)
        except ValueError as exc:
            return None, str(exc)
        problem = folder_problem(target.value or "")
        return (None, problem) if problem is not None else (str(target), None)
    if kind in _NOT_TRANSFER:
        return None, f"a transfer rings {_TRANSFER_FORMS}, not {text!r}: {_NOT_TRANSFER[kind]}"
    if kind not in kinds:
        close = difflib.get_close_matches(kind, kinds, n=1)
        if close:
            hint = f"; did you mean {close[0]}:?"
        elif text.strip().isdigit() and text.strip().isascii():
            hint = f"; for an extension write extension:{text.strip()}"
        else:
            hint = ""
        return None, f"{text!r} is not a transfer target; write {_TRANSFER_FORMS}{hint}"
    try:
        return str(Target.parse(text)), None
    except ValueError as exc:
        return None, str(exc)


def _queue_name_problem(text: str) -> str | None:
    """Why ``text`` cannot be a queue node's ``queue`` (the name ``queue:NAME`` routes
    and overflows use), or None. Whether the config defines it is ``switchd check``'s
    to say (:func:`queue_targets`)."""
    name = text.strip()
    kind, sep, rest = name.partition(":")
    if sep and kind in {k.value for k in TargetKind}:
        if kind == TargetKind.QUEUE.value:
            return f"write the queue's name only, without 'queue:': queue: {rest.strip()}"
        return (f"{text!r} is a {kind} target; a queue node names a queue (queue: sales); "
                "to ring an extension, a group or a number use type: transfer")
    try:
        Target.parse(f"queue:{text}")
    except ValueError:
        return (f"{text!r} is not a queue name: a queue name is 1-64 letters, digits, '.', "
                "'_', '-' or '@', as under queues: in config.yaml")
    return None


def _mailbox_problem(text: str) -> str | None:
    """Why ``text`` cannot be a voicemail node's ``mailbox`` (the name ``voicemail:NAME``
    routes and overflows use), or None. Whether the config has that box is ``switchd
    check``'s to say (:func:`voicemail_targets`)."""
    name = text.strip()
    kind, sep, rest = name.partition(":")
    if sep and kind in {k.value for k in TargetKind}:
        if kind == TargetKind.VOICEMAIL.value:
            return f"write the box's name only, without 'voicemail:': mailbox: {rest.strip()}"
        return (f"{text!r} is a {kind} target; a voicemail node names a mailbox (an agent id, "
                "a queue name or a box under voicemail.boxes, e.g. mailbox: afterhours)")
    try:
        Target.parse(f"voicemail:{text}")
    except ValueError:
        return (f"{text!r} is not a mailbox name: a mailbox name is 1-64 letters, digits, '.', "
                "'_', '-' or '@' (an agent id, a queue name or a box under voicemail.boxes)")
    return folder_problem(text)


def _template_problem(text: str) -> str | None:
    rest = TEMPLATE_RE.sub("", text)
    if "{" in rest or "}" in rest:
        return (
            "has a '{' or '}' that is not part of a {variable}; write {{ or }} for a brace, "
            "and variable names with letters, digits, '_', '.', '-'"
        )
    return None


def _name_problem(name: str) -> str:
    """Why ``name`` does not match ``NAME_RE``, and the rule: ``"('欢' is not allowed);
    names use ..."``, to follow "is not a valid name".

    Names go into CTI events, ``ivr_path`` in the CDR and ``ROUTE.REPLY`` (``next=``),
    hence ASCII only; a designer writing ``欢迎`` is told which character is the
    trouble and where such text belongs.
    """
    bad = next((ch for ch in name if not (ch.isascii() and (ch.isalnum() or ch in "_.-"))),
               None)
    hint = ""
    if not name:
        why = "it is empty"
    elif bad is not None:
        why = f"{bad!r} is not allowed"
        if not bad.isascii():
            hint = " (Chinese and other non-ASCII text belongs in prompts and values, not names)"
    elif not (name[0].isalpha() or name[0] == "_"):
        why = f"it starts with {name[0]!r}"
    else:
        why = f"it is {len(name)} characters long"
    return f"({why}); {_NAME_RULE}{hint}"


# --------------------------------------------------------------------------
# Pass 1: one file
# --------------------------------------------------------------------------


class _FileParser:
    """Checks one flow file and, when it has no problem, builds its :class:`Flow`."""

    def __init__(
        self, parsed: _Parsed, doc: LocatedDocument, prompts: _PromptChecker, raw: bytes
    ) -> None:
        self.p = parsed
        self.doc = doc
        self.c = ProblemCollector(doc, hints=_HINTS)
        self.prompts = prompts
        self.raw = raw
        self.prompt_files: dict[str, Path] = {}
        self.marks: dict[tuple[str, str], Mark] = {}  # -> Flow.marks
        self._yaml_marks = frozenset(p.mark for p in doc.problems)
        self.language: str | None = None
        self.node_names: list[str] = []  # in file order, for "did you mean"
        self.node_set: frozenset[str] = frozenset()  # the same, to look names up

    # -- helpers --------------------------------------------------------------

    def add(self, path: YamlPath, message: str, *, key: bool = False) -> None:
        self.c.add(path, message, key=key)

    def mark(self, path: YamlPath, *, key: bool = False) -> Mark:
        m = self.doc.mark_for(path, key=key)
        return Mark(self.p.source, m.line, m.column)

    def _reported(self, path: YamlPath) -> bool:
        """True when yamlloc already reported the value at ``path`` (e.g. an impossible date)."""
        return self.doc.mark_for(path) in self._yaml_marks

    def name_ok(self, path: YamlPath, value: Any, what: str, *, key: bool = False) -> bool:
        """True when ``value`` is a valid name; reports it when it is text (or a key) that
        is not (a value of another type is the schema's to report)."""
        if isinstance(value, str) and NAME_RE.fullmatch(value):
            return True
        if isinstance(value, str) or key:
            where = dotted(path[:-1]) if key else dotted(path)
            self.add(path, f"{where}: {what} {value!r} is not a valid name"
                     + (f" {_name_problem(value)}" if isinstance(value, str)
                        else f"; {_NAME_RULE}"),
                     key=key)
        return False

    def template(self, path: YamlPath, text: str) -> list[str]:
        problem = _template_problem(text)
        if problem is not None:
            self.add(path, f"{dotted(path)}: {problem}")
            return []
        return template_vars(text)

    def date(self, path: YamlPath, value: Any) -> dt.date | None:
        if isinstance(value, dt.datetime):
            self.add(path, f"{dotted(path)}: expected a date (YYYY-MM-DD), got a date and time")
            return None
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            if _DATE_RE.fullmatch(value.strip()):
                try:
                    return dt.date.fromisoformat(value.strip())
                except ValueError as exc:
                    self.add(path, f"{dotted(path)}: {value!r} is not a real date ({exc})")
                    return None
            self.add(path, f"{dotted(path)}: {value!r} is not a date; write YYYY-MM-DD")
            return None
        if value is None and self._reported(path):
            return None
        self.add(path, f"{dotted(path)}: expected a date (YYYY-MM-DD), got {describe(value)}")
        return None

    def ranges(self, path: YamlPath, value: Any) -> tuple[TimeRange, ...] | None:
        """A string or list of "HH:MM-HH:MM" -> sorted ranges ([] = closed); None if bad."""
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            self.add(path, f"{dotted(path)}: expected a time range like \"09:00-18:00\" or a "
                     f"list of them, got {describe(value)}")
            return None
        out: list[TimeRange] = []
        ok = True
        for i, item in enumerate(items):
            ipath = path if isinstance(value, str) else (*path, i)
            if not isinstance(item, str):
                self.add(ipath, f"{dotted(ipath)}: expected a time range like \"09:00-18:00\", "
                         f"got {describe(item)}")
                ok = False
                continue
            r = _time_range(item)
            if isinstance(r, str):
                self.add(ipath, f"{dotted(ipath)}: {r}")
                ok = False
                continue
            out.append(r)
        out.sort(key=lambda r: (r.start, r.end))
        for a, b in zip(out, out[1:], strict=False):
            if b.start < a.end:
                self.add(path, f"{dotted(path)}: the ranges {a} and {b} overlap")
                ok = False
        return tuple(out) if ok else None

    def prompt_list(
        self, base: YamlPath, raw: dict[Any, Any], key: str, *, required: bool, single: str | None,
        nonempty: bool = False,
    ) -> tuple[str, ...] | None:
        """Check the prompts at ``key`` (and its one-item form ``single``); None when bad.

        ``required``: the key must be given; ``nonempty``: with at least one prompt.
        """
        many = raw.get(key)
        one = raw.get(single) if single else None
        if single and single in raw and key in raw:
            self.add((*base, single), f"{dotted((*base, single))}: give either {single} (one "
                     f"prompt) or {key} (a list), not both", key=True)
            return None
        if single and single in raw:
            if not isinstance(one, str):
                return None  # the schema reported it
            named = [((*base, single), one)]
        elif key in raw:
            if not isinstance(many, list) or not all(isinstance(x, str) for x in many):
                return None
            named = [((*base, key, i), x) for i, x in enumerate(many)]
            if nonempty and not many:
                self.add((*base, key), f"{dotted((*base, key))}: needs at least one prompt")
                return None
        else:
            if required:
                self.add(base, f"missing required key {key!r} in {dotted(base)} (the prompts to "
                         f"play, e.g. {key}: [zh/welcome], or {single}: zh/welcome for one)")
                return None
            return ()
        ok = True
        for path, name in named:
            ok = self.prompt(path, name) and ok
        return tuple(name for _, name in named) if ok else None

    def prompt(self, path: YamlPath, name: str) -> bool:
        problem = _prompt_name_problem(name)
        if problem is not None:
            self.add(path, f"{dotted(path)}: {problem}")
            return False
        self.p.prompt_names.add(name)
        file, why = self.prompts.check(name)
        if why is not None and self.prompts.decode:
            self.add(path, f"{dotted(path)}: prompt {name!r}: {why}")
            return False
        if file is not None:
            self.prompt_files[name] = file
        elif self.prompts.prompts_dir is not None:
            # Not checked (check_prompts=False): the player reports it if it is still missing.
            self.prompt_files[name] = self.prompts.prompts_dir / f"{name}.wav"
        return True

    # -- the file -------------------------------------------------------------

    def run(self) -> None:
        c, p = self.c, self.p
        top = self.doc.data
        if top is None:
            self.add((), "the file is empty; a flow needs at least timezone, start and nodes")
            return
        if not isinstance(top, dict):
            self.add((), f"a flow file must be a mapping of keys ({', '.join(_TOP_KEYS)}), "
                     f"got {describe(top)}")
            return
        self._long_values(top, ())
        raw_top = c.validate(_RawTop, top)

        tz = top.get("timezone")
        if isinstance(tz, str):
            problem = _zone_problem(tz)
            if problem is not None:
                self.add(("timezone",), f"timezone: {problem}")
        lang = top.get("language", "en")
        self.language = lang if lang in ("zh", "en") else None

        holidays = self._holidays(top.get("holidays"))
        var_values = self._flow_vars(top.get("vars"))

        nodes_raw = top.get("nodes")
        gnodes: dict[str, _GNode] | None = None
        built: dict[str, Node | None] = {}
        if "nodes" in top and not isinstance(nodes_raw, dict):
            self.add(("nodes",), f"nodes: expected a mapping of node name to node, "
                     f"got {describe(nodes_raw)}")
        elif isinstance(nodes_raw, dict):
            if not nodes_raw:
                self.add(("nodes",), "nodes: a flow needs at least one node")
            self.node_names = [n for n in nodes_raw if isinstance(n, str)]
            self.node_set = frozenset(self.node_names)
            gnodes = {}
            for name, body in nodes_raw.items():
                valid = self.name_ok(("nodes", name), name, "node name", key=True)
                if not isinstance(name, str):
                    continue
                # A node whose name is not valid is still checked and stays in the graph
                # (with its edges), so `start: 欢迎` or a `next:` naming it is not reported
                # again and what it leads to is not "unreachable": one problem, at the name.
                node, g = self._node(name, body)
                built[name] = node if valid else None
                gnodes[name] = g
        p.gnodes = gnodes

        start = top.get("start")
        if isinstance(start, str) and gnodes is not None:
            if start in gnodes:  # even when its name is not valid (reported at the name)
                p.start = start
            else:
                self.add(("start",), f"start: {self._no_node(start)}")

        self._menu_duplicates(nodes_raw)
        p.problems = c.problems
        if p.problems or raw_top is None or holidays is None or var_values is None:
            return
        if any(n is None for n in built.values()) or p.start is None:
            return
        p.flow = Flow(
            name=p.name,
            version=hashlib.sha256(self.raw).hexdigest()[:10],
            path=p.path,
            start=p.start,
            nodes=MappingProxyType({n: node for n, node in built.items() if node is not None}),
            timezone=raw_top.timezone,
            language=raw_top.language,
            holidays=holidays,
            vars=var_values,
            prompt_files=MappingProxyType(dict(self.prompt_files)),
            marks=MappingProxyType(dict(self.marks)),
        )

    def _long_values(self, value: Any, path: YamlPath) -> None:
        if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
            self.add(path, f"{dotted(path) or 'value'}: {len(value)} characters is too long; "
                     f"values are at most {MAX_VALUE_CHARS} characters")
        elif isinstance(value, dict):
            for k, v in value.items():
                self._long_values(v, (*path, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self._long_values(v, (*path, i))

    def _no_node(self, target: str) -> str:
        close = difflib.get_close_matches(target, self.node_names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"no node {target!r} in this flow{hint}"

    def _holidays(self, raw: Any) -> Holidays | None:
        if raw is None:
            return Holidays()
        h = self.c.validate(_RawHolidays, raw, ("holidays",))
        if not isinstance(raw, dict):
            return None
        ok = h is not None
        country, subdivision = raw.get("country"), raw.get("subdivision")
        if isinstance(country, str):
            cp, sp = _country_problem(country, subdivision if isinstance(subdivision, str) else None)
            if cp is not None:
                self.add(("holidays", "country"), f"holidays.country: {cp}")
                ok = False
            if sp is not None:
                self.add(("holidays", "subdivision"), f"holidays.subdivision: {sp}")
                ok = False
        elif isinstance(subdivision, str):
            self.add(("holidays", "subdivision"),
                     "holidays.subdivision: give holidays.country too (a subdivision of which country?)")
            ok = False
        days: dict[str, set[dt.date]] = {"dates": set(), "workdays": set()}
        for key in days:
            items = raw.get(key)
            if not isinstance(items, list):
                continue
            for i, item in enumerate(items):
                d = self.date(("holidays", key, i), item)
                if d is None:
                    ok = False
                else:
                    days[key].add(d)
        if h is None or not ok:
            return None
        return Holidays(country=h.country, subdivision=h.subdivision,
                        dates=frozenset(days["dates"]), workdays=frozenset(days["workdays"]))

    def _var_mapping(self, path: YamlPath, raw: Any, known: frozenset[str],
                     ) -> tuple[list[tuple[str, str]], list[tuple[str, YamlPath, frozenset[str]]],
                                bool]:
        """A ``name: template`` mapping: (values, reads, ok). Each value may read the
        variables set above it in the same mapping (and ``known``)."""
        values: list[tuple[str, str]] = []
        reads: list[tuple[str, YamlPath, frozenset[str]]] = []
        ok = True
        for name, value in raw.items():
            vpath = (*path, name)
            if not self.name_ok(vpath, name, "variable name", key=True):
                ok = False
                continue
            if name in BUILTIN_VARS:
                self.add(vpath, f"{dotted(vpath)}: {name!r} is a builtin variable "
                         f"({', '.join(sorted(BUILTIN_VARS))}) and cannot be set", key=True)
                ok = False
            if not isinstance(value, str):
                shown = str(value).lower() if isinstance(value, bool) else value
                hint = f'; put it in quotes, e.g. "{shown}"' if isinstance(
                    value, int | float | bool) else ""
                self.add(vpath, f"{dotted(vpath)}: expected text, got {describe(value)}{hint}")
                ok = False
                continue
            earlier = known | {n for n, _ in values}
            for var in self.template(vpath, value):
                reads.append((var, vpath, frozenset(earlier)))
            values.append((name, value))
        return values, reads, ok

    def _flow_vars(self, raw: Any) -> tuple[tuple[str, str], ...] | None:
        if raw is None:
            return ()
        if not isinstance(raw, dict):
            self.add(("vars",), f"vars: expected a mapping of variable name to value, "
                     f"got {describe(raw)}")
            return None
        values, reads, ok = self._var_mapping(("vars",), raw, BUILTIN_VARS)
        for var, path, earlier in reads:
            if var not in earlier:
                later = any(n == var for n, _ in values)
                why = "is set below this one" if later else "is not set before the first node"
                self.add(path, f"{dotted(path)}: reads variable {var!r}, which {why}; vars: "
                         "may read the builtins and the vars above them")
                ok = False
        self.p.var_names = frozenset(n for n, _ in values)
        return tuple(values) if ok else None

    def _menu_duplicates(self, nodes: Any) -> None:
        """Reword yamlloc's duplicate-key problems inside a menu's choices as menu-key ones."""
        if not isinstance(nodes, dict):
            return
        reword: dict[YMark, YamlPath] = {}
        for path, mark in self.doc.duplicates:
            if len(path) == 4 and path[0] == "nodes" and path[2] == "choices":
                body = nodes.get(path[1])
                if isinstance(body, dict) and body.get("type") == "menu":
                    reword[mark] = path
        if not reword:
            return
        dup = re.compile(r"duplicate key .+ \(first given at line (\d+)\); remove one of them")
        for i, problem in enumerate(self.c.problems):
            path = reword.get(problem.mark)
            hit = dup.fullmatch(problem.message) if path is not None else None
            if path is not None and hit:
                self.c.problems[i] = Problem(problem.mark, (
                    f"{dotted(path[:3])}: key '{path[3]}' is given twice in this menu (first at "
                    f"line {hit.group(1)}); a key leads to one node only, remove one of them"))

    # -- nodes ----------------------------------------------------------------

    def _node(self, name: str, body: Any) -> tuple[Node | None, _GNode]:
        path: YamlPath = ("nodes", name)
        g = _GNode(name=name, mark=self.doc.mark_for(path, key=True), waits=True, sets=None)
        if not isinstance(body, dict):
            self.add(path, f"{dotted(path)}: expected a node (a mapping with a type), "
                     f"got {describe(body)}")
            return None, g
        for key in body:  # where each value is, for checks after loading (transfer_targets)
            if isinstance(key, str):
                self.marks[(name, key)] = self.mark((*path, key))
        type_text = body.get("type")
        if "type" not in body:
            self.add(path, f"missing required key 'type' in {dotted(path)} ({_HINTS['type']})")
            self._raw_edges(g, body, None)
            return None, g
        try:
            ntype = NodeType(type_text)
        except ValueError:
            if isinstance(type_text, str):
                close = difflib.get_close_matches(type_text, [t.value for t in NodeType], n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f" ({_HINTS['type']})"
                self.add((*path, "type"), f"{dotted(path)}.type: unknown node type "
                         f"{type_text!r}{hint}")
            else:
                self.add((*path, "type"), f"{dotted(path)}.type: expected a node type "
                         f"({_HINTS['type']}), got {describe(type_text)}")
            self._raw_edges(g, body, None)
            return None, g
        g.waits = ntype in _WAITING
        g.type = ntype
        before = len(self.c.problems)
        if ntype is NodeType.QUEUE:
            body = self._queue_exits(g, path, body)
        raw = self.c.validate(_RAW_BY_TYPE[ntype], body, path)
        if ntype in _REFUSED:
            self.add((*path, "type"), f"{dotted(path)}.type: {_REFUSED[ntype]}")
        self._raw_edges(g, body, ntype)
        g.sets = frozenset()
        builder = getattr(self, f"_build_{ntype.value}")
        node: Node | None = builder(name, path, body, raw, g)
        if node is None or raw is None or len(self.c.problems) > before:
            # A node with a problem may set anything as far as later checks know: no
            # "read before set" is reported because of a node the designer must fix anyway.
            g.sets = None
            return None, g
        return node, g

    def _raw_edges(self, g: _GNode, body: dict[Any, Any], ntype: NodeType | None) -> None:
        """Edges read straight from the text, checked against the node names.

        From the raw text rather than the model so that a node with an unrelated
        mistake still has its edges checked and followed (no false "unreachable").
        """
        keys = _REF_KEYS.get(ntype, ()) if ntype is not None else (
            "next", "fallback", "else", "open", "closed", "holiday", "on_fail")
        path: YamlPath = ("nodes", g.name)
        for key in keys:
            self._ref(g, (*path, key), body.get(key), key)
        choices = body.get("choices")
        if ntype in (NodeType.MENU, None) and isinstance(choices, dict):
            for k, v in choices.items():
                self._ref(g, (*path, "choices", k), v, "choices")
        if ntype in (NodeType.ROUTE_REQUEST, None) and isinstance(choices, list):
            for i, v in enumerate(choices):
                self._ref(g, (*path, "choices", i), v, "choices")
        cases = body.get("cases")
        if ntype in (NodeType.BRANCH, None) and isinstance(cases, list):
            for i, case in enumerate(cases):
                if isinstance(case, dict):
                    self._ref(g, (*path, "cases", i, "next"), case.get("next"), f"cases.{i}")
        if ntype is NodeType.GOTO:
            flow, target = body.get("flow"), body.get("node")
            if isinstance(flow, str) and (target is None or isinstance(target, str)):
                self._goto(g, path, flow, target)

    def _queue_exits(self, g: _GNode, path: YamlPath, body: dict[Any, Any]) -> dict[Any, Any]:
        """Report ``next``/``on_fail``/``fallback`` on a queue node with why it has none;
        ``body`` without them (so the schema does not report them again as unknown).

        An edge to an existing node is still followed, so the node it names is not
        also reported unreachable: one mistake, one message.
        """
        for key in _QUEUE_NO_EXIT:
            if key not in body:
                continue
            kpath = (*path, key)
            self.add(kpath, f"{dotted(kpath)}: a queue node has no {key}: the caller stays "
                     "in the queue until an agent answers or the caller hangs up, and the "
                     "queue's own overflow (queues.NAME.overflow in config.yaml, e.g. "
                     "flow:main or queue:support) decides where a caller who waits too long "
                     f"goes; remove {key}", key=True)
            target = body[key]
            if isinstance(target, str) and target in self.node_set:
                g.edges.append(_Edge(target, key))
        return {k: v for k, v in body.items() if k not in _QUEUE_NO_EXIT}

    def _ref(self, g: _GNode, path: YamlPath, target: Any, via: str) -> None:
        if not isinstance(target, str):
            return
        if target in self.node_set:
            g.edges.append(_Edge(target, via))
        else:
            self.add(path, f"{dotted(path)}: {self._no_node(target)}")

    def _goto(self, g: _GNode, path: YamlPath, flow: str, target: str | None) -> None:
        fpath, npath = (*path, "flow"), (*path, "node")
        if not self.name_ok(fpath, flow, "flow name"):
            return
        if flow == self.p.name:
            if target is None:
                g.edges.append(_Edge(None, "goto", flow))
            elif target in self.node_set:
                g.edges.append(_Edge(target, "goto", flow))
            else:
                self.add(npath, f"{dotted(npath)}: {self._no_node(target)}")
            return
        folder = self.p.path.parent
        file = folder / f"{flow}.yaml"
        if not os.path.isfile(file):
            why = _in_the_way(file)
            if why is not None:
                self.add(fpath, f"{dotted(fpath)}: flow {flow!r}: {file} {why}")
                return
            known = sorted(p.stem for p in folder.glob("*.yaml")) if os.path.isdir(folder) else []
            close = difflib.get_close_matches(flow, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            self.add(fpath, f"{dotted(fpath)}: no flow {flow!r}: {file} does not exist{hint}")
            return
        g.edges.append(_Edge(target, "goto", flow))
        self.p.gotos.append(_GotoRef(g.name, flow, target, fpath, npath))

    # -- one builder per node type: checks beyond the schema, then the model node --

    def _into(self, path: YamlPath, value: Any) -> str | None:
        if value is None:
            return None
        if not self.name_ok(path, value, "variable name"):
            return None
        if value in BUILTIN_VARS:
            self.add(path, f"{dotted(path)}: {value!r} is a builtin variable and cannot be set")
            return None
        return value

    def _reply_var(self, path: YamlPath, value: Any) -> str | None:
        """A route_request ``sets`` entry: a variable a ``ROUTE.REPLY`` can set, or None."""
        if not self.name_ok(path, value, "variable name"):
            return None
        where = dotted(path)
        if value in BUILTIN_VARS:
            self.add(path, f"{where}: {value!r} is a builtin variable "
                     f"({', '.join(sorted(BUILTIN_VARS))}); ROUTE.REPLY is refused when it sets "
                     "one, so no reply can set it")
            return None
        if value in _REPLY_ARGS:
            self.add(path, f"{where}: a reply cannot set {value!r}: call= and next= are "
                     "ROUTE.REPLY's own arguments (the call and the node to go to), not "
                     f"variables; use another name, e.g. {_REPLY_ARGS[value]!r}")
            return None
        if not _REPLY_KEY_RE.fullmatch(value):
            lower = value.lower()
            hint = f"; write {lower!r}" if _REPLY_KEY_RE.fullmatch(lower) else ""
            self.add(path, f"{where}: a reply cannot set {value!r}: ROUTE.REPLY's keys are "
                     "lower-case (a-z first, then a-z, 0-9, '_', '.' or '-')" + hint)
            return None
        return value

    def _build_play(self, name: str, path: YamlPath, body: dict[Any, Any], raw: Any,
                    g: _GNode) -> Node | None:
        prompts = self.prompt_list(path, body, "prompts", required=True, single="prompt",
                                   nonempty=True)
        if raw is None or prompts is None:
            return None
        return Play(name=name, mark=self.mark(path, key=True), prompts=prompts,
                    barge_in=raw.barge_in, next=raw.next)

    def _build_menu(self, name: str, path: YamlPath, body: dict[Any, Any], raw: Any,
                    g: _GNode) -> Node | None:
        prompts = self.prompt_list(path, body, "prompts", required=True, single="prompt")
        others = [self.prompt_list(path, body, k, required=False, single=None)
                  for k in ("invalid_prompts", "timeout_prompts")]
        into = self._into((*path, "into"), body.get("into"))
        if into is not None:  # set when a key is chosen, not on the way to fallback
            for edge in g.edges:
                if edge.via == "choices":
                    edge.sets = frozenset({into})
        choices: dict[str, str] = {}
        raw_choices = body.get("choices")
        ok = True
        if isinstance(raw_choices, dict):
            if not raw_choices:
                self.add((*path, "choices"), f"{dotted((*path, 'choices'))}: a menu needs at "
                         "least one choice")
                ok = False
            seen: dict[str, Any] = {}
            for k, target in raw_choices.items():
                kpath = (*path, "choices", k)
                key = self._menu_key(kpath, k)
                if key is None:
                    written = self.doc.key_texts.get(kpath)
                    if isinstance(k, int) and not isinstance(k, bool) and 0 <= k <= 9 \
                            and written is not None:
                        why = (f"{written} is read as the number {k}; write menu keys as quoted "
                               f'text, e.g. "{k}"')
                    else:
                        why = (f"{k!r} is not one key; a menu key is one of 0-9, *, #, A-D "
                               '(quote * and #, e.g. "#")')
                    self.add(kpath, f"{dotted((*path, 'choices'))}: {why}", key=True)
                    ok = False
                    continue
                if key in seen:
                    first = self.doc.mark_for((*path, "choices", seen[key]), key=True).line
                    self.add(kpath, f"{dotted((*path, 'choices'))}: key '{key}' is given twice in "
                             f"this menu (first at line {first}); a key leads to one node only, "
                             "remove one of them", key=True)
                    ok = False
                    continue
                seen[key] = k
                if not isinstance(target, str):
                    self.add(kpath, f"{dotted((*path, 'choices'))}: key '{key}' must lead to a "
                             f"node name, got {describe(target)}")
                    ok = False
                    continue
                choices[key] = target
        if raw is None or prompts is None or not ok or None in others:
            return None
        return Menu(name=name, mark=self.mark(path, key=True), prompts=prompts,
                    choices=MappingProxyType(choices), timeout_s=float(raw.timeout_s),
                    retries=raw.retries, invalid_prompts=others[0] or (),
                    timeout_prompts=others[1] or (), fallback=raw.fallback, into=into,
                    barge_in=raw.barge_in)

    def _menu_key(self, kpath: YamlPath, k: Any) -> str | None:
        """The key ``k`` (written at ``kpath``) stands for, or None. A number counts only
        when written as one digit: ``1`` is "1", but ``+1`` or ``1_`` are not keys."""
        if isinstance(k, bool):
            return None
        if isinstance(k, int):
            written = self.doc.key_texts.get(kpath, str(k))
            return written if len(written) == 1 and written in "0123456789" else None
        if isinstance(k, str) and len(k) == 1 and k.upper() in _MENU_KEYS:
            return k.upper()
        return None

    def _build_collect(self, name: str, path: YamlPath, body: dict[Any, Any], raw: Any,
                       g: _GNode) -> Node | None:
        prompts = self.prompt_list(path, body, "prompts", required=True, single="prompt")
        invalid = self.prompt_list(path, body, "invalid_prompts", required=False, single=None)
        into = self._into((*path, "into"), body.get("into"))
        if into is not None:  # set on the way to next, not to fallback
            for edge in g.edges:
                if edge.via == "next":
                    edge.sets = frozenset({into})
        ok = True
        digits, lo, hi = (body.get(k) for k in ("digits", "min_digits", "max_digits"))
        ints = [v if isinstance(v, int) and not isinstance(v, bool) else None
                for v in (digits, lo, hi)]
        # Given = written with a value; `max_digits: null` is the default, as the schema has it.
        given_d, given_lo, given_hi = (v is not None for v in (digits, lo, hi))
        if given_d and (given_lo or given_hi):
            self.add((*path, "digits"), f"{dotted((*path, 'digits'))}: give either digits "
                     "(exactly that many) or min_digits/max_digits, not both", key=True)
            ok = False
        low = ints[0] if given_d else (ints[1] if given_lo else 1)
        high = ints[0] if given_d else (ints[2] if given_hi else 20)
        if low is not None and high is not None and low > high and not given_d:
            where = (*path, "min_digits") if given_lo else (*path, "max_digits")
            self.add(where, f"{dotted(path)}: min_digits {low} is more than max_digits {high}"
                     + ("" if given_hi else " (the default)")
                     + ("" if given_lo else " (min_digits defaults to 1)"))
            ok = False
        term = body.get("terminator", "#")
        if isinstance(term, str) and (len(term) != 1 or term.upper() not in _MENU_KEYS):
            self.add((*path, "terminator"), f"{dotted((*path, 'terminator'))}: {term!r} is not "
                     'one key; use one of 0-9, *, #, A-D (usually "#"), or null for none')
            ok = False
        pattern = body.get("pattern")
        if isinstance(pattern, str):
            try:
                re.compile(pattern)
            except re.error as exc:
                self.add((*path, "pattern"), f"{dotted((*path, 'pattern'))}: not a valid regular "
                         f"expression: {exc}")
                ok = False
        if raw is None or prompts is None or invalid is None or into is None or not ok:
            return None
        if low is None or high is None:
            return None  # a count of the wrong type: the schema reported it
        return Collect(name=name, mark=self.mark(path, key=True), prompts=prompts, into=into,
                       min_digits=low, max_digits=high,
                       terminator=None if raw.terminator is None else raw.terminator.upper(),
                       pattern=raw.pattern, first_timeout_s=float(raw.first_timeout_s),
                       inter_digit_timeout_s=float(raw.inter_digit_timeout_s),
                       retries=raw.retries, invalid_prompts=invalid, next=raw.next,
                       fallback=raw.fallback, barge_in=raw.barge_in)

    def _build_say(self, name: str, path: YamlPath, body: dict[Any, Any], raw: Any,
                   g: _GNode) -> Node | None:
        value = body.get("value")
        if isinstance(value, str):
            vpath = (*path, "value")
            for var in self.template(vpath, value):
                g.reads.append((var, vpath, frozenset()))
        lang = body.get("language") or self.language
        ok = True
        if lang in ("zh", "en"):
            ok = self._fragments(path, lang)
        if raw is None or not ok:
            return None
        return Say(name=name, mark=self.mark(path, key=True), kind=SayKind(raw.say),
                   value=raw.value, language=raw.language, currency=raw.currency,
                   barge_in=raw.barge_in, next=raw.next)

    def _fragments(self, path: YamlPath, lang: str) -> bool:
        """Every recorded fragment ``say`` needs in ``lang`` exists and decodes."""
        names = _say_fragments(lang)
        if names is None:
            return True
        missing: list[str] = []
        broken: list[tuple[str, str]] = []
        for fragment in names:
            self.p.prompt_names.add(fragment)
            file, why = self.prompts.check(fragment)
            if why is not None and self.prompts.decode:
                if file is None:
                    missing.append(fragment)
                else:
                    broken.append((fragment, why))
            elif file is not None:
                self.prompt_files[fragment] = file
            elif self.prompts.prompts_dir is not None:
                self.prompt_files[fragment] = self.prompts.prompts_dir / f"{fragment}.wav"
        if not missing and not broken:
            return True
        where = self.prompts.prompts_dir
        parts = []
        if missing:
            shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6
                                              else "")
            parts.append(f"{len(missing)} of the {len(names)} recorded {lang} fragments it needs "
                         f"are missing from {where}: {shown}")
        if broken:
            fragment, why = broken[0]
            more = f" ({len(broken) - 1} more cannot be played either)" if len(broken) > 1 else ""
            parts.append(f"fragment {fragment!r} cannot be played: {why}{more}")
        self.add(path, f"{dotted(path)}: say: " + "; ".join(parts), key=True)
        return False

    def _build_schedule(self, name: str, path: YamlPath, body: dict[Any, Any], raw: Any,
                        g: _GNode) -> Node | None:
        ok = True
        hours: dict[int, tuple[TimeRange, ...]] = {}
        raw_hours = body.get("hours")
        if isinstance(raw_hours, dict):
            first_at: dict[int, Any] = {}
            for k, v in raw_hours.items():
                kpath = (*path, "hours", k)
                days = _day_key(k) if isinstance(k, str) else (
                    f"{k!r} is not a weekday: use mon tue wed thu fri sat sun, a range like "
                    "mon-fri or a list like sat,sun")
                if isinstance(days, str):
                    self.add(kpath, f"{dotted((*path, 'hours'))}: {days}", key=True)
                    ok = False
                    continue
                ranges = self.ranges(kpath, v)
                for d in days:
                    if d in first_at:
                        line = self.doc.mark_for((*path, "hours", first_at[d]), key=True).line
                        self.add(kpath, f"{dotted((*path, 'hours'))}: {_DAYS[d]} is given twice "
                                 f"(first at line {line}); give each weekday once", key=True)
                        ok = False
                        break
                    first_at[d] = k
                    if ranges is not None:
                        hours[d] = ranges
                if ranges is None:
                    ok = False
        rules: list[DateRule] = []
        raw_dates = body.get("dates")
        if isinstance(raw_dates, list):
            for i, item in enumerate(raw_dates):
                rpath = (*path, "dates", i)
                rule = self.c.validate(_RawDateRule, item, rpath)
                if not isinstance(item, dict):
                    ok = False
                    continue
                first = self.date((*rpath, "from"), item["from"]) if "from" in item else None
                last = self.date((*rpath, "to"), item["to"]) if item.get("to") is not None \
                    else first
                ranges = self.ranges((*rpath, "hours"), item["hours"]) if "hours" in item \
                    else None
                if first is not None and last is not None and last < first:
                    self.add((*rpath, "to"), f"{dotted((*rpath, 'to'))}: {last} is before from "
                             f"{first}")
                    ok = False
                if rule is None or first is None or last is None or ranges is None:
                    ok = False
                    continue
                rules.append(DateRule(first, last, ranges))
        workday: tuple[TimeRange, ...] | None = None
        if body.get("workday_hours") is not None:
            workday = self.ranges((*path, "workday_hours"), body["workday_hours"])
            ok = ok and workday is not None
        if raw is None or not ok:
            return None
        return Schedule(name=name, mark=self.mark(path, key=True),
                        hours=MappingProxyType(dict(sorted(hours.items()))), dates=tuple(rules),
                        workday_hours=workday, open=raw.open, closed=raw.closed,
                        holiday=raw.holiday)

    def _build_branch(self, name: str, path: YamlPath, body: dict[Any, Any], raw: Any,
                      g: _GNode) -> Node | None:
        cases: list[Case] = []
        ok = True
        raw_cases = body.get("cases")
        if isinstance(raw_cases, list):
            if not raw_cases:
                self.add((*path, "cases"), f"{dotted((*path, 'cases'))}: needs at least one case "
                         "(a branch without cases always goes to else)")
                ok = False
            for i, item in enumerate(raw_cases):
                cpath = (*path, "cases", i)
                case = self.c.validate(_RawCase, item, cpath)
                if not isinstance(item, dict) or "when" not in item:
                    ok = False
                    continue
                conds = self._when((*cpath, "when"), item["when"], g)
                if conds is None or case is None:
                    ok = False
                    continue
                known = frozenset(c.name for c in conds if c.op is CondOp.SET and c.value is True
                                  and c.name is not None)
                if known:  # `{var: x, set: true}` -> x is set on that edge
                    for edge in g.edges:
                        if edge.via == f"cases.{i}":
                            edge.sets = edge.sets | known
                cases.append(Case(tuple(conds), case.next, self.mark(cpath)))
        if raw is None or not ok:
            return None
        return Branch(name=name, mark=self.mark(path, key=True), cases=tuple(cases),
                      otherwise=raw.otherwise)

    def _when(self, path: YamlPath, raw: Any, g: _GNode) -> list[Cond] | None:
        """Parse a case's ``when`` (a mapping, or a list of mappings, all must hold)."""
        groups = [(path, raw)] if not isinstance(raw, list) else [
            ((*path, i), item) for i, item in enumerate(raw)]
        if isinstance(raw, list) and not raw:
            self.add(path, f"{dotted(path)}: needs at least one condition")
            return None
        out: list[Cond] = []
        ok = True
        for mpath, m in groups:
            if not isinstance(m, dict) or not m:
                self.add(mpath, f"{dotted(mpath)}: expected conditions like {{var: lang, equals: "
                         f"en}} or {{caller: {{prefix: \"138\"}}}}, got {describe(m)}")
                ok = False
                continue
            for k in m:
                if k not in _WHEN_KEYS:
                    self.add((*mpath, k), unknown_key_message(k, mpath, _WHEN_KEYS), key=True)
                    ok = False
            ops = [k for k in m if k in _VAR_OPS]
            if "var" in m:
                var = m["var"]
                if not self.name_ok((*mpath, "var"), var, "variable name"):
                    if not isinstance(var, str):
                        self.add((*mpath, "var"), f"{dotted((*mpath, 'var'))}: expected a "
                                 f"variable name, got {describe(var)}")
                    ok = False
                elif len(ops) != 1:
                    what = ("no comparison" if not ops
                            else f"{len(ops)} comparisons ({', '.join(ops)})")
                    self.add((*mpath, "var"), f"{dotted(mpath)}: var {var} has {what}; give "
                             f"exactly one of {', '.join(_VAR_OPS)} (for several, make when a "
                             "list of conditions)")
                    ok = False
                else:
                    op = ops[0]
                    value = self._op_value((*mpath, op), op, m[op])
                    if value is _BAD:
                        ok = False
                    else:
                        out.append(Cond(CondSubject.VAR, CondOp(op), value, var))
                        if op != "set":
                            g.reads.append((var, (*mpath, "var"), frozenset()))
            elif ops:
                self.add((*mpath, ops[0]), f"{dotted((*mpath, ops[0]))}: {ops[0]} compares a "
                         f"variable: add var: NAME beside it (or write caller: {{{ops[0]}: ...}})",
                         key=True)
                ok = False
            for subject in ("caller", "dnis"):
                if subject in m:
                    cond = self._number_cond((*mpath, subject), subject, m[subject])
                    if cond is None:
                        ok = False
                    else:
                        out.append(cond)
            for subject in ("vip", "blacklisted"):
                if subject in m:
                    if isinstance(m[subject], bool):
                        out.append(Cond(CondSubject(subject), CondOp.IS, m[subject]))
                    else:
                        spath = (*mpath, subject)
                        self.add(spath, f"{dotted(spath)}: expected true or false, got "
                                 f"{describe(m[subject])}")
                        ok = False
            if "time" in m:
                tpath = (*mpath, "time")
                r = _time_range(m["time"]) if isinstance(m["time"], str) else (
                    f"expected a time range like \"12:00-13:30\", got {describe(m['time'])}")
                if isinstance(r, str):
                    self.add(tpath, f"{dotted(tpath)}: {r}")
                    ok = False
                else:
                    out.append(Cond(CondSubject.TIME, CondOp.IS, r))
            if "weekday" in m:
                days = self._weekdays((*mpath, "weekday"), m["weekday"])
                if days is None:
                    ok = False
                else:
                    out.append(Cond(CondSubject.WEEKDAY, CondOp.IS, days))
        return out if ok else None

    def _weekdays(self, path: YamlPath, raw: Any) -> tuple[int, ...] | None:
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list) or not items:
            self.add(path, f"{dotted(path)}: expected a weekday, a range like mon-fri, or a list "
                     f"of them, got {describe(raw)}")
            return None
        days: set[int] = set()
        ok = True
        for i, item in enumerate(items):
            ipath = path if isinstance(raw, str) else (*path, i)
            d = _day_key(item) if isinstance(item, str) else f"expected a weekday, got " \
                f"{describe(item)}"
            if isinstance(d, str):
                self.add(ipath, f"{dotted(ipath)}: {d}")
                ok = False
            else:
                days.update(d)
        return tuple(sorted(days)) if ok else None

    def _op_value(self, path: YamlPath, op: str, value: Any, *, numbers: bool = False) -> Any:
        """The value of one comparison, or _BAD (reported). ``numbers``: caller/dnis, where a
        bare number is refused (a leading 0 would be lost)."""
        name = dotted(path)
        scalar = isinstance(value, str | int | float) and not isinstance(value, bool)
        if op == "set":
            if isinstance(value, bool):
                return value
            self.add(path, f"{name}: expected true or false, got {describe(value)}")
            return _BAD
        if op == "in":
            if isinstance(value, list) and value and all(
                    isinstance(v, str) or (not numbers and isinstance(v, int | float)
                                           and not isinstance(v, bool)) for v in value):
                return tuple(str(v) for v in value)
            self.add(path, f"{name}: expected a list of values in quotes, e.g. [\"1\", \"2\"], "
                     f"got {describe(value)}")
            return _BAD
        if op in ("gt", "ge", "lt", "le"):
            text = str(value) if scalar else None
            try:
                decimal.Decimal(text or "x")
            except decimal.InvalidOperation:
                self.add(path, f"{name}: expected a number, got {describe(value)}")
                return _BAD
            return text
        if op == "matches":
            if not isinstance(value, str):
                self.add(path, f"{name}: expected a regular expression in quotes, got "
                         f"{describe(value)}")
                return _BAD
            try:
                re.compile(value)
            except re.error as exc:
                self.add(path, f"{name}: not a valid regular expression: {exc}")
                return _BAD
            return value
        if op == "prefix" or numbers:
            if isinstance(value, str):
                return value
            hint = f'; put it in quotes, e.g. "{value}"' if scalar else ""
            self.add(path, f"{name}: expected text, got {describe(value)}{hint}")
            return _BAD
        # equals / not_equals of a variable: text, a number (compared as a decimal) or a bool
        if isinstance(value, bool):
            return "true" if value else "false"
        if scalar:
            return str(value)
        self.add(path, f"{name}: expected a value, got {describe(value)}")
        return _BAD

    def _number_cond(self, path: YamlPath, subject: str, raw: Any) -> Cond | None:
        if isinstance(raw, dict):
            if len(raw) != 1 or next(iter(raw)) not in _NUMBER_OPS:
                self.add(path, f"{dotted(path)}: expected one comparison, e.g. {{prefix: "
                         f"\"138\"}} (one of {', '.join(_NUMBER_OPS)})")
                return None
            op, value = next(iter(raw.items()))
            value = self._op_value((*path, op), op, value, numbers=True)
            return None if value is _BAD else Cond(CondSubject(subject), CondOp(op), value)
        value = self._op_value(path, "equals", raw, numbers=True)
        return None if value is _BAD else Cond(CondSubject(subject), CondOp.EQUALS, value)

    def _build_set(self, name: str, path: YamlPath, body: dict[Any, Any], raw: Any,
                   g: _GNode) -> Node | None:
        raw_vars = body.get("vars")
        values: list[tuple[str, str]] = []
        ok = True
        if isinstance(raw_vars, dict):
            if not raw_vars:
                self.add((*path, "vars"), f"{dotted((*path, 'vars'))}: set at least one variable")
                ok = False
            values, reads, ok2 = self._var_mapping((*path, "vars"), raw_vars, frozenset())
            ok = ok and ok2
            g.reads.extend(reads)
            g.sets = frozenset(n for n, _ in values)
        if raw is None or not ok:
            return None
        return SetVars(name=name, mark=self.mark(path, key=True), values=tuple(values),
                       next=raw.next)

    def _build_route_request(self, name: str, path: YamlPath, body: dict[Any, Any], raw: Any,
                             g: _GNode) -> Node | None:
        prompts = self.prompt_list(path, body, "prompts", required=False, single="prompt")
        sets: list[str] = []
        ok = True
        raw_sets = body.get("sets")
        if isinstance(raw_sets, list):
            for i, var in enumerate(raw_sets):
                v = self._reply_var((*path, "sets", i), var)
                if v is None:
                    ok = False
                else:
                    sets.append(v)
        for edge in g.edges:  # a reply sets them; the timeout (fallback) does not
            if edge.via != "fallback":
                edge.sets = frozenset(sets)
        choices = body.get("choices")
        if not choices:
            self.p.open_crm = True
        named = [c for c in choices if isinstance(c, str)] if isinstance(choices, list) else []
        if len(set(named)) != len(named):  # other items: the schema reported them
            self.add((*path, "choices"), f"{dotted((*path, 'choices'))}: a node is listed twice")
            ok = False
        if raw is None or prompts is None or not ok:
            return None
        return RouteRequest(name=name, mark=self.mark(path, key=True),
                            timeout_s=float(raw.timeout_s), choices=tuple(raw.choices),
                            next=raw.next, fallback=raw.fallback, prompts=prompts,
                            sets=tuple(sets))

    def _build_transfer(self, name: str, path: YamlPath, body: dict[Any, Any], raw: Any,
                        g: _GNode) -> Node | None:
        to = body.get("to")
        target: str | None = None
        if isinstance(to, str):
            tpath = (*path, "to")
            target, problem = _transfer_target(to)
            if problem is not None:
                self.add(tpath, f"{dotted(tpath)}: {problem}")
        if raw is None or target is None:
            return None
        return Transfer(name=name, mark=self.mark(path, key=True), target=target,
                        timeout_s=None if raw.timeout_s is None else float(raw.timeout_s),
                        on_fail=raw.on_fail)

    def _build_hangup(self, name: str, path: YamlPath, body: dict[Any, Any], raw: Any,
                      g: _GNode) -> Node | None:
        return Hangup(name=name, mark=self.mark(path, key=True))

    def _build_goto(self, name: str, path: YamlPath, body: dict[Any, Any], raw: Any,
                    g: _GNode) -> Node | None:
        if raw is None:
            return None
        return Goto(name=name, mark=self.mark(path, key=True), flow=raw.flow, node=raw.node)

    def _build_queue(self, name: str, path: YamlPath, body: dict[Any, Any], raw: Any,
                     g: _GNode) -> Node | None:
        queue = body.get("queue")
        ok = True
        if isinstance(queue, str):  # another type: the schema reported it
            qpath = (*path, "queue")
            problem = _queue_name_problem(queue)
            if problem is not None:
                self.add(qpath, f"{dotted(qpath)}: {problem}")
                ok = False
        if raw is None or not ok:
            return None
        return Queue(name=name, mark=self.mark(path, key=True), queue=raw.queue,
                     priority=raw.priority)

    def _build_voicemail(self, name: str, path: YamlPath, body: dict[Any, Any], raw: Any,
                         g: _GNode) -> Node | None:
        ok = True
        mailbox = body.get("mailbox")
        if isinstance(mailbox, str):  # another type: the schema reported it
            mpath = (*path, "mailbox")
            problem = _mailbox_problem(mailbox)
            if problem is not None:
                self.add(mpath, f"{dotted(mpath)}: {problem}")
                ok = False
        greeting: tuple[str, ...] | None = ()
        raw_greeting = body.get("greeting")
        gpath = (*path, "greeting")
        if isinstance(raw_greeting, str):
            greeting = (raw_greeting,) if self.prompt(gpath, raw_greeting) else None
        elif isinstance(raw_greeting, list) and all(isinstance(x, str) for x in raw_greeting):
            good = [self.prompt((*gpath, i), x) for i, x in enumerate(raw_greeting)]
            greeting = tuple(raw_greeting) if all(good) else None
        if raw is None or greeting is None or not ok:
            return None
        return Voicemail(name=name, mark=self.mark(path, key=True), mailbox=raw.mailbox,
                         greeting=greeting,
                         max_s=None if raw.max_s is None else float(raw.max_s),
                         silence_s=None if raw.silence_s is None else float(raw.silence_s),
                         next=raw.next)


def _read_file(path: Path, source: str) -> tuple[bytes | None, str | None, list[str]]:
    """(bytes, text, problems) of a flow file; problems name the file when it cannot be read."""
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        return None, None, [f"{source}: is a directory, not a flow file"]
    except OSError as exc:
        why = _in_the_way(path)
        if why is not None:
            return None, None, [f"{source}: {why}"]
        if isinstance(exc, FileNotFoundError):
            return None, None, [f"{source}: no such flow file"]
        return None, None, [f"{source}: cannot read the flow file: {exc.strerror or exc}"]
    try:
        return raw, raw.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return raw, None, [
            f"{source}:{line}:{col}: the file is not UTF-8 text (byte {raw[exc.start]:#04x})"]


class _Text(Exception):
    """Internal: problems already formatted (the file could not be read or parsed)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _parse(path: Path, prompts: _PromptChecker) -> _Parsed | _Text:
    """Pass 1 for one file: its own problems, and the model when it has none."""
    path = Path(path)
    source = str(path)
    name = path.stem
    raw, text, problems = _read_file(path, source)
    if problems or raw is None or text is None:
        return _Text(problems)
    try:
        doc = compose_located(text, source)
    except ConfigError as exc:  # a YAML syntax error, at PyYAML's position
        return _Text(list(exc.problems))
    parsed = _Parsed(name=name, path=path, source=source, problems=[], doc=doc)
    parser = _FileParser(parsed, doc, prompts, raw)
    if not NAME_RE.fullmatch(name):
        parser.add((), f"the flow name {name!r} (the file name without .yaml) is not valid "
                   f"{_name_problem(name)}")
    parser.run()
    parsed.problems = list(parser.c.problems) + _hidden_key_problems(text)
    return parsed


#: A comment line that reads like a menu choice for the key # (``#: operator``).
_HASH_KEY_COMMENT = re.compile(r"""^(\s*)#\s*:\s*["']?[A-Za-z_][A-Za-z0-9_.-]*["']?\s*$""")
#: A menu choice line: one key, quoted or a bare digit/letter, then ``:``.
_CHOICE_LINE = re.compile(r"""^(\s*)(?:"[^"]{1,2}"|'[^']{1,2}'|[0-9A-D])\s*:\s*\S""")


def _hidden_key_problems(text: str) -> list[Problem]:
    """``#: operator`` among a menu's choices is a YAML comment, so the choice would
    vanish without a word: refuse the line and say to quote the key (``"#": operator``).
    Only a line beside another choice at the same indentation counts, so an ordinary
    comment such as ``#: TODO`` at the top of a file is left alone."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        found = _HASH_KEY_COMMENT.match(line)
        if not found:
            continue
        indent = found.group(1)
        beside = [lines[j] for j in (i - 1, i + 1) if 0 <= j < len(lines)]
        if not any((m := _CHOICE_LINE.match(b)) and m.group(1) == indent for b in beside):
            continue
        value = line.split(":", 1)[1].strip().strip("\"'")
        out.append(Problem(YMark(i + 1, len(indent) + 1),
                           "this line is a YAML comment, not a menu choice for the # key: "
                           f'quote the key ("#": {value}), or write the comment as a sentence'))
    return out


# --------------------------------------------------------------------------
# Pass 2: the graph of every flow loaded together
# --------------------------------------------------------------------------

_Key = tuple[str, str]  # (flow, node)


def _graph_checks(flows: Mapping[str, _Parsed]) -> None:
    """Goto targets, unreachable nodes, loops with no exit, reads before set.

    Adds each problem to the file it is about. Every flow is taken to be entered at
    its start (with the builtins and its ``vars:``), since a route may name any flow,
    and also wherever a ``goto`` of a flow loaded with it enters it (with what the
    call has there). So a file gets the same verdict whether it is checked alone, in
    its folder, or as a ``goto`` target of a routed flow.
    """
    nodes: dict[_Key, _GNode] = {}
    succ: dict[_Key, list[tuple[_Key, frozenset[str]]]] = {}
    for fname, f in flows.items():
        for g in (f.gnodes or {}).values():
            nodes[(fname, g.name)] = g
    for fname, f in flows.items():
        for goto in f.gotos:
            other = flows.get(goto.flow)
            if other is None or other.gnodes is None or goto.target is None:
                continue
            if goto.target not in other.gnodes:
                f.add(goto.node_path, f"{dotted(goto.node_path)}: flow {goto.flow!r} has no node "
                      f"{goto.target!r}" + _close(goto.target, other.gnodes))
        for g in (f.gnodes or {}).values():
            out = succ.setdefault((fname, g.name), [])
            for edge in g.edges:
                tflow = edge.flow or fname
                other = flows.get(tflow)
                if other is None or other.gnodes is None:
                    continue  # leaves the flows loaded together
                tnode = edge.node or other.start
                if tnode is None or tnode not in other.gnodes:
                    continue  # reported where it was written
                sets = edge.sets | (other.var_names if edge.flow is not None else frozenset())
                out.append(((tflow, tnode), sets))

    entries: dict[_Key, frozenset[str]] = {}
    for fname, f in flows.items():
        if f.start is not None and f.gnodes is not None and f.start in f.gnodes:
            entries[(fname, f.start)] = BUILTIN_VARS | f.var_names

    reached = _reachable(entries, succ)
    for fname, f in flows.items():
        if f.gnodes is None or f.start is None:
            continue  # without a valid start, everything would be "unreachable"
        hint = (" (a node the CRM may name must be listed in its route_request's choices)"
                if f.open_crm else "")
        for g in f.gnodes.values():
            if (fname, g.name) not in reached:
                f.problems.append(Problem(g.mark, (
                    f"nodes.{g.name}: unreachable: no path from start {f.start!r} leads to this "
                    f"node{hint}")))
    _loops(flows, nodes, succ)
    _reads(flows, nodes, succ, entries, reached)


def _close(name: str, names: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(names), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _reachable(entries: Mapping[_Key, frozenset[str]],
               succ: Mapping[_Key, list[tuple[_Key, frozenset[str]]]]) -> set[_Key]:
    seen = set(entries)
    todo = deque(entries)
    while todo:
        k = todo.popleft()
        for t, _ in succ.get(k, ()):
            if t not in seen:
                seen.add(t)
                todo.append(t)
    return seen


def _show(key: _Key, here: str) -> str:
    return key[1] if key[0] == here else f"{key[0]}:{key[1]}"


#: Nodes that take no time: a cycle of them could spin within one instant. A transfer
#: is one of them: it can fail in the same instant (an unknown or busy target, no free
#: trunk) and its on_fail may lead straight back.
_INSTANT = frozenset({NodeType.SET, NodeType.BRANCH, NodeType.SCHEDULE, NodeType.GOTO,
                      NodeType.TRANSFER})


def _loops(flows: Mapping[str, _Parsed], nodes: Mapping[_Key, _GNode],
           succ: Mapping[_Key, list[tuple[_Key, frozenset[str]]]]) -> None:
    """Report every loop with no exit, once per cycle. Two kinds:

    * a cycle with no key, no timeout on the way round: no menu, collect or
      route_request, and no transfer (whose ring time is a timeout) — play, say, set,
      branch, schedule and goto only: the caller goes round for ever;
    * a cycle of nodes that take no time, through a transfer (set, branch, schedule,
      goto, transfer): when the transfer fails at once it spins within one instant.

    A transfer whose ``on_fail`` plays a prompt and tries again is neither: the ring
    time is a timeout, and the prompt makes time pass when the target is busy.
    """
    timeless = {k for k, g in nodes.items() if not g.waits and g.type is not NodeType.TRANSFER}
    _report_cycles(flows, nodes, succ, timeless, lambda shown: (
        f"loop with no exit: {shown} goes round without waiting for a key or a timeout "
        "(play, say, set, branch, schedule and goto never wait), so a call could go round it "
        "for ever; put a menu, collect, route_request or transfer on the way round"))
    instant = {k for k, g in nodes.items() if g.type in _INSTANT}
    _report_cycles(flows, nodes, succ, instant, lambda shown: (
        f"loop with no exit: {shown} can go round in one instant (a transfer can fail at "
        "once: an unknown or busy target, no free trunk; set, branch, schedule and goto take "
        "no time), so a call could spin in it; put a menu, collect or route_request on the "
        "way round, or a play between the failed transfer and the next try"),
        only_with=NodeType.TRANSFER)


def _report_cycles(flows: Mapping[str, _Parsed], nodes: Mapping[_Key, _GNode],
                   succ: Mapping[_Key, list[tuple[_Key, frozenset[str]]]], live: set[_Key],
                   message: Callable[[str], str], *, only_with: NodeType | None = None) -> None:
    """Report one cycle per cyclic strongly connected component of the graph of the
    ``live`` nodes (Tarjan's algorithm, iterative; a component of one node counts only
    with an edge to itself), when it holds a node of type ``only_with`` (if given)."""
    adj = {k: [t for t, _ in succ.get(k, ()) if t in live] for k in live}
    order = list(flows)
    # Tarjan
    index: dict[_Key, int] = {}
    low: dict[_Key, int] = {}
    on: set[_Key] = set()
    stack: list[_Key] = []
    comps: list[list[_Key]] = []
    counter = 0
    for root in sorted(live, key=lambda k: (order.index(k[0]), nodes[k].mark)):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on.add(v)
            recurse = False
            while i < len(adj[v]):
                w = adj[v][i]
                i += 1
                if w not in index:
                    work.append((v, i))
                    work.append((w, 0))
                    recurse = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if recurse:
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                comps.append(comp)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    for comp in comps:
        members = set(comp)
        if len(comp) == 1 and comp[0] not in adj[comp[0]]:
            continue
        if only_with is not None and not any(nodes[k].type is only_with for k in comp):
            continue
        first = min(comp, key=lambda k: (order.index(k[0]), nodes[k].mark))
        if only_with is not None:
            # Start the cycle shown at the transfer, so it is the one the message names.
            first = min((k for k in comp if nodes[k].type is only_with),
                        key=lambda k: (order.index(k[0]), nodes[k].mark))
        cycle = _cycle_from(first, members, adj)
        f = flows[first[0]]
        shown = " > ".join(_show(k, first[0]) for k in cycle)
        f.problems.append(Problem(nodes[first].mark, f"nodes.{first[1]}: {message(shown)}"))


def _cycle_from(first: _Key, members: set[_Key], adj: Mapping[_Key, list[_Key]]) -> list[_Key]:
    """The shortest cycle through ``first`` inside one component, ``first`` at both ends."""
    parent: dict[_Key, _Key] = {}
    todo = deque([first])
    while todo:
        k = todo.popleft()
        for t in adj[k]:
            if t not in members:
                continue
            if t == first:
                path = [k]
                while path[-1] != first:
                    path.append(parent[path[-1]])
                return [*reversed(path), first]
            if t not in parent:
                parent[t] = k
                todo.append(t)
    return [first, first]  # unreachable: a component always has a cycle through each member


def _reads(flows: Mapping[str, _Parsed], nodes: Mapping[_Key, _GNode],
           succ: Mapping[_Key, list[tuple[_Key, frozenset[str]]]],
           entries: Mapping[_Key, frozenset[str]], reached: set[_Key]) -> None:
    """A variable read at a node must be set on *every* path from an entry to it.

    The classic must-be-set ("definitely assigned") forward analysis: IN(entry) =
    builtins + the flow's vars; IN(n) = the intersection over the edges p->n of
    IN(p) + what p sets + what that edge sets; iterated to the greatest fixpoint.
    A node that could not be read sets everything (no false alarm after it).
    """
    every: set[str] = set(BUILTIN_VARS)
    for f in flows.values():
        every |= f.var_names
    for k, g in nodes.items():
        every |= g.sets or set()
        for _, sets in succ.get(k, ()):
            every |= sets
    universe = frozenset(every)

    def gen(k: _Key) -> frozenset[str]:
        s = nodes[k].sets
        return universe if s is None else s

    known: dict[_Key, frozenset[str]] = dict(entries)
    todo = deque(entries)
    while todo:
        k = todo.popleft()
        out = known[k] | gen(k)
        for t, sets in succ.get(k, ()):
            new = out | sets
            if t not in known:
                known[t] = new
                todo.append(t)
            elif not known[t] <= new:
                known[t] = known[t] & new
                todo.append(t)

    unset: dict[str, dict[_Key, _Key | None]] = {}  # per variable, see _unset_tree
    order = {name: i for i, name in enumerate(flows)}
    for k in sorted(reached, key=lambda k: (order[k[0]], nodes[k].mark)):
        g = nodes.get(k)
        if g is None:
            continue
        f = flows[k[0]]
        for var, path, earlier in g.reads:
            if var in known.get(k, universe) or var in earlier:
                continue
            if var not in universe:
                f.add(path, f"{dotted(path)}: reads variable {var!r}, which nothing sets (no vars:, "
                      "set, collect/menu into or route_request sets names it)"
                      + _close(var, sorted(universe)))
                continue
            if var not in unset:
                unset[var] = _unset_tree(var, succ, entries, gen)
            route = _path_in(unset[var], k)
            f.add(path, f"{dotted(path)}: reads variable {var!r} before it is set on every path: "
                  f"{' > '.join(_show(x, k[0]) for x in route)} gets here without setting it; "
                  "set it on that path too, or give it a default in vars:")


def _unset_tree(var: str, succ: Mapping[_Key, list[tuple[_Key, frozenset[str]]]],
               entries: Mapping[_Key, frozenset[str]],
               gen: Callable[[_Key], frozenset[str]]) -> dict[_Key, _Key | None]:
    """Breadth-first tree of the paths from an entry on which nothing sets ``var``:
    node -> the node before it (None at an entry). One search per variable, so a
    file with thousands of reads of it is not searched thousands of times."""
    parent: dict[_Key, _Key | None] = {k: None for k, s in entries.items() if var not in s}
    todo = deque(parent)
    while todo:
        k = todo.popleft()
        if var in gen(k):
            continue
        for t, sets in succ.get(k, ()):
            if var not in sets and t not in parent:
                parent[t] = k
                todo.append(t)
    return parent


def _path_in(parent: Mapping[_Key, _Key | None], target: _Key) -> list[_Key]:
    """The path from an entry to ``target`` in a tree from :func:`_unset_tree`."""
    path: list[_Key] = [target]
    while (p := parent.get(path[-1])) is not None:
        path.append(p)
    return list(reversed(path))


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def _collect(parsed: Mapping[str, _Parsed], extra: Iterable[str] = ()) -> list[str]:
    out = list(extra)
    for p in parsed.values():
        out.extend(p.formatted())
    return out


def load_flow(
    path: Path,
    prompts_dir: Path | None,
    *,
    check_prompts: bool = True,
    cache: PromptCache | None = None,
) -> Flow:
    """Load and check the one flow file at ``path`` (flow name = file stem).

    Args:
        path: the flow file; messages name it as given.
        prompts_dir: where prompt names are looked up (``media.prompts_dir``); None
            skips finding prompts (and ``Flow.prompt_files`` stays empty).
        check_prompts: decode every prompt (and ``say`` fragment) to prove it plays;
            False only looks names up (``flows draw``).
        cache: a :class:`~switchd.lines.prompts.PromptCache` to decode into (and pin),
            so the daemon decodes each prompt once; None decodes and forgets.

    ``goto`` to another flow is checked only for its file existing (the other flow
    is not loaded; :func:`load_flows` checks across flows). ``version`` is the first
    10 hex digits of the SHA-256 of the file's bytes.

    Raises FlowError with every problem of the file, in file order.
    """
    prompts = _PromptChecker(prompts_dir, check_prompts, cache)
    parsed = _parse(path, prompts)
    if isinstance(parsed, _Text):
        raise FlowError(parsed.problems)
    _graph_checks({parsed.name: parsed})
    problems = parsed.formatted()
    if problems or parsed.flow is None:
        raise FlowError(problems or [f"{parsed.source}: the flow could not be loaded"])
    return parsed.flow


def _load_set(
    first: Sequence[tuple[str, Path, str | None]],
    prompts: _PromptChecker,
) -> tuple[dict[str, _Parsed], list[str]]:
    """Parse ``first`` (name, file, place to blame when missing) and every flow they
    reach by goto; run the graph checks. (parsed flows, problems not in a parsed file)."""
    parsed: dict[str, _Parsed] = {}
    problems: list[str] = []
    seen_files: dict[str, Path] = {}
    todo: deque[tuple[str, Path, str | None, bool]] = deque(
        (n, p, place, True) for n, p, place in first)
    while todo:
        name, file, place, root = todo.popleft()
        if name in seen_files:
            if root and os.path.realpath(seen_files[name]) != os.path.realpath(file):
                problems.append(f"{file}: flow {name!r} is given twice (also {seen_files[name]}); "
                                "flow names (file names) must be unique")
            continue
        seen_files[name] = file
        if not os.path.isfile(file):
            why = _in_the_way(file)
            what = f"no flow {name!r}: {file} does not exist" if why is None \
                else f"flow {name!r}: {file} {why}"
            problems.append(f"{place}: {what}" if place else f"{file}: {what}")
            continue
        result = _parse(file, prompts)
        if isinstance(result, _Text):
            problems.extend(result.problems)
            continue
        parsed[name] = result
        for goto in result.gotos:
            todo.append((goto.flow, file.parent / f"{goto.flow}.yaml", None, False))
    _graph_checks(parsed)
    return parsed, problems


def load_flows(
    flows_dir: Path,
    names: Iterable[str],
    prompts_dir: Path | None,
    *,
    generation: int = 0,
    places: Mapping[str, str] | None = None,
    cache: PromptCache | None = None,
) -> FlowSet:
    """Load flows ``names`` from ``flows_dir`` (``NAME.yaml``) and every flow they reach
    by ``goto``, checked together, as one generation.

    ``places``: where each name was written (``"config.yaml:40:9"``), to blame a
    missing flow there; without one the message starts with the path looked for.
    ``prompts_dir`` and ``cache`` as in :func:`load_flow` (prompts are decoded).

    Raises FlowError with every problem of every file at once (files in load order,
    each in file order).
    """
    flows_dir = Path(flows_dir)
    places = places or {}
    first = [(n, flows_dir / f"{n}.yaml", places.get(n)) for n in names]
    parsed, problems = _load_set(first, _PromptChecker(prompts_dir, True, cache))
    problems = _collect(parsed, problems)
    if problems:
        raise FlowError(problems)
    flows = {n: p.flow for n, p in parsed.items() if p.flow is not None}
    return FlowSet(MappingProxyType(flows), generation)


def transfer_targets(flow: Flow) -> list[tuple[Transfer, str, Mark]]:
    """Every ``transfer`` node of ``flow``, in file order, with the target it rings
    (``"extension:201"``, ``"group:sales"``, ``"number:84001234"``: the form
    :meth:`switchd.core.routing.Target.parse` reads, normalised as the interpreter
    rings it) and where its ``to:`` value was written.

    For checks that need the config, which a flow file does not see (``switchd
    check``: does extension 201 or group sales exist?), so they can report at the
    exact ``FILE:LINE:COL``. The mark falls back to the node's own (a flow built
    by hand, without ``Flow.marks``). A transfer to ``voicemail:BOX`` rings nobody: it
    is one of :func:`voicemail_targets`, not listed here.
    """
    out = [(node, node.target, flow.marks.get((node.name, "to"), node.mark))
           for node in flow.nodes.values()
           if isinstance(node, Transfer) and not node.target.startswith("voicemail:")]
    out.sort(key=lambda t: (t[2].line, t[2].col))
    return out


def queue_targets(flow: Flow) -> list[tuple[Queue, str, Mark]]:
    """Every ``queue`` node of ``flow``, in file order, with its target as
    :meth:`switchd.core.routing.Target.parse` reads it (``"queue:sales"``) and where its
    ``queue:`` value was written (the node's own mark for a flow built by hand).

    For ``switchd check``: does the config define that queue? (See :func:`transfer_targets`.)
    """
    out = [(node, f"queue:{node.queue}", flow.marks.get((node.name, "queue"), node.mark))
           for node in flow.nodes.values() if isinstance(node, Queue)]
    out.sort(key=lambda t: (t[2].line, t[2].col))
    return out


def voicemail_targets(flow: Flow) -> list[tuple[Node, str, Mark, str]]:
    """Every mailbox ``flow`` takes messages for, in file order: (node, ``voicemail:BOX``
    as :meth:`switchd.core.routing.Target.parse` reads it, where it was written, the key
    it was written at: ``mailbox`` of a voicemail node, ``to`` of a transfer to
    ``voicemail:BOX``). For ``switchd check``: does the config have that box? (See
    :func:`transfer_targets`.)
    """
    out: list[tuple[Node, str, Mark, str]] = []
    for node in flow.nodes.values():
        if isinstance(node, Voicemail):
            out.append((node, f"voicemail:{node.mailbox}",
                        flow.marks.get((node.name, "mailbox"), node.mark), "mailbox"))
        elif isinstance(node, Transfer) and node.target.startswith("voicemail:"):
            out.append((node, node.target, flow.marks.get((node.name, "to"), node.mark), "to"))
    out.sort(key=lambda t: (t[2].line, t[2].col))
    return out


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def check_paths(
    paths: Sequence[Path],
    prompts_dir: Path | None,
    *,
    cache: PromptCache | None = None,
) -> tuple[list[str], str]:
    """What ``switchd flows check PATHS`` prints: (problems, one-line summary).

    A directory means every ``*.yaml`` in it. Every file named is a flow a call may
    enter at its start; flows reached by ``goto`` are loaded from the referring
    file's folder and checked too. Problems are ``FILE:LINE:COL: message``, files in
    the order given, each in file order. The summary is ``"3 flows, 41 nodes, 12
    prompts: OK"`` when there is none (prompts count ``say`` fragments), else
    ``"N problems in K flows checked"``.
    """
    first: list[tuple[str, Path, str | None]] = []
    extra: list[str] = []
    for given in paths:
        given = Path(given)
        if os.path.isdir(given):
            files = sorted(given.glob("*.yaml"))
            if not files:
                extra.append(f"{given}: no flow files (*.yaml) in this folder")
            first.extend((f.stem, f, None) for f in files)
        elif os.path.isfile(given):
            first.append((given.stem, given, None))
        else:
            why = _in_the_way(given)
            extra.append(f"{given}: {why or 'no such file or folder'}")
    parsed, problems = _load_set(first, _PromptChecker(prompts_dir, True, cache))
    problems = _collect(parsed, [*extra, *problems])
    if problems:
        total = len({name for name, _, _ in first} | set(parsed))
        return problems, f"{_plural(len(problems), 'problem')} in {_plural(total, 'flow')} checked"
    node_count = sum(len(p.gnodes or {}) for p in parsed.values())
    prompt_names: set[str] = set()
    for p in parsed.values():
        prompt_names |= p.prompt_names
    return [], (f"{_plural(len(parsed), 'flow')}, {_plural(node_count, 'node')}, "
                f"{_plural(len(prompt_names), 'prompt')}: OK")
