"""The SIP driver's media half without sockets: frames from RTP into the media plane's
array, a lost frame concealed by fading repetition, latching to the first source only."""

from __future__ import annotations

import numpy as np

from switchd.drivers.sip import sdp
from switchd.drivers.sip.driver import SipDriver
from switchd.drivers.sip.engine import MediaStart
from switchd.drivers.sip.rtp import RtpSender
from switchd.drivers.sip.settings import SipSettings
from switchd.lines import g711

LINES = ["trunk/1", "ext/201"]


def _driver() -> tuple[SipDriver, list[float]]:
    clock = [1000.0]
    d = SipDriver(SipSettings(), LINES, clock=lambda: clock[0])
    d._media_start(MediaStart("trunk/1", ("127.0.0.1", 40000), sdp.Codec("PCMU", 0, 101)))
    return d, clock


def _frame(k: int) -> np.ndarray:
    t = (np.arange(160) + 160 * k) / 8000.0
    return (8000 * np.sin(2 * np.pi * 400 * t)).astype(np.int16)


def test_a_lost_frame_is_the_last_one_at_half_then_a_quarter_then_silence() -> None:
    d, clock = _driver()
    tx = RtpSender(0, 101, ssrc=7)
    out = []
    for k in range(12):
        if k != 6:                                    # frame 6 never arrives ...
            d.rtp_datagram(0, tx.audio(g711.ulaw_encode(_frame(k)).tobytes()), ("127.0.0.1", 40000))
        else:
            tx.audio(b"")                             # ... but it used its number and time
        clock[0] += 0.02
        out.append(d.inbound(k, clock[0])[0].copy())
    played = [i for i, f in enumerate(out) if f.any()]
    assert played[0] >= 1                             # the jitter buffer filled first
    # The frame played where 6 was missing repeats the one before at half level.
    gap = next(i for i in range(played[0], len(out)) if not np.array_equal(
        out[i], g711.ulaw_decode(g711.ulaw_encode(_frame(i - played[0]))) ))
    before = out[gap - 1].astype(np.int32)
    assert np.array_equal(out[gap].astype(np.int32), before >> 1)


def test_rtp_from_a_second_source_after_the_first_is_dropped() -> None:
    d, clock = _driver()
    tx = RtpSender(0, 101, ssrc=7)
    d.rtp_datagram(0, tx.audio(b"\xff" * 160), ("10.0.0.5", 30000))      # the phone, via NAT
    intruder = RtpSender(0, 101, ssrc=9)
    for _ in range(5):
        d.rtp_datagram(0, intruder.audio(b"\x00" * 160), ("10.6.6.6", 4444))
    m = d._media[0]
    assert m.remote == ("10.0.0.5", 30000) and m.receiver.received == 1
