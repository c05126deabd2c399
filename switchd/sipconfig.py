"""The ``sip:`` section of config.yaml: its YAML shape and checks, into :class:`SipSettings`.

Kept apart from :mod:`switchd.config` (which calls :func:`check_sip`) because it is only
read when ``board.driver`` is ``sip``. Every problem names its ``FILE:LINE:COL`` like
the rest of the config.
"""

from __future__ import annotations

import ipaddress
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from switchd.drivers.sip.digest import Credentials, parse_credentials_line
from switchd.drivers.sip.settings import SipSettings, SipTrunk
from switchd.yamlerrors import ProblemCollector

__all__ = ["DEMO_SIP_PASSWORD", "check_sip", "sip_demo_problem"]

#: The password of the demo phones in ``contrib/sip-demo.yaml`` (loopback only).
DEMO_SIP_PASSWORD = "demo-sip-only-on-loopback"

Codec = Literal["PCMU", "PCMA"]
Port = Annotated[int, Field(ge=1, le=65535)]


class _Raw(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _RawSipExtension(_Raw):
    password: Annotated[str, Field(min_length=1)]


class _RawSipTrunk(_Raw):
    host: Annotated[str, Field(min_length=1)]
    port: Port = 5060
    channels: Annotated[int, Field(ge=1, le=10_000)] = 1
    allow: list[str] = Field(default_factory=list)
    dids: dict[str, str] = Field(default_factory=dict)
    caller_id: str | None = None
    codecs: Annotated[list[Codec], Field(min_length=1)] = Field(
        default_factory=lambda: ["PCMU", "PCMA"])
    username: str | None = None
    password: str | None = None
    # `register` is BaseModel's (ABC) method name: the field is register_, spelt `register`.
    register_: bool = Field(False, alias="register")
    register_s: Annotated[int, Field(ge=60, le=86_400)] = 600
    keepalive_s: Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)] = 30.0


class _RawSip(_Raw):
    listen: Annotated[str, Field(min_length=3)] = "127.0.0.1:5070"
    address: str | None = None
    rtp_port: Annotated[int, Field(ge=1024, le=65000)] = 20000
    realm: Annotated[str, Field(min_length=1, pattern=r"^[^\"$\\]+$")] = "switchd"
    codecs: Annotated[list[Codec], Field(min_length=1)] = Field(
        default_factory=lambda: ["PCMU", "PCMA"])
    extensions: dict[int, _RawSipExtension] = Field(default_factory=dict)
    trunks: dict[str, _RawSipTrunk] = Field(default_factory=dict)
    min_expires_s: Annotated[int, Field(ge=10, le=86_400)] = 60
    max_expires_s: Annotated[int, Field(ge=10, le=86_400)] = 3600
    auth_fail_limit: Annotated[int, Field(ge=1, le=10_000)] = 10
    block_s: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] = 60.0
    unregistered: Literal["busy", "ring"] = "busy"
    auth_algorithms: Annotated[list[Literal["MD5", "SHA-256"]], Field(min_length=1, max_length=2)] = \
        Field(default_factory=lambda: ["MD5"])


