"""What goes into the ACD besides the core's events: agent requests (CTI, config, sim).

The ACD follows the core's events (``call.routed`` to a queue, ``call.ringing``,
``call.answered``, ``offer.withdrawn``, ``call.ended``, ``line.state``, ``line.error``,
``call.dtmf``); these inputs are what people ask of it. A request the ACD cannot serve
raises :class:`~switchd.acd.engine.AcdError` (code, message) before anything changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from switchd.engine import Input

__all__ = ["ACD_INPUTS", "Login", "Logout", "NotReady", "Ready"]


@dataclass(frozen=True, slots=True)
class Login(Input):
    """Agent ``agent`` logs in at ``extension`` (None: the one configured) into ``queues``
    ((queue, penalty) pairs; None: the configured memberships), ready or not ready
    (reason ``login``). An agent not in the config is created (``AGENT.LOGIN``)."""

    agent: str
    extension: int | None = None
    queues: tuple[tuple[str, int], ...] | None = None
    ready: bool = True


@dataclass(frozen=True, slots=True)
class Logout(Input):
    """Agent ``agent`` logs out (refused while on a call; a ringing offer is withdrawn)."""

    agent: str


@dataclass(frozen=True, slots=True)
class Ready(Input):
    """Agent ``agent`` is ready for calls (from not_ready; ends wrap-up early)."""

    agent: str


@dataclass(frozen=True, slots=True)
class NotReady(Input):
    """Agent ``agent`` is not ready for ``reason`` (``break``, ``lunch``, …); from ready or
    wrap-up (a ringing offer is withdrawn first)."""

    agent: str
    reason: str = "break"


#: Every input type the ACD takes (what the shell routes to it).
ACD_INPUTS: tuple[type[Input], ...] = (Login, Logout, Ready, NotReady)
