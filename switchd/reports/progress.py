"""A progress bar for long reports: on a terminal only, never in pipes or tests.

``switchd report`` goes through a few stages (reading the CDRs, reading the queue_log,
computing, rendering); on a million-call database each takes seconds. When stderr is a
terminal, :class:`Stages` shows a rich progress bar on stderr naming the stage, with
the elapsed time, and erases it when the report is done (stdout, the report itself, is
never touched). When stderr is not a terminal (a pipe, a file, pytest's capture) it does
nothing.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import IO, Any

__all__ = ["Stages"]


class Stages:
    """Context manager: ``step(name)`` starts the next of ``total`` stages.

    ``stream`` is where the bar goes (default ``sys.stderr``); ``enabled`` forces it on
    or off (default: on when ``stream`` is a terminal).
    """

    def __init__(self, total: int, *, stream: IO[str] | None = None,
                 enabled: bool | None = None) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.done = 0
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> Stages:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                SpinnerColumn(), TextColumn("switchd report: {task.description}"), BarColumn(),
                TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                console=Console(file=self.stream), transient=True)
            self._progress.start()
            self._task = self._progress.add_task("starting", total=self.total)
        return self

    def step(self, description: str) -> None:
        """Mark the previous stage done and show ``description`` as the current one."""
        if self._progress is not None:
            self._progress.update(self._task, description=description, completed=self.done)
        self.done += 1

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=self.total)
            self._progress.stop()
            self._progress = None
