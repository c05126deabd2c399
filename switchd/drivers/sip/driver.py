"""The SIP board driver: the sans-IO :class:`SipEngine` on real UDP sockets, plus RTP media.

Implements :class:`switchd.lines.board.BoardDriver`. Signalling: SIP over UDP and TCP
(one port; a TCP stream is cut into messages by Content-Length) goes to
:meth:`SipEngine.receive`; what it returns is carried out here (datagrams sent, RTP
started and stopped) and the core inputs and bus events are handed to the shell
(``dispatch``). Media: each line has its own RTP socket (port ``sip.rtp_port + 2·channel``,
bound at start); every 20 ms tick :meth:`inbound` takes one frame per line from its
jitter buffer and decodes all lines' G.711 at once (numpy), and :meth:`outbound` encodes
all lines at once and sends one packet per line in a call. RTP is symmetric (RFC 4961
style latching): once a line's peer sends from some address, its audio goes back there,
so phones behind NAT work; once learnt, packets from any other address are dropped
(nobody else can talk into the call). Keys sent as RFC 4733 events become the core's ``Digit``
inputs; the media plane's in-band detector does not count the same key again
(:meth:`claims_digit`). Keys the switch sends (``CALL.DTMF``) go to a peer that took
``telephone-event`` as RFC 4733 events too (:meth:`send_keys`).
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog

from switchd.core.inputs import Digit, Incoming
from switchd.drivers.sip import rtcp
from switchd.drivers.sip.engine import FOLLOWS, MediaStart, MediaStop, SipEngine
from switchd.drivers.sip.message import MAX_MESSAGE, SipParseError, StreamFramer
from switchd.drivers.sip.rtcp import PeerReport
from switchd.drivers.sip.rtp import FRAME_SAMPLES, RtpReceiver, RtpSender
from switchd.drivers.sip.settings import SipSettings
from switchd.drivers.sip.transaction import Send
from switchd.events import LineState
from switchd.lines import g711

__all__ = ["SipDriver"]

log = structlog.get_logger("switchd.sip")
Address = tuple[str, int]
#: How long after an RFC 4733 key the same key heard in-band is the same press (s).
_SAME_KEY_S = 0.3
#: Most SIP-over-TCP connections at once, and seconds one may stay silent before it is
#: closed (a registered phone refreshes, or sends keep-alives, well within it).
MAX_TCP_CONNECTIONS = 1000
TCP_IDLE_S = 3600.0
#: Valid packets in a row, numbered one after the other, before RTP from an address that
#: is not the one in the peer's SDP is taken as the peer's (symmetric RTP behind NAT).
_LEARN_PACKETS = 3


@dataclass(eq=False)
class _KeysOut:
    """Keys the switch sends a line as RFC 4733 events: the keys still to send, the event
    packets of the key being sent (one per 20 ms, in place of audio), and the frames of
    silence still to leave before the next key."""

    pending: deque[str]
    packets: deque[bytes] = field(default_factory=deque)
    gap: int = 0


@dataclass(eq=False)
class _Media:
    """One line's RTP in a call."""

    receiver: RtpReceiver
    sender: RtpSender
    remote: Address
    alaw: bool
    send: bool = True
    latched: bool = False
    sdp_remote: Address = ("", 0)     # the address its SDP gave
    learning: tuple[Address, int, int] | None = None   # (source, last seq, packets in a row)
    rtcp_remote: Address = ("", 0)    # where our RTCP goes (SDP port + 1, then latched)
    rtcp_latched: bool = False
    next_rtcp: float = 0.0
    prior: tuple[int, int] = (0, 0)   # (expected, received) at our last report
    octets: int = 0
    peer: PeerReport | None = None    # the peer's last report on what we sent it


def _joined(parts: dict[str, str]) -> str | None:
    """``line figures; line figures`` (call.ended's and the CDR's ``media``), or None."""
    return "; ".join(f"{line} {text}" for line, text in parts.items()) or None


def _plain(addr: Address) -> Address:
    """An IPv4 peer seen on an IPv6 socket (``::ffff:192.0.2.1``) as its IPv4 address, so
    carriers' addresses match."""
    host = addr[0]
    return (host[7:], addr[1]) if host.startswith("::ffff:") and "." in host else addr


