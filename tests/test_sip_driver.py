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


def test_rtp_latches_to_a_nat_address_only_after_three_good_packets_and_then_never_moves() -> None:
    d, clock = _driver()                                   # SDP said 127.0.0.1:40000
    m = d._media[0]
    d.rtp_datagram(0, b"\x00", ("203.0.113.66", 4444))     # garbage from a scanner
    d.rtp_datagram(0, RtpSender(8, ssrc=1).audio(b"\x00" * 160), ("203.0.113.66", 4444))
    assert m.remote == ("127.0.0.1", 40000) and not m.latched     # wrong payload type
    tx = RtpSender(0, 101, ssrc=7)
    for _ in range(2):
        d.rtp_datagram(0, tx.audio(b"\xff" * 160), ("10.0.0.5", 30000))   # the phone, via NAT
    assert m.remote == ("127.0.0.1", 40000) and m.receiver.received == 0  # still learning
    d.rtp_datagram(0, tx.audio(b"\xff" * 160), ("10.0.0.5", 30000))
    assert m.remote == ("10.0.0.5", 30000) and m.latched and m.receiver.received == 1
    intruder = RtpSender(0, 101, ssrc=9)
    for _ in range(5):
        d.rtp_datagram(0, intruder.audio(b"\x00" * 160), ("10.6.6.6", 4444))
    assert m.remote == ("10.0.0.5", 30000) and m.receiver.received == 1


def test_rtp_from_the_sdp_address_is_taken_at_once() -> None:
    d, _ = _driver()
    d.rtp_datagram(0, RtpSender(0, ssrc=7).audio(b"\xff" * 160), ("127.0.0.1", 40000))
    assert d._media[0].latched and d._media[0].receiver.received == 1


class _Capture:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))


def test_rtcp_goes_to_the_rtp_port_plus_one_every_5_s_and_the_peers_report_is_in_the_figures() -> None:
    from switchd.drivers.sip import rtcp

    d, clock = _driver()
    rtp_out, rtcp_out = _Capture(), _Capture()
    d._rtp_raw[0], d._rtcp[0] = rtp_out, rtcp_out       # type: ignore[assignment,call-overload]
    tx = RtpSender(0, 101, ssrc=7)
    silence = np.zeros((len(LINES), 160), dtype=np.int16)
    for k in range(300):                                 # 6 s of calls both ways
        d.rtp_datagram(0, tx.audio(b"\xff" * 160), ("127.0.0.1", 40000))
        clock[0] += 0.02
        d.inbound(k, clock[0])
        d.outbound(k, clock[0], silence)
    assert len(rtp_out.sent) == 300
    assert [a for _, a in rtcp_out.sent] == [("127.0.0.1", 40001)]     # one report so far
    report, _ = rtcp.parse(rtcp_out.sent[0][0], 7, clock[0])
    assert report is not None and report.lost == 0
    ours = d._media[0].sender.ssrc
    peer_rr = rtcp.compound(clock[0], 7, 0, 0, 0,
                            rtcp.ReceptionState(ours, 300, 297, 300, 16.0), (0, 0), "p")
    d.rtcp_datagram(0, peer_rr, ("127.0.0.1", 40001))
    assert "peer_lost=3 peer_jitter_ms=2.0" in d.line_media("trunk/1")
