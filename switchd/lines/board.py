"""The seam between the media plane and a voice board: the protocols ``lines/`` defines.

A board driver (``switchd.drivers.sim`` today, SIP/RTP next) owns two things:

* **signalling** — it is an engine (``switchd.engine.Engine``): it follows the
  core's events (a line is rung, answered, released) through :meth:`handle` and
  reports what its lines do (a trunk rings in, a phone answers or hangs up, digits
  are dialled) as core inputs, from :meth:`handle_timer` (a sans-IO driver) or by
  ``Shell.submit`` (a driver with sockets);
* **audio** — every 20 ms frame it supplies each line's inbound samples
  (:meth:`BoardDriver.inbound`) and takes each line's outbound samples
  (:meth:`BoardDriver.outbound`).

``lines/`` imports no driver and no recorder: they implement these protocols.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["AudioPort", "BoardDriver", "TapSink"]


@runtime_checkable
class AudioPort(Protocol):
    """Per-frame audio of every line, in the channel order the media plane was built with."""

    def inbound(self, frame: int, time: float) -> np.ndarray:
        """What every line's party says in frame ``frame`` (ending at epoch ``time`` s):
        int16 ``[channels, 160]`` at 8 kHz."""
        ...

    def outbound(self, frame: int, time: float, samples: np.ndarray) -> None:
        """What every line's party hears in frame ``frame``: int16 ``[channels, 160]``.

        The array is the media plane's own and is replaced next frame: copy what you keep.
        """
        ...


@runtime_checkable
class BoardDriver(AudioPort, Protocol):
    """A voice board: signalling as an engine, plus audio (see the module docstring)."""

    def handle(self, now: float, item: Any) -> list[Any]:
        """Follow one core event; return core inputs that happen at once (usually none)."""
        ...

    def next_deadline(self) -> float | None:
        """When the driver next has something to report, epoch s, or None."""
        ...

    def handle_timer(self, now: float) -> list[Any]:
        """What the board's lines do now, as core inputs."""
        ...


class TapSink(Protocol):
    """Receives tapped audio every frame (the recorder implements this).

    ``frame`` is the media plane's frame counter and ``time`` the epoch seconds at the
    frame's end: a frame the media tick had to skip shows up as a gap in ``frame``.
    ``keys``: the tap keys (e.g. recording ids); ``channels``: intp ``[T]``;
    ``rx``: int16 ``[T, 160]``, what each tapped line's party says; ``tx``: int16
    ``[T, 160]``, what the switch sends it (the other side, prompts, tones, MOH).
    """

    def __call__(self, frame: int, time: float, keys: Sequence[str], channels: np.ndarray,
                 rx: np.ndarray, tx: np.ndarray) -> None:
        """Take one frame of the taps with these keys."""
        ...
