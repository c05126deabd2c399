"""Typed configuration for switchd, loaded from YAML with exact FILE:LINE:COL errors.

Why this shape: the file is read with :mod:`switchd.yamlloc` (which keeps the
line and column of every key and value), checked by pydantic v2 models with
unknown keys forbidden and strict types (so *all* shape errors are found in one
pass, and ``"20"`` is not silently taken for ``20``), then checked across
sections (route targets exist, members are on the board, names are unique).
Every problem is reported at once as ``FILE:LINE:COL: message`` through
:class:`~switchd.exceptions.ConfigError`, sorted in file order, so an operator
fixes the whole file in one edit instead of one error per restart.

The result is a tree of frozen dataclasses (:class:`Config`); nothing outside
this module sees pydantic. Every key is optional except where the schema in
``config.yaml`` (the commented reference) says REQUIRED; an empty file is the
default configuration.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticCustomError

from switchd.exceptions import ConfigError
from switchd.passwords import is_hash, uses_demo_secret
from switchd.yamlloc import LocatedDocument, Problem, YamlPath, compose_located, format_problems

__all__ = [
    "BoardConfig",
    "BotConfig",
    "Config",
    "CtiConfig",
    "DialplanConfig",
    "LogConfig",
    "MediaConfig",
    "OutsideConfig",
    "RingGroupConfig",
    "RouteConfig",
    "SimAudioConfig",
    "SimConfig",
    "Target",
    "TrafficConfig",
    "UserConfig",
    "config_summary",
    "default_config",
    "demo_secret_users",
    "load_config",
    "parse_config",
    "parse_listen",
]

Driver: TypeAlias = Literal["sim"]
TonePlan: TypeAlias = Literal["cn", "us"]
Strategy: TypeAlias = Literal["ringall", "hunt"]
Role: TypeAlias = Literal["agent", "supervisor", "crm", "admin"]
TargetKind: TypeAlias = Literal["extension", "group", "busy"]
LogFormat: TypeAlias = Literal["auto", "json", "console"]
LogLevel: TypeAlias = Literal["debug", "info", "warning", "error"]
BotMode: TypeAlias = Literal["auto", "manual"]
SourceName: TypeAlias = Literal["silence", "tone", "speech"]

_TARGET_HELP = "extension:<number>, group:<name> or busy"


# --------------------------------------------------------------------------
# The validated configuration (what the rest of switchd sees)
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """Where a route sends an inbound call: ``extension:201``, ``group:sales`` or ``busy``.

    ``value`` is the extension number (as text) or group name; None for ``busy``.
    ``str(target)`` gives back the config spelling.
    """

    kind: TargetKind
    value: str | None = None

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}:{self.value}"

    @classmethod
    def parse(cls, text: str) -> Target:
        """Parse the config spelling of a target.

        Checks the grammar only, not that the extension or group exists (that
        needs the whole config). Raises ValueError with a message naming the
        accepted forms.
        """
        kind, sep, value = text.strip().partition(":")
        if kind == "busy":
            if sep:
                raise ValueError(f"'busy' takes no value, got {text!r}")
            return cls("busy")
        if kind == "extension":
            if not value.isdigit() or not value.isascii():
                raise ValueError(f"{text!r}: the extension must be a number, e.g. extension:201")
            return cls("extension", str(int(value)))
        if kind == "group":
            if not _NAME_RE.fullmatch(value):
                raise ValueError(f"{text!r}: expected a ring group name, e.g. group:sales")
            return cls("group", value)
        raise ValueError(f"unknown target kind {kind!r} in {text!r}; use {_TARGET_HELP}")


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
class RingGroupConfig:
    """A named set of extensions rung together (ringall) or one by one (hunt).

    ``ring_timeout_s`` (seconds) is the whole ring time for ringall and the time
    per member for hunt; None means ``dialplan.ring_timeout_s``.
    """

    name: str
    members: tuple[int, ...]
    strategy: Strategy = "ringall"
    ring_timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class RouteConfig:
    """An inbound route; first match wins. ``dnis``/``trunk`` None means "any"."""

    to: Target
    dnis: str | None = None
    trunk: int | None = None

    def matches(self, dnis: str, trunk: int) -> bool:
        """True when a call to ``dnis`` arriving on ``trunk`` takes this route."""
        return (self.dnis is None or self.dnis == dnis) and (
            self.trunk is None or self.trunk == trunk
        )


@dataclass(frozen=True, slots=True)
class UserConfig:
    """A CTI login. ``secret`` is a :func:`switchd.passwords.hash_secret` hash, never plain."""

    name: str
    role: Role
    secret: str
    extension: int | None = None


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

    @property
    def is_loopback(self) -> bool:
        """True when only this machine can connect (127.0.0.0/8, ::1 or localhost).

        Demo credentials are allowed only then (see :func:`demo_secret_users`).
        """
        if self.host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


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

    ``seed`` None means a different run each time.
    """

    enabled: bool = False
    calls_per_minute: float = 6.0
    dnis: str = "8000"
    seed: int | None = None


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

    ``tone_hz``/``tone_dbm0``: the test tone; ``speech_file``: a WAV of speech
    (absolute path, resolved against the config file), None = speech falls back to the tone.
    """

    callers: SourceName = "silence"
    agents: SourceName = "silence"
    tone_hz: float = 1000.0
    tone_dbm0: float = -20.0
    speech_file: Path | None = None


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything the simulated board needs. ``caller_hangup_after_tone_s`` in seconds."""

    bots: BotConfig = field(default_factory=BotConfig)
    traffic: TrafficConfig = field(default_factory=TrafficConfig)
    outside: OutsideConfig = field(default_factory=OutsideConfig)
    caller_hangup_after_tone_s: float = 2.0
    audio: SimAudioConfig = field(default_factory=SimAudioConfig)


