"""The recording service: the recorder engine's edge (the media tap and the writer thread).

An engine under the shell (DESIGN §1), like :mod:`switchd.playout`: it takes the
recorder engine's :class:`~switchd.recorder.inputs.TapOpen` /
:class:`~switchd.recorder.inputs.TapSources` / :class:`~switchd.recorder.inputs.TapState`
/ :class:`~switchd.recorder.inputs.TapClose` and carries them out on the media plane
(:class:`~switchd.recorder.tap.RecordingTap`) and the recording writer
(:class:`~switchd.recorder.writer.RecordingWriter`: ``open``/``write``/``close``, all
non-blocking). The writer's final report for each file (``on_closed`` or
``on_error``, run on the event loop through ``loop.call_soon_threadsafe``) comes back
through :meth:`RecordingService.closed` / :meth:`RecordingService.failed`, which turn
it into :class:`~switchd.recorder.inputs.RecordingClosed` /
:class:`~switchd.recorder.inputs.RecordingError` for the recorder engine (``submit``).

Each recording's life here is a table keyed by (state, what happened)::

    TapOpen ──► OPEN ──TapClose──► CLOSING ──writer closed──► (gone: RecordingClosed)
                 │  ▲ TapSources,                  └─writer failed──► (gone: RecordingError)
                 │  └ TapState
                 ├──writer failed──► (gone: RecordingError; the tap stops at once)
                 └──writer closed──► (gone: RecordingClosed; the writer was stopped)

Anything else (a Tap* input for a recording that is closing or unknown) is a bug in
the engine and raises :class:`ServiceError`, which the shell logs with the input.
A ``TapOpen`` whose customer line has no channel, or that the writer refuses on the
spot, is answered at once with ``RecordingError`` (the call goes on unrecorded).
Writer reports for ids this service did not open are ignored (a writer shared with
voicemail reports its messages too): :meth:`closed`/:meth:`failed` return False.

Wiring (app.py), the service and the writer needing each other's methods::

    svc = RecordingService.with_writer(
        media, shell.submit,
        lambda closed, failed: RecordingWriter(
            settings.directory, flush_s=settings.flush_s, buffer_s=settings.buffer_s,
            on_closed=closed, on_error=failed, call_soon=loop.call_soon_threadsafe))
    svc.writer.start()
    shell.add(svc, takes=RecordingService.TAKES)
    ...  # at shutdown, after the calls ended: svc.flush(); await svc.writer.stop(5.0)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from switchd.engine import Input
from switchd.lines.media import MediaPlane
from switchd.recorder.inputs import (
    SERVICE_INPUTS,
    RecordingClosed,
    RecordingError,
    TapClose,
    TapOpen,
    TapSources,
    TapState,
)
from switchd.recorder.model import RecordFormat, RecordLayout
from switchd.recorder.tap import RecordingTap, TapError
from switchd.recorder.wav import FileSummary as Summary

__all__ = ["RecState", "RecordingService", "ServiceError", "Summary", "WriterLike"]


class WriterLike(Protocol):
    """The non-blocking side of :class:`~switchd.recorder.writer.RecordingWriter`."""

    def open(self, rec_id: str, relpath: Path, channels: int, fmt: RecordFormat) -> None:
        """Queue the creation of the file (failures come through ``on_error``)."""
        ...

    def write(self, rec_id: str, data: bytes) -> None:
        """Queue audio bytes for the file."""
        ...

    def close(self, rec_id: str) -> None:
        """Queue the closing of the file (reported through ``on_closed``/``on_error``)."""
        ...


W = TypeVar("W", bound=WriterLike)

#: ``on_closed(rec_id, summary)`` as the writer calls it.
OnClosed = Callable[[str, Summary], object]
#: ``on_error(rec_id, reason, summary or None)`` as the writer calls it.
OnError = Callable[[str, str, "Summary | None"], object]


class ServiceError(Exception):
    """A Tap* input the service cannot take (a bug in the engine that sent it)."""


class RecState(StrEnum):
    """A recording's state in the service."""

    OPEN = "open"          #: tapped; its bytes go to the writer
    CLOSING = "closing"    #: TapClose done: the tap let go, the writer is finishing the file


class _Ev(StrEnum):
    """What can happen to an open recording (the table's inputs)."""

    SOURCES = "sources"    # TapSources
    MODE = "mode"          # TapState
    CLOSE = "close"        # TapClose
    CLOSED = "closed"      # the writer's on_closed
    FAILED = "failed"      # the writer's on_error


