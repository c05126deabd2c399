"""What the SIP driver is told by the config (``sip:`` section): frozen, checked already."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from switchd.drivers.sip.digest import Credentials

__all__ = ["SipSettings", "SipTrunk"]


@dataclass(frozen=True, slots=True)
class SipTrunk:
    """One carrier trunk: its SIP peer, the trunk lines it owns, and who may call in on it.

    ``first_line``..``first_line + channels - 1`` are its trunk lines (``trunk/N``).
    ``allow``: more source IP addresses whose INVITEs come in on it, from any port (the
    carrier's own ``host``:``port`` always does). ``dids``: called number (Request-URI user) → DNIS for routing (a number
    not listed is used as it is). ``caller_id``: the number presented on outbound calls
    (None: the extension's caller). ``username``/``password``: digest credentials when
    the carrier challenges our requests (demo values only on loopback). ``register``:
    the switch registers to the carrier as ``username`` (refreshed before ``register_s``
    runs out, retried every minute after a failure); ``keepalive_s``: OPTIONS to it that
    tell whether it answers (:meth:`SipEngine.trunk_status`)."""

    name: str
    host: str
    port: int = 5060
    channels: int = 1
    first_line: int = 1
    allow: tuple[str, ...] = ()
    dids: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    caller_id: str | None = None
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    username: str | None = None
    password: str | None = None
    #: Register to the carrier (with ``username``/``password``) every ``register_s``.
    register: bool = False
    register_s: int = 600
    #: Seconds between OPTIONS keep-alives to the carrier (0: none).
    keepalive_s: float = 30.0

    @property
    def lines(self) -> tuple[str, ...]:
        """Its trunk lines, ``trunk/<first_line>``…"""
        return tuple(f"trunk/{n}" for n in range(self.first_line, self.first_line + self.channels))

    def accepts(self, host: str, port: int) -> bool:
        """A request from ``host``:``port`` comes from this carrier: its own address
        (host and SIP port: a phone on the same machine is not the carrier), or an IP in
        ``allow`` (any port)."""
        return (host == self.host and port == self.port) or host in self.allow


@dataclass(frozen=True, slots=True)
class SipSettings:
    """The SIP driver's settings.

    ``host``/``port``: where it listens (UDP); ``address``: the IP written in Via,
    Contact and SDP (the listen host unless that is a wildcard). ``rtp_port``: the RTP
    port of channel 0; channel ``i`` uses ``rtp_port + 2·i`` (RTCP the odd one above).
    ``realm``: the digest realm; ``extensions``: extension number → credentials.
    ``min_expires_s``/``max_expires_s``: registration lifetimes accepted (RFC 3261
    §10.3: shorter gets 423, longer is cut). ``auth_fail_limit`` failures from one
    address within a minute block it for ``block_s``."""

    host: str = "127.0.0.1"
    port: int = 5070
    address: str = "127.0.0.1"
    rtp_port: int = 20000
    realm: str = "switchd"
    extensions: Mapping[int, Credentials] = field(default_factory=lambda: MappingProxyType({}))
    trunks: tuple[SipTrunk, ...] = ()
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    min_expires_s: int = 60
    max_expires_s: int = 3600
    auth_fail_limit: int = 10
    block_s: float = 60.0
    auth_algorithms: tuple[str, ...] = ("MD5",)
    #: A call rung on an extension with no registered phone: ``busy`` declines it at once
    #: (FreeSWITCH's USER_NOT_REGISTERED: the ACD offers the next agent, a direct caller
    #: goes on as when the phone declines); ``ring`` lets it ring out (the ring timeout).
    unregistered: str = "busy"
    user_agent: str = "switchd"
