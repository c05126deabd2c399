"""RTP for one call leg: packets (RFC 3550 §5.1), an adaptive jitter buffer, and RFC 4733 keys.

Pure and small, as aiortc's ``jitterbuffer.py``/``rtcrtpreceiver.py``: the driver hands
each datagram to :meth:`RtpReceiver.receive` with its arrival time and, once per 20 ms
media tick, takes one frame of G.711 bytes with :meth:`RtpReceiver.pull` (None: nothing
to play — the driver conceals). Keys arrive as :class:`KeyPress` from RFC 4733
``telephone-event`` packets, one per key however many times the peer repeats its end
packet. :class:`RtpSender` numbers and stamps what the switch sends, and makes RFC 4733
packets for keys the switch sends.

The jitter buffer: frames are kept by RTP timestamp; playout starts once
:attr:`RtpReceiver.target` frames are buffered and then runs one frame per tick. A frame
not there in time is lost (counted, and the driver conceals it); one arriving after its
time is late (counted, dropped). The target adapts to the measured interarrival jitter
(RFC 3550 §6.4.1/A.8): ``ceil((2·jitter + 10 ms) / 20 ms)`` frames, 2 to
:data:`MAX_FRAMES`; when the buffer holds more than target + 2 frames for 50 ticks in a
row one frame is skipped, so a delay spike does not stay in the call for ever.
"""

from __future__ import annotations

import math
import os
import struct
from collections import deque
from dataclasses import dataclass

from switchd.drivers.sip.rtcp import ReceptionState

__all__ = ["FRAME_SAMPLES", "MAX_FRAMES", "KeyPress", "RtpPacket", "RtpReceiver", "RtpSender",
           "RtpStats"]

FRAME_SAMPLES = 160        # 20 ms at 8 kHz: one RTP packet of G.711
MAX_FRAMES = 10            # most frames buffered (200 ms)
_EVENTS = "0123456789*#ABCD"
_HEADER = struct.Struct("!BBHII")
_SEQ_TS_SSRC = struct.Struct("!HII")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet (RFC 3550 §5.1), CSRCs and header extension skipped on parse."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket | None:
        """The packet in ``data``, or None when it is not RTP version 2 or is cut short
        (a datagram on the RTP port that is not ours is ignored, never an error)."""
        if len(data) < 12:
            return None
        b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
        if b0 >> 6 != 2:
            return None
        offset = 12 + 4 * (b0 & 0x0F)
        if b0 & 0x10:                                   # header extension (§5.3.1)
            if len(data) < offset + 4:
                return None
            offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
        end = len(data)
        if b0 & 0x20:                                   # padding (§5.1)
            end -= data[-1]
        if offset > end:
            return None
        return cls(b1 & 0x7F, seq, ts, ssrc, bytes(data[offset:end]), bool(b1 & 0x80))

    def to_bytes(self) -> bytes:
        """The packet on the wire."""
        return _HEADER.pack(0x80, (0x80 if self.marker else 0) | self.payload_type,
                            self.sequence & 0xFFFF, self.timestamp & 0xFFFFFFFF,
                            self.ssrc) + self.payload


@dataclass(frozen=True, slots=True)
class KeyPress:
    """A key the peer sent as an RFC 4733 event: ``digit`` and its duration (ms)."""

    digit: str
    duration_ms: float


@dataclass(frozen=True, slots=True)
class RtpStats:
    """What one leg's receiver saw: packets received, packets lost (RFC 3550 A.3), late
    (arrived after their frame's time), frames concealed (played as silence or repeated
    because nothing was there), jitter (RFC 3550 interarrival jitter, ms) and the
    jitter buffer's target delay (ms)."""

    received: int
    lost: int
    late: int
    concealed: int
    jitter_ms: float
    delay_ms: float


