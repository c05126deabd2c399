"""The flow model: what a YAML call flow (``flows/*.yaml``, docs/flows.md) becomes once loaded.

Plain frozen data, no behaviour but small queries: ``switchd.ivr.loader`` builds it
(and checks it to the line), ``switchd.ivr.interpreter`` runs it, ``switchd.ivr.draw``
draws it. A :class:`FlowSet` is one immutable generation of every loaded flow: a
call keeps the set it started with, so a reload never changes a live call's path.

Times of day are seconds since local midnight (0..86400) in the flow's own IANA
time zone; durations are seconds (float).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

__all__ = [
    "BUILTIN_VARS",
    "NAME_RE",
    "TEMPLATE_RE",
    "Branch",
    "Case",
    "Collect",
    "Cond",
    "CondOp",
    "CondSubject",
    "DateRule",
    "Flow",
    "FlowSet",
    "Goto",
    "Hangup",
    "Holidays",
    "Mark",
    "Menu",
    "Node",
    "NodeType",
    "Play",
    "Queue",
    "RouteRequest",
    "Say",
    "SayKind",
    "Schedule",
    "SetVars",
    "TimeRange",
    "Transfer",
    "Voicemail",
    "template_vars",
]

#: Flow, node and variable names: letters, digits, ``_``, ``-``, ``.``; at most 64.
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")

#: ``{name}`` in a template reads variable ``name``; ``{{`` and ``}}`` are literal braces.
TEMPLATE_RE = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_.-]{0,63})\}")

#: Variables every call has before its first node: the caller's number, the number
#: dialled, the call id, the trunk, and the contact flags from the contacts table
#: (``"true"``/``"false"``).
BUILTIN_VARS = frozenset({"caller", "dnis", "call_id", "trunk", "vip", "blacklisted"})


def template_vars(text: str) -> list[str]:
    """The variable names ``text`` reads (``{name}``), in order, duplicates kept."""
    return [m.group(1) for m in TEMPLATE_RE.finditer(text) if m.group(1)]


@dataclass(frozen=True, slots=True)
class Mark:
    """Where something was written: file, 1-based line and column."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class NodeType(StrEnum):
    """The node types of the flow language (docs/flows.md)."""

    PLAY = "play"
    MENU = "menu"
    COLLECT = "collect"
    SAY = "say"
    SCHEDULE = "schedule"
    BRANCH = "branch"
    SET = "set"
    ROUTE_REQUEST = "route_request"
    QUEUE = "queue"
    TRANSFER = "transfer"
    VOICEMAIL = "voicemail"
    HANGUP = "hangup"
    GOTO = "goto"


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    """Base of every node: its name in the flow and where it was written."""

    type: NodeType
    name: str
    mark: Mark

    def exits(self) -> list[tuple[str, str]]:
        """(label, next node) of every edge out of this node, for checks and diagrams."""
        return []


