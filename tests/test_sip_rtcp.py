"""RTCP reports (switchd.drivers.sip.rtcp, RFC 3550 §6.4): what we send says what we
received; what the peer sends says what it lost of ours and the round trip."""

from __future__ import annotations

import struct

import pytest

from switchd.drivers.sip import rtcp
from switchd.drivers.sip.rtp import FRAME_SAMPLES, RtpPacket, RtpReceiver, RtpSender


def test_our_report_block_carries_loss_jitter_and_the_echoed_sender_report() -> None:
    peer = RtpSender(0, ssrc=0xBEEF)
    rx = RtpReceiver(0)
    for k in range(100):
        pkt = peer.audio(b"\x55" * FRAME_SAMPLES)
        if k % 10 != 3:                              # 10 of 100 lost
            rx.receive(RtpPacket.parse(pkt), 100.0 + 0.02 * k)
    # The peer's SR arrived at t=101.0: we echo its NTP middle bits and the delay since.
    peer_sr = rtcp.compound(101.0, 0xBEEF, 0, 90, 14400, None, (0, 0), "peer@x")
    _, sr = rtcp.parse(peer_sr, 0x1234, 101.0)
    assert sr is not None
    rx.last_sr = sr
    ours = rtcp.compound(102.5, 0x1234, 0, 50, 8000, rx.reception(), (0, 0), "switchd@h")
    report, _ = rtcp.parse(ours, 0xBEEF, 103.0)
    assert report is not None
    assert report.lost == 10 and report.fraction_lost == pytest.approx(25 / 256)
    # Round trip: 103.0 - 101.0 - 1.5 s held here = 0.5 s, to 1/65536 s.
    assert report.rtt_ms == pytest.approx(500.0, abs=0.1)
    # SDES CNAME follows the SR in the same compound packet (RFC 3550 §6.1).
    sr_len = 4 * (struct.unpack_from("!H", ours, 2)[0] + 1)
    assert ours[sr_len + 1] == 202 and b"switchd@h" in ours[sr_len:]


@pytest.mark.parametrize("junk", [b"", b"\x80", b"\x00" * 40, b"\x81\xc9\x00\x07" + b"\x00" * 8,
                                  b"\x81\xc8\xff\xff" + b"\x00" * 30])
def test_garbage_rtcp_says_nothing_and_never_raises(junk: bytes) -> None:
    assert rtcp.parse(junk, 1, 0.0) == (None, None)
