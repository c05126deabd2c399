"""SDP for audio calls (RFC 4566) and the offer/answer the switch does (RFC 3264).

The switch speaks one audio stream per call leg: G.711 (PCMU payload 0, PCMA 8; RFC 3551)
at 8 kHz with 20 ms packets, and RFC 4733 ``telephone-event`` for keys. :func:`parse`
reads what a phone or carrier offers or answers; :func:`answer` picks the codec (the
offerer's order among those we take, RFC 3264 §6.1) and the telephone-event payload type
the offer used; :func:`build` writes our side. Anything else in the SDP (video, other
codecs, ICE, crypto) is ignored; an offer with no audio codec we take gets a 488.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from switchd.drivers.sip.message import is_number

__all__ = ["Codec", "Media", "SdpError", "answer", "build", "parse"]

#: Static payload types of the codecs we take (RFC 3551 table 4).
PCMU, PCMA = 0, 8
_STATIC = {0: "PCMU", 8: "PCMA"}


class SdpError(ValueError):
    """An SDP body the switch cannot use; ``str()`` says why (sent as the 488's reason)."""


@dataclass(frozen=True, slots=True)
class Codec:
    """The chosen audio codec (``PCMU``/``PCMA``) and payload types on the wire."""

    name: str
    payload: int
    dtmf_payload: int | None = None     # telephone-event, None when the peer has none


@dataclass(frozen=True, slots=True)
class Media:
    """What one SDP says about its audio: where to send RTP, which payload types it
    takes (in preference order) and their names, and its direction."""

    address: str
    port: int
    payloads: tuple[int, ...]
    names: dict[int, str] = field(default_factory=dict)
    direction: str = "sendrecv"     # sendrecv | sendonly | recvonly | inactive
    ptime_ms: int = 20

    @property
    def on_hold(self) -> bool:
        """The peer put the call on hold (RFC 3264 §8.4): it will not listen to us."""
        return self.direction in ("sendonly", "inactive") or self.address in ("0.0.0.0", "::")


def parse(body: bytes) -> Media:
    """The first audio stream of an SDP body. Raises :class:`SdpError` naming the fault
    (not text, no ``c=`` address, no ``m=audio`` line, a bad port)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SdpError("SDP is not UTF-8 text") from None
    session_addr: str | None = None
    media_addr: str | None = None
    in_audio = False
    seen_audio = False
    port = 0
    payloads: tuple[int, ...] = ()
    names: dict[int, str] = {}
    direction = "sendrecv"
    session_dir = "sendrecv"
    ptime = 20
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:].strip()
        if kind == "m":
            if seen_audio:
                break               # only the first audio stream
            bits = value.split()
            in_audio = len(bits) >= 4 and bits[0] == "audio"
            if in_audio:
                seen_audio = True
                if not is_number(bits[1].split("/")[0]) or int(bits[1].split("/")[0]) > 65535:
                    raise SdpError(f"m=audio port {bits[1]!r} is not a port number")
                port = int(bits[1].split("/")[0])
                if not bits[2].startswith("RTP/"):
                    raise SdpError(f"m=audio transport {bits[2]!r} is not RTP/AVP")
                payloads = tuple(int(p) for p in bits[3:] if is_number(p) and int(p) < 128)
            continue
        if kind == "c":
            bits = value.split()
            if len(bits) < 3 or bits[0] != "IN":
                raise SdpError(f"c= line {value!r} is not 'IN IP4 <address>'")
            addr = bits[2].split("/")[0]
            try:
                ipaddress.ip_address(addr)
            except ValueError:
                raise SdpError(f"c= address {addr!r} is not an IP address") from None
            if in_audio:
                media_addr = addr
            elif not seen_audio:
                session_addr = addr
            continue
        if kind == "a":
            name, _, rest = value.partition(":")
            if name in ("sendrecv", "sendonly", "recvonly", "inactive"):
                if in_audio:
                    direction = name
                elif not seen_audio:
                    session_dir = name
            elif name == "rtpmap" and in_audio:
                pt, _, enc = rest.partition(" ")
                if is_number(pt):
                    names[int(pt)] = enc.split("/")[0].strip()
            elif name == "ptime" and in_audio and is_number(rest.strip()):
                ptime = int(rest.strip())
    if not seen_audio:
        raise SdpError("no m=audio stream")
    addr = media_addr or session_addr
    if addr is None:
        raise SdpError("no c= connection address for the audio")
    if direction == "sendrecv" and session_dir != "sendrecv":
        direction = session_dir
    for pt, name in _STATIC.items():
        names.setdefault(pt, name)
    return Media(address=addr, port=port, payloads=payloads, names=names,
                 direction=direction, ptime_ms=ptime)


def answer(offer: Media, codecs: tuple[str, ...] = ("PCMU", "PCMA")) -> Codec:
    """The codec for a call whose peer offered ``offer``: the first of its payloads that is
    one of ``codecs`` (RFC 3264 §6.1: the offerer's preference), with its telephone-event
    payload type if it offered one. Raises SdpError when none of ``codecs`` is offered."""
    dtmf = next((pt for pt in offer.payloads
                 if offer.names.get(pt, "").lower() == "telephone-event"), None)
    for pt in offer.payloads:
        name = offer.names.get(pt, "").upper()
        if name in codecs:
            return Codec(name, pt, dtmf)
    raise SdpError(f"no codec in common: offered {[offer.names.get(p, p) for p in offer.payloads]}, "
                   f"we take {list(codecs)}")


def build(address: str, port: int, codecs: list[Codec] | tuple[Codec, ...], *, session_id: int,
          version: int = 1, direction: str = "sendrecv", dtmf_payload: int | None = 101) -> bytes:
    """Our SDP: one audio stream at ``address``:``port`` with ``codecs`` in preference
    order, telephone-event (0-16) on ``dtmf_payload``, 20 ms packets, ``direction``.
    ``session_id``/``version``: the o= line's (bump ``version`` on every new offer)."""
    ip = "IP6" if ":" in address else "IP4"
    pts = [c.payload for c in codecs] + ([dtmf_payload] if dtmf_payload is not None else [])
    lines = [
        "v=0",
        f"o=switchd {session_id} {version} IN {ip} {address}",
        "s=switchd",
        f"c=IN {ip} {address}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(str(p) for p in pts)}",
    ]
    lines += [f"a=rtpmap:{c.payload} {c.name}/8000" for c in codecs]
    if dtmf_payload is not None:
        lines += [f"a=rtpmap:{dtmf_payload} telephone-event/8000", f"a=fmtp:{dtmf_payload} 0-16"]
    lines += ["a=ptime:20", f"a={direction}"]
    return ("\r\n".join(lines) + "\r\n").encode()