def _ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check_sip(c: ProblemCollector, data: Any, *, extensions: tuple[int, ...] | None,
              trunks: int | None, trunks_given: bool) -> tuple[SipSettings | None, int | None]:
    """Check the ``sip`` section (``data``, a mapping) against the board; returns the
    settings (None when something is wrong: the problems are in ``c``) and the number of
    trunk lines the board has with these carriers (the sum of their channels; None to
    keep ``board.trunks``)."""
    raw = c.validate(_RawSip, data, ("sip",))
    if raw is None:
        return None, None
    ok = True
    from switchd.config import parse_listen  # config imports this module
    try:
        host, port = parse_listen(raw.listen)
    except ValueError as e:
        c.add(("sip", "listen"), f"sip.listen: {e}")
        return None, None
    if host in ("0.0.0.0", "::") and raw.address is None:
        c.add(("sip", "address"), "sip.address: the listen host is a wildcard; give the IP "
              "address phones and carriers reach this switch at (it goes in Via, Contact and SDP)")
        ok = False
    address = raw.address or host
    if not _ip(address):
        c.add(("sip", "address"), f"sip.address: {address!r} is not an IP address")
        ok = False
    if raw.min_expires_s > raw.max_expires_s:
        c.add(("sip", "min_expires_s"), f"sip.min_expires_s ({raw.min_expires_s}) is above "
              f"max_expires_s ({raw.max_expires_s})")
        ok = False
    creds: dict[int, Credentials] = {}
    for number, ext in raw.extensions.items():
        if extensions is not None and number not in extensions:
            c.add(("sip", "extensions", number), f"sip.extensions.{number}: not an extension "
                  f"of the board (board.extensions: {', '.join(map(str, extensions))})", key=True)
            ok = False
            continue
        try:
            cred = parse_credentials_line(str(number), ext.password)
        except ValueError as e:
            c.add(("sip", "extensions", number, "password"),
                  f"sip.extensions.{number}.password: {e}")
            ok = False
            continue
        if cred.realm != raw.realm:
            c.add(("sip", "extensions", number, "password"),
                  f"sip.extensions.{number}.password: made for realm {cred.realm!r}, but "
                  f"sip.realm is {raw.realm!r}; run `switchd passwd --sip {number} "
                  f"--realm {raw.realm}` again")
            ok = False
            continue
        creds[number] = cred
    built: list[SipTrunk] = []
    first = 1
    for name, t in raw.trunks.items():
        at = ("sip", "trunks", name)
        if not _ip(t.host):
            c.add(at + ("host",), f"sip.trunks.{name}.host: {t.host!r} is not an IP address "
                  "(carriers are matched by the address their requests come from)")
            ok = False
        for i, a in enumerate(t.allow):
            if not _ip(a):
                c.add(at + ("allow", i), f"sip.trunks.{name}.allow: {a!r} is not an IP address")
                ok = False
        for did, dnis in t.dids.items():
            if not did.isdigit() or not dnis.isdigit():
                c.add(at + ("dids", did), f"sip.trunks.{name}.dids: {did!r}: {dnis!r} must both "
                      'be digits in quotes, e.g. "4930123": "8000"', key=True)
                ok = False
        if (t.username is None) != (t.password is None):
            c.add(at, f"sip.trunks.{name}: give both username and password, or neither")
            ok = False
        if t.register_ and t.username is None:
            c.add(at + ("register",), f"sip.trunks.{name}.register: registering needs "
                  "username and password")
            ok = False
        built.append(SipTrunk(name=name, host=t.host, port=t.port, channels=t.channels,
                              first_line=first, allow=tuple(t.allow),
                              dids=MappingProxyType(dict(t.dids)), caller_id=t.caller_id,
                              codecs=tuple(t.codecs), username=t.username, password=t.password,
                              register=t.register_, register_s=t.register_s,
                              keepalive_s=t.keepalive_s))
        first += t.channels
    lines = first - 1 if built else None
    if lines is not None and trunks_given and trunks is not None and trunks != lines:
        c.add(("board", "trunks"), f"board.trunks is {trunks} but the SIP trunks have {lines} "
              "channels in all; remove board.trunks (it is their sum) or make them agree")
        ok = False
    if not ok:
        return None, None
    return SipSettings(host=host, port=port, address=address, rtp_port=raw.rtp_port,
                       realm=raw.realm, extensions=MappingProxyType(creds), trunks=tuple(built),
                       codecs=tuple(raw.codecs), min_expires_s=raw.min_expires_s,
                       max_expires_s=raw.max_expires_s, auth_fail_limit=raw.auth_fail_limit,
                       block_s=raw.block_s, auth_algorithms=tuple(raw.auth_algorithms),
                       unregistered=raw.unregistered), lines


def sip_demo_problem(settings: SipSettings) -> str | None:
    """Why the switch must not start: demo SIP credentials on an address that is not
    loopback (the same rule as the CTI socket's demo secrets); None when fine."""
    from switchd.config import is_loopback
    if is_loopback(settings.host):
        return None
    demo = [n for n, cred in settings.extensions.items()
            if cred.ha1 == parse_credentials_line(str(n), _demo_line(n, cred.realm)).ha1]
    if not demo:
        return None
    return (f"sip.listen is {settings.host}, not loopback, and extensions "
            f"{', '.join(map(str, demo))} use the public demo SIP password; give each a "
            "password of its own (`switchd passwd --sip NUMBER`)")


def _demo_line(number: int, realm: str) -> str:
    from switchd.drivers.sip.digest import ha1_line
    return ha1_line(str(number), realm, DEMO_SIP_PASSWORD)
