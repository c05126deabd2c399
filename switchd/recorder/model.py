"""The recorder's vocabulary: record modes, file formats, states and settings.

Shared by the sans-IO recorder engine (``switchd.recorder.engine``), the media tap
(``switchd.recorder.tap``), the crash-safe WAV writer (``switchd.recorder.wav`` and
``writer``), the index (``switchd.recorder.index``), retention and voicemail. The
config (``switchd.config``) builds :class:`RecordingSettings` and
:class:`VoicemailSettings`; nothing here reads a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType

__all__ = [
    "Mailbox",
    "RecordAction",
    "RecordFormat",
    "RecordLayout",
    "RecordMode",
    "RecordStatus",
    "RecordingSettings",
    "RetentionSettings",
    "RouteMode",
    "VoicemailSettings",
    "recording_relpath",
]


class RecordMode(StrEnum):
    """When a call's recording starts (REQUIREMENTS.md, Recording)."""

    #: From the moment switchd answers (an IVR flow, a queue) or a person answers,
    #: whichever comes first: IVR included.
    ON_ANSWER = "on_answer"
    #: Only from the moment an agent (an extension) is connected to the caller.
    ON_AGENT = "on_agent"
    #: Not recorded unless ``CALL.RECORD action=start`` asks for it.
    OFF = "off"


class RecordLayout(StrEnum):
    """Channels of a call recording."""

    #: Left: the customer (what the caller says); right: everyone on the switch's
    #: side (what the caller hears — agent, conference members, prompts — plus the
    #: switch-side voices the caller does not hear: a supervisor's whisper, a consult).
    STEREO = "stereo"
    #: Left and right mixed into one channel (saturated).
    MONO = "mono"


class RecordFormat(StrEnum):
    """The sample encoding in the WAV file (REFERENCE.md, WAV)."""

    PCM = "pcm"      #: 16-bit linear PCM, WAVE format tag 1, 16 kB/s per channel
    ALAW = "alaw"    #: ITU-T G.711 A-law, format tag 6, 8 kB/s per channel
    ULAW = "ulaw"    #: ITU-T G.711 µ-law, format tag 7, 8 kB/s per channel

    @property
    def tag(self) -> int:
        """The WAVE ``fmt `` chunk's format tag (1, 6 or 7)."""
        return {"pcm": 1, "alaw": 6, "ulaw": 7}[self.value]

    @property
    def sample_bytes(self) -> int:
        """Bytes per sample per channel (2 for PCM, 1 for G.711)."""
        return 2 if self is RecordFormat.PCM else 1


class RecordStatus(StrEnum):
    """A recording's status in the index (``recordings.status``)."""

    RECORDING = "recording"   #: open: audio is being written
    DONE = "done"             #: closed normally; duration, size and sha256 from the file
    RECOVERED = "recovered"   #: was open when switchd died; header repaired at the next start
    FAILED = "failed"         #: the disk refused it (full, unwritable): what reached the file is kept


class RecordAction(StrEnum):
    """``CALL.RECORD action=…``."""

    START = "start"
    STOP = "stop"
    PAUSE = "pause"
    RESUME = "resume"


@dataclass(frozen=True, slots=True)
class RouteMode:
    """One inbound route's record mode: calls to ``dnis`` (None = any) on ``trunk`` (None =
    any) use ``mode`` (None: ``recording.mode``). There is one per route, in route order,
    so the first match is the route that routed the call, as in the core."""

    mode: RecordMode | None
    dnis: str | None = None
    trunk: int | None = None

    def matches(self, dnis: str | None, trunk: int | None) -> bool:
        """True when an inbound call to ``dnis`` on ``trunk`` takes this mode."""
        return ((self.dnis is None or self.dnis == dnis)
                and (self.trunk is None or self.trunk == trunk))


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    """How long recordings are kept. None = no limit of that kind.

    ``days``: recordings that ended more than this many days ago are purged.
    ``max_mb``: while the recordings take more than this many MiB, the oldest are
    purged. Recordings marked ``keep`` are never purged; open ones never either.
    ``check_every_s``: how often the purge runs (s).
    """

    days: float | None = None
    max_mb: float | None = None
    check_every_s: float = 3600.0