class RtpReceiver:
    """One leg's inbound RTP (see the module docstring). ``payload``: the audio payload
    type agreed in SDP; ``dtmf_payload``: telephone-event's, or None."""

    def __init__(self, payload: int, dtmf_payload: int | None = None) -> None:
        self.payload = payload
        self.dtmf_payload = dtmf_payload
        self._frames: dict[int, bytes] = {}         # RTP timestamp -> 160 G.711 bytes
        self._next_ts: int | None = None            # timestamp of the next frame to play
        self._playing = False
        self.target = 2
        self._received_here = 0   # audio packets counted for loss since the source began
        self._over = 0
        self.received = 0
        self.late = 0
        self.concealed = 0
        self._base_seq: int | None = None
        self._ext_max = 0                           # highest extended sequence number
        self._jitter = 0.0                          # in timestamp units (samples)
        self._transit: float | None = None
        self._ssrc: int | None = None
        self._last_event_ts: int | None = None       # RFC 4733: the event being reported
        #: the peer's last Sender Report: (middle 32 bits of its NTP time, arrival epoch s)
        self.last_sr: tuple[int, float] = (0, 0.0)
        self._ended_events: deque[int] = deque(maxlen=16)

    def receive_datagram(self, data: bytes, arrival: float) -> KeyPress | None:
        """Take one datagram from the RTP socket (:meth:`receive` on its packet; garbage
        is ignored). The usual packet — version 2, no CSRC, extension or padding, one
        20 ms frame of the agreed codec from the current source — takes a short path
        with no packet object (this runs 50 times a second per line)."""
        if len(data) == 12 + FRAME_SAMPLES and data[0] == 0x80 and \
                (data[1] & 0x7F) == self.payload and self._base_seq is not None:
            seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(data, 2)
            if ssrc == self._ssrc:
                self.received += 1
                self._received_here += 1
                delta = (seq - self._ext_max) & 0xFFFF
                if delta < 0x8000:
                    self._ext_max += delta
                else:
                    self._base_seq = min(self._base_seq, self._ext_max + delta - 0x10000)
                transit = arrival * 8000.0 - ts
                if self._transit is not None:
                    self._jitter += (abs(transit - self._transit) - self._jitter) / 16.0
                self._transit = transit
                target = math.ceil((self._jitter / 4 + 10) / 20)
                self.target = 2 if target < 2 else MAX_FRAMES if target > MAX_FRAMES else target
                nxt = self._next_ts
                if nxt is not None and ts != nxt and ((nxt - ts) & 0xFFFFFFFF) < 0x80000000:
                    self.late += 1
                    return None
                frames = self._frames
                frames[ts] = data[12:]
                if len(frames) > 4 * MAX_FRAMES:
                    self._trim()
                return None
        pkt = RtpPacket.parse(data)
        return None if pkt is None else self.receive(pkt, arrival)

    def receive(self, pkt: RtpPacket, arrival: float) -> KeyPress | None:
        """Take one packet that arrived at ``arrival`` (epoch s); a finished key press
        (RFC 4733 end bit, reported once) is returned."""
        if self._ssrc is not None and pkt.ssrc != self._ssrc:
            # A new source (the far end re-INVITEd or a carrier switched media): start over.
            self._frames.clear()
            self._next_ts = None
            self._playing = False
            self._transit = None
            self._base_seq = None
            self._received_here = 0
        self._ssrc = pkt.ssrc
        is_key = self.dtmf_payload is not None and pkt.payload_type == self.dtmf_payload
        if not is_key and (pkt.payload_type != self.payload or not pkt.payload):
            return None
        # Keys and audio share the sequence numbers: both count for loss (RFC 3550 A.3).
        self._received_here += 1
        if self._base_seq is None:
            self._base_seq = self._ext_max = pkt.sequence
        else:
            # The extended sequence number nearest the highest so far (RFC 3550 A.1).
            delta = (pkt.sequence - self._ext_max) & 0xFFFF
            ext = self._ext_max + (delta if delta < 0x8000 else delta - 0x10000)
            self._ext_max = max(self._ext_max, ext)
            self._base_seq = min(self._base_seq, ext)      # reordered at the very start
        if is_key:
            return self._event(pkt)
        self.received += 1
        # Interarrival jitter (RFC 3550 A.8), in samples.
        transit = arrival * 8000.0 - pkt.timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            self._jitter += (d - self._jitter) / 16.0
        self._transit = transit
        self.target = max(2, min(MAX_FRAMES, math.ceil((2 * self._jitter / 8 + 10) / 20)))
        data = pkt.payload
        for k in range(0, len(data), FRAME_SAMPLES):        # a 40 ms packet is two frames
            ts = (pkt.timestamp + k) & 0xFFFFFFFF
            if self._next_ts is not None and _before(ts, self._next_ts):
                self.late += 1
                continue
            chunk = data[k:k + FRAME_SAMPLES]
            if len(chunk) < FRAME_SAMPLES:
                chunk = chunk + bytes([chunk[-1]]) * (FRAME_SAMPLES - len(chunk))
            self._frames[ts] = chunk
        if len(self._frames) > 4 * MAX_FRAMES:
            self._trim()
        return None

    def _trim(self) -> None:
        """A sender far ahead of us (clock drift, a burst): keep the newest frames."""
        ref = (next(iter(self._frames)) - 0x40000000) & 0xFFFFFFFF
        oldest_first = sorted(self._frames, key=lambda t: (t - ref) & 0xFFFFFFFF)
        for ts in oldest_first[:len(self._frames) - 2 * MAX_FRAMES]:
            del self._frames[ts]
        self._next_ts = None
        self._playing = False

    def _event(self, pkt: RtpPacket) -> KeyPress | None:
        if len(pkt.payload) < 4:
            return None
        event, flags, duration = struct.unpack_from("!BBH", pkt.payload)
        if event >= len(_EVENTS) or not flags & 0x80:
            self._last_event_ts = pkt.timestamp
            return None
        # The end packet is sent three times (RFC 4733 §2.5.1.4): report the key once.
        if pkt.timestamp in self._ended_events:
            return None
        self._ended_events.append(pkt.timestamp)
        return KeyPress(_EVENTS[event], duration / 8.0)

    def pull(self) -> bytes | None:
        """The next 20 ms frame to play (160 G.711 bytes), or None: the driver conceals.

        None while buffering up to :attr:`target` frames, for a frame lost in a gap
        (later ones are here), and on an underrun (nothing buffered: playout waits and
        buffers again, so the delay grows to what the network needs)."""
        frames = self._frames
        if not self._playing:
            if len(frames) < self.target:
                return None
            self._playing = True
            ref = (next(iter(frames)) - 0x40000000) & 0xFFFFFFFF
            earliest = min(frames, key=lambda t: (t - ref) & 0xFFFFFFFF)
            if self._next_ts is None or _before(self._next_ts, earliest):
                # Start, or resume after a pause in the peer's stream: from its first frame.
                self._next_ts = earliest
        ts = self._next_ts
        assert ts is not None
        frame = frames.pop(ts, None)
        if frame is None and not frames:
            self._playing = False       # underrun: buffer again before playing on
            self.concealed += 1
            return None
        self._next_ts = (ts + FRAME_SAMPLES) & 0xFFFFFFFF
        if frame is None:
            self.concealed += 1         # lost in a gap: the frames after it play on time
            return None
        if len(frames) > self.target + 2:
            self._over += 1
            if self._over >= 50:        # too much delay for a while: drop a frame
                self._over = 0
                frames.pop(self._next_ts, None)
                self._next_ts = (self._next_ts + FRAME_SAMPLES) & 0xFFFFFFFF
        else:
            self._over = 0
        return frame

    def reception(self) -> ReceptionState | None:
        """What our RTCP report block says of the peer's stream (None before a packet)."""
        if self._base_seq is None or self._ssrc is None:
            return None
        return ReceptionState(self._ssrc, self._ext_max - self._base_seq + 1,
                              self._received_here, self._ext_max, self._jitter,
                              self.last_sr[0], self.last_sr[1])

    def stats(self) -> RtpStats:
        """Counters so far (see :class:`RtpStats`)."""
        return RtpStats(self.received, self.lost, self.late, self.concealed,
                        self._jitter / 8.0, self.target * 20.0)

    @property
    def lost(self) -> int:
        """Packets never received (RFC 3550 A.3: expected by sequence number − received;
        duplicates can make it negative there, here it is at least 0)."""
        if self._base_seq is None:
            return 0
        return max(0, self._ext_max - self._base_seq + 1 - self._received_here)