@dataclass(frozen=True, slots=True)
class MediaConfig:
    """The media plane: where prompts and music on hold live (absolute paths), and the
    prompt cache bound in MiB."""

    prompts_dir: Path = field(default_factory=lambda: Path("prompts").absolute())
    moh_dir: Path | None = field(default_factory=lambda: Path("prompts/moh").absolute())
    prompt_cache_mb: int = 64


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated configuration.

    ``state_dir`` is absolute (a relative value in the file is taken relative to
    the config file's directory). ``source`` is the config path as given, for
    messages and reload.
    """

    board: BoardConfig = field(default_factory=BoardConfig)
    dialplan: DialplanConfig = field(default_factory=DialplanConfig)
    ring_groups: Mapping[str, RingGroupConfig] = field(default_factory=lambda: MappingProxyType({}))
    routes: tuple[RouteConfig, ...] = ()
    users: tuple[UserConfig, ...] = ()
    cti: CtiConfig = field(default_factory=CtiConfig)
    log: LogConfig = field(default_factory=LogConfig)
    state_dir: Path = field(default_factory=lambda: Path("state").absolute())
    sim: SimConfig = field(default_factory=SimConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    source: Path = Path("config.yaml")


# --------------------------------------------------------------------------
# Field rules shared by the raw schema
# --------------------------------------------------------------------------

_NAME_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


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
    if not _NAME_RE.fullmatch(value):
        raise _custom(
            f"{value!r} is not a valid name; use 1-64 letters, digits, '.', '_', '-' or '@'"
        )
    return value


def _check_range(value: list[float]) -> list[float]:
    if value[0] > value[1]:
        raise _custom(f"expected [min, max] with min <= max, got [{value[0]:g}, {value[1]:g}]")
    return value


Digits = Annotated[str, AfterValidator(_check_digits)]
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
SecondsRange = Annotated[
    list[Seconds], Field(min_length=2, max_length=2), AfterValidator(_check_range)
]


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


class _RawUser(_Raw):
    name: Annotated[str, AfterValidator(_check_name)]
    role: Role
    secret: Annotated[str, AfterValidator(_check_secret)]
    extension: Annotated[int, Field(ge=1)] | None = None


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


class _RawSim(_Raw):
    bots: _RawBots = Field(default_factory=_RawBots)
    traffic: _RawTraffic = Field(default_factory=_RawTraffic)
    outside: _RawOutside = Field(default_factory=_RawOutside)
    caller_hangup_after_tone_s: Seconds = 2.0
    audio: _RawSimAudio = Field(default_factory=_RawSimAudio)

    @field_validator("bots", "traffic", "outside", "audio", mode="before")
    @classmethod
    def _empty_section_means_defaults(cls, value: Any) -> Any:
        # `bots:` with every line below commented out parses as null.
        return {} if value is None else value


# Which model sits at each (normalised) path: for "unknown key" suggestions.
_MODEL_AT: dict[tuple[str, ...], type[BaseModel]] = {
    ("board",): _RawBoard,
    ("board", "extensions", "*"): _RawExtension,
    ("dialplan",): _RawDialplan,
    ("ring_groups", "*"): _RawGroup,
    ("routes", "*"): _RawRoute,
    ("users", "*"): _RawUser,
    ("cti",): _RawCti,
    ("log",): _RawLog,
    ("sim",): _RawSim,
    ("sim", "bots"): _RawBots,
    ("sim", "traffic"): _RawTraffic,
    ("sim", "outside"): _RawOutside,
    ("sim", "audio"): _RawSimAudio,
    ("media",): _RawMedia,
}
_SECTIONS = (
    "board",
    "dialplan",
    "ring_groups",
    "routes",
    "users",
    "cti",
    "log",
    "state_dir",
    "sim",
    "media",
)
_ADAPTERS: dict[type[BaseModel], TypeAdapter[Any]] = {
    model: TypeAdapter(model) for model in _MODEL_AT.values()
}
_STATE_DIR_DEFAULT = "state"

# Hints appended to "missing required key" messages.
_MISSING_HINTS = {
    "members": "list the extension numbers to ring, e.g. [201, 202]",
    "to": f"where to send the call: {_TARGET_HELP}",
    "name": "the login name",
    "role": "one of agent, supervisor, crm, admin",
    "secret": "run `switchd passwd` and paste the hash it prints",
    "number": "the extension number",
}
_EXPECTED = {
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
    "model_attributes_type": "a mapping of keys to values",
}
_YAML11_BOOLS = {"yes", "no", "on", "off", "y", "n"}
_COMPARE = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}


# --------------------------------------------------------------------------
# Turning pydantic errors into located messages
# --------------------------------------------------------------------------


def _dotted(path: YamlPath) -> str:
    """``("users", 2, "role")`` -> ``users[2].role``, as the user would navigate."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _describe(value: Any) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the text {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _normalise(path: YamlPath) -> tuple[str, ...]:
    """Path with list indices and ring-group names replaced by ``*``."""
    out: list[str] = []
    for i, part in enumerate(path):
        is_index = isinstance(part, int) and not isinstance(part, bool)
        group_name = i == 1 and path[0] == "ring_groups"
        out.append("*" if is_index or group_name else str(part))
    return tuple(out)


def _unknown_key(key: Any, parent: YamlPath, allowed: Iterable[str]) -> str:
    allowed = list(allowed)
    where = f"in {_dotted(parent)}" if parent else "at the top level"
    message = f"unknown key {key!r} {where}"
    close = difflib.get_close_matches(str(key), allowed, n=1)
    if not close:
        close = [a for a in allowed if a.lower() == str(key).lower()]
    if close:
        return f"{message}; did you mean {close[0]!r}?"
    return f"{message}; known keys: {', '.join(allowed)}"


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[YamlPath, bool]:
    """Map a pydantic ``loc`` onto a path through ``data``; True if it names a key.

    pydantic inserts union tags (``extensions -> list -> 0``) that are not in the
    data; they are skipped. The last element may be absent (a missing key).
    """
    path: list[Any] = []
    current = data
    for i, part in enumerate(loc):
        if part == "[key]":
            return tuple(path), True
        last = i == len(loc) - 1
        if isinstance(current, dict):
            if part in current:
                path.append(part)
                current = current[part]
            elif last:
                path.append(part)
        elif (
            isinstance(current, list)
            and isinstance(part, int)
            and not isinstance(part, bool)
            and 0 <= part < len(current)
        ):
            path.append(part)
            current = current[part]
    return tuple(path), False


def _message(error: Mapping[str, Any], path: YamlPath) -> tuple[str, bool]:
    """Human message for one pydantic error at ``path``; True if it points at the key."""
    kind = error["type"]
    name = _dotted(path)
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "missing":
        key, parent = path[-1], path[:-1]
        where = f"in {_dotted(parent)}" if parent else "at the top level"
        hint = _MISSING_HINTS.get(str(key))
        return f"missing required key {key!r} {where}" + (f" ({hint})" if hint else ""), False
    if kind == "extra_forbidden" or kind == "invalid_key":
        model = _MODEL_AT.get(_normalise(path[:-1]))
        allowed = list(model.model_fields) if model is not None else []
        return _unknown_key(path[-1], path[:-1], allowed), True
    secret = bool(path) and path[-1] == "secret"
    got = "a value that is not shown because it may be a password" if secret else _describe(value)
    if kind in _EXPECTED:
        text = f"{name}: expected {_EXPECTED[kind]}, got {got}"
        if kind == "bool_type" and isinstance(value, str) and value.lower() in _YAML11_BOOLS:
            text += "; only true and false are booleans in this file"
        elif kind == "string_type" and isinstance(value, int | float) and not secret:
            text += f'; put it in quotes, e.g. "{value}"'
        elif kind == "int_type" and isinstance(value, float):
            text += " with a fraction"
        return text, False
    if kind == "literal_error":
        return f"{name}: {got} is not allowed; use {ctx.get('expected', '?')}", False
    if kind in _COMPARE:
        key, words = _COMPARE[kind]
        return f"{name}: must be {words} {ctx.get(key)}, got {value!r}", False
    if kind == "too_short" or kind == "too_long":
        if path and path[-1] == "talk_s":
            return f"{name}: expected [min, max] (two numbers of seconds)", False
        if kind == "too_short":
            return f"{name}: needs at least {ctx.get('min_length')} item(s)", False
        return f"{name}: allows at most {ctx.get('max_length')} item(s)", False
    if kind == "finite_number":
        return f"{name}: must be a finite number, got {value!r}", False
    # Our own rules ("switchd" errors) and anything rarer: pydantic's sentence.
    return f"{name}: {error['msg']}", False


class _Collector:
    """Gathers problems against one located document."""

    def __init__(self, doc: LocatedDocument) -> None:
        self.doc = doc
        self.problems: list[Problem] = list(doc.problems)

    def add(self, path: YamlPath, message: str, *, key: bool = False) -> None:
        self.problems.append(Problem(self.doc.mark_for(path, key=key), message))

    def line_of(self, path: YamlPath) -> int:
        return self.doc.mark_for(path).line

    def validate(self, model: type[BaseModel], data: Any, base: YamlPath) -> Any:
        """Validate ``data`` (found at ``base``) as ``model``; None and problems on failure."""
        try:
            return _ADAPTERS[model].validate_python(data)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                rel, is_key = _data_path(data, tuple(error["loc"]))
                path = (*base, *rel)
                text, points_at_key = _message(error, path)
                self.add(path, text, key=is_key or points_at_key)
            return None


# --------------------------------------------------------------------------
# Section by section, then across sections
# --------------------------------------------------------------------------


def _ranges(numbers: Iterable[int]) -> str:
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


def _items(c: _Collector, value: Any, path: YamlPath, model: type[BaseModel]) -> list[Any]:
    """Validate each list entry on its own, so one bad entry hides no other check."""
    if not isinstance(value, list):
        c.add(path, f"{_dotted(path)}: expected a list, got {_describe(value)}")
        return []
    return [c.validate(model, item, (*path, i)) for i, item in enumerate(value)]


def _check_board(c: _Collector, raw: _RawBoard) -> tuple[tuple[int, ...], dict[int, str]]:
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
    c: _Collector, prefix: str, extensions: tuple[int, ...], board: _RawBoard
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
        f"{_ranges(clash)} start with it, so dialling them would look like an outside call; "
        "change the prefix or renumber the extensions",
    )