_S = RecState
#: (state, event) -> (method that carries it out, next state; None = forgotten).
_TABLE: dict[tuple[RecState, _Ev], tuple[str, RecState | None]] = {
    (_S.OPEN, _Ev.SOURCES): ("_do_sources", _S.OPEN),
    (_S.OPEN, _Ev.MODE): ("_do_mode", _S.OPEN),
    (_S.OPEN, _Ev.CLOSE): ("_do_close", _S.CLOSING),
    # The writer closed a file nobody asked it to close: it was stopped (shutdown).
    (_S.OPEN, _Ev.CLOSED): ("_do_drop_closed", None),
    # The disk refused it: stop tapping at once (the writer drops its bytes anyway).
    (_S.OPEN, _Ev.FAILED): ("_do_drop_failed", None),
    (_S.CLOSING, _Ev.CLOSED): ("_do_report_closed", None),
    (_S.CLOSING, _Ev.FAILED): ("_do_report_failed", None),
}


#: How many failed recordings the service remembers to ignore late Tap* inputs for.
_FAILED_KEPT = 4096


class RecordingService(Generic[W]):
    """Carries out the recorder engine's Tap* inputs (module docstring).

    ``media``: the media plane whose taps it uses; ``writer``: the recording writer;
    ``submit``: hands an input to the shell (``Shell.submit``); ``hand_frames``: frames
    per hand-off to the writer (default 50 = 1 s; see :class:`RecordingTap`);
    ``timer``: passed to the tap (CPU measurement in ``switchd bench media``).
    """

    TAKES: tuple[type, ...] = SERVICE_INPUTS

    def __init__(self, media: MediaPlane, writer: W, submit: Callable[[Input], object], *,
                 hand_frames: int = 50, timer: Callable[[], float] | None = None) -> None:
        self.media = media
        self.writer = writer
        self._submit = submit
        #: Recordings answered with RecordingError, most recent last (bounded): the engine
        #: may send a TapSources/TapState for one before that error reaches it, in the same
        #: dispatch; those are moot, not the engine's mistake.
        self._failed: OrderedDict[str, None] = OrderedDict()
        self.tap = RecordingTap(media.taps, media.channel_of, writer,
                                hand_frames=hand_frames, timer=timer)
        self._state: dict[str, RecState] = {}

    @classmethod
    def with_writer(cls, media: MediaPlane, submit: Callable[[Input], object],
                    make_writer: Callable[[OnClosed, OnError], W], *,
                    hand_frames: int = 50,
                    timer: Callable[[], float] | None = None) -> RecordingService[W]:
        """Build the service and its writer together: ``make_writer(on_closed, on_error)``
        gets this service's :meth:`closed` and :meth:`failed` to pass to the writer."""
        svc: RecordingService[W] | None = None

        def closed(rec_id: str, summary: Summary) -> bool:
            assert svc is not None, "the writer reported before the service was built"
            return svc.closed(rec_id, summary)

        def failed(rec_id: str, reason: str, summary: Summary | None) -> bool:
            assert svc is not None, "the writer reported before the service was built"
            return svc.failed(rec_id, reason, summary)

        svc = cls(media, make_writer(closed, failed), submit, hand_frames=hand_frames,
                  timer=timer)
        return svc

    # ------------------------------------------------------------ queries

    def state(self, rec_id: str) -> RecState | None:
        """``rec_id``'s state here, or None (never opened, or reported and forgotten)."""
        return self._state.get(rec_id)

    def __len__(self) -> int:
        return len(self._state)

    # ------------------------------------------------------------ engine protocol

    def handle(self, now: float, item: Any) -> list[Input]:
        """Carry out one Tap* input at epoch ``now`` (s); returns ``RecordingError`` for a
        ``TapOpen`` that cannot record, else nothing.

        Raises ServiceError for a TapOpen of a recording already here, and for
        TapSources/TapState/TapClose of a recording that is not open here or is
        closing (the message names the recording and its state).
        """
        if isinstance(item, TapOpen):
            return self._open(item)
        if isinstance(item, TapSources):
            return self._step(item.recording_id, _Ev.SOURCES, item)
        if isinstance(item, TapState):
            return self._step(item.recording_id, _Ev.MODE, item)
        if isinstance(item, TapClose):
            return self._step(item.recording_id, _Ev.CLOSE, item)
        raise ServiceError(f"the recording service does not take {type(item).__name__}")

    def next_deadline(self) -> float | None:
        """Never: the media tick drives the tap, the writer thread reports by callback."""
        return None

    def handle_timer(self, now: float) -> list[Input]:
        """Nothing is timed here."""
        return []

    # ------------------------------------------------------------ writer reports

    def closed(self, rec_id: str, summary: Summary) -> bool:
        """The writer's ``on_closed``: submit ``RecordingClosed`` with the file's figures.
        Returns False (and does nothing) for a recording this service does not know."""
        return self._report(rec_id, _Ev.CLOSED, summary)

    def failed(self, rec_id: str, reason: str, summary: Summary | None) -> bool:
        """The writer's ``on_error``: stop tapping ``rec_id`` and submit
        ``RecordingError(reason)`` with what is on disk (0 s / 0 bytes without a file).
        Returns False (and does nothing) for a recording this service does not know."""
        return self._report(rec_id, _Ev.FAILED, (reason, summary))

    def flush(self) -> None:
        """Hand every buffered byte to the writer now (before ``writer.stop`` at shutdown)."""
        self.tap.flush()

    # ------------------------------------------------------------ internals

    def _open(self, item: TapOpen) -> list[Input]:
        rid = item.recording_id
        if rid in self._state:
            raise ServiceError(f"recording {rid} is already {self._state[rid].value} in the "
                               "recording service; one TapOpen per recording")
        try:
            self.tap.open(rid, item.customer, item.extras, layout=item.layout, fmt=item.format)
        except TapError as exc:
            return self._fail_now(rid, str(exc))
        # Registered before the writer hears of it: a writer that refuses on the spot
        # may report through failed() from inside open().
        self._state[rid] = RecState.OPEN
        channels = 2 if item.layout is RecordLayout.STEREO else 1
        try:
            self.writer.open(rid, item.relpath, channels, item.format)
        except (OSError, ValueError) as exc:
            if self._state.pop(rid, None) is not None:
                self.tap.drop(rid)
            return self._fail_now(rid, f"the recording writer refused {item.relpath}: {exc}")
        return []

    def _fail_now(self, rec_id: str, reason: str) -> list[Input]:
        self._remember_failed(rec_id)
        return [RecordingError(rec_id, reason)]

    def _remember_failed(self, rec_id: str) -> None:
        self._failed[rec_id] = None
        while len(self._failed) > _FAILED_KEPT:
            self._failed.popitem(last=False)

    def _step(self, rec_id: str, ev: _Ev, arg: object) -> list[Input]:
        state = self._state.get(rec_id)
        if state is None and rec_id in self._failed and ev in (_Ev.SOURCES, _Ev.MODE,
                                                                 _Ev.CLOSE):
            return []
        if state is None:
            raise ServiceError(f"recording {rec_id} is not open in the recording service "
                               f"(a {ev.value} for it came after its TapClose or failure, or "
                               "before its TapOpen)")
        entry = _TABLE.get((state, ev))
        if entry is None:
            raise ServiceError(f"recording {rec_id} is {state.value}: a {ev.value} cannot "
                               "follow")
        method, nxt = entry
        out: list[Input] = getattr(self, method)(rec_id, arg)
        if nxt is None:
            self._state.pop(rec_id, None)
        else:
            self._state[rec_id] = nxt
        return out

    def _report(self, rec_id: str, ev: _Ev, arg: object) -> bool:
        if rec_id not in self._state:
            return False
        if ev is _Ev.FAILED:
            self._remember_failed(rec_id)
        for out in self._step(rec_id, ev, arg):
            self._submit(out)
        return True

    # Actions (named in _TABLE). Each returns the inputs to hand on.

    def _do_sources(self, rec_id: str, item: TapSources) -> list[Input]:
        try:
            self.tap.sources(rec_id, item.customer, item.extras)
        except TapError as exc:
            # Keep recording what it followed; the shell logs the engine's mistake.
            raise ServiceError(str(exc)) from None
        return []

    def _do_mode(self, rec_id: str, item: TapState) -> list[Input]:
        self.tap.set_mode(rec_id, item.mode)
        return []

    def _do_close(self, rec_id: str, item: TapClose) -> list[Input]:
        self.tap.close(rec_id)  # hands the last bytes before the writer's close
        self.writer.close(rec_id)
        return []

    def _do_drop_closed(self, rec_id: str, summary: Summary) -> list[Input]:
        self.tap.drop(rec_id)
        return self._do_report_closed(rec_id, summary)

    def _do_drop_failed(self, rec_id: str, arg: tuple[str, Summary | None]) -> list[Input]:
        self.tap.drop(rec_id)
        return self._do_report_failed(rec_id, arg)

    def _do_report_closed(self, rec_id: str, summary: Summary) -> list[Input]:
        return [RecordingClosed(rec_id, duration_s=summary.duration_s, size=summary.size,
                                sha256=summary.sha256)]

    def _do_report_failed(self, rec_id: str, arg: tuple[str, Summary | None]) -> list[Input]:
        reason, summary = arg
        if summary is None:
            return [RecordingError(rec_id, reason)]
        return [RecordingError(rec_id, reason, duration_s=summary.duration_s,
                               size=summary.size)]
