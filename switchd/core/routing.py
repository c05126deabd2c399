"""Routing data of the call core: targets, routes and ring groups, as plain frozen data.

These are the *one* definition of a route target, of route matching and of a ring
group: ``switchd.config`` builds its ``routes`` and ``ring_groups`` from these
types, so the config and the core can never disagree about them. The core does not
import ``switchd.config`` (rooms and doors, DESIGN §2); the config imports this
module, never the other way round.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

__all__ = ["NAME_RE", "CoreConfig", "RingGroup", "RingStrategy", "Route", "Target", "TargetKind"]

#: Names of ring groups (and later queues and flows): what an operator can type
#: without quoting in YAML or on the CTI socket.
NAME_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


class TargetKind(Enum):
    """Where a route sends an inbound call."""

    EXTENSION = "extension"
    GROUP = "group"
    BUSY = "busy"


@dataclass(frozen=True, slots=True)
class Target:
    """A routing target such as ``extension:201``, ``group:sales`` or ``busy``."""

    kind: TargetKind
    value: str | None = None

    def __str__(self) -> str:
        return self.kind.value if self.value is None else f"{self.kind.value}:{self.value}"

    @classmethod
    def parse(cls, text: str) -> Target:
        """Parse the written form of a target: ``extension:201``, ``group:sales`` or ``busy``.

        Checks the grammar only, not that the extension or group exists (that needs
        the whole configuration). An extension number is normalised (``extension:0201``
        is extension 201). Raises ValueError with a message naming the accepted forms.
        """
        kind_text, sep, value = text.strip().partition(":")
        try:
            kind = TargetKind(kind_text)
        except ValueError:
            raise ValueError(
                f"unknown target kind {kind_text!r} in {text!r}; "
                "use extension:<number>, group:<name> or busy"
            ) from None
        if kind is TargetKind.BUSY:
            if sep:
                raise ValueError(f"'busy' takes no value, got {text!r}")
            return cls(kind)
        if kind is TargetKind.EXTENSION:
            if not value.isdigit() or not value.isascii():
                raise ValueError(f"{text!r}: the extension must be a number, e.g. extension:201")
            return cls(kind, str(int(value)))
        if not NAME_RE.fullmatch(value):
            raise ValueError(f"{text!r}: expected a ring group name, e.g. group:sales")
        return cls(kind, value)


class RingStrategy(Enum):
    """How a ring group rings its members."""

    #: Ring every idle member at once; the first to answer gets the call.
    RINGALL = "ringall"
    #: Ring idle members one at a time in list order, ``ring_timeout_s`` each.
    HUNT = "hunt"


@dataclass(frozen=True, slots=True)
class RingGroup:
    """A named set of extensions rung together (ringall) or in turn (hunt).

    ``members``: extension numbers, in hunt order. ``ring_timeout_s``: seconds; the
    whole ring time for ringall, the time per member for hunt; None means the
    dial plan's ``ring_timeout_s``.
    """

    name: str
    strategy: RingStrategy
    members: tuple[int, ...]
    ring_timeout_s: float | None = None


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
    ring_groups: Mapping[str, RingGroup] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()

    def route(self, dnis: str, trunk: int) -> Target | None:
        """Return the target of the first route matching ``dnis``/``trunk``, or None."""
        for r in self.routes:
            if r.matches(dnis, trunk):
                return r.target
        return None