class _SipProtocol(asyncio.DatagramProtocol):
    def __init__(self, driver: SipDriver) -> None:
        self.driver = driver

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.driver.sip_datagram(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:     # ICMP unreachable and the like
        log.debug("sip_socket_error", error=str(exc))


class _RtpProtocol(asyncio.DatagramProtocol):
    def __init__(self, driver: SipDriver, channel: int, control: bool = False) -> None:
        self.driver = driver
        self.channel = channel
        self.control = control          # the RTCP socket (port + 1)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        # 50 packets a second per line: an IPv4 address is passed on as it came.
        if len(addr) != 2:
            addr = (addr[0], addr[1])       # IPv6 has flow info and scope id besides
        if self.control:
            self.driver.rtcp_datagram(self.channel, data, addr)
        else:
            self.driver.rtp_datagram(self.channel, data, addr)

    def error_received(self, exc: Exception) -> None:
        pass


class SipDriver:
    """SIP phones and trunks on every line of the board (see the module docstring).

    ``lines``: line names in the media plane's channel order. ``clock``: epoch seconds
    now (the shell's). ``dispatch``: hands core inputs and bus events to the shell;
    set by the composition root before :meth:`start`.
    """

    FOLLOWS: tuple[type, ...] = FOLLOWS

    def __init__(self, settings: SipSettings, lines: Sequence[str], *,
                 clock: Callable[[], float],
                 dispatch: Callable[[list[Any]], None] | None = None) -> None:
        self.settings = settings
        self.lines = list(lines)
        self.engine = SipEngine(settings, self.lines)
        self.clock = clock
        self.dispatch = dispatch or (lambda items: None)
        #: the shell's submit, for a carrier's Incoming (its refusal must be known)
        self.submit: Callable[[Any], object] | None = None
        self._sip: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        #: open TCP connections by peer address: requests and responses to it go there
        self._streams: dict[Address, asyncio.StreamWriter] = {}
        self._rtp: list[asyncio.DatagramTransport | None] = [None] * len(self.lines)
        self._rtcp: list[asyncio.DatagramTransport | None] = [None] * len(self.lines)
        self._rtp_raw: list[socket.socket | None] = [None] * len(self.lines)
        #: RTP packets the kernel would not take at once (a full send buffer): dropped
        self.send_dropped = 0
        self._media: dict[int, _Media] = {}
        self._last_key: dict[int, tuple[str, float]] = {}
        #: channel -> keys being sent to it as RFC 4733 events
        self._keys_out: dict[int, _KeysOut] = {}
        #: line -> the call it is in (from line.state), so RTP figures go to their call
        self._line_call: dict[str, str] = {}
        #: call id -> line -> RTP figures of lines that left the call before it ended
        self._ended: dict[str, dict[str, str]] = {}
        #: each line's last frame heard, and how many frames in a row it has missed since
        self._last_in = np.zeros((len(self.lines), FRAME_SAMPLES), dtype=np.int16)
        self._lost_run = np.zeros(len(self.lines), dtype=np.int64)
        self.heard = np.zeros((len(self.lines), FRAME_SAMPLES), dtype=np.int16)

    # ------------------------------------------------------------------ sockets

    async def start_sockets(self) -> None:
        """Bind the SIP socket and one RTP socket per line. Raises OSError naming the
        address that could not be bound (a port in use, an address not on this host)."""
        loop = asyncio.get_running_loop()
        s = self.settings
        try:
            self._sip, _ = await loop.create_datagram_endpoint(
                lambda: _SipProtocol(self), local_addr=(s.host, s.port))
        except OSError as e:
            raise OSError(e.errno, f"cannot listen for SIP on {s.host}:{s.port}: "
                          f"{e.strerror}") from None
        self.engine.port = self.sip_port
        try:
            # SIP over TCP on the same port (RFC 3261 §18: a UA takes both).
            self._tcp = await asyncio.start_server(self._serve_tcp, s.host, self.sip_port,
                                                   limit=MAX_MESSAGE * 2)
        except OSError as e:
            self.close()
            raise OSError(e.errno, f"cannot listen for SIP over TCP on {s.host}:"
                          f"{self.sip_port}: {e.strerror}") from None
        for ch, line in enumerate(self.lines):
            port = self.engine.rtp_port(line)
            try:
                # Our own socket: the tick sends on it directly (asyncio's sendto adds
                # a Python layer per packet; at 500 calls that is 25 000 a second).
                raw = socket.socket(socket.AF_INET6 if ":" in s.host else socket.AF_INET,
                                    socket.SOCK_DGRAM)
                raw.setblocking(False)
                raw.bind((s.host, port))
            except OSError as e:
                raw.close()
                self.close()
                raise OSError(e.errno, f"cannot bind RTP port {port} for {line} on {s.host}: "
                              f"{e.strerror}; choose another sip.rtp_port") from None
            # asyncio reads it (one recvfrom per wake-up: draining would cost a failing
            # recvfrom more per packet); the tick writes to it directly.
            tr, _ = await loop.create_datagram_endpoint(
                lambda ch=ch: _RtpProtocol(self, ch), sock=raw)
            self._rtp[ch] = tr
            self._rtp_raw[ch] = raw
            try:
                ctl, _ = await loop.create_datagram_endpoint(
                    lambda ch=ch: _RtpProtocol(self, ch, control=True),
                    local_addr=(s.host, port + 1))
            except OSError as e:
                self.close()
                raise OSError(e.errno, f"cannot bind RTCP port {port + 1} for {line} on "
                              f"{s.host}: {e.strerror}; choose another sip.rtp_port") from None
            self._rtcp[ch] = ctl
        log.info("sip_listening", host=s.host, port=self.sip_port,
                 rtp_ports=f"{s.rtp_port}-{s.rtp_port + 2 * len(self.lines) - 1}")

    @property
    def sip_port(self) -> int:
        """The bound SIP port (the configured one; the OS's pick for port 0)."""
        if self._sip is None:
            return self.settings.port
        return int(self._sip.get_extra_info("sockname")[1])

    def close(self) -> None:
        """Close every socket (calls in progress are the core's to end first)."""
        if self._sip is not None:
            self._sip.close()
            self._sip = None
        if self._tcp is not None:
            self._tcp.close()
            self._tcp = None
        for w in list(self._streams.values()):
            w.close()
        self._streams.clear()
        for i, tr in enumerate(self._rtcp):
            if tr is not None:
                tr.close()
            self._rtcp[i] = None
        for i, tr in enumerate(self._rtp):
            if tr is not None:
                tr.close()                  # closes its socket too
            self._rtp[i] = None
        self._rtp_raw = [None] * len(self.lines)

    def start(self, now: float) -> None:
        """Register to carriers that want it and start their keep-alives (phones register
        on their own)."""
        rest = self._carry_out(self.engine.start(now))
        if rest:
            self.dispatch(rest)

    # ------------------------------------------------------------------ signalling

    def _carry_out(self, outputs: list[Any]) -> list[Any]:
        """Send datagrams and start/stop media; return what is the shell's."""
        rest: list[Any] = []
        for o in outputs:
            t = type(o)
            if t is Send:
                if o.transport == "UDP":
                    if self._sip is not None:
                        self._sip.sendto(o.data, o.addr)
                else:
                    w = self._streams.get(o.addr)
                    if w is None or w.is_closing():
                        # The phone's connection is gone; it registers again over a new one.
                        log.info("sip_tcp_no_connection", to=f"{o.addr[0]}:{o.addr[1]}")
                    else:
                        w.write(o.data)
            elif t is MediaStart:
                self._media_start(o)
            elif t is MediaStop:
                self._media_stop(o.line)
            else:
                rest.append(o)
        return rest

    def sip_datagram(self, data: bytes, addr: Address, transport: str = "UDP") -> None:
        """A SIP message arrived (a datagram, or one cut from a TCP stream)."""
        addr = _plain(addr)
        now = self.clock()
        try:
            rest = self._carry_out(self.engine.receive(now, data, addr, transport))
        except Exception:       # a bug of ours must not take the loop down with one packet
            log.exception("sip_receive_failed", source=f"{addr[0]}:{addr[1]}")
            return
        for item in rest:
            if type(item) is Incoming and self.submit is not None:
                # A carrier's call the core may refuse (shutting down): the INVITE must
                # then be answered, not left ringing.
                try:
                    self.submit(item)
                except Exception as e:
                    line = f"trunk/{item.trunk}"
                    more = self._carry_out(self.engine.refused(self.clock(), line, str(e)))
                    if more:
                        self.dispatch(more)
            else:
                self.dispatch([item])

    async def _serve_tcp(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        """One SIP-over-TCP connection: messages cut by Content-Length (RFC 3261 §18.3)."""
        peer = writer.get_extra_info("peername")
        addr: Address = _plain((peer[0], peer[1]))
        if len(self._streams) >= MAX_TCP_CONNECTIONS:
            log.warning("sip_tcp_refused", source=f"{addr[0]}:{addr[1]}",
                        connections=len(self._streams))
            writer.close()
            return
        self._streams[addr] = writer
        framer = StreamFramer()
        try:
            while data := await asyncio.wait_for(reader.read(65536), TCP_IDLE_S):
                try:
                    messages = framer.feed(data)
                except SipParseError as e:
                    # The stream cannot be resynchronised: say why and close it.
                    log.info("sip_bad_message", source=f"{addr[0]}:{addr[1]}", error=str(e))
                    break
                for m in messages:
                    self.sip_datagram(m, addr, "TCP")
        except (ConnectionError, OSError, TimeoutError):
            pass            # gone, or silent past TCP_IDLE_S (a phone re-registers well before)
        finally:
            if self._streams.get(addr) is writer:
                del self._streams[addr]
            writer.close()

    def handle(self, now: float, item: Any) -> list[Any]:
        """Follow one core event (ring a phone, answer or end a SIP call)."""
        if type(item) is LineState and item.call_id is not None:
            self._line_call[item.line] = item.call_id     # whose call its RTP figures are
        return self._carry_out(self.engine.handle(now, item))

    def next_deadline(self) -> float | None:
        """When the engine next needs the time (retransmissions, expiries)."""
        return self.engine.next_deadline()

    def handle_timer(self, now: float) -> list[Any]:
        """Retransmit, time out, expire registrations."""
        return self._carry_out(self.engine.handle_timer(now))

    # ------------------------------------------------------------------ media

    def _media_start(self, m: MediaStart) -> None:
        ch = self.engine.channel_of[m.line]
        cur = self._media.get(ch)
        if cur is not None and cur.receiver.payload == m.codec.payload \
                and cur.receiver.dtmf_payload == m.codec.dtmf_payload:
            cur.send = m.send
            if m.remote != cur.sdp_remote:
                # The peer moved its media (a re-INVITE): learn its source again.
                cur.remote = cur.sdp_remote = m.remote
                cur.rtcp_remote = (m.remote[0], m.remote[1] + 1)
                cur.latched = cur.rtcp_latched = False
            return
        self._last_in[ch] = 0           # nothing of an earlier call is ever repeated
        self._lost_run[ch] = 0
        self._media[ch] = _Media(RtpReceiver(m.codec.payload, m.codec.dtmf_payload),
                                 RtpSender(m.codec.payload, m.codec.dtmf_payload),
                                 m.remote, alaw=m.codec.name == "PCMA", send=m.send,
                                 sdp_remote=m.remote,
                                 rtcp_remote=(m.remote[0], m.remote[1] + 1),
                                 next_rtcp=self.clock() + rtcp.INTERVAL_S)

    def _media_stop(self, line: str) -> None:
        ch = self.engine.channel_of[line]
        m = self._media.pop(ch, None)
        self._keys_out.pop(ch, None)
        call_id = self._line_call.pop(line, None)
        if m is not None:
            if call_id is not None:
                ended = self._ended.setdefault(call_id, {})
                ended[line] = self._text(m)
                while len(self._ended) > 1000:      # calls that ended without asking
                    del self._ended[next(iter(self._ended))]
            st = m.receiver.stats()
            log.info("sip_media_ended", line=line, received=st.received, lost=st.lost,
                     late=st.late, jitter_ms=round(st.jitter_ms, 1), sent=m.sender.sent)

    @staticmethod
    def _text(m: _Media) -> str:
        st = m.receiver.stats()
        text = (f"rx={st.received} lost={st.lost} late={st.late} concealed={st.concealed} "
                f"jitter_ms={st.jitter_ms:.1f} tx={m.sender.sent}")
        if m.peer is not None:
            # What the far end said (RTCP) of what we sent it.
            text += f" peer_lost={m.peer.lost} peer_jitter_ms={m.peer.jitter_ms:.1f}"
            if m.peer.rtt_ms is not None:
                text += f" rtt_ms={m.peer.rtt_ms:.1f}"
        return text

    def rtcp_datagram(self, channel: int, data: bytes, addr: Address) -> None:
        """An RTCP datagram for ``channel``: the peer's reports (RFC 3550 §6.4)."""
        m = self._media.get(channel)
        if m is None:
            return
        addr = _plain(addr)
        if addr != m.rtcp_remote:
            # Only from the peer's own address (its RTP's), and only once.
            if m.rtcp_latched or addr[0] != m.remote[0]:
                return
            m.rtcp_remote = addr
        m.rtcp_latched = True
        report, sr = rtcp.parse(data, m.sender.ssrc, self.clock())
        if report is not None:
            m.peer = report
        if sr is not None:
            m.receiver.last_sr = sr

    def line_media(self, line: str) -> str | None:
        """``line``'s RTP figures so far in its call, or None when it has no RTP now."""
        ch = self.engine.channel_of.get(line)
        m = self._media.get(ch) if ch is not None else None
        return self._text(m) if m is not None else None

    def _live(self, call_id: str) -> dict[str, str]:
        """Line -> RTP figures so far, of the lines in call ``call_id`` with RTP now."""
        out = {}
        for line, cid in self._line_call.items():
            ch = self.engine.channel_of[line]
            if cid == call_id and ch in self._media:
                out[line] = self._text(self._media[ch])
        return out

    def call_media(self, call_id: str) -> str | None:
        """RTP figures so far of the lines in call ``call_id`` (as :meth:`stats_for_call`,
        the lines still in it only, forgetting nothing)."""
        return _joined(self._live(call_id))

    def stats_for_call(self, call_id: str) -> str | None:
        """What the RTP receivers of ``call_id``'s lines saw (``trunk/1 rx=… lost=… late=…
        concealed=… jitter_ms=… tx=…; ext/201 …``): the lines still in it and those that
        left it; None when none had RTP. Forgets the lines that left."""
        return _joined({**self._ended.pop(call_id, {}), **self._live(call_id)})

    def rtp_datagram(self, channel: int, data: bytes, addr: Address) -> None:
        """An RTP datagram for ``channel`` arrived."""
        m = self._media.get(channel)
        if m is None:
            return
        if addr != m.remote:
            addr = _plain(addr)
            if addr != m.remote and (m.latched or not self._learn(m, data, addr)):
                return      # not this call's peer (or not proven yet): dropped
        m.latched = True
        now = self.clock()
        key = m.receiver.receive_datagram(data, now)
        if key is not None:
            self._last_key[channel] = (key.digit, now)
            self.dispatch([Digit(self.lines[channel], key.digit, now)])

    def send_keys(self, lines: list[str], digits: str) -> list[str]:
        """Send ``digits`` to those of ``lines`` whose peer takes RFC 4733 events (each key
        120 ms of events, 80 ms apart, RFC 4733 §2.5, in place of their audio meanwhile);
        returns them. The others are the caller's to send in-band."""
        took = []
        for line in lines:
            ch = self.engine.channel_of.get(line)
            m = self._media.get(ch) if ch is not None else None
            if ch is None or m is None or m.sender.dtmf_payload is None or not m.send:
                continue
            ko = self._keys_out.setdefault(ch, _KeysOut(deque()))
            ko.pending.extend(digits)
            took.append(line)
        return took

    def _next_key_packet(self, ch: int, m: _Media) -> bytes | None:
        """The RFC 4733 packet to send ``ch`` this frame instead of audio, or None."""
        ko = self._keys_out[ch]
        if ko.packets:
            pkt = ko.packets.popleft()
            if not ko.packets:
                ko.gap = 4                                  # 80 ms before the next key
            return pkt
        if ko.gap > 0:
            ko.gap -= 1
            return None
        if ko.pending:
            # Made now, not ahead: the key's sequence numbers follow the audio sent so far.
            ko.packets.extend(m.sender.key(ko.pending.popleft(), 120))
            return ko.packets.popleft()
        del self._keys_out[ch]
        return None

    @staticmethod
    def _learn(m: _Media, data: bytes, addr: Address) -> bool:
        """Symmetric RTP with care (Asterisk's strictrtp "learning"): before the call's
        media is latched, an address other than the SDP's becomes the peer's only after
        :data:`_LEARN_PACKETS` valid packets in a row of the agreed payload types, each
        numbered after the last, so a stray or forged datagram cannot take the call's
        audio. Returns True when ``addr`` is now the peer (this packet is played)."""
        if len(data) < 12 or data[0] >> 6 != 2:
            return False
        pt = data[1] & 0x7F
        if pt != m.receiver.payload and pt != m.receiver.dtmf_payload:
            return False
        seq = int.from_bytes(data[2:4], "big")
        if m.learning is not None and m.learning[0] == addr \
                and seq == (m.learning[1] + 1) & 0xFFFF:
            m.learning = (addr, seq, m.learning[2] + 1)
        else:
            m.learning = (addr, seq, 1)
        if m.learning[2] < _LEARN_PACKETS:
            return False
        m.remote = addr
        m.learning = None
        return True

    def claims_digit(self, line: str, digit: str, time: float) -> bool:
        """True when ``digit`` heard in-band on ``line`` at ``time`` is a key already
        reported as an RFC 4733 event (one key press is one digit)."""
        ch = self.engine.channel_of.get(line)
        last = self._last_key.get(ch) if ch is not None else None
        return last is not None and last[0] == digit and abs(time - last[1]) < _SAME_KEY_S

    def inbound(self, frame: int, time: float) -> np.ndarray:
        """int16 [C, 160]: what every line's far end said this frame.

        A frame that did not arrive in time is concealed: the last frame heard is played
        again at half its level, then at a quarter, then silence (a crude form of ITU-T
        G.711 Appendix I's repetition: a lost packet is a dip, not a click)."""
        out = np.zeros((len(self.lines), FRAME_SAMPLES), dtype=np.int16)
        if not self._media:
            return out
        rows: list[int] = []
        chunks: list[bytes] = []
        alaw: list[bool] = []
        missed: list[int] = []
        for ch, m in self._media.items():
            data = m.receiver.pull()
            if data is not None:
                rows.append(ch)
                chunks.append(data)
                alaw.append(m.alaw)
            elif m.receiver.received:
                missed.append(ch)
        if rows:
            codes = np.frombuffer(b"".join(chunks), dtype=np.uint8).reshape(len(rows), -1)
            idx = np.asarray(rows)
            is_a = np.asarray(alaw)
            if (~is_a).any():
                out[idx[~is_a]] = g711.ulaw_decode(codes[~is_a])
            if is_a.any():
                out[idx[is_a]] = g711.alaw_decode(codes[is_a])
            self._last_in[idx] = out[idx]
            self._lost_run[idx] = 0
        if missed:
            gone = np.asarray(missed)
            run = self._lost_run[gone] + 1
            self._lost_run[gone] = run
            fade = run <= 2
            if fade.any():
                k = gone[fade]
                out[k] = self._last_in[k] >> run[fade][:, None].astype(np.int16)
        return out

    def outbound(self, frame: int, time: float, samples: np.ndarray) -> None:
        """Send every line in a call its frame: G.711 encoded for all lines at once."""
        self.heard = samples
        if not self._media:
            return
        sending = [(ch, m) for ch, m in self._media.items() if m.send]
        if not sending:
            return
        idx = np.fromiter((ch for ch, _ in sending), dtype=np.intp, count=len(sending))
        rows = samples[idx]
        # One bytes object per codec, sliced per line (cheaper than a row's tobytes()).
        ulaw = g711.ulaw_encode(rows).tobytes()
        alaw = g711.alaw_encode(rows).tobytes() if any(m.alaw for _, m in sending) else ulaw
        keys_out = self._keys_out
        raw = self._rtp_raw
        for k, (ch, m) in enumerate(sending):
            sock = raw[ch]
            if sock is None:
                continue
            pkt: bytes | None = None
            if keys_out and ch in keys_out:
                pkt = self._next_key_packet(ch, m)
            if pkt is None:
                at = k * FRAME_SAMPLES
                pkt = m.sender.audio((alaw if m.alaw else ulaw)[at:at + FRAME_SAMPLES])
            try:
                sock.sendto(pkt, m.remote)
            except OSError:
                # A full send buffer or an unreachable peer (ICMP): a real-time frame is
                # dropped, never queued behind later ones.
                self.send_dropped += 1
            m.octets += FRAME_SAMPLES
            if time >= m.next_rtcp:
                self._send_rtcp(ch, m, time)

    def _send_rtcp(self, ch: int, m: _Media, now: float) -> None:
        """Our Sender Report and CNAME to the line's peer (every rtcp.INTERVAL_S)."""
        m.next_rtcp = now + rtcp.INTERVAL_S
        ctl = self._rtcp[ch]
        if ctl is None:
            return
        rx = m.receiver.reception()
        ctl.sendto(rtcp.compound(now, m.sender.ssrc, m.sender.timestamp, m.sender.sent,
                                 m.octets, rx, m.prior, f"switchd@{self.settings.address}"),
                   m.rtcp_remote)
        if rx is not None:
            m.prior = (rx.expected, rx.received)
