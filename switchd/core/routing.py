"""Routing data of the call core: targets and routes, as plain frozen data.

These are the *one* definition of a route target and of route matching:
``switchd.config`` builds its ``routes`` from these types, so the config and the core
can never disagree about them. (Ring groups are queues with no waiting: the ACD's,
``switchd.acd.model.RingGroup``.) The core does not
import ``switchd.config`` (rooms and doors, DESIGN §2); the config imports this
module, never the other way round.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

__all__ = [
    "APP_KINDS",
    "INBOUND_KINDS",
    "NAME_RE",
    "NUMBER_RE",
    "ROUTE_KINDS",
    "CoreConfig",
    "Route",
    "Target",
    "TargetKind",
]

#: Names of ring groups and flows (and later queues): what an operator can type
#: without quoting in YAML or on the CTI socket.
NAME_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")

#: An outside number a switch-held call may be routed to: what a trunk can dial.
NUMBER_RE = re.compile(r"[0-9*#]{1,32}")


class TargetKind(Enum):
    """Where a route sends a call."""

    EXTENSION = "extension"
    GROUP = "group"
    BUSY = "busy"
    #: An IVR flow, by name only: the core announces ``call.routed`` and answers the
    #: call itself; which flows exist is the IVR's business, not routing's.
    FLOW = "flow"
    #: An outside number, rung on the first idle trunk (``Route`` of a switch-held call).
    NUMBER = "number"
    #: An ACD queue, by name only: like a flow, the core announces ``call.routed`` and
    #: answers the call itself; the ACD takes it from there.
    QUEUE = "queue"
    #: A voicemail box, by name only: like a flow, the core announces ``call.routed`` and
    #: answers the call itself; the IVR takes a message for the box (a one-node flow).
    VOICEMAIL = "voicemail"


@dataclass(frozen=True, slots=True)
class Target:
    """A routing target: ``extension:201``, ``group:sales``, ``flow:main``,
    ``queue:sales``, ``voicemail:afterhours``, ``number:84001234`` or ``busy``."""

    kind: TargetKind
    value: str | None = None

    def __str__(self) -> str:
        return self.kind.value if self.value is None else f"{self.kind.value}:{self.value}"

    @classmethod
    def parse(cls, text: str) -> Target:
        """Parse the written form of a target: ``extension:201``, ``group:sales``,
        ``flow:main``, ``queue:sales``, ``voicemail:afterhours``, ``number:84001234`` or
        ``busy``.

        Checks the grammar only, not that the extension, group or flow exists (that
        needs the whole configuration), nor where the kind may be used (see
        :data:`INBOUND_KINDS`, :data:`ROUTE_KINDS`). An extension number is normalised
        (``extension:0201`` is extension 201); a number is kept as written (a leading
        0 is a trunk prefix). Raises ValueError with a message naming the accepted forms.
        """
        kind_text, sep, value = text.strip().partition(":")
        try:
            kind = TargetKind(kind_text)
        except ValueError:
            raise ValueError(f"unknown target kind {kind_text!r} in {text!r}; use {_FORMS}") from None
        if kind is TargetKind.BUSY:
            if sep:
                raise ValueError(f"'busy' takes no value, got {text!r}")
            return cls(kind)
        if kind is TargetKind.EXTENSION:
            if not value.isdigit() or not value.isascii():
                raise ValueError(f"{text!r}: the extension must be a number, e.g. extension:201")
            return cls(kind, str(int(value)))
        if kind is TargetKind.NUMBER:
            if not NUMBER_RE.fullmatch(value):
                raise ValueError(f"{text!r}: expected 1-32 digits (0-9, *, #) to dial, "
                                 "e.g. number:84001234")
            return cls(kind, value)
        if not NAME_RE.fullmatch(value):
            what = {TargetKind.GROUP: "a ring group name, e.g. group:sales",
                    TargetKind.QUEUE: "a queue name, e.g. queue:sales",
                    TargetKind.VOICEMAIL: "a mailbox name, e.g. voicemail:afterhours"}.get(
                        kind, "a flow name, e.g. flow:main")
            raise ValueError(f"{text!r}: expected {what} (1-64 letters, digits, '.', '_', "
                             "'-' or '@')")
        return cls(kind, value)


_FORMS = ("extension:<number>, group:<name>, flow:<name>, queue:<name>, voicemail:<box>, "
          "number:<digits> or busy")

#: Kinds an inbound route (``routes:`` in the config) may send a call to.
INBOUND_KINDS = frozenset({TargetKind.EXTENSION, TargetKind.GROUP, TargetKind.FLOW,
                           TargetKind.QUEUE, TargetKind.VOICEMAIL, TargetKind.BUSY})
#: Kinds that hand a call to an application of the switch (``call.routed``): the IVR (a
#: flow, or a voicemail box it takes a message for), the ACD.
APP_KINDS = frozenset({TargetKind.FLOW, TargetKind.QUEUE, TargetKind.VOICEMAIL})
#: Kinds a switch-held call may be rung at with ``Route`` (an IVR ``transfer``).
ROUTE_KINDS = frozenset({TargetKind.EXTENSION, TargetKind.GROUP, TargetKind.NUMBER})


@dataclass(frozen=True, slots=True)
class Route:
    """An inbound route: matches on DNIS and/or trunk (None = any); first match wins."""

    target: Target
    dnis: str | None = None
    trunk: int | None = None

    def matches(self, dnis: str, trunk: int) -> bool:
        """True when this route applies to a call to ``dnis`` arriving on ``trunk``."""
        return (self.dnis is None or self.dnis == dnis) and (self.trunk is None or self.trunk == trunk)


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """The call core's settings.

    ``ring_timeout_s``: seconds before an unanswered call ends ``NO ANSWER``.
    ``tone_timeout_s``: seconds busy/congestion tone plays before the switch releases the line.
    ``outside_prefix``: digits an extension dials before an outside number (e.g. ``9``).
    """

    trunks: int = 8
    extensions: tuple[int, ...] = tuple(range(201, 209))
    extension_names: Mapping[int, str] = field(default_factory=dict)
    outside_prefix: str = "9"
    ring_timeout_s: float = 20.0
    tone_timeout_s: float = 10.0
    routes: tuple[Route, ...] = ()

    def route(self, dnis: str, trunk: int) -> Target | None:
        """Return the target of the first route matching ``dnis``/``trunk``, or None."""
        for r in self.routes:
            if r.matches(dnis, trunk):
                return r.target
        return None
