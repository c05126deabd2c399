"""SDP offer/answer (RFC 4566/3264) and RTP (RFC 3550, RFC 4733) for the SIP driver:
parsing, the jitter buffer's loss/late/jitter figures, one digit per RFC 4733 key."""

from __future__ import annotations

import random

import pytest

from switchd.drivers.sip import sdp
from switchd.drivers.sip.rtp import FRAME_SAMPLES, KeyPress, RtpPacket, RtpReceiver, RtpSender

BARESIP_OFFER = (
    b"v=0\r\no=- 123 456 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 10000 RTP/AVP 8 0 9 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
    b"a=ptime:20\r\na=sendrecv\r\n"
    b"m=video 10002 RTP/AVP 96\r\nc=IN IP4 10.0.0.1\r\na=sendonly\r\n"
)


def test_an_offer_is_answered_with_the_offerers_first_codec_we_take_and_its_event_payload() -> None:
    media = sdp.parse(BARESIP_OFFER)
    assert (media.address, media.port, media.payloads) == ("127.0.0.1", 10000, (8, 0, 9, 101))
    assert media.direction == "sendrecv" and not media.on_hold
    assert sdp.answer(media) == sdp.Codec("PCMA", 8, 101)
    assert sdp.answer(media, ("PCMU",)) == sdp.Codec("PCMU", 0, 101)
    ours = sdp.parse(sdp.build("127.0.0.1", 20000, [sdp.Codec("PCMA", 8, 101)], session_id=7))
    assert (ours.port, ours.payloads, ours.names[101]) == (20000, (8, 101), "telephone-event")


@pytest.mark.parametrize(("body", "words"), [
    (b"\xff\xfe", "UTF-8"),
    (b"v=0\r\nc=IN IP4 1.2.3.4\r\n", "no m=audio"),
    (b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n", "no c="),
    (b"v=0\r\nc=IN IP4 nothost\r\nm=audio 4000 RTP/AVP 0\r\n", "not an IP"),
    (b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 99999 RTP/AVP 0\r\n", "port"),
])
def test_a_broken_sdp_says_what_is_wrong(body: bytes, words: str) -> None:
    with pytest.raises(sdp.SdpError, match=words):
        sdp.parse(body)


def test_no_common_codec_is_an_error_naming_both_sides() -> None:
    media = sdp.parse(b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\n")
    with pytest.raises(sdp.SdpError, match="G722"):
        sdp.answer(media)


@pytest.mark.parametrize("text", [b"a=sendonly", b"a=inactive"])
def test_a_hold_offer_is_seen_as_hold(text: bytes) -> None:
    body = b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\n" + text + b"\r\n"
    assert sdp.parse(body).on_hold
    assert sdp.parse(b"v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n").on_hold


def test_rtp_packets_round_trip_and_garbage_is_ignored() -> None:
    p = RtpPacket(0, 65535, 2**32 - 160, 0xDEADBEEF, b"\x55" * 160, marker=True)
    assert RtpPacket.parse(p.to_bytes()) == p
    assert RtpPacket.parse(b"\x00" * 20) is None          # version 0
    assert RtpPacket.parse(b"\x80\x00") is None           # cut short
    with_csrc = b"\x82\x00\x00\x01" + b"\x00" * 8 + b"\x00" * 8 + b"ab"
    assert RtpPacket.parse(with_csrc).payload == b"ab"


def _stream(n: int, *, start_ts: int = 1000, seq: int = 0) -> list[RtpPacket]:
    return [RtpPacket(0, (seq + i) & 0xFFFF, (start_ts + i * FRAME_SAMPLES) & 0xFFFFFFFF, 1,
                      bytes([i % 256]) * FRAME_SAMPLES) for i in range(n)]


def test_the_jitter_buffer_plays_every_frame_in_order_across_the_timestamp_wrap() -> None:
    rx = RtpReceiver(0)
    pkts = _stream(100, start_ts=2**32 - 50 * FRAME_SAMPLES)
    played = []
    for i, p in enumerate(pkts):
        rx.receive(p, i * 0.02)
        frame = rx.pull()
        if frame is not None:
            played.append(frame[0])
    assert played == [i % 256 for i in range(len(played))] and len(played) >= 98
    assert rx.stats().lost == 0 and rx.stats().late == 0


def test_reordered_packets_are_put_back_in_order_lost_ones_counted_late_ones_dropped() -> None:
    rx = RtpReceiver(0)
    pkts = _stream(60)
    rng = random.Random(3)
    order = list(range(60))
    for i in range(0, 58, 6):
        order[i], order[i + 1] = order[i + 1], order[i]     # pairs swapped
    del order[order.index(30)]                               # one lost
    played = []
    for t, i in enumerate(order):
        rx.receive(pkts[i], t * 0.02 + rng.uniform(0, 0.005))
        f = rx.pull()
        played.append(None if f is None else f[0])
    got = [x for x in played if x is not None]
    assert got == sorted(got) and 30 not in got
    assert rx.stats().lost >= 1
    rx.receive(pkts[0], 2.0)                  # long after its time
    assert rx.stats().late == 1


def test_jitter_is_measured_and_raises_the_target_delay() -> None:
    rx = RtpReceiver(0)
    rng = random.Random(1)
    for i, p in enumerate(_stream(200)):
        rx.receive(p, i * 0.02 + rng.uniform(0, 0.06))
        rx.pull()
    st = rx.stats()
    assert 10 < st.jitter_ms < 40
    assert st.delay_ms >= 40


def test_a_key_sent_as_rfc_4733_is_one_digit_whatever_the_repeats() -> None:
    tx = RtpSender(0, 101)
    rx = RtpReceiver(0, 101)
    keys = []
    for d in "5#":
        for pkt in tx.key(d, 120):
            k = rx.receive(RtpPacket.parse(pkt), 0.0)
            if k is not None:
                keys.append(k)
    assert keys == [KeyPress("5", 120.0), KeyPress("#", 120.0)]
    with pytest.raises(ValueError):
        tx.key("x")


def test_the_short_path_for_plain_packets_counts_exactly_as_the_full_one() -> None:
    """receive_datagram's fast path and receive() agree on every figure and frame."""
    rng = random.Random(5)
    pkts = _stream(300)
    order = list(range(300))
    for i in range(0, 290, 7):
        order[i], order[i + 2] = order[i + 2], order[i]
    for lost in (40, 41, 150):
        order.remove(lost)
    a, b = RtpReceiver(0), RtpReceiver(0)
    played_a, played_b = [], []
    for t, i in enumerate(order):
        at = t * 0.02 + rng.uniform(0, 0.01)
        a.receive(pkts[i], at)
        b.receive_datagram(pkts[i].to_bytes(), at)
        played_a.append(a.pull())
        played_b.append(b.pull())
    assert played_a == played_b
    assert a.stats() == b.stats() and a.stats().lost == 3


def test_key_packets_share_the_sequence_numbers_and_are_not_counted_lost() -> None:
    tx = RtpSender(0, 101)
    rx = RtpReceiver(0, 101)
    for _ in range(10):
        rx.receive(RtpPacket.parse(tx.audio(b"\xff" * FRAME_SAMPLES)), 0.0)
    for pkt in tx.key("1", 120):
        rx.receive(RtpPacket.parse(pkt), 0.0)
    for _ in range(10):
        rx.receive_datagram(tx.audio(b"\xff" * FRAME_SAMPLES), 0.0)
    assert rx.stats().lost == 0 and rx.stats().received == 20