def _check_groups(
    c: _Collector, raw: Any, extensions: tuple[int, ...] | None
) -> dict[str, _RawGroup]:
    groups: dict[str, _RawGroup] = {}
    if not isinstance(raw, dict):
        c.add(
            ("ring_groups",),
            f"ring_groups: expected a mapping of group name to group, got {_describe(raw)}",
        )
        return groups
    for name, body in raw.items():
        path = ("ring_groups", name)
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
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
                c.add(mpath, f"{_dotted(mpath)}: extension {member} is listed twice")
            elif extensions is not None and member not in extensions:
                c.add(
                    mpath,
                    f"{_dotted(mpath)}: {member} is not an extension on the board "
                    f"(extensions: {_ranges(extensions)})",
                )
            seen.add(member)
    return groups


def _target_help(extensions: tuple[int, ...] | None, groups: Iterable[str] | None) -> str:
    ext = f"extension:<number> ({_ranges(extensions)})" if extensions else "extension:<number>"
    names = sorted(groups or ())
    grp = f"group:<name> ({', '.join(names)})" if names else "group:<name> (no groups defined)"
    return f"{ext}, {grp} or busy"


def _check_route(
    c: _Collector,
    i: int,
    route: _RawRoute,
    trunks: int | None,
    extensions: tuple[int, ...] | None,
    groups: set[str] | None,
) -> Target | None:
    path = ("routes", i)
    if route.trunk is not None and trunks is not None and route.trunk > trunks:
        c.add(
            (*path, "trunk"),
            f"routes[{i}].trunk: trunk {route.trunk} does not exist; the board has trunks 1-{trunks}",
        )
    tpath = (*path, "to")
    kind = route.to.strip().partition(":")[0]
    if kind not in ("extension", "group", "busy"):
        later = (
            " (queues and IVR flows cannot be routed to yet)" if kind in ("queue", "flow") else ""
        )
        c.add(
            tpath,
            f"routes[{i}].to: unknown target kind {kind!r} in {route.to!r}{later}; "
            f"use {_target_help(extensions, groups)}",
        )
        return None
    try:
        target = Target.parse(route.to)
    except ValueError as exc:
        c.add(tpath, f"routes[{i}].to: {exc}")
        return None
    if target.kind == "extension" and extensions is not None:
        if int(target.value or 0) not in extensions:
            c.add(
                tpath,
                f"routes[{i}].to: no extension {target.value} on the board; "
                f"extensions are {_ranges(extensions)}",
            )
    elif target.kind == "group" and groups is not None and target.value not in groups:
        close = difflib.get_close_matches(target.value or "", sorted(groups), n=1)
        hint = f"; did you mean 'group:{close[0]}'?" if close else ""
        known = ", ".join(sorted(groups)) if groups else "none are defined"
        c.add(
            tpath,
            f"routes[{i}].to: no ring group {target.value!r}{hint} (ring groups: {known})",
        )
    return target


