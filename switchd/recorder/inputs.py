"""The recorder's inputs: what CTI asks of it, what it asks of the media tap, and
what the tap/writer report back.

Flow of one recording (DESIGN §1: the engine is sans-IO, the tap and the writer are
the edge)::

    core events ──► Recorder (engine) ──TapOpen/TapSources/TapState/TapClose──► RecordingService
                         ▲                                                       (tap + writer thread)
                         └──────────── RecordingClosed / RecordingError ◄─────────┘

``RecordCommand`` comes from the control socket (``CALL.RECORD``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from switchd.engine import Input
from switchd.recorder.model import RecordAction, RecordFormat, RecordLayout

__all__ = [
    "RECORDER_INPUTS",
    "SERVICE_INPUTS",
    "RecordCommand",
    "RecordingClosed",
    "RecordingError",
    "TapClose",
    "TapMode",
    "TapOpen",
    "TapSources",
    "TapState",
]


@dataclass(frozen=True, slots=True)
class RecordCommand(Input):
    """``CALL.RECORD call=<id> action=start|stop|pause|resume`` from ``user`` (None: the
    system). The engine raises :class:`~switchd.recorder.engine.RecorderError`
    (``not_found``, ``wrong_state``) before changing anything when it cannot."""

    call_id: str
    action: RecordAction
    user: str | None = None


class TapMode(StrEnum):
    """What the tap writes for a recording each frame."""

    RUNNING = "running"   #: the call's audio
    PAUSED = "paused"     #: silence, frame for frame (pause for compliance: the file keeps time)
    STOPPED = "stopped"   #: nothing (``CALL.RECORD action=stop``: a gap between segments)


@dataclass(frozen=True, slots=True)
class TapOpen(Input):
    """Create ``directory/relpath`` and start recording call ``call_id`` into it.

    ``customer``: the line whose party is the customer (left channel: its inbound;
    right: its outbound); ``extras``: switch-side lines whose voice goes into the
    right channel too because the customer does not hear them (a whisperer, the
    agent and the consulted party during a consult). Lines are names (``trunk/1``).
    ``start``: epoch s. ``flush_s``/``buffer_s`` as in ``RecordingSettings``.
    """

    recording_id: str
    call_id: str
    relpath: Path
    start: float
    layout: RecordLayout
    format: RecordFormat
    customer: str
    extras: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TapSources(Input):
    """The recording's lines changed (a transfer, a consult, a whisper, a conference)."""

    recording_id: str
    customer: str
    extras: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TapState(Input):
    """Running, paused (silence) or stopped (nothing written) from the next frame."""

    recording_id: str
    mode: TapMode


@dataclass(frozen=True, slots=True)
class TapClose(Input):
    """Write what is buffered, patch the header, close the file, report ``RecordingClosed``."""

    recording_id: str


@dataclass(frozen=True, slots=True)
class RecordingClosed(Input):
    """The writer closed the file: figures read from the file itself (the index never
    disagrees with the bytes on disk). ``duration_s`` = data bytes / byte rate;
    ``size``: the file's bytes; ``sha256``: hex of the whole file."""

    recording_id: str
    duration_s: float
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class RecordingError(Input):
    """The writer could not write ``recording_id`` (``reason``: what the OS said, e.g.
    "No space left on device"). What reached the file stays, with its header patched
    when that was possible; ``duration_s``/``size`` describe that file (0 if none)."""

    recording_id: str
    reason: str
    duration_s: float = 0.0
    size: int = 0


#: What the recorder engine takes (from CTI and from the service).
RECORDER_INPUTS: tuple[type[Input], ...] = (RecordCommand, RecordingClosed, RecordingError)
#: What the recording service (the edge: tap + writer) takes.
SERVICE_INPUTS: tuple[type[Input], ...] = (TapOpen, TapSources, TapState, TapClose)