@dataclass(frozen=True, slots=True, kw_only=True)
class Play(Node):
    """Play ``prompts`` in order, then go to ``next``. With ``barge_in`` a key press
    stops the prompts, is consumed here, and the flow goes on to ``next`` at once."""

    type: NodeType = NodeType.PLAY
    prompts: tuple[str, ...]
    barge_in: bool = True
    next: str

    def exits(self) -> list[tuple[str, str]]:
        return [("", self.next)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Menu(Node):
    """Play ``prompts`` and wait for one key: ``choices`` maps a key to the next node.

    No key within ``timeout_s`` after the prompts end, or a key not in ``choices``,
    is a failed try: ``timeout_prompts``/``invalid_prompts`` play and the menu starts
    over, up to ``retries`` more times; then the call goes to ``fallback``. The key
    chosen is stored in variable ``into`` when given.
    """

    type: NodeType = NodeType.MENU
    prompts: tuple[str, ...]
    choices: Mapping[str, str]
    timeout_s: float = 5.0
    retries: int = 2
    invalid_prompts: tuple[str, ...] = ()
    timeout_prompts: tuple[str, ...] = ()
    fallback: str
    into: str | None = None
    barge_in: bool = True

    def exits(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.choices.items()] + [("fallback", self.fallback)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Collect(Node):
    """Collect ``min_digits``..``max_digits`` keys into variable ``into``.

    Ends when ``max_digits`` keys were pressed, when ``terminator`` is pressed (not
    stored), or ``inter_digit_timeout_s`` after the last key (``first_timeout_s``
    after the prompts when no key came). Keys typed during the prompts count. A
    result shorter than ``min_digits`` or not matching ``pattern`` (a regular
    expression, whole match) is a failed try: ``invalid_prompts`` play and it starts
    over, up to ``retries`` more times, then ``fallback``; a good one goes to ``next``.
    """

    type: NodeType = NodeType.COLLECT
    prompts: tuple[str, ...]
    into: str
    min_digits: int = 1
    max_digits: int = 20
    terminator: str | None = "#"
    pattern: str | None = None
    first_timeout_s: float = 5.0
    inter_digit_timeout_s: float = 3.0
    retries: int = 2
    invalid_prompts: tuple[str, ...] = ()
    next: str
    fallback: str
    barge_in: bool = True

    def exits(self) -> list[tuple[str, str]]:
        return [("", self.next), ("fallback", self.fallback)]


class SayKind(StrEnum):
    """What ``say`` reads a value as."""

    DIGITS = "digits"      # "0571" -> zero five seven one
    NUMBER = "number"      # "1234.5" -> one thousand two hundred thirty-four point five
    AMOUNT = "amount"      # "1234.56" -> ... yuan/dollars ... fen/cents
    DATE = "date"          # "2026-12-07"
    TIME = "time"          # "09:05" or "09:05:30"
    DATETIME = "datetime"  # "2026-12-07T09:05"


@dataclass(frozen=True, slots=True, kw_only=True)
class Say(Node):
    """Say ``value`` (a template, e.g. ``"{balance}"``) as ``kind`` in ``language``
    (``zh`` or ``en``; None = the flow's) from recorded fragments, then ``next``.
    ``currency`` for amounts: ``CNY`` or ``USD`` (None = CNY in zh, USD in en)."""

    type: NodeType = NodeType.SAY
    kind: SayKind
    value: str
    language: str | None = None
    currency: str | None = None
    barge_in: bool = True
    next: str

    def exits(self) -> list[tuple[str, str]]:
        return [("", self.next)]


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A span of local time, ``start`` <= t < ``end``, seconds since midnight (end <= 86400)."""

    start: int
    end: int

    def __str__(self) -> str:
        def hm(s: int) -> str:
            return f"{s // 3600:02d}:{s % 3600 // 60:02d}"
        return f"{hm(self.start)}-{hm(self.end)}"


@dataclass(frozen=True, slots=True)
class DateRule:
    """Dates ``first``..``last`` (inclusive) with their own ``hours`` (empty = closed all day)."""

    first: dt.date
    last: dt.date
    hours: tuple[TimeRange, ...]


@dataclass(frozen=True, slots=True)
class Holidays:
    """A flow's calendar: public holidays of ``country`` (the ``holidays`` library, with
    ``subdivision``), plus its own ``dates`` (closed) and ``workdays`` (make-up working
    days: open with the normal working-day hours even on a weekend or holiday)."""

    country: str | None = None
    subdivision: str | None = None
    dates: frozenset[dt.date] = frozenset()
    workdays: frozenset[dt.date] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule(Node):
    """Branch on the flow's local time: ``open``, ``closed`` or ``holiday``.

    ``hours``: weekday (0 = Monday .. 6 = Sunday) -> open ranges; a weekday not listed
    is closed. ``dates`` override the weekday hours on their dates (first match wins).
    A holiday (flow calendar) is closed and goes to ``holiday`` (None = ``closed``),
    unless a date rule covers it. A make-up working day uses ``workday_hours`` (None =
    Monday's hours).
    """

    type: NodeType = NodeType.SCHEDULE
    hours: Mapping[int, tuple[TimeRange, ...]]
    dates: tuple[DateRule, ...] = ()
    workday_hours: tuple[TimeRange, ...] | None = None
    open: str
    closed: str
    holiday: str | None = None

    def exits(self) -> list[tuple[str, str]]:
        out = [("open", self.open), ("closed", self.closed)]
        if self.holiday is not None:
            out.append(("holiday", self.holiday))
        return out


class CondSubject(StrEnum):
    """What a branch condition looks at."""

    VAR = "var"            # a variable (``name``)
    CALLER = "caller"      # the caller's number
    DNIS = "dnis"          # the number dialled
    VIP = "vip"            # contact flag (value: bool)
    BLACKLISTED = "blacklisted"
    TIME = "time"          # local time of day in the flow's zone (value: TimeRange)
    WEEKDAY = "weekday"    # local weekday (value: tuple of 0..6)


class CondOp(StrEnum):
    """How a condition compares. Numbers compare as decimals; text compares exactly."""

    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    IN = "in"              # value: tuple[str, ...]
    PREFIX = "prefix"
    MATCHES = "matches"    # regular expression, whole match
    GT = "gt"
    GE = "ge"
    LT = "lt"
    LE = "le"
    SET = "set"            # value: bool — the variable is set and not empty (or not)
    IS = "is"              # VIP/BLACKLISTED: value bool; TIME: TimeRange; WEEKDAY: days


@dataclass(frozen=True, slots=True)
class Cond:
    """One test; ``name`` is the variable for ``CondSubject.VAR``."""

    subject: CondSubject
    op: CondOp
    value: object
    name: str | None = None

    def __str__(self) -> str:
        """As a designer would read it: ``var tier equals gold``, ``vip is true``,
        ``weekday is [Sat, Sun]``, ``time is 12:00-13:30``."""
        who = f"{self.subject.value} {self.name}" if self.name else self.subject.value
        val = self.value
        if isinstance(val, bool):
            val = "true" if val else "false"
        elif isinstance(val, tuple):
            names = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
            val = "[" + ", ".join(names[v] if self.subject is CondSubject.WEEKDAY
                                  and isinstance(v, int) and 0 <= v < 7 else str(v)
                                  for v in val) + "]"
        return f"{who} {self.op.value} {val}"


@dataclass(frozen=True, slots=True)
class Case:
    """All of ``conds`` hold -> ``next``."""

    conds: tuple[Cond, ...]
    next: str
    mark: Mark | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Branch(Node):
    """The first case whose conditions all hold gives the next node; none -> ``otherwise``."""

    type: NodeType = NodeType.BRANCH
    cases: tuple[Case, ...]
    otherwise: str

    def exits(self) -> list[tuple[str, str]]:
        out = [(" and ".join(str(c) for c in case.conds), case.next) for case in self.cases]
        return out + [("else", self.otherwise)]


@dataclass(frozen=True, slots=True, kw_only=True)
class SetVars(Node):
    """Set variables (name -> template) in order, then ``next``."""

    type: NodeType = NodeType.SET
    values: tuple[tuple[str, str], ...]
    next: str

    def exits(self) -> list[tuple[str, str]]:
        return [("", self.next)]


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteRequest(Node):
    """Ask the CRM (``ivr.route_request``) and wait ``timeout_s`` for ``ROUTE.REPLY``.

    The reply names the next node (one of ``choices`` when given, else any node of
    the flow; a reply without ``next=`` goes to ``next``) and may set variables. No
    reply in time, or an unusable one, -> ``fallback``. The caller hears ``prompts``
    (looped) while waiting, silence when empty.
    """

    type: NodeType = NodeType.ROUTE_REQUEST
    timeout_s: float = 3.0
    choices: tuple[str, ...] = ()
    next: str | None = None
    fallback: str
    prompts: tuple[str, ...] = ()
    #: Variables the CRM's reply is expected to set (so later nodes may read them).
    sets: tuple[str, ...] = ()

    def exits(self) -> list[tuple[str, str]]:
        # One edge per node: the default ``next`` shares the edge of the choice it is.
        out = [("crm (default)" if c == self.next else "crm", c) for c in self.choices]
        if self.next is not None and self.next not in self.choices:
            out.append(("crm (default)", self.next))
        return out + [("timeout", self.fallback)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Queue(Node):
    """Hand the call to ACD queue ``queue`` with caller priority ``priority`` (>= 0;
    higher is served first): the flow ends here (outcome ``queued``).

    The node has no exits: from here the queue decides what happens to the caller (an
    agent answers, the caller hangs up, or the queue's ``overflow`` sends the call on,
    possibly back into a flow). Keys pressed after the hand-over are the queue's.
    """

    type: NodeType = NodeType.QUEUE
    queue: str
    priority: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Transfer(Node):
    """Ring ``target`` (``extension:N``, ``group:NAME`` or ``number:DIGITS``) for
    ``timeout_s`` (None = the group's or dial plan's ring time). Answered -> the flow
    ends (outcome ``transferred``); busy or no answer -> ``on_fail`` (None = hang up).

    ``voicemail:BOX`` rings nobody: the node takes a message for the box, as a
    ``voicemail`` node without ``next`` (the switch hangs up after it); a box that does
    not exist goes to ``on_fail``."""

    type: NodeType = NodeType.TRANSFER
    target: str
    timeout_s: float | None = None
    on_fail: str | None = None

    def exits(self) -> list[tuple[str, str]]:
        return [] if self.on_fail is None else [("busy/no answer", self.on_fail)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Voicemail(Node):
    """Take a message for ``mailbox`` (an agent id, a queue name, or a box of
    ``voicemail.boxes`` in config.yaml).

    The caller hears ``greeting`` (prompt names; empty = the box's own greeting, else
    the default one), with barge-in: a key skips to the beep. After the beep the
    caller's line is recorded until ``#``, ``silence_s`` of silence, ``max_s`` (None =
    the voicemail settings' for both) or the hang-up; then the call goes to ``next``
    (None = the switch hangs up). A box that does not exist is an ``ivr.error``; the
    call then goes to ``next`` too, or is released.
    """

    type: NodeType = NodeType.VOICEMAIL
    mailbox: str
    greeting: tuple[str, ...] = ()
    max_s: float | None = None
    silence_s: float | None = None
    next: str | None = None

    def exits(self) -> list[tuple[str, str]]:
        return [] if self.next is None else [("", self.next)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Hangup(Node):
    """End the call (CDR ``hangup_by=system``, cause NORMAL_CLEARING)."""

    type: NodeType = NodeType.HANGUP


@dataclass(frozen=True, slots=True, kw_only=True)
class Goto(Node):
    """Continue in flow ``flow`` at ``node`` (None = its start), same call, same variables,
    same flow generation."""

    type: NodeType = NodeType.GOTO
    flow: str
    node: str | None = None


@dataclass(frozen=True, slots=True)
class Flow:
    """One loaded flow.

    ``version``: a short hash of the file's bytes (same text, same version).
    ``prompt_files``: every prompt name the flow uses (including ``say`` fragments)
    -> its resolved file. ``vars``: variables set before the first node (templates).
    ``marks``: where the value of each key of each node was written
    (:func:`switchd.ivr.loader.transfer_targets` uses it).
    """

    name: str
    version: str
    path: Path
    start: str
    nodes: Mapping[str, Node]
    timezone: str = "UTC"
    language: str = "en"
    holidays: Holidays = Holidays()
    vars: tuple[tuple[str, str], ...] = ()
    prompt_files: Mapping[str, Path] = field(default_factory=dict)
    #: (node name, key written in that node) -> where its value was written, for
    #: checks made after loading (``switchd check``: does a transfer's extension exist).
    marks: Mapping[tuple[str, str], Mark] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FlowSet:
    """One generation of loaded flows (name -> flow). Calls keep the set they started with."""

    flows: Mapping[str, Flow] = field(default_factory=dict)
    generation: int = 0

    def get(self, name: str) -> Flow | None:
        """The flow ``name`` in this generation, or None."""
        return self.flows.get(name)
