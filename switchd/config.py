"""Typed configuration for switchd, loaded from YAML with exact FILE:LINE:COL errors.

Why this shape: the file is read with :mod:`switchd.yamlloc` (which keeps the
line and column of every key and value), checked by pydantic v2 models with
unknown keys forbidden and strict types (so *all* shape errors are found in one
pass, and ``"20"`` is not silently taken for ``20``), then checked across
sections (route targets exist, members are on the board, names are unique).
Every problem is reported at once as ``FILE:LINE:COL: message`` through
:class:`~switchd.exceptions.ConfigError`, sorted in file order, so an operator
fixes the whole file in one edit instead of one error per restart. The pydantic
errors are turned into those messages by :mod:`switchd.yamlerrors`, which the IVR
flow files use too.

The result is a tree of frozen dataclasses (:class:`Config`); nothing outside
this module sees pydantic. Routes and ring groups are the call core's own types
(:mod:`switchd.core.routing`), so there is one definition of a route target and of
route matching; queues and agents are the ACD's own :class:`~switchd.acd.model.AcdSettings`
(``Config.acd``), with prompt names already resolved to files under
``media.prompts_dir``. Every key is optional except where the schema in ``config.yaml``
(the commented reference) says REQUIRED; an empty file is the default
configuration.

What `switchd check`, `switchd run` and reload share, so they never disagree:
:func:`load_config` (problems; it also loads ``sim.audio.speech_file``),
:func:`demo_secret_problem` (the one refusal of demo secrets beyond loopback, with
the one :func:`is_loopback`) and :func:`config_warnings` (what runs but deserves a
look: missing folders, unplayable music, agents without a phone).
"""

from __future__ import annotations

import difflib
import ipaddress
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticCustomError

from switchd.acd.model import (
    OVERFLOW_KINDS,
    AcdSettings,
    AgentSettings,
    CallbackSettings,
    PenaltyRule,
    QueueSettings,
    RingGroup,
    RingStrategy,
    SeatClass,
)
from switchd.acd.model import Strategy as QueueStrategy
from switchd.core.routing import (
    INBOUND_KINDS,
    NAME_RE,
    Route,
    Target,
    TargetKind,
)
from switchd.drivers.sim.board import check_key_group
from switchd.drivers.sip.settings import SipSettings
from switchd.exceptions import ConfigError
from switchd.ivr import say
from switchd.ivr.loader import PROMPT_SUFFIXES, prompt_path
from switchd.ivr.model import NAME_RE as FLOW_NAME_RE
from switchd.passwords import is_hash, uses_demo_secret
from switchd.recorder.mailboxes import folder_problem, missing_mailbox
from switchd.recorder.model import (
    Mailbox,
    RecordFormat,
    RecordingSettings,
    RecordLayout,
    RecordMode,
    RetentionSettings,
    RouteMode,
    VoicemailSettings,
)
from switchd.sipconfig import check_sip
from switchd.yamlerrors import ProblemCollector, describe, dotted, unknown_key_message
from switchd.yamlloc import LocatedDocument, Mark, YamlPath, compose_located

if TYPE_CHECKING:
    from switchd.lines.prompts import PromptCache

__all__ = [
    "BoardConfig",
    "BotConfig",
    "Config",
    "CtiConfig",
    "DialplanConfig",
    "IvrConfig",
    "LogConfig",
    "MediaConfig",
    "OutsideConfig",
    "SimAudioConfig",
    "SimConfig",
    "TrafficConfig",
    "UserConfig",
    "config_summary",
    "config_warnings",
    "default_config",
    "demo_secret_problem",
    "demo_secret_users",
    "is_loopback",
    "load_config",
    "missing_target",
    "number_ranges",
    "parse_config",
    "parse_listen",
]

Driver: TypeAlias = Literal["sim", "sip"]
TonePlan: TypeAlias = Literal["cn", "us"]
Strategy: TypeAlias = Literal["ringall", "hunt"]
Role: TypeAlias = Literal["agent", "supervisor", "crm", "admin"]
LogFormat: TypeAlias = Literal["auto", "json", "console"]
LogLevel: TypeAlias = Literal["debug", "info", "warning", "error"]
BotMode: TypeAlias = Literal["auto", "manual"]
SourceName: TypeAlias = Literal["silence", "tone", "speech"]


# --------------------------------------------------------------------------
# The validated configuration (what the rest of switchd sees)
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BoardConfig:
    """The voice board: how many lines and how they are numbered.

    ``extension_numbers`` is sorted and resolved from either a count
    (``first_extension`` upwards) or an explicit list. ``extension_names`` holds
    only the extensions given a ``name`` in the list form. Trunks are numbered
    ``1..trunks``.
    """

    driver: Driver = "sim"
    trunks: int = 8
    extension_numbers: tuple[int, ...] = tuple(range(201, 209))
    extension_names: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))
    first_extension: int = 201
    tone_plan: TonePlan = "cn"

    @property
    def trunk_numbers(self) -> tuple[int, ...]:
        """Trunk line numbers, ``1..trunks``."""
        return tuple(range(1, self.trunks + 1))


@dataclass(frozen=True, slots=True)
class DialplanConfig:
    """Dialling rules. Times in seconds.

    ``outside_prefix``: digits an extension dials before an outside number.
    ``ring_timeout_s``: an unanswered call ends NO ANSWER after this.
    ``tone_timeout_s``: how long busy/congestion plays before the line is released.
    """

    outside_prefix: str = "9"
    ring_timeout_s: float = 20.0
    tone_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class UserConfig:
    """A CTI login. ``secret`` is a :func:`switchd.passwords.hash_secret` hash, never plain."""

    name: str
    role: Role
    secret: str
    extension: int | None = None
    #: A supervisor's scope: the ACD queues whose calls it may monitor and pick up;
    #: None = every call.
    queues: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class CtiConfig:
    """The CTI socket. ``host``/``port`` are parsed from ``listen``; port 0 picks a free port.

    ``max_line_bytes``: longest request line accepted (DESIGN §5: 8 KiB).
    ``outbound_queue``: lines queued per client before it is told ERR overloaded
    and disconnected.
    """

    listen: str = "127.0.0.1:7070"
    host: str = "127.0.0.1"
    port: int = 7070
    max_line_bytes: int = 8192
    outbound_queue: int = 1024


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Logging: ``format`` auto = JSON lines when stdout is not a TTY, console otherwise."""

    format: LogFormat = "auto"
    level: LogLevel = "info"


@dataclass(frozen=True, slots=True)
class BotConfig:
    """Simulated agent phones. Seconds; ``talk_s`` is a (min, max) uniform range."""

    mode: BotMode = "auto"
    answer_after_s: float = 2.0
    talk_s: tuple[float, float] = (20.0, 90.0)


@dataclass(frozen=True, slots=True)
class TrafficConfig:
    """Demo traffic generator: Poisson arrivals at ``calls_per_minute`` to ``dnis``.

    ``seed`` None means a different run each time. ``keys``: key scripts, one drawn
    uniformly per demo call; a script is a tuple of key groups (1-32 of
    ``0-9*#A-D`` each) the caller presses as in-band DTMF, the first
    ``first_key_after_s`` seconds after the switch answers the call, each next one
    ``key_gap_s`` seconds after the previous group's last key (see
    :class:`switchd.drivers.sim.board.TrafficSettings`). ``()``: nobody presses keys.
    """

    enabled: bool = False
    calls_per_minute: float = 6.0
    dnis: str = "8000"
    seed: int | None = None
    keys: tuple[tuple[str, ...], ...] = ()
    first_key_after_s: float = 9.0
    key_gap_s: float = 6.0


@dataclass(frozen=True, slots=True)
class OutsideConfig:
    """The simulated PSTN far end for outbound calls. Seconds."""

    answer_after_s: float = 3.0
    talk_s: tuple[float, float] = (10.0, 60.0)
    busy_numbers: frozenset[str] = frozenset()
    unanswered_numbers: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class SimAudioConfig:
    """What simulated parties say while in a call: ``silence``, ``tone`` or ``speech``.

    ``tone_hz`` (Hz) / ``tone_dbm0`` (dBm0): the test tone. ``speech_file``: an
    audio file of speech (absolute path, resolved against the config file); when
    set, :func:`load_config` has checked that it loads. None = ``speech`` sources
    send the test tone.
    """

    callers: SourceName = "silence"
    agents: SourceName = "silence"
    tone_hz: float = 1000.0
    tone_dbm0: float = -20.0
    speech_file: Path | None = None


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything the simulated board needs. Times in seconds.

    ``caller_hangup_after_tone_s``: how long a simulated caller listens to busy or
    congestion tone before hanging up (>= 0).
    ``caller_talk_s``: (min, max) uniform range of how long a *connected* simulated
    caller talks before hanging up, whatever the agent's phone does (>= 0, min <= max).
    ``caller_patience_s``: how long a simulated caller who is not answered waits
    (ringing, queued, on hold before answer) before giving up (> 0).
    """

    bots: BotConfig = field(default_factory=BotConfig)
    traffic: TrafficConfig = field(default_factory=TrafficConfig)
    outside: OutsideConfig = field(default_factory=OutsideConfig)
    caller_hangup_after_tone_s: float = 2.0
    caller_talk_s: tuple[float, float] = (60.0, 180.0)
    caller_patience_s: float = 60.0
    audio: SimAudioConfig = field(default_factory=SimAudioConfig)


@dataclass(frozen=True, slots=True)
class MediaConfig:
    """The media plane: where prompts and music on hold live (absolute paths), and the
    prompt cache bound in MiB."""

    prompts_dir: Path = field(default_factory=lambda: Path("prompts").absolute())
    moh_dir: Path | None = field(default_factory=lambda: Path("prompts/moh").absolute())
    prompt_cache_mb: int = 64

    @property
    def prompt_cache_bytes(self) -> int:
        """``prompt_cache_mb`` in bytes: the bound of the prompt cache (PromptCache max_bytes)."""
        return self.prompt_cache_mb * 1024 * 1024


