"""The 20 ms media clock: drift-corrected, catching up on late ticks.

:class:`FrameSchedule` is the sans-IO part: given the loop clock it says how many
160-sample frames are due. Frame k is due at ``t0 + k * 0.020`` exactly, so the
schedule never drifts however late the event loop wakes; a late wake-up returns
several frames, which the media plane processes back to back (catch-up). A wake-up
so late that catching up would take longer than it is worth (the process was
stopped, the machine suspended) skips the excess and says how many were skipped.
:class:`MediaTicker` is the asyncio task around it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

__all__ = ["FRAME_S", "FrameSchedule", "MediaTicker"]

#: One frame: 160 samples at 8 kHz = 20 ms.
FRAME_S = 0.020

log = structlog.get_logger("switchd.media")


class FrameSchedule:
    """Which frames are due at a given loop time.

    ``t0`` is the loop time (s) the clock started; ``max_catchup`` the most frames
    processed in one wake-up (default 50 = 1 s of audio).
    """

    def __init__(self, t0: float, *, frame_s: float = FRAME_S, max_catchup: int = 50) -> None:
        self.t0 = t0
        self.frame_s = frame_s
        self.max_catchup = max_catchup
        #: Frames accounted for so far (processed or skipped).
        self.frames = 0
        self.skipped = 0

    def due(self, now: float) -> tuple[int, int]:
        """Return (frames to process now, frames skipped) at loop time ``now``.

        A frame is due once its end time has passed. Skipped frames are counted
        as done so the schedule stays anchored to ``t0``.
        """
        total = int((now - self.t0) / self.frame_s + 1e-9)
        n = total - self.frames
        if n <= 0:
            return 0, 0
        skip = max(0, n - self.max_catchup)
        self.frames = total
        self.skipped += skip
        return n - skip, skip

    def next_deadline(self) -> float:
        """Loop time at which the next frame becomes due."""
        return self.t0 + (self.frames + 1) * self.frame_s


class MediaTicker:
    """Runs ``on_frames(n)`` every 20 ms on the event loop, drift-corrected."""

    def __init__(self, on_frames: Callable[[int], None], *, max_catchup: int = 50,
                 batch: int = 5, on_skip: Callable[[int], None] | None = None) -> None:
        """``on_frames(n)`` runs ``n`` frames; ``on_skip(n)`` is told of ``n`` frames
        dropped because the tick fell too far behind (so frame indices show the gap)."""
        self.on_frames = on_frames
        self.on_skip = on_skip
        self.max_catchup = max_catchup
        #: Frames processed between two yields to the event loop when catching up.
        self.batch = batch
        self.schedule: FrameSchedule | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the tick task on the running loop."""
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Stop the tick task."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        sched = self.schedule = FrameSchedule(loop.time(), max_catchup=self.max_catchup)
        while True:
            delay = sched.next_deadline() - loop.time()
            # Always yield, even when already late: CTI requests, timers and signals
            # must run between media batches, or an overloaded tick starves the switch.
            await asyncio.sleep(max(delay, 0.0005))
            n, skipped = sched.due(loop.time())
            if skipped:
                if self.on_skip is not None:
                    self.on_skip(skipped)
                log.warning("media_frames_skipped", frames=skipped,
                            msg="the media tick fell more than "
                                f"{self.max_catchup * FRAME_S:.1f} s behind (too many channels "
                                "for this CPU, or the event loop was blocked); "
                                "the missed audio was dropped")
            while n > 0:
                batch = min(n, self.batch)
                n -= batch
                try:
                    self.on_frames(batch)
                except Exception:
                    log.exception("media_tick_failed", frames=batch)
                if n:
                    # A short timer rather than sleep(0): the loop then runs everything
                    # already ready (CTI replies, core timers) before the next batch.
                    await asyncio.sleep(0.0005)