def _check_users(
    c: _Collector, users: list[_RawUser | None], extensions: tuple[int, ...] | None
) -> None:
    names: dict[str, int] = {}
    owners: dict[int, int] = {}
    for i, user in enumerate(users):
        if user is None:
            continue
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
                f"(extensions: {_ranges(extensions)})",
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


def _build(doc: LocatedDocument, source: Path) -> Config:
    c = _Collector(doc)
    top = doc.data
    if top is None:
        top = {}
    if not isinstance(top, dict):
        c.add(
            (),
            f"the file must be a mapping of sections ({', '.join(_SECTIONS)}), "
            f"got {_describe(top)}",
        )
        raise ConfigError(format_problems(doc.source, c.problems))

    for key in top:
        if key not in _SECTIONS:
            c.add((key,), _unknown_key(key, (), _SECTIONS), key=True)

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

    extensions: tuple[int, ...] | None = None
    names: dict[int, str] = {}
    if board is None:
        # Still check routes, groups and users against the board when the only
        # trouble in `board` is elsewhere (an unknown key): all problems at once.
        board_for_checks = _lenient_board(board_data)
        trunks_for_checks = board_for_checks.trunks if board_for_checks is not None else None
        if board_for_checks is not None:
            extensions, names = _check_board(_Collector(doc), board_for_checks)
    else:
        trunks_for_checks = board.trunks
        extensions, names = _check_board(c, board)
    if board is not None and dialplan is not None and extensions is not None:
        _check_prefix(c, dialplan.outside_prefix, extensions, board)

    groups_data = _section(top, "ring_groups", dict)
    groups = _check_groups(c, groups_data, extensions)
    # Names that exist even if their body has errors, so a route to them is not
    # reported a second time as "no such group".
    group_names = (
        {k for k in groups_data if isinstance(k, str)} if isinstance(groups_data, dict) else None
    )

    routes_data = _section(top, "routes", list)
    routes: list[RouteConfig] = []
    for i, raw_route in enumerate(_items(c, routes_data, ("routes",), _RawRoute)):
        if raw_route is None:
            continue
        target = _check_route(
            c, i, raw_route, trunks_for_checks, extensions, group_names
        )
        if target is not None:
            routes.append(RouteConfig(to=target, dnis=raw_route.dnis, trunk=raw_route.trunk))

    users_data = _section(top, "users", list)
    raw_users = _items(c, users_data, ("users",), _RawUser)
    _check_users(c, raw_users, extensions)

    state_value = _section(top, "state_dir", lambda: _STATE_DIR_DEFAULT)
    if not isinstance(state_value, str) or not state_value.strip():
        c.add(
            ("state_dir",),
            f"state_dir: expected a directory path, got {_describe(state_value)}",
        )

    if c.problems:
        raise ConfigError(format_problems(doc.source, c.problems))
    assert board is not None and dialplan is not None and cti is not None
    assert log is not None and sim is not None and extensions is not None
    assert media is not None

    host, port = parse_listen(cti.listen)
    return Config(
        board=BoardConfig(
            driver=board.driver,
            trunks=board.trunks,
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
        ring_groups=MappingProxyType(
            {
                name: RingGroupConfig(
                    name=name,
                    members=tuple(g.members),
                    strategy=g.strategy,
                    ring_timeout_s=None if g.ring_timeout_s is None else float(g.ring_timeout_s),
                )
                for name, g in groups.items()
            }
        ),
        routes=tuple(routes),
        users=tuple(
            UserConfig(name=u.name, role=u.role, secret=u.secret, extension=u.extension)
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
        state_dir=_resolve_state_dir(state_value, source),
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
            ),
            outside=OutsideConfig(
                answer_after_s=float(sim.outside.answer_after_s),
                talk_s=(float(sim.outside.talk_s[0]), float(sim.outside.talk_s[1])),
                busy_numbers=frozenset(sim.outside.busy_numbers),
                unanswered_numbers=frozenset(sim.outside.unanswered_numbers),
            ),
            caller_hangup_after_tone_s=float(sim.caller_hangup_after_tone_s),
            audio=SimAudioConfig(
                callers=sim.audio.callers,
                agents=sim.audio.agents,
                tone_hz=float(sim.audio.tone_hz),
                tone_dbm0=float(sim.audio.tone_dbm0),
                speech_file=None
                if sim.audio.speech_file is None
                else _resolve_state_dir(sim.audio.speech_file, source),
            ),
        ),
        media=MediaConfig(
            prompts_dir=_resolve_state_dir(media.prompts_dir, source),
            moh_dir=None if media.moh_dir is None else _resolve_state_dir(media.moh_dir, source),
            prompt_cache_mb=media.prompt_cache_mb,
        ),
        source=source,
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
    1 ring group, 11 users, cti 127.0.0.1:7070``.
    """

    def count(n: int, word: str) -> str:
        return f"{n} {word}" if n == 1 else f"{n} {word}s"

    exts = cfg.board.extension_numbers
    return (
        f"{cfg.source}: ok — {count(cfg.board.trunks, 'trunk')}, "
        f"{count(len(exts), 'extension')} ({_ranges(exts)}), "
        f"{count(len(cfg.routes), 'route')}, {count(len(cfg.ring_groups), 'ring group')}, "
        f"{count(len(cfg.users), 'user')}, cti {cfg.cti.listen}"
    )


def demo_secret_users(cfg: Config) -> tuple[str, ...]:
    """Names of users whose secret is one of the shipped demo secrets.

    The daemon must refuse to start when this is non-empty and
    ``cfg.cti.is_loopback`` is False. Not part of :func:`load_config` because it
    costs one PBKDF2 run per user and demo secret (~0.3 s each at 600 000
    iterations) on first use; call it only when the listen address is not
    loopback.
    """
    return tuple(u.name for u in cfg.users if uses_demo_secret(u.secret))