@dataclass(frozen=True, slots=True)
class IvrConfig:
    """Where the IVR flow files live (absolute path; ``flows/NAME.yaml`` is flow NAME)."""

    flows_dir: Path = field(default_factory=lambda: Path("flows").absolute())


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated configuration.

    ``routes`` are the call core's own types (:mod:`switchd.core.routing`) and
    ``ring_groups`` the ACD's (:mod:`switchd.acd.model`), so each engine takes them as
    they are; ``acd`` (the ``queues:`` and ``agents:`` sections, plus the ring groups
    and the dial plan's ring time) is the ACD's own settings, taken as is by the ACD
    engine and ``switchd sim``.
    ``state_dir`` is absolute (a relative value in the file is taken relative to
    the config file's directory). ``source`` is the config path as given, for
    messages and reload. ``marks`` is where each key's value is in the file (for
    :func:`config_warnings`); it takes no part in comparing two configs.
    """

    board: BoardConfig = field(default_factory=BoardConfig)
    dialplan: DialplanConfig = field(default_factory=DialplanConfig)
    ring_groups: Mapping[str, RingGroup] = field(default_factory=lambda: MappingProxyType({}))
    routes: tuple[Route, ...] = ()
    acd: AcdSettings = field(default_factory=AcdSettings)
    users: tuple[UserConfig, ...] = ()
    cti: CtiConfig = field(default_factory=CtiConfig)
    log: LogConfig = field(default_factory=LogConfig)
    state_dir: Path = field(default_factory=lambda: Path("state").absolute())
    sim: SimConfig = field(default_factory=SimConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    ivr: IvrConfig = field(default_factory=IvrConfig)
    recording: RecordingSettings = field(default_factory=RecordingSettings)
    voicemail: VoicemailSettings = field(default_factory=VoicemailSettings)
    #: The SIP board's settings (``board.driver: sip``); None on the simulated board.
    sip: SipSettings | None = None
    source: Path = Path("config.yaml")
    marks: Mapping[YamlPath, Mark] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, repr=False
    )


# --------------------------------------------------------------------------
# Field rules shared by the raw schema
# --------------------------------------------------------------------------

def is_loopback(host: str) -> bool:
    """True when only this machine can connect to ``host``: 127.0.0.0/8, ::1 or localhost.

    ``host`` is a listen host as :func:`parse_listen` returns it (no brackets).
    The shipped demo secrets are allowed only on such an address
    (:func:`demo_secret_problem`). Never raises.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(text: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` or ``[IPv6]:PORT`` into (host, port).

    Port 0 asks the OS for a free port (tests use it). Raises ValueError with a
    message saying what is wrong and what is expected.
    """
    text = text.strip()
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"expected [IPv6]:PORT, e.g. [::1]:7070, got {text!r}")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError(f"expected HOST:PORT, e.g. 127.0.0.1:7070, got {text!r}")
        if ":" in host:
            raise ValueError(f"put an IPv6 address in brackets, e.g. [{host}]:{port_text}")
        if not host or any(c.isspace() for c in host):
            raise ValueError(
                f"expected HOST:PORT with a host name or address before the colon, got {text!r}"
            )
    if not port_text.isdigit() or not port_text.isascii():
        raise ValueError(f"port {port_text!r} is not a number; expected 0..65535")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port {port} is out of range; expected 0..65535 (0 = any free port)")
    return host, port


def _custom(message: str) -> PydanticCustomError:
    # One error type for every rule of ours; the formatter prints the message as is.
    return PydanticCustomError("switchd", message)


def _check_digits(value: str) -> str:
    if not value or not value.isascii() or not value.isdigit():
        raise _custom(f'must be a string of digits 0-9 in quotes, e.g. "8000"; got {value!r}')
    return value


def _check_listen(value: str) -> str:
    try:
        parse_listen(value)
    except ValueError as exc:
        raise _custom(str(exc)) from None
    return value


def _check_secret(value: str) -> str:
    # Never echo the value: it may be a plain password.
    if not is_hash(value):
        raise _custom(
            "is not a password hash; run `switchd passwd` and paste the line it prints "
            "(plain-text secrets are not accepted)"
        )
    return value


def _check_name(value: str) -> str:
    if not NAME_RE.fullmatch(value):
        raise _custom(
            f"{value!r} is not a valid name; use 1-64 letters, digits, '.', '_', '-' or '@'"
        )
    return value


def _check_key_group(value: str) -> str:
    try:
        return check_key_group(value)
    except ValueError as exc:
        raise _custom(str(exc)) from None


def _check_range(value: list[float]) -> list[float]:
    # The length is checked here rather than with min/max_length so that every
    # [min, max] key gets the same sentence, whatever it is called.
    if len(value) != 2:
        raise _custom("expected [min, max] (two numbers of seconds)")
    if value[0] > value[1]:
        raise _custom(f"expected [min, max] with min <= max, got [{value[0]:g}, {value[1]:g}]")
    return value


def _choice(what: str, values: Iterable[str]) -> Callable[[str], str]:
    """A validator accepting one of ``values``, with a did-you-mean for a near miss."""
    allowed = list(values)

    def check(value: str) -> str:
        if value in allowed:
            return value
        close = difflib.get_close_matches(value, allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise _custom(f"unknown {what} {value!r}{hint} (use one of {', '.join(allowed)})")

    return check


#: Keys a caller may press to leave a queue (``exit_key``).
_EXIT_KEYS = "0123456789*#"


def _check_exit_key(value: str) -> str:
    if len(value) != 1 or value not in _EXIT_KEYS:
        raise _custom(f'expected one key 0-9, * or # in quotes, e.g. "0"; got {value!r}')
    return value


def _prompt_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a prompt name (a path under ``media.prompts_dir``), or None."""
    if not name.strip():
        return "a prompt name cannot be empty"
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or ".." in parts:
        return (f"{name!r} is not a prompt name; name a file under media.prompts_dir without "
                "its suffix, e.g. zh/queue_greeting")
    return None


def _check_prompts(value: Any) -> tuple[str, ...]:
    # One name or a list of names, played in order; null or [] = nothing. Checked by hand
    # rather than as `str | list[str]` so a wrong type is one message, not one per member.
    if value is None:
        return ()
    if isinstance(value, str):
        names: list[str] = [value]
    elif isinstance(value, list) and all(isinstance(x, str) for x in value):
        names = value
    else:
        raise _custom("expected a prompt name (e.g. zh/queue_greeting) or a list of them, "
                      f"got {describe(value)}")
    for name in names:
        problem = _prompt_name_problem(name)
        if problem is not None:
            raise _custom(problem)
    return tuple(names)


Digits = Annotated[str, AfterValidator(_check_digits)]
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
SecondsRange = Annotated[list[Seconds], AfterValidator(_check_range)]
KeyGroup = Annotated[str, AfterValidator(_check_key_group)]
#: The largest penalty (and priority): what a 32-bit signed int holds, as in Asterisk.
_MAX_PENALTY = 2**31 - 1
Penalty = Annotated[int, Field(ge=0, le=_MAX_PENALTY)]
Prompts = Annotated[Any, AfterValidator(_check_prompts)]
SayLanguage: TypeAlias = Literal["zh", "en"]
RecordModeName: TypeAlias = Literal["on_answer", "on_agent", "off"]


# --------------------------------------------------------------------------
# Raw schema: the YAML shape, strict, unknown keys forbidden
# --------------------------------------------------------------------------


class _Raw(BaseModel):
    # strict: YAML already gives real ints/floats/bools, so any coercion would only
    # hide a mistake ("20" for 20, 1 for true).
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _RawExtension(_Raw):
    number: Annotated[int, Field(ge=1)]
    name: str | None = None


def _extensions_form(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return "count"
    if isinstance(value, list):
        return "list"
    return None


_Extensions = Annotated[
    Annotated[int, Tag("count"), Field(ge=1, le=10_000)]
    | Annotated[list[_RawExtension], Tag("list"), Field(min_length=1, max_length=10_000)],
    Discriminator(
        _extensions_form,
        custom_error_type="switchd",
        custom_error_message=(
            "expected a count (e.g. 8) or a list of entries like {number: 201, name: Alice}"
        ),
    ),
]


class _RawBoard(_Raw):
    driver: Driver = "sim"
    trunks: Annotated[int, Field(ge=1, le=10_000)] = 8
    extensions: _Extensions = 8
    first_extension: Annotated[int, Field(ge=1)] = 201
    tone_plan: TonePlan = "cn"


class _RawDialplan(_Raw):
    outside_prefix: Digits = "9"
    ring_timeout_s: PositiveSeconds = 20.0
    tone_timeout_s: PositiveSeconds = 10.0


class _RawGroup(_Raw):
    strategy: Strategy = "ringall"
    members: Annotated[list[int], Field(min_length=1)]
    ring_timeout_s: PositiveSeconds | None = None


class _RawRoute(_Raw):
    dnis: Digits | None = None
    trunk: Annotated[int, Field(ge=1)] | None = None
    to: str
    record: RecordModeName | None = None


class _RawUser(_Raw):
    name: Annotated[str, AfterValidator(_check_name)]
    role: Role
    secret: Annotated[str, AfterValidator(_check_secret)]
    extension: Annotated[int, Field(ge=1)] | None = None
    queues: Annotated[list[str], Field(min_length=1)] | None = None


class _RawPenaltyRule(_Raw):
    after_s: Seconds
    min_penalty: Penalty = 0
    max_penalty: Penalty | None = None


class _RawCallback(_Raw):
    key: Annotated[str, AfterValidator(_check_exit_key)]
    confirm: Prompts = ()
    done: Prompts = ()
    confirm_timeout_s: PositiveSeconds = 15.0
    goodbye_s: Seconds = 5.0
    retries: Annotated[int, Field(ge=0, le=100)] = 2
    retry_after_s: PositiveSeconds = 120.0
    ring_timeout_s: PositiveSeconds = 30.0


class _RawQueue(_Raw):
    strategy: Annotated[
        str, AfterValidator(_choice("strategy", (s.value for s in QueueStrategy)))
    ] = QueueStrategy.LONGEST_IDLE.value
    ring_timeout_s: PositiveSeconds = 15.0
    wrapup_s: Seconds = 0.0
    max_wait_s: PositiveSeconds | None = None
    max_len: Annotated[int, Field(ge=1)] | None = None
    overflow: Annotated[str, Field(min_length=1)] | None = None
    join_empty: bool = True
    leave_empty: bool = False
    vip_priority: Annotated[int, Field(ge=0, le=_MAX_PENALTY)] = 10
    sticky_wait_s: Seconds = 0.0
    rona_after: Annotated[int, Field(ge=0)] = 2
    service_level_s: PositiveSeconds = 20.0
    penalty_rules: list[_RawPenaltyRule] = Field(default_factory=list)
    music: bool = True
    language: SayLanguage = "zh"
    greeting: Prompts = ()
    announce_position_every_s: PositiveSeconds | None = None
    announce_wait: bool = False
    periodic: Prompts = ()
    periodic_every_s: PositiveSeconds | None = None
    exit_key: Annotated[str, AfterValidator(_check_exit_key)] | None = None
    exit_to: Annotated[str, Field(min_length=1)] | None = None
    callback: _RawCallback | None = None
    record: RecordModeName | None = None


class _RawAgent(_Raw):
    id: Annotated[str, AfterValidator(_check_name)]
    name: Annotated[str, Field(min_length=1)] | None = None
    extension: Annotated[int, Field(ge=1)] | None = None
    seat: Annotated[
        str, AfterValidator(_choice("seat", (s.value for s in SeatClass)))
    ] = SeatClass.NORMAL.value
    queues: dict[str, Penalty] = Field(default_factory=dict)
    wrapup_s: Seconds | None = None
    weight: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    login: bool = False


class _RawCti(_Raw):
    listen: Annotated[str, AfterValidator(_check_listen)] = "127.0.0.1:7070"
    # 64 bytes is below any real request ("AUTH user=... secret=..."), so a smaller
    # limit can only be a typo.
    max_line_bytes: Annotated[int, Field(ge=64, le=16 * 1024 * 1024)] = 8192
    outbound_queue: Annotated[int, Field(ge=1, le=1_000_000)] = 1024


class _RawLog(_Raw):
    format: LogFormat = "auto"
    level: LogLevel = "info"


class _RawBots(_Raw):
    mode: BotMode = "auto"
    answer_after_s: Seconds = 2.0
    talk_s: SecondsRange = Field(default_factory=lambda: [20.0, 90.0])


class _RawTraffic(_Raw):
    enabled: bool = False
    calls_per_minute: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 6.0
    dnis: Digits = "8000"
    seed: int | None = None
    keys: list[list[KeyGroup]] = Field(default_factory=list)
    first_key_after_s: Seconds = 9.0
    key_gap_s: Seconds = 6.0


class _RawOutside(_Raw):
    answer_after_s: Seconds = 3.0
    talk_s: SecondsRange = Field(default_factory=lambda: [10.0, 60.0])
    busy_numbers: list[Digits] = Field(default_factory=list)
    unanswered_numbers: list[Digits] = Field(default_factory=list)


class _RawSimAudio(_Raw):
    callers: SourceName = "silence"
    agents: SourceName = "silence"
    tone_hz: Annotated[float, Field(gt=0, lt=4000, allow_inf_nan=False)] = 1000.0
    tone_dbm0: Annotated[float, Field(ge=-60, le=3, allow_inf_nan=False)] = -20.0
    speech_file: Annotated[str, Field(min_length=1)] | None = None


class _RawMedia(_Raw):
    prompts_dir: Annotated[str, Field(min_length=1)] = "prompts"
    moh_dir: Annotated[str, Field(min_length=1)] | None = "prompts/moh"
    prompt_cache_mb: Annotated[int, Field(ge=1, le=65_536)] = 64


class _RawIvr(_Raw):
    flows_dir: Annotated[str, Field(min_length=1)] = "flows"


class _RawRetention(_Raw):
    days: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    max_mb: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    check_every_s: Annotated[float, Field(ge=10, allow_inf_nan=False)] = 3600.0


class _RawRecording(_Raw):
    mode: RecordModeName = "on_answer"
    channels: Literal["stereo", "mono"] = "stereo"
    format: Literal["pcm", "alaw", "ulaw"] = "pcm"
    path: Annotated[str, Field(min_length=1)] | None = None
    internal: bool = False
    flush_s: Annotated[float, Field(ge=0.05, le=1, allow_inf_nan=False)] = 1.0
    buffer_s: Annotated[float, Field(ge=1, le=3600, allow_inf_nan=False)] = 30.0
    retention: _RawRetention = Field(default_factory=_RawRetention)

    @field_validator("retention", mode="before")
    @classmethod
    def _empty_section_means_defaults(cls, value: Any) -> Any:
        return {} if value is None else value


class _RawMailbox(_Raw):
    owner: Annotated[str, Field(min_length=1)] | None = None
    greeting: Prompts = ()


class _RawVoicemail(_Raw):
    path: Annotated[str, Field(min_length=1)] | None = None
    max_s: Annotated[float, Field(ge=1, le=3600, allow_inf_nan=False)] = 120.0
    silence_s: Annotated[float, Field(ge=0.5, le=600, allow_inf_nan=False)] = 5.0
    silence_dbm0: Annotated[float, Field(ge=-80, le=-10, allow_inf_nan=False)] = -45.0
    min_s: Annotated[float, Field(ge=0, le=60, allow_inf_nan=False)] = 1.0
    greeting: Prompts = ()
    beep_hz: Annotated[float, Field(gt=0, lt=4000, allow_inf_nan=False)] = 1000.0
    beep_ms: Annotated[int, Field(ge=50, le=2000)] = 400
    boxes: dict[str, _RawMailbox | None] = Field(default_factory=dict)

    @field_validator("boxes", mode="before")
    @classmethod
    def _empty_section_means_defaults(cls, value: Any) -> Any:
        return {} if value is None else value


class _RawSim(_Raw):
    bots: _RawBots = Field(default_factory=_RawBots)
    traffic: _RawTraffic = Field(default_factory=_RawTraffic)
    outside: _RawOutside = Field(default_factory=_RawOutside)
    caller_hangup_after_tone_s: Seconds = 2.0
    caller_talk_s: SecondsRange = Field(default_factory=lambda: [60.0, 180.0])
    caller_patience_s: PositiveSeconds = 60.0
    audio: _RawSimAudio = Field(default_factory=_RawSimAudio)

    @field_validator("bots", "traffic", "outside", "audio", mode="before")
    @classmethod
    def _empty_section_means_defaults(cls, value: Any) -> Any:
        # `bots:` with every line below commented out parses as null.
        return {} if value is None else value


_SECTIONS = (
    "board",
    "dialplan",
    "ring_groups",
    "queues",
    "agents",
    "routes",
    "users",
    "cti",
    "log",
    "state_dir",
    "sim",
    "media",
    "ivr",
    "recording",
    "voicemail",
    "sip",
)
_STATE_DIR_DEFAULT = "state"
#: Target kinds an inbound route may name (``number:`` is only a flow's transfer target).
_ROUTE_KINDS = frozenset(k.value for k in INBOUND_KINDS)
_TARGET_HELP = ("extension:<number>, group:<name>, flow:<name>, queue:<name>, voicemail:<box> "
                "or busy")
#: What a queue's ``overflow`` / ``exit_to`` may be (:data:`OVERFLOW_KINDS`).
_OVERFLOW_HELP = "queue:<name>, flow:<name>, extension:<number> or voicemail:<box>"
#: Positions a queue announces by number; a caller further back hears the last one.
_ANNOUNCED_POSITIONS = 20
#: Minutes of estimated wait that can be announced (a longer wait is said as the last).
_ANNOUNCED_WAIT_MINUTES = 30

# Hints appended to "missing required key" messages.
_MISSING_HINTS = {
    "members": "list the extension numbers to ring, e.g. [201, 202]",
    "to": f"where to send the call: {_TARGET_HELP}",
    "name": "the login name",
    "role": "one of agent, supervisor, crm, admin",
    "secret": "run `switchd passwd` and paste the hash it prints",
    "number": "the extension number",
    "id": 'the agent\'s id, unique, e.g. "1001"',
    "after_s": "the seconds of waiting from which the rule applies, e.g. 30",
}


# --------------------------------------------------------------------------
# Section by section, then across sections
# --------------------------------------------------------------------------


def number_ranges(numbers: Iterable[int]) -> str:
    """``201, 202, 203, 205`` -> ``201-203, 205``: how people read extension plans."""
    nums = sorted(set(numbers))
    if not nums:
        return "none"
    parts: list[str] = []
    start = prev = nums[0]
    for n in [*nums[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(parts)


def _section(top: dict[Any, Any], name: str, empty: Callable[[], Any]) -> Any:
    """The section's value; absent or null (every line commented out) reads as ``empty()``."""
    value = top.get(name)
    return empty() if value is None else value


def _items(c: ProblemCollector, value: Any, path: YamlPath, model: type[BaseModel]) -> list[Any]:
    """Validate each list entry on its own, so one bad entry hides no other check."""
    if not isinstance(value, list):
        c.add(path, f"{dotted(path)}: expected a list, got {describe(value)}")
        return []
    return [c.validate(model, item, (*path, i)) for i, item in enumerate(value)]


def _check_board(c: ProblemCollector, raw: _RawBoard) -> tuple[tuple[int, ...], dict[int, str]]:
    if isinstance(raw.extensions, int):
        numbers = range(raw.first_extension, raw.first_extension + raw.extensions)
        return tuple(numbers), {}
    seen: dict[int, int] = {}
    names: dict[int, str] = {}
    for i, entry in enumerate(raw.extensions):
        path = ("board", "extensions", i, "number")
        if entry.number in seen:
            first = c.line_of(("board", "extensions", seen[entry.number], "number"))
            c.add(
                path, f"duplicate extension number {entry.number} (already listed at line {first})"
            )
            continue
        seen[entry.number] = i
        if entry.name is not None:
            names[entry.number] = entry.name
    return tuple(sorted(seen)), names


def _check_prefix(
    c: ProblemCollector, prefix: str, extensions: tuple[int, ...], board: _RawBoard
) -> None:
    clash = [n for n in extensions if str(n).startswith(prefix)]
    if not clash:
        return
    # Point where the fix goes: the prefix if the file sets it, else the first
    # clashing extension of a list, else the extension count.
    path: YamlPath = ("dialplan", "outside_prefix")
    default = ""
    if path not in c.doc.values:
        default = " (the default)"
        path = ("board", "extensions")
        if isinstance(board.extensions, list):
            index = next(i for i, e in enumerate(board.extensions) if e.number == clash[0])
            path = ("board", "extensions", index, "number")
    c.add(
        path,
        f"dialplan.outside_prefix {prefix!r}{default} is ambiguous: extension(s) "
        f"{number_ranges(clash)} start with it, so dialling them would look like an outside call; "
        "change the prefix or renumber the extensions",
    )


def _check_groups(
    c: ProblemCollector, raw: Any, extensions: tuple[int, ...] | None
) -> dict[str, _RawGroup]:
    groups: dict[str, _RawGroup] = {}
    if not isinstance(raw, dict):
        c.add(
            ("ring_groups",),
            f"ring_groups: expected a mapping of group name to group, got {describe(raw)}",
        )
        return groups
    for name, body in raw.items():
        path = ("ring_groups", name)
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            c.add(
                path,
                f"ring group name {name!r} is not valid; use 1-64 letters, digits, '.', '_', "
                "'-' or '@'",
                key=True,
            )
            continue
        group = c.validate(_RawGroup, body, path)
        if group is None:
            continue
        groups[name] = group
        seen: set[int] = set()
        for i, member in enumerate(group.members):
            mpath = (*path, "members", i)
            if member in seen:
                c.add(mpath, f"{dotted(mpath)}: extension {member} is listed twice")
            elif extensions is not None and member not in extensions:
                c.add(
                    mpath,
                    f"{dotted(mpath)}: {member} is not an extension on the board "
                    f"(extensions: {number_ranges(extensions)})",
                )
            seen.add(member)
    return groups


def _relative_to(path: Path, source: Path) -> str:
    """``path`` as the config file's reader would write it: relative to its folder if inside."""
    try:
        return str(path.relative_to(source.absolute().parent))
    except ValueError:
        return str(path)


def missing_target(target: Target, extensions: Iterable[int] | None,
                   groups: Iterable[str] | None, *, source: Path | None = None,
                   queues: Iterable[str] | None = None) -> str | None:
    """Why ``target`` names nothing the config has: an extension not on the board, a
    ring group or a queue not defined (with a did-you-mean); None when it exists or is
    of another kind. ``extensions``/``groups``/``queues`` None: not known (not checked).
    ``source``: the config file, named in the message when it is read beside another
    file (a flow).
    """
    if target.kind is TargetKind.EXTENSION and extensions is not None:
        numbers = set(extensions)
        if int(target.value or 0) in numbers:
            return None
        of = f" of {source}" if source is not None else ""
        return (f"no extension {target.value} on the board{of}; "
                f"extensions are {number_ranges(numbers)}")
    named = {TargetKind.GROUP: ("ring group", groups), TargetKind.QUEUE: ("queue", queues)}
    if target.kind in named:
        what, known_names = named[target.kind]
        if known_names is None:
            return None
        names = sorted(known_names)
        if target.value in names:
            return None
        close = difflib.get_close_matches(target.value or "", names, n=1)
        hint = f"; did you mean '{target.kind.value}:{close[0]}'?" if close else ""
        known = ", ".join(names) if names else "none are defined"
        where = f" in {source}" if source is not None else ""
        return f"no {what} {target.value!r}{where}{hint} ({what}s: {known})"
    return None


def _flow_problem(name: str, flows_dir: Path | None, source: Path) -> str | None:
    """Why ``flow:name`` names no flow file: not a flow name, or no ``flows_dir/name.yaml``
    (with a did-you-mean and the flows that are there); None when the file exists or
    ``flows_dir`` is not known."""
    if not FLOW_NAME_RE.fullmatch(name):
        return (f"{name!r} cannot be a flow name: flow names (the file name without .yaml) "
                "use ASCII letters, digits, '_', '.' and '-', starting with a letter or '_'")
    if flows_dir is None:
        return None
    path = flows_dir / f"{name}.yaml"
    if os.path.isfile(path):
        return None
    shown = _relative_to(path, source)
    shown_dir = _relative_to(flows_dir, source)
    known_flows = sorted(p.stem for p in flows_dir.glob("*.yaml")) if flows_dir.is_dir() else []
    close = difflib.get_close_matches(name, known_flows, n=1)
    hint = f"; did you mean 'flow:{close[0]}'?" if close else ""
    listing = ", ".join(known_flows) if known_flows else "none"
    return f"no flow {name!r}: {shown} does not exist{hint} (flows in {shown_dir}: {listing})"


def _target_help(extensions: tuple[int, ...] | None, groups: Iterable[str] | None,
                 queues: Iterable[str] | None = None) -> str:
    ext = f"extension:<number> ({number_ranges(extensions)})" if extensions else "extension:<number>"
    names = sorted(groups or ())
    grp = f"group:<name> ({', '.join(names)})" if names else "group:<name> (no groups defined)"
    qnames = sorted(queues or ())
    que = f"queue:<name> ({', '.join(qnames)})" if qnames else "queue:<name> (no queues defined)"
    return f"{ext}, {grp}, flow:<name>, {que}, voicemail:<box> or busy"


def _check_route(
    c: ProblemCollector,
    i: int,
    route: _RawRoute,
    trunks: int | None,
    extensions: tuple[int, ...] | None,
    groups: set[str] | None,
    flows_dir: Path | None,
    source: Path = Path("config.yaml"),
    queues: set[str] | None = None,
    mailboxes: Mapping[str, Mailbox] | None = None,
) -> Target | None:
    path = ("routes", i)
    if route.trunk is not None and trunks is not None and route.trunk > trunks:
        c.add(
            (*path, "trunk"),
            f"routes[{i}].trunk: trunk {route.trunk} does not exist; the board has trunks 1-{trunks}",
        )
    tpath = (*path, "to")
    kind = route.to.strip().partition(":")[0]
    if kind not in _ROUTE_KINDS:
        later = (
            " (an outside number is a transfer target in a flow, not a route)"
            if kind == "number" else ""
        )
        c.add(
            tpath,
            f"routes[{i}].to: unknown target kind {kind!r} in {route.to!r}{later}; "
            f"use {_target_help(extensions, groups, queues)}",
        )
        return None
    try:
        target = Target.parse(route.to)
    except ValueError as exc:
        c.add(tpath, f"routes[{i}].to: {exc}")
        return None
    missing = missing_target(target, extensions, groups, queues=queues)
    if missing is None and target.kind is TargetKind.FLOW:
        missing = _flow_problem(target.value or "", flows_dir, source)
    if missing is None and target.kind is TargetKind.VOICEMAIL and mailboxes is not None:
        missing = missing_mailbox(target.value or "", mailboxes)
    if missing is not None:
        c.add(tpath, f"routes[{i}].to: {missing}")
    return target


def _check_user_queues(c: ProblemCollector, i: int, user: _RawUser,
                       queue_names: set[str] | None) -> None:
    """``users[i].queues``: a supervisor's scope, naming queues that exist."""
    if user.queues is None:
        return
    if user.role != "supervisor":
        # An agent is already limited to its own phone and an admin must see every call:
        # a scope there would be a promise the verbs do not keep.
        c.add(("users", i, "queues"), f"users[{i}].queues: only a supervisor is scoped to "
              f"queues; {user.name!r} is {user.role} (an agent sees its own phone's calls, "
              "crm and admin every call); remove queues or make the role supervisor",
              key=True)
        return
    known = None if queue_names is None else sorted(queue_names)
    for j, queue in enumerate(user.queues):
        if known is None or queue in known:
            continue
        close = difflib.get_close_matches(queue, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        listing = ", ".join(known) if known else "none are defined"
        c.add(("users", i, "queues", j), f"users[{i}].queues: no queue {queue!r}{hint} "
              f"(queues: {listing})")


def _check_users(
    c: ProblemCollector, users: list[_RawUser | None], extensions: tuple[int, ...] | None,
    queue_names: set[str] | None = None,
) -> None:
    names: dict[str, int] = {}
    owners: dict[int, int] = {}
    for i, user in enumerate(users):
        if user is None:
            continue
        _check_user_queues(c, i, user, queue_names)
        if user.name in names:
            first = names[user.name]
            c.add(
                ("users", i, "name"),
                f"users[{i}].name: duplicate user name {user.name!r} "
                f"(first at line {c.line_of(('users', first, 'name'))})",
            )
        else:
            names[user.name] = i
        if user.extension is None:
            continue
        epath = ("users", i, "extension")
        if extensions is not None and user.extension not in extensions:
            c.add(
                epath,
                f"users[{i}].extension: {user.extension} is not an extension on the board "
                f"(extensions: {number_ranges(extensions)})",
            )
        elif user.extension in owners:
            other = users[owners[user.extension]]
            c.add(
                epath,
                f"users[{i}].extension: duplicate extension number {user.extension}: user "
                f"{other.name if other else '?'!r} already has it "
                f"(line {c.line_of(('users', owners[user.extension], 'extension'))})",
            )
        else:
            owners[user.extension] = i


# -- ACD: queues and agents ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _AcdContext:
    """What the ``queues:`` and ``agents:`` checks hold the ACD against (None = not known,
    because that part of the file has problems of its own, already reported)."""

    queue_names: set[str] | None
    extensions: tuple[int, ...] | None
    flows_dir: Path | None
    prompts_dir: Path | None
    source: Path
    #: The mailboxes a ``voicemail:<box>`` target may name (:func:`_mailbox_names`).
    mailboxes: Mapping[str, Mailbox] = field(default_factory=lambda: MappingProxyType({}))


def _queue_names(raw: Any) -> set[str] | None:
    """The queue names the file defines, even those whose body has errors, so that a
    route or an agent naming one is not blamed a second time; None when ``queues`` is
    not a mapping."""
    return {k for k in raw if isinstance(k, str)} if isinstance(raw, dict) else None


def _missing_prompt(prompts_dir: Path, name: str) -> str:
    """Why prompt ``name`` has no file under ``prompts_dir``: what was looked for, and a
    did-you-mean from the folder it would be in."""
    # Imported here, as prompt_path does: the media plane is not needed to parse a file.
    from switchd.lines.prompts import AUDIO_SUFFIXES

    base = prompts_dir / name
    if PurePosixPath(name).suffix.lower() in AUDIO_SUFFIXES:
        looked = f"{base} does not exist"
    else:
        looked = f"{base}.wav does not exist (nor {', '.join(PROMPT_SUFFIXES[1:])})"
    folder = base.parent
    if not folder.is_dir():
        return f"{looked}: the folder {folder} does not exist"
    stems = sorted({p.stem for p in folder.iterdir() if p.is_file()})
    close = difflib.get_close_matches(PurePosixPath(name).name, stems, n=1)
    prefix = str(PurePosixPath(name).parent)
    prefix = "" if prefix == "." else prefix + "/"
    return looked + (f"; did you mean {prefix + close[0]!r}?" if close else "")


def _queue_prompts(c: ProblemCollector, path: YamlPath, raw: Any, names: tuple[str, ...],
                   prompts_dir: Path | None) -> tuple[Path, ...]:
    """The files of the prompts ``names`` (given at ``path`` as ``raw``: one name or a
    list), each missing one reported at its name."""
    if prompts_dir is None:
        return ()
    files: list[Path] = []
    for i, name in enumerate(names):
        at = (*path, i) if isinstance(raw, list) else path
        found = prompt_path(prompts_dir, name)
        if found is None:
            c.add(at, f"{dotted(at)}: prompt {name!r}: {_missing_prompt(prompts_dir, name)}")
        else:
            files.append(found)
    return tuple(files)


def _position_files(c: ProblemCollector, path: YamlPath, language: str,
                    prompts_dir: Path | None, what: str = "position",
                    count: int = 0) -> tuple[tuple[Path, ...], ...]:
    """What a caller at position 1..20 hears: ``<lang>/queue_position_before``, the
    position said as a number (the ``say`` fragments the IVR plays), then
    ``<lang>/queue_position_after``; with ``what="wait"``, the estimated wait of 1..30
    minutes from ``<lang>/queue_wait_before`` / ``_after``. Every prompt that is missing
    is named, once, at ``path`` (the key that asks for them)."""
    if prompts_dir is None:
        return ()
    before, after = f"{language}/queue_{what}_before", f"{language}/queue_{what}_after"
    found: dict[str, Path | None] = {}
    out: list[tuple[Path, ...]] = []
    for position in range(1, (count or _ANNOUNCED_POSITIONS) + 1):
        names = [before, *say.fragments("number", str(position), language), after]
        for name in names:
            if name not in found:
                found[name] = prompt_path(prompts_dir, name)
        out.append(tuple(f for f in (found[n] for n in names) if f is not None))
    missing = [name for name, file in found.items() if file is None]
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6
                                          else "")
        off = "null" if what == "position" else "false"
        c.add(path, f"{dotted(path)}: announcing the {what} needs {len(missing)} prompt(s) "
              f"that are not in {prompts_dir}: {shown} (set it to {off} for no announcement)")
        return ()
    return tuple(out)


def _queue_target(c: ProblemCollector, path: YamlPath, text: str, ctx: _AcdContext,
                  queue: str) -> Target | None:
    """Check a queue's ``overflow`` or ``exit_to`` target: a kind a queue may send a
    caller to (:data:`OVERFLOW_KINDS`) that exists, and not the queue itself."""
    where = dotted(path)
    kind = text.strip().partition(":")[0]
    if kind not in {k.value for k in OVERFLOW_KINDS}:
        c.add(path, f"{where}: {text!r} cannot take a caller out of a queue; use {_OVERFLOW_HELP}")
        return None
    try:
        target = Target.parse(text)
    except ValueError as exc:
        c.add(path, f"{where}: {exc}")
        return None
    if target.kind is TargetKind.QUEUE and target.value == queue:
        c.add(path, f"{where}: queue {queue!r} cannot send its callers to itself; name another "
              f"queue, a flow, an extension or a mailbox ({_OVERFLOW_HELP}), or null")
        return None
    missing = missing_target(target, ctx.extensions, None, queues=ctx.queue_names)
    if missing is None and target.kind is TargetKind.FLOW:
        missing = _flow_problem(target.value or "", ctx.flows_dir, ctx.source)
    if missing is None and target.kind is TargetKind.VOICEMAIL:
        missing = missing_mailbox(target.value or "", ctx.mailboxes)
    if missing is not None:
        c.add(path, f"{where}: {missing}")
        return None
    return target


def _check_penalty_rules(c: ProblemCollector, path: YamlPath,
                         rules: list[_RawPenaltyRule]) -> tuple[PenaltyRule, ...]:
    out: list[PenaltyRule] = []
    for i, rule in enumerate(rules):
        rpath = (*path, i)
        hi = _MAX_PENALTY if rule.max_penalty is None else rule.max_penalty
        if rule.min_penalty > hi:
            c.add((*rpath, "min_penalty"),
                  f"{dotted(rpath)}: min_penalty {rule.min_penalty} is above max_penalty {hi}; "
                  "the rule would match no agent (min_penalty <= max_penalty)")
        if out and rule.after_s <= out[-1].after_s:
            prev = dotted((*path, i - 1))
            c.add((*rpath, "after_s"),
                  f"{dotted((*rpath, 'after_s'))}: penalty rules must be sorted by after_s, "
                  f"each later than the one before: {rule.after_s:g} s is not after the "
                  f"{out[-1].after_s:g} s of {prev} (line {c.line_of((*path, i - 1))})")
        out.append(PenaltyRule(float(rule.after_s), rule.min_penalty, hi))
    return tuple(out)


def _check_queue(c: ProblemCollector, name: str, body: dict[Any, Any], q: _RawQueue,
                 ctx: _AcdContext, removed: frozenset[str] = frozenset()) -> QueueSettings:
    """The checks of one queue beyond its fields' own. ``removed``: keys that were
    invalid themselves (reported already): checks pairing a key with one of them are
    skipped, so one mistake is not reported twice."""
    path: YamlPath = ("queues", name)
    overflow = exit_to = None
    if q.overflow is not None:
        overflow = _queue_target(c, (*path, "overflow"), q.overflow, ctx, name)
    if q.exit_to is not None:
        exit_to = _queue_target(c, (*path, "exit_to"), q.exit_to, ctx, name)
    # A key without a place to go, or a place no key leads to, is half a setting.
    if q.exit_to is not None and q.exit_key is None and "exit_key" not in removed:
        c.add((*path, "exit_to"), f"{dotted((*path, 'exit_to'))}: set exit_key too: the key "
              'a caller presses to leave the queue, e.g. exit_key: "0"')
    if q.exit_key is not None and q.exit_to is None and "exit_to" not in removed:
        c.add((*path, "exit_key"), f"{dotted((*path, 'exit_key'))}: set exit_to too: where a "
              f"caller who presses {q.exit_key!r} goes ({_OVERFLOW_HELP})")
    if q.periodic and q.periodic_every_s is None and "periodic_every_s" not in removed:
        c.add((*path, "periodic"), f"{dotted((*path, 'periodic'))}: set periodic_every_s too "
              "(the seconds between two periodic announcements), or the prompt never plays")
    if q.periodic_every_s is not None and not q.periodic and "periodic" not in removed:
        c.add((*path, "periodic_every_s"), f"{dotted((*path, 'periodic_every_s'))}: there is "
              "no periodic prompt to play; set periodic (a prompt name) or null")
    rules = _check_penalty_rules(c, (*path, "penalty_rules"), q.penalty_rules)
    greeting = _queue_prompts(c, (*path, "greeting"), body.get("greeting"), q.greeting,
                              ctx.prompts_dir)
    periodic = _queue_prompts(c, (*path, "periodic"), body.get("periodic"), q.periodic,
                              ctx.prompts_dir)
    callback = None
    if q.callback is not None:
        cpath = (*path, "callback")
        cbody = body.get("callback") if isinstance(body.get("callback"), dict) else {}
        if q.callback.key == q.exit_key:
            c.add((*cpath, "key"), f"{dotted((*cpath, 'key'))}: {q.callback.key!r} is the "
                  "queue's exit_key too; give the callback its own key")
        callback = CallbackSettings(
            key=q.callback.key,
            confirm=_queue_prompts(c, (*cpath, "confirm"), cbody.get("confirm"),
                                   q.callback.confirm, ctx.prompts_dir),
            done=_queue_prompts(c, (*cpath, "done"), cbody.get("done"), q.callback.done,
                                ctx.prompts_dir),
            confirm_timeout_s=float(q.callback.confirm_timeout_s),
            goodbye_s=float(q.callback.goodbye_s), retries=q.callback.retries,
            retry_after_s=float(q.callback.retry_after_s),
            ring_timeout_s=float(q.callback.ring_timeout_s))
    positions: tuple[tuple[Path, ...], ...] = ()
    if q.announce_position_every_s is not None and "language" not in removed:
        positions = _position_files(c, (*path, "announce_position_every_s"), q.language,
                                    ctx.prompts_dir)
    waits: tuple[tuple[Path, ...], ...] = ()
    if q.announce_wait and "language" not in removed:
        if q.announce_position_every_s is None:
            # (Unless it was given but is invalid itself: reported already.)
            if "announce_position_every_s" not in removed:
                c.add((*path, "announce_wait"), f"{dotted((*path, 'announce_wait'))}: the "
                      "estimated wait is said with the position; set "
                      "announce_position_every_s")
        else:
            waits = _position_files(c, (*path, "announce_wait"), q.language, ctx.prompts_dir,
                                    "wait", _ANNOUNCED_WAIT_MINUTES)
    return QueueSettings(
        name=name,
        strategy=QueueStrategy(q.strategy),
        ring_timeout_s=float(q.ring_timeout_s),
        wrapup_s=float(q.wrapup_s),
        max_wait_s=None if q.max_wait_s is None else float(q.max_wait_s),
        max_len=q.max_len,
        overflow=overflow,
        join_empty=q.join_empty,
        leave_empty=q.leave_empty,
        vip_priority=q.vip_priority,
        sticky_wait_s=float(q.sticky_wait_s),
        rona_after=q.rona_after,
        service_level_s=float(q.service_level_s),
        penalty_rules=rules,
        music=q.music,
        greeting=greeting,
        announce_position_every_s=(
            None if q.announce_position_every_s is None else float(q.announce_position_every_s)
        ),
        position_files=positions,
        wait_files=waits,
        periodic=periodic,
        periodic_every_s=None if q.periodic_every_s is None else float(q.periodic_every_s),
        exit_key=q.exit_key,
        exit_to=exit_to,
        callback=callback,
    )


def _check_queues(c: ProblemCollector, raw: Any, ctx: _AcdContext) -> dict[str, QueueSettings]:
    queues: dict[str, QueueSettings] = {}
    if not isinstance(raw, dict):
        c.add(("queues",),
              f"queues: expected a mapping of queue name to queue, got {describe(raw)}")
        return queues
    for name, body in raw.items():
        path = ("queues", name)
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            c.add(path, f"queue name {name!r} is not valid; use 1-64 letters, digits, '.', '_', "
                  "'-' or '@'", key=True)
            continue
        # `sales:` with every line below commented out is a queue with the defaults.
        body = {} if body is None else body
        q = c.validate(_RawQueue, body, path)
        if q is not None:
            queues[name] = _check_queue(c, name, body, q, ctx)
        elif isinstance(body, dict):
            # Report every problem at once: the queue's other keys are checked too, as
            # if the invalid ones (reported above) were not there.
            partial = _without_invalid(_RawQueue, body)
            if partial is not None:
                rest, removed = partial
                _check_queue(c, name, rest, _RawQueue.model_validate(rest), ctx, removed)
    return queues


def _without_invalid(model: type[_Raw], body: dict[Any, Any]
                     ) -> tuple[dict[Any, Any], frozenset[str]] | None:
    """``body`` without the top-level keys ``model`` finds invalid, and those keys; None
    when the rest is still invalid (a problem not tied to one key)."""
    try:
        model.model_validate(body)
    except ValidationError as exc:
        bad = frozenset(str(e["loc"][0]) for e in exc.errors() if e["loc"])
    else:
        return body, frozenset()
    rest = {k: v for k, v in body.items() if str(k) not in bad}
    try:
        model.model_validate(rest)
    except ValidationError:
        return None
    return rest, bad


def _check_agents(c: ProblemCollector, raw: Any, ctx: _AcdContext) -> list[AgentSettings]:
    agents: list[AgentSettings] = []
    ids: dict[str, int] = {}
    seats: dict[int, tuple[int, str]] = {}  # extension -> (index, id) of the agent there
    known = None if ctx.queue_names is None else sorted(ctx.queue_names)
    for i, a in enumerate(_items(c, raw, ("agents",), _RawAgent)):
        if a is None:
            continue
        path = ("agents", i)
        if a.id in ids:
            c.add((*path, "id"), f"agents[{i}].id: duplicate agent id {a.id!r} (first at line "
                  f"{c.line_of(('agents', ids[a.id], 'id'))})")
        else:
            ids[a.id] = i
        if a.extension is not None:
            epath = (*path, "extension")
            if ctx.extensions is not None and a.extension not in ctx.extensions:
                c.add(epath, f"agents[{i}].extension: {a.extension} is not an extension on the "
                      f"board (extensions: {number_ranges(ctx.extensions)})")
            elif a.extension in seats:
                j, other = seats[a.extension]
                c.add(epath, f"agents[{i}].extension: extension {a.extension} already has agent "
                      f"{other!r} (line {c.line_of(('agents', j, 'extension'))}); one agent "
                      "per extension")
            else:
                seats[a.extension] = (i, a.id)
        elif a.login:
            c.add((*path, "login"), f"agents[{i}].login: an agent logged in at start needs an "
                  "extension (the phone its calls ring); set extension or login: false")
        for queue in a.queues:
            if known is None or queue in known:
                continue
            close = difflib.get_close_matches(queue, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            listing = ", ".join(known) if known else "none are defined"
            c.add((*path, "queues", queue), f"agents[{i}].queues: no queue {queue!r}{hint} "
                  f"(queues: {listing})", key=True)
        agents.append(AgentSettings(
            agent_id=a.id,
            name=a.name,
            extension=a.extension,
            seat=SeatClass(a.seat),
            queues=MappingProxyType(dict(a.queues)),
            wrapup_s=None if a.wrapup_s is None else float(a.wrapup_s),
            weight=float(a.weight),
            login=a.login,
        ))
    return agents


def _resolve_state_dir(value: str, source: Path) -> Path:
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = source.parent / path
    return Path(os.path.abspath(path))


def _lenient_board(data: Any) -> _RawBoard | None:
    """The board with unknown keys dropped, if the rest is valid; None otherwise.

    Used only for cross-section checks after ``board`` itself was reported.
    """
    if not isinstance(data, dict):
        return None
    known = {k: v for k, v in data.items() if k in _RawBoard.model_fields}
    try:
        return _RawBoard.model_validate(known)
    except ValidationError:
        return None


def _check_speech_file(c: ProblemCollector, value: str, source: Path) -> Path:
    """Resolve ``sim.audio.speech_file`` and make sure it loads; the resolved path.

    Why load it here: a file the operator named explicitly that cannot be played
    is a mistake in the config, so `switchd check` (and run, and reload) report it
    at the key, with the file and the reason, instead of the daemon quietly
    falling back to the test tone.
    """
    # Imported here: most configs name no speech file, and check should stay quick.
    from switchd.lines.prompts import PromptError, load_prompt

    path = _resolve_state_dir(value, source)
    try:
        load_prompt(path)
    except PromptError as exc:
        c.add(("sim", "audio", "speech_file"), f"sim.audio.speech_file: {exc.path}: {exc.reason}")
    return path


# -- recording and voicemail -----------------------------------------------------


def _under_state(value: str | None, default: str, state_dir: Path, source: Path) -> Path:
    """A recorder directory: ``default`` under the state directory when not given; a
    relative value is taken relative to the config file's folder, like ``state_dir``."""
    return state_dir / default if value is None else _resolve_state_dir(value, source)


def _check_folders_apart(c: ProblemCollector, recordings: Path, voicemail: Path) -> None:
    """The recordings and the voicemail folders must not hold each other: start-up recovery
    and retention walk the recordings folder and would take messages for recordings."""
    if recordings == voicemail or recordings in voicemail.parents or voicemail in recordings.parents:
        path: YamlPath = (("recording", "path") if ("recording", "path") in c.doc.values
                          else ("voicemail", "path"))
        if path not in c.doc.values:
            path = ("state_dir",)
        c.add(path, f"{dotted(path)}: the recordings folder {recordings} and the voicemail "
              f"folder {voicemail} overlap; give them separate folders (recovery and retention "
              "would take voicemail messages for call recordings)")


def _mailbox_names(top: Mapping[Any, Any], queue_names: set[str] | None) -> dict[str, Mailbox]:
    """Every mailbox a ``voicemail:<box>`` target may name, read from the raw sections so
    that targets are checked before (and whatever the problems of) the sections that
    define the boxes: agent ids, queue names, ``voicemail.boxes``."""
    names: set[str] = set(queue_names or ())
    agents = top.get("agents")
    if isinstance(agents, list):
        names.update(a["id"] for a in agents if isinstance(a, dict) and isinstance(a.get("id"), str))
    vm = top.get("voicemail")
    boxes = vm.get("boxes") if isinstance(vm, dict) else None
    if isinstance(boxes, dict):
        names.update(k for k in boxes if isinstance(k, str))
    return {n: Mailbox(n) for n in names}


def _recording_settings(raw: _RawRecording, state_dir: Path, source: Path,
                        queues_data: Any, route_modes: list[RouteMode]) -> RecordingSettings:
    """The recorder's settings: the ``recording:`` section plus the ``record:`` override of
    each queue and route (already validated with their sections)."""
    queue_modes: dict[str, RecordMode] = {}
    if isinstance(queues_data, dict):
        for name, body in queues_data.items():
            mode = body.get("record") if isinstance(body, dict) else None
            if isinstance(name, str) and mode in {m.value for m in RecordMode}:
                queue_modes[name] = RecordMode(mode)
    r = raw.retention
    return RecordingSettings(
        mode=RecordMode(raw.mode), layout=RecordLayout(raw.channels),
        format=RecordFormat(raw.format),
        directory=_under_state(raw.path, "recordings", state_dir, source),
        internal=raw.internal, queue_modes=MappingProxyType(queue_modes),
        route_modes=tuple(route_modes), flush_s=float(raw.flush_s), buffer_s=float(raw.buffer_s),
        retention=RetentionSettings(days=r.days, max_mb=r.max_mb,
                                    check_every_s=float(r.check_every_s)),
    )


def _check_mailboxes(c: ProblemCollector, raw: _RawVoicemail, queues: Mapping[str, Any],
                     agents: Iterable[AgentSettings],
                     prompts_dir: Path | None) -> dict[str, Mailbox]:
    """Every mailbox: one per agent (named after its id, for ``agent:<id>``), one per queue
    (its name, for ``queue:<name>``), then the configured ``voicemail.boxes`` (which may
    also give an agent's or a queue's box its own greeting)."""
    boxes: dict[str, Mailbox] = {}
    for a in agents:
        boxes[a.agent_id] = Mailbox(a.agent_id, owner=f"agent:{a.agent_id}")
    for q in queues:
        boxes.setdefault(q, Mailbox(q, owner=f"queue:{q}"))
    agent_ids = {a.agent_id for a in agents}
    for name, body in raw.boxes.items():
        path: YamlPath = ("voicemail", "boxes", name)
        if not NAME_RE.fullmatch(name) or folder_problem(name) is not None:
            c.add(path, f"mailbox name {name!r} is not valid; use 1-64 letters, digits, '.', "
                  "'_', '-' or '@', with at least one letter or digit", key=True)
            continue
        box = body or _RawMailbox()
        owner = box.owner if box.owner is not None else (
            boxes[name].owner if name in boxes else None)
        if box.owner is not None:
            kind, _, value = box.owner.partition(":")
            known = agent_ids if kind == "agent" else set(queues) if kind == "queue" else None
            if known is None or value not in known:
                opath = (*path, "owner")
                what = ("agent ids: " + (", ".join(sorted(agent_ids)) or "none")
                        if kind == "agent" else "queues: " + (", ".join(sorted(queues)) or "none"))
                c.add(opath, f"{dotted(opath)}: {box.owner!r} is not agent:<id> or queue:<name> "
                      f"of this config ({what})")
        greeting = _queue_prompts(c, (*path, "greeting"), box.greeting, box.greeting,
                                  prompts_dir)
        boxes[name] = Mailbox(name, owner=owner, greeting=greeting)
    return boxes


def _voicemail_settings(c: ProblemCollector, raw: _RawVoicemail, state_dir: Path,
                        source: Path, boxes: Mapping[str, Mailbox],
                        prompts_dir: Path) -> VoicemailSettings:
    """The ``voicemail:`` section with every mailbox (:func:`_check_mailboxes`)."""
    greeting = _queue_prompts(c, ("voicemail", "greeting"), raw.greeting, raw.greeting,
                              prompts_dir)
    return VoicemailSettings(
        directory=_under_state(raw.path, "voicemail", state_dir, source),
        boxes=MappingProxyType(dict(boxes)), max_s=float(raw.max_s),
        silence_s=float(raw.silence_s), silence_dbm0=float(raw.silence_dbm0),
        min_s=float(raw.min_s), greeting=greeting, beep_hz=float(raw.beep_hz),
        beep_ms=raw.beep_ms,
    )


def _build(doc: LocatedDocument, source: Path) -> Config:
    c = ProblemCollector(doc, hints=_MISSING_HINTS)
    top = doc.data
    if top is None:
        top = {}
    if not isinstance(top, dict):
        c.add(
            (),
            f"the file must be a mapping of sections ({', '.join(_SECTIONS)}), "
            f"got {describe(top)}",
        )
        c.raise_if_any()

    for key in top:
        if key not in _SECTIONS:
            c.add((key,), unknown_key_message(key, (), _SECTIONS), key=True)

    board_data = _section(top, "board", dict)
    board = c.validate(_RawBoard, board_data, ("board",))
    dialplan_data = _section(top, "dialplan", dict)
    dialplan = c.validate(_RawDialplan, dialplan_data, ("dialplan",))
    cti_data = _section(top, "cti", dict)
    cti = c.validate(_RawCti, cti_data, ("cti",))
    log_data = _section(top, "log", dict)
    log = c.validate(_RawLog, log_data, ("log",))
    sim_data = _section(top, "sim", dict)
    sim = c.validate(_RawSim, sim_data, ("sim",))
    media_data = _section(top, "media", dict)
    media = c.validate(_RawMedia, media_data, ("media",))
    ivr_data = _section(top, "ivr", dict)
    ivr = c.validate(_RawIvr, ivr_data, ("ivr",))
    recording = c.validate(_RawRecording, _section(top, "recording", dict), ("recording",))
    voicemail_raw = c.validate(_RawVoicemail, _section(top, "voicemail", dict), ("voicemail",))
    flows_dir = _resolve_state_dir(ivr.flows_dir, source) if ivr is not None else None

    extensions: tuple[int, ...] | None = None
    names: dict[int, str] = {}
    if board is None:
        # Still check routes, groups and users against the board when the only
        # trouble in `board` is elsewhere (an unknown key): all problems at once.
        board_for_checks = _lenient_board(board_data)
        trunks_for_checks = board_for_checks.trunks if board_for_checks is not None else None
        if board_for_checks is not None:
            extensions, names = _check_board(ProblemCollector(doc), board_for_checks)
    else:
        trunks_for_checks = board.trunks
        extensions, names = _check_board(c, board)
    if board is not None and dialplan is not None and extensions is not None:
        _check_prefix(c, dialplan.outside_prefix, extensions, board)

    sip_settings: SipSettings | None = None
    sip_data = _section(top, "sip", dict)
    driver = board.driver if board is not None else None
    if driver == "sip" or "sip" in top:
        # Checked on the simulated board too, so `switchd check` finds its mistakes before
        # the driver is switched; used only with board.driver: sip.
        # Its references to the board (extensions, the trunk count) only hold with sip.
        given = isinstance(board_data, dict) and "trunks" in board_data
        on_sip = driver == "sip"
        checked, sip_lines = check_sip(c, sip_data, extensions=extensions if on_sip else None,
                                       trunks=trunks_for_checks, trunks_given=given and on_sip)
        if driver == "sip":
            sip_settings = checked
            if sip_lines is not None:
                trunks_for_checks = sip_lines

    groups_data = _section(top, "ring_groups", dict)
    groups = _check_groups(c, groups_data, extensions)
    # Names that exist even if their body has errors, so a route to them is not
    # reported a second time as "no such group".
    group_names = (
        {k for k in groups_data if isinstance(k, str)} if isinstance(groups_data, dict) else None
    )

    queues_data = _section(top, "queues", dict)
    queue_names = _queue_names(queues_data)
    prompts_dir = _resolve_state_dir(media.prompts_dir, source) if media is not None else None
    box_names = _mailbox_names(top, queue_names)
    acd = _AcdContext(queue_names=queue_names, extensions=extensions,
                      flows_dir=flows_dir, prompts_dir=prompts_dir, source=source,
                      mailboxes=box_names)
    queues = _check_queues(c, queues_data, acd)
    agents = _check_agents(c, _section(top, "agents", list), acd)

    routes_data = _section(top, "routes", list)
    routes: list[Route] = []
    route_modes: list[RouteMode] = []
    for i, raw_route in enumerate(_items(c, routes_data, ("routes",), _RawRoute)):
        if raw_route is None:
            continue
        target = _check_route(c, i, raw_route, trunks_for_checks, extensions, group_names,
                              flows_dir, source, queue_names, box_names)
        if target is not None:
            routes.append(Route(target, dnis=raw_route.dnis, trunk=raw_route.trunk))
        # One entry per route, so the first match is the route that routed the call (a
        # route without `record` keeps recording.mode: mode None).
        route_modes.append(RouteMode(None if raw_route.record is None
                                     else RecordMode(raw_route.record),
                                     dnis=raw_route.dnis, trunk=raw_route.trunk))
    vm_boxes = (_check_mailboxes(c, voicemail_raw, queues, agents, prompts_dir)
                if voicemail_raw is not None else {})

    users_data = _section(top, "users", list)
    raw_users = _items(c, users_data, ("users",), _RawUser)
    _check_users(c, raw_users, extensions, queue_names)

    state_value = _section(top, "state_dir", lambda: _STATE_DIR_DEFAULT)
    if not isinstance(state_value, str) or not state_value.strip():
        c.add(
            ("state_dir",),
            f"state_dir: expected a directory path, got {describe(state_value)}",
        )

    speech_file: Path | None = None
    if sim is not None and sim.audio.speech_file is not None:
        speech_file = _check_speech_file(c, sim.audio.speech_file, source)

    recording_settings: RecordingSettings | None = None
    voicemail_settings: VoicemailSettings | None = None
    if isinstance(state_value, str) and state_value.strip():
        state_dir = _resolve_state_dir(state_value, source)
        if recording is not None:
            recording_settings = _recording_settings(recording, state_dir, source, queues_data,
                                                     route_modes)
        if voicemail_raw is not None and prompts_dir is not None:
            voicemail_settings = _voicemail_settings(c, voicemail_raw, state_dir, source,
                                                     vm_boxes, prompts_dir)
        if recording_settings is not None and voicemail_settings is not None:
            _check_folders_apart(c, recording_settings.directory, voicemail_settings.directory)

    c.raise_if_any()
    assert board is not None and dialplan is not None and cti is not None
    assert log is not None and sim is not None and extensions is not None
    assert media is not None and flows_dir is not None and prompts_dir is not None
    assert recording_settings is not None and voicemail_settings is not None

    host, port = parse_listen(cti.listen)
    ring_groups: Mapping[str, RingGroup] = MappingProxyType({
        name: RingGroup(
            name=name,
            strategy=RingStrategy(g.strategy),
            members=tuple(g.members),
            ring_timeout_s=None if g.ring_timeout_s is None else float(g.ring_timeout_s),
        )
        for name, g in groups.items()
    })
    return Config(
        board=BoardConfig(
            driver=board.driver,
            trunks=trunks_for_checks if sip_settings is not None and sip_settings.trunks
            else board.trunks,
            extension_numbers=extensions,
            extension_names=MappingProxyType(names),
            first_extension=board.first_extension,
            tone_plan=board.tone_plan,
        ),
        dialplan=DialplanConfig(
            outside_prefix=dialplan.outside_prefix,
            ring_timeout_s=float(dialplan.ring_timeout_s),
            tone_timeout_s=float(dialplan.tone_timeout_s),
        ),
        ring_groups=ring_groups,
        routes=tuple(routes),
        # Ring groups are queues with no waiting: the ACD rings them.
        acd=AcdSettings(queues=MappingProxyType(queues), agents=tuple(agents),
                        groups=ring_groups, ring_timeout_s=float(dialplan.ring_timeout_s)),
        users=tuple(
            UserConfig(name=u.name, role=u.role, secret=u.secret, extension=u.extension,
                       queues=None if u.queues is None else tuple(u.queues))
            for u in raw_users
            if u is not None
        ),
        cti=CtiConfig(
            listen=cti.listen,
            host=host,
            port=port,
            max_line_bytes=cti.max_line_bytes,
            outbound_queue=cti.outbound_queue,
        ),
        log=LogConfig(format=log.format, level=log.level),
        state_dir=state_dir,
        sim=SimConfig(
            bots=BotConfig(
                mode=sim.bots.mode,
                answer_after_s=float(sim.bots.answer_after_s),
                talk_s=(float(sim.bots.talk_s[0]), float(sim.bots.talk_s[1])),
            ),
            traffic=TrafficConfig(
                enabled=sim.traffic.enabled,
                calls_per_minute=float(sim.traffic.calls_per_minute),
                dnis=sim.traffic.dnis,
                seed=sim.traffic.seed,
                keys=tuple(tuple(script) for script in sim.traffic.keys),
                first_key_after_s=float(sim.traffic.first_key_after_s),
                key_gap_s=float(sim.traffic.key_gap_s),
            ),
            outside=OutsideConfig(
                answer_after_s=float(sim.outside.answer_after_s),
                talk_s=(float(sim.outside.talk_s[0]), float(sim.outside.talk_s[1])),
                busy_numbers=frozenset(sim.outside.busy_numbers),
                unanswered_numbers=frozenset(sim.outside.unanswered_numbers),
            ),
            caller_hangup_after_tone_s=float(sim.caller_hangup_after_tone_s),
            caller_talk_s=(float(sim.caller_talk_s[0]), float(sim.caller_talk_s[1])),
            caller_patience_s=float(sim.caller_patience_s),
            audio=SimAudioConfig(
                callers=sim.audio.callers,
                agents=sim.audio.agents,
                tone_hz=float(sim.audio.tone_hz),
                tone_dbm0=float(sim.audio.tone_dbm0),
                speech_file=speech_file,
            ),
        ),
        media=MediaConfig(
            prompts_dir=prompts_dir,
            moh_dir=None if media.moh_dir is None else _resolve_state_dir(media.moh_dir, source),
            prompt_cache_mb=media.prompt_cache_mb,
        ),
        ivr=IvrConfig(flows_dir=flows_dir),
        recording=recording_settings,
        voicemail=voicemail_settings,
        sip=sip_settings,
        source=source,
        marks=MappingProxyType(dict(doc.values)),
    )


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def parse_config(text: str, source: Path) -> Config:
    """Validate config ``text`` as if read from ``source``.

    ``source`` appears (as given) in every message and anchors a relative
    ``state_dir``; the file need not exist. Raises ConfigError listing every
    problem as ``FILE:LINE:COL: message`` in file order.
    """
    source = Path(source)
    return _build(compose_located(text, str(source)), source)


def load_config(path: str | Path) -> Config:
    """Read and validate the config file at ``path``.

    Messages name the file exactly as ``path`` was given. Raises ConfigError
    with every problem at once; an unreadable file or text that is not UTF-8 is
    one problem.
    """
    shown = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError([f"{shown}: cannot read the config file: {exc.strerror or exc}"]) from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            [f"{shown}:{line}:{col}: the file is not UTF-8 text (byte {raw[exc.start]:#04x})"]
        ) from exc
    return _build(compose_located(text, shown), Path(path))


def default_config() -> Config:
    """The configuration an empty ``config.yaml`` in the current directory gives.

    No users (nobody can log in to CTI) and no routes (every inbound call is
    unrouted); useful for tests and as the base for ``switchd check`` output.
    """
    return parse_config("", Path("config.yaml"))


def config_summary(cfg: Config) -> str:
    """One line for ``switchd check`` and the startup log.

    e.g. ``config.yaml: ok — 8 trunks, 8 extensions (201-208), 3 routes,
    1 ring group, 2 queues, 8 agents, 11 users, cti 127.0.0.1:7070``.
    """

    def count(n: int, word: str) -> str:
        return f"{n} {word}" if n == 1 else f"{n} {word}s"

    exts = cfg.board.extension_numbers
    return (
        f"{cfg.source}: ok — {count(cfg.board.trunks, 'trunk')}, "
        f"{count(len(exts), 'extension')} ({number_ranges(exts)}), "
        f"{count(len(cfg.routes), 'route')}, {count(len(cfg.ring_groups), 'ring group')}, "
        f"{count(len(cfg.acd.queues), 'queue')}, {count(len(cfg.acd.agents), 'agent')}, "
        f"{count(len(cfg.users), 'user')}, cti {cfg.cti.listen}"
    )


def demo_secret_users(cfg: Config) -> tuple[str, ...]:
    """Names of users whose secret is one of the shipped demo secrets, in file order.

    Costs one PBKDF2 run per user and demo secret (~0.3 s each at 600 000
    iterations) on first use, so it is not part of :func:`load_config`;
    :func:`demo_secret_problem` calls it only for a non-loopback address.
    """
    return tuple(u.name for u in cfg.users if uses_demo_secret(u.secret))


def demo_secret_problem(cfg: Config, host: str) -> str | None:
    """Why ``cfg`` must not serve the control socket on ``host``, or None when it may.

    ``host`` is the address actually listened on: ``cti.host``, or the host of
    ``switchd run --cti-listen``. The shipped demo users' secrets are public, so
    they are allowed only on a loopback address (:func:`is_loopback`). The
    returned sentence is the one refusal message of `switchd check`, `switchd run`
    and reload: it names the config file, the users and the address, and says
    how to fix it. Costs PBKDF2 runs only when ``host`` is not loopback (see
    :func:`demo_secret_users`). The SIP board's demo phone passwords follow the same
    rule for ``sip.listen`` (:func:`switchd.sipconfig.sip_demo_problem`). Never raises.
    """
    if cfg.sip is not None:
        from switchd.sipconfig import sip_demo_problem
        sip = sip_demo_problem(cfg.sip)
        if sip is not None:
            return f"{cfg.source}: {sip}"
    if is_loopback(host):
        return None
    users = demo_secret_users(cfg)
    if not users:
        return None
    shown = f"[{host}]" if ":" in host else host
    return (
        f"{cfg.source}: users {', '.join(users)} still have the demo secrets of the shipped "
        f"config.yaml, and the control socket would listen on {shown}, which is not a "
        "loopback address, so anyone who can reach it could log in with them; set real "
        "secrets with `switchd passwd` or listen on 127.0.0.1"
    )


def _where(cfg: Config, path: YamlPath) -> tuple[tuple[int, int], str]:
    """(sort key, ``FILE:LINE:COL``) of the value at ``path`` when the file sets it, else ``FILE``.

    Warnings about keys the file does not set (defaults) sort after the others.
    """
    mark = cfg.marks.get(path)
    if mark is None:
        return (1 << 30, 0), str(cfg.source)
    return (mark.line, mark.column), f"{cfg.source}:{mark}"


def config_warnings(cfg: Config, *, cache: PromptCache | None = None) -> list[str]:
    """What in ``cfg`` will not work as the operator probably expects, though switchd can run.

    One line per finding, ``FILE[:LINE:COL]: warning: key: what and what to do``
    (the position when the file sets the key), in file order; findings about keys
    left at their default come last. The same lines are printed by
    `switchd check` and logged by `switchd run` (``config_warning``), so the two
    never disagree:

    - ``media.prompts_dir`` is not an existing folder;
    - ``media.moh_dir`` is set but is not an existing folder, or one of its audio
      files cannot be played (each file named with the reason; it is skipped);
    - a user with role ``agent`` has no ``extension``;
    - a queue no agent has in its ``queues`` (nobody is offered its callers);
    - queues overflowing into each other in a loop (a caller may wait for ever).

    Reads the disk: it lists the folders and decodes every music-on-hold file
    (through ``cache`` when given, so a daemon that preloads music on hold with
    the same cache decodes each file once). Run it off the event loop
    (``asyncio.to_thread``). Never raises for what it finds.
    """
    # Imported here so that importing the config schema does not import the media
    # plane (numpy, pydub) for callers that only parse a file.
    from switchd.lines.prompts import MusicOnHold, PromptCache

    found: list[tuple[tuple[int, int], str]] = []

    def warn(path: YamlPath, message: str) -> None:
        key, where = _where(cfg, path)
        found.append((key, f"{where}: warning: {message}"))

    media = cfg.media
    if not media.prompts_dir.is_dir():
        what = "is not a folder" if media.prompts_dir.exists() else "does not exist"
        warn(("media", "prompts_dir"),
             f"media.prompts_dir: the folder {media.prompts_dir} {what}, so no prompt can be "
             "found there; copy the prompts folder next to the config file or set "
             "media.prompts_dir to where it is")
    if media.moh_dir is not None:
        moh = MusicOnHold(media.moh_dir, cache if cache is not None else PromptCache())
        for path, reason in moh.preload():
            skipped = "" if path == media.moh_dir else "; the file is skipped"
            warn(("media", "moh_dir"), f"media.moh_dir: {path}: {reason}{skipped}")
    for i, user in enumerate(cfg.users):
        if user.role == "agent" and user.extension is None:
            warn(("users", i),
                 f"users[{i}]: agent {user.name!r} has no extension, so no call can be offered "
                 f"to them and they can answer none; set users[{i}].extension to the number of "
                 "their phone")
    staffed = {queue for agent in cfg.acd.agents for queue in agent.queues}
    for name in cfg.acd.queues:
        if name not in staffed:
            warn(("queues", name),
                 f"queues.{name}: no agent has this queue in its queues, so no agent is "
                 "offered its callers; add it to the queues of the agents who answer them")
    for name in cfg.acd.queues:
        loop = _overflow_loop(cfg, name)
        if loop is not None:
            warn(("queues", name, "overflow"),
                 f"queues.{name}.overflow: callers who wait too long go round "
                 f"{' -> '.join(loop)}, each queue starting their max_wait_s again, so a caller "
                 "may wait for ever; end the chain (a flow, an extension, or null)")
    # In file order, like the problems of load_config (a stable sort keeps one key's
    # warnings, e.g. several music files, in the order they were found).
    return [text for _, text in sorted(found, key=lambda item: item[0])]


def _overflow_loop(cfg: Config, start: str) -> list[str] | None:
    """The queues a caller goes round by overflow from ``start`` back to it, or None
    (reported once per loop: by the loop's first queue in config order)."""
    seen = [start]
    name = start
    while True:
        q = cfg.acd.queues.get(name)
        target = q.overflow if q is not None and q.max_wait_s is not None else None
        if target is None or target.kind is not TargetKind.QUEUE or target.value is None:
            return None
        name = target.value
        if name == start:
            order = list(cfg.acd.queues)
            return seen + [start] if min(seen, key=order.index) == start else None
        if name in seen:
            return None
        seen.append(name)
