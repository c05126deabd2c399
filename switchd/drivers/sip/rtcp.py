"""RTCP for one call leg (RFC 3550 §6): the reports the switch sends, and what the peer's say.

Every :data:`INTERVAL_S` the driver sends each line's peer a compound packet: a Sender
Report (§6.4.1: our packet and octet counts, and one report block on what we received
from it — fraction and number lost, highest sequence number, interarrival jitter, and
the LSR/DLSR pair that lets the peer time the round trip) followed by SDES with our
CNAME (§6.5: every compound packet carries one). :func:`parse` reads the peer's Sender
or Receiver Reports: the block about our stream says how much of what we sent it lost
and its jitter — the receiving end's figures, which the switch cannot measure itself —
and, from our LSR echoed back, the round-trip time.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["INTERVAL_S", "PeerReport", "ReceptionState", "compound", "ntp", "parse"]

#: Seconds between reports (RFC 3550 §6.2's minimum, fixed: two parties per session).
INTERVAL_S = 5.0
_NTP_EPOCH = 2_208_988_800       # seconds from 1900-01-01 to 1970-01-01


def ntp(t: float) -> tuple[int, int]:
    """Epoch seconds as a 64-bit NTP timestamp (seconds since 1900, fraction)."""
    secs = int(t) + _NTP_EPOCH
    return secs & 0xFFFFFFFF, int((t - int(t)) * (1 << 32)) & 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class ReceptionState:
    """What our receiver knows of the peer's stream, for our report block (RFC 3550 §6.4.1,
    A.3): its SSRC, packets expected and received so far, the highest extended sequence
    number, jitter (timestamp units), and the peer's last SR (middle 32 bits of its NTP
    time, and when it arrived, epoch s), or zeros."""

    ssrc: int
    expected: int
    received: int
    ext_max: int
    jitter: float
    last_sr: int = 0
    last_sr_at: float = 0.0


@dataclass(frozen=True, slots=True)
class PeerReport:
    """The peer's report block about our stream: fraction lost since its last report
    (0..1), cumulative lost, its interarrival jitter (ms at 8 kHz) and the round trip
    (ms; None when it echoed no SR of ours)."""

    fraction_lost: float
    lost: int
    jitter_ms: float
    rtt_ms: float | None


def compound(now: float, ssrc: int, rtp_ts: int, packets: int, octets: int,
             rx: ReceptionState | None, prior: tuple[int, int], cname: str) -> bytes:
    """A compound RTCP packet: SR (with a report block when ``rx`` is given) then SDES
    CNAME. ``prior``: (expected, received) at our previous report, for the fraction
    lost over the interval (§6.4.1 / A.3)."""
    hi, lo = ntp(now)
    blocks = b""
    if rx is not None and rx.expected > 0:
        expected_int = rx.expected - prior[0]
        lost_int = expected_int - (rx.received - prior[1])
        fraction = 0 if expected_int <= 0 or lost_int <= 0 else (lost_int << 8) // expected_int
        cumulative = max(-(1 << 23), min((1 << 23) - 1, rx.expected - rx.received))
        dlsr = int((now - rx.last_sr_at) * 65536) if rx.last_sr else 0
        blocks = struct.pack("!IB3sIIII", rx.ssrc, min(fraction, 255),
                             (cumulative & 0xFFFFFF).to_bytes(3, "big"), rx.ext_max & 0xFFFFFFFF,
                             int(rx.jitter) & 0xFFFFFFFF, rx.last_sr, dlsr & 0xFFFFFFFF)
    count = 1 if blocks else 0
    # Header, SSRC, NTP (8), RTP time, packets, octets: 28 bytes, then the blocks.
    sr = struct.pack("!BBHIIIIII", 0x80 | count, 200, (28 + len(blocks)) // 4 - 1, ssrc,
                     hi, lo, rtp_ts & 0xFFFFFFFF, packets & 0xFFFFFFFF,
                     octets & 0xFFFFFFFF) + blocks
    name = cname.encode()[:255]
    chunk = struct.pack("!IBB", ssrc, 1, len(name)) + name + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    sdes = struct.pack("!BBH", 0x81, 202, (4 + len(chunk)) // 4 - 1) + chunk
    return sr + sdes


def parse(data: bytes, our_ssrc: int, now: float) -> tuple[PeerReport | None, tuple[int, float] | None]:
    """Read a compound RTCP packet from the peer: (its report block about ``our_ssrc``
    or None, (the middle 32 bits of its SR's NTP time, ``now``) when it has an SR, for
    our next LSR). Garbage gives (None, None); never raises."""
    report: PeerReport | None = None
    sr: tuple[int, float] | None = None
    i = 0
    while i + 4 <= len(data):
        b0, pt, length = struct.unpack_from("!BBH", data, i)
        size = 4 * (length + 1)
        if b0 >> 6 != 2 or i + size > len(data):
            break
        count = b0 & 0x1F
        body = i + 4
        if pt == 200 and size >= 28:                 # SR: sender info, then blocks
            _, hi, lo = struct.unpack_from("!III", data, body)
            sr = (((hi & 0xFFFF) << 16) | (lo >> 16), now)
            body += 24
        elif pt == 201 and size >= 8:                # RR
            body += 4
        else:
            i += size
            continue
        for k in range(count):
            at = body + 24 * k
            if at + 24 > i + size:
                break
            ssrc, frac, cum, _, jitter, lsr, dlsr = struct.unpack_from("!IB3sIIII", data, at)
            if ssrc != our_ssrc:
                continue
            lost = int.from_bytes(cum, "big")
            if lost & 0x800000:
                lost -= 1 << 24
            rtt = None
            if lsr:
                hi, lo = ntp(now)
                mid = ((hi & 0xFFFF) << 16) | (lo >> 16)
                rtt = max(0.0, ((mid - lsr - dlsr) & 0xFFFFFFFF) / 65536.0 * 1000.0)
                if rtt > 60_000:
                    rtt = None                       # a bogus echo, not a minute's round trip
            report = PeerReport(frac / 256.0, lost, jitter / 8.0, rtt)
        i += size
    return report, sr
