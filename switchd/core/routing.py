"""What the call core needs to know from the config, as plain frozen data.

The core does not import ``switchd.config`` (rooms and doors, DESIGN §2): the
composition root translates the validated config into a :class:`CoreConfig`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

__all__ = ["CoreConfig", "RingGroup", "RingStrategy", "Route", "TargetKind", "Target"]


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


class RingStrategy(Enum):
    """How a ring group rings its members."""

    #: Ring every idle member at once; the first to answer gets the call.
    RINGALL = "ringall"
    #: Ring idle members one at a time in list order, ``ring_timeout_s`` each.
    HUNT = "hunt"


@dataclass(frozen=True, slots=True)
class RingGroup:
    """A named set of extensions rung together (ringall) or in turn (hunt)."""

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