def _default_dir() -> Path:
    return Path("state/recordings").absolute()


@dataclass(frozen=True, slots=True)
class RecordingSettings:
    """The ``recording:`` section, validated (see config.yaml for each key).

    ``directory``: absolute; files are ``YYYY/MM/DD/<call_id>.wav`` under it (the UTC
    date the recording started). ``queue_modes``: queue name -> mode while the call is
    in (or was answered from) that queue; ``route_modes``: one per inbound route, in order.
    ``internal``: also record extension-to-extension calls. ``flush_s``: the tap hands
    audio to the writer and the writer rewrites the WAV size fields at least this often
    (s, ≤ 1): what a crash can lose. ``buffer_s``: seconds of
    audio per recording the writer may hold before it is declared failed (a disk that
    cannot keep up must not grow memory without bound).
    """

    mode: RecordMode = RecordMode.ON_ANSWER
    layout: RecordLayout = RecordLayout.STEREO
    format: RecordFormat = RecordFormat.PCM
    directory: Path = field(default_factory=_default_dir)
    internal: bool = False
    queue_modes: Mapping[str, RecordMode] = field(default_factory=lambda: MappingProxyType({}))
    route_modes: tuple[RouteMode, ...] = ()
    flush_s: float = 1.0
    buffer_s: float = 30.0
    retention: RetentionSettings = field(default_factory=RetentionSettings)

    def route_mode(self, dnis: str | None, trunk: int | None) -> RecordMode:
        """The mode of an inbound call to ``dnis`` on ``trunk``: the first matching route
        override, else :attr:`mode`."""
        for rm in self.route_modes:
            if rm.matches(dnis, trunk):
                return self.mode if rm.mode is None else rm.mode
        return self.mode


@dataclass(frozen=True, slots=True)
class Mailbox:
    """One voicemail box. ``owner``: who is told of new messages (``agent:<id>``,
    ``queue:<name>`` or None for a box the IVR owns); ``greeting``: the personal
    greeting's files, played in order (empty = the default greeting)."""

    name: str
    owner: str | None = None
    greeting: tuple[Path, ...] = ()


def _default_vm_dir() -> Path:
    return Path("state/voicemail").absolute()


@dataclass(frozen=True, slots=True)
class VoicemailSettings:
    """The ``voicemail:`` section, validated.

    ``boxes``: every mailbox by name: one per agent (named after the agent id) and per
    queue (the queue name) are implied; the config may add boxes (e.g. ``afterhours``)
    and set greetings. ``max_s``: longest message (s); ``silence_s``: a message ends after
    this much silence (s); ``silence_dbm0``: frames quieter than this are silence;
    ``min_s``: shorter messages (a caller who hung up at the beep) are not kept.
    ``greeting``: the default greeting prompt (files), ``beep_hz``/``beep_ms`` the beep.
    """

    directory: Path = field(default_factory=_default_vm_dir)
    boxes: Mapping[str, Mailbox] = field(default_factory=lambda: MappingProxyType({}))
    max_s: float = 120.0
    silence_s: float = 5.0
    silence_dbm0: float = -45.0
    min_s: float = 1.0
    greeting: tuple[Path, ...] = ()
    beep_hz: float = 1000.0
    beep_ms: int = 400


def recording_relpath(call_id: str, start: float) -> Path:
    """``YYYY/MM/DD/<call_id>.wav`` for a recording that starts at epoch ``start`` (s),
    the date in UTC (a recording directory is the same wherever the server's zone is)."""
    import time as _time

    t = _time.gmtime(start)
    return Path(f"{t.tm_year:04d}/{t.tm_mon:02d}/{t.tm_mday:02d}/{call_id}.wav")