def _before(a: int, b: int) -> bool:
    """RTP timestamp ``a`` comes before ``b`` (modulo 2**32, RFC 3550 §5.1)."""
    return a != b and ((b - a) & 0xFFFFFFFF) < 0x80000000


class RtpSender:
    """Numbers and stamps one leg's outbound RTP: audio frames and RFC 4733 keys."""

    def __init__(self, payload: int, dtmf_payload: int | None = None,
                 ssrc: int | None = None) -> None:
        self.payload = payload
        self.dtmf_payload = dtmf_payload
        self.ssrc = ssrc if ssrc is not None else int.from_bytes(os.urandom(4), "big")
        self.sequence = int.from_bytes(os.urandom(2), "big")
        self.timestamp = int.from_bytes(os.urandom(4), "big")
        self._first = True
        self.sent = 0

    def audio(self, frame: bytes) -> bytes:
        """The packet carrying 160 G.711 bytes; the clock moves on one frame."""
        data = _HEADER.pack(0x80, self.payload | (0x80 if self._first else 0), self.sequence,
                            self.timestamp, self.ssrc) + frame
        self._first = False
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + FRAME_SAMPLES) & 0xFFFFFFFF
        self.sent += 1
        return data

    def key(self, digit: str, duration_ms: float = 100.0, volume: int = 10) -> list[bytes]:
        """RFC 4733 packets for one key press (RFC 4733 §2.5): an update per 20 ms with the
        same timestamp, then the end packet three times. Send them one per tick in place of
        audio. Raises ValueError for a digit that is not 0-9 * # A-D."""
        if digit not in _EVENTS or not digit:
            raise ValueError(f"{digit!r} is not a DTMF key (0-9 * # A-D)")
        if self.dtmf_payload is None:
            raise ValueError("the peer offered no telephone-event payload")
        event = _EVENTS.index(digit)
        total = max(FRAME_SAMPLES, int(duration_ms * 8))
        out = []
        start = self.timestamp
        dur = FRAME_SAMPLES
        first = True
        while dur < total:
            out.append(self._event_packet(event, volume, dur, start, end=False, marker=first))
            first = False
            dur += FRAME_SAMPLES
        for _ in range(3):
            out.append(self._event_packet(event, volume, total, start, end=True, marker=False))
        # The packets go one per 20 ms in place of audio: the media clock moves on by all
        # of them, or the audio after the key would run behind real time.
        self.timestamp = (start + FRAME_SAMPLES * len(out)) & 0xFFFFFFFF
        return out

    def _event_packet(self, event: int, volume: int, duration: int, ts: int, *, end: bool,
                      marker: bool) -> bytes:
        assert self.dtmf_payload is not None
        payload = struct.pack("!BBH", event, (0x80 if end else 0) | (volume & 0x3F),
                              duration & 0xFFFF)
        pkt = RtpPacket(self.dtmf_payload, self.sequence, ts, self.ssrc, payload, marker)
        self.sequence = (self.sequence + 1) & 0xFFFF
        return pkt.to_bytes()
