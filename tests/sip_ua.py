"""A small SIP user agent over real UDP for tests against the daemon: our own SIP test
client (a phone or a carrier), with an RTP port that plays a tone and keeps what it hears.

It does what a softphone does and no more: sends requests and waits for their final
response (ACKing a non-2xx, retransmitting nothing: loopback loses nothing), answers the
switch's INVITEs (200 with SDP) and BYEs (200), and sends audio every 20 ms while a call
is up. Tests read what it heard with :meth:`Ua.heard` and detect frequencies in it.
"""

from __future__ import annotations

import asyncio
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from switchd.drivers.sip import sdp
from switchd.drivers.sip.digest import answer_challenge
from switchd.drivers.sip.message import NameAddr, Request, Response, parse
from switchd.drivers.sip.rtp import RtpPacket, RtpReceiver, RtpSender
from switchd.drivers.sip.transaction import new_branch, response_to
from switchd.lines import g711


def tone(freq: float, seconds: float, level: float = 8000.0) -> np.ndarray:
    """int16 samples of a sine at 8 kHz."""
    t = np.arange(int(seconds * 8000)) / 8000.0
    return (level * np.sin(2 * math.pi * freq * t)).astype(np.int16)


def power_at(samples: np.ndarray, freq: float) -> float:
    """Share of the signal's energy within ±15 Hz of ``freq`` (0..1), by FFT."""
    x = samples.astype(np.float64)
    if len(x) < 800 or not np.any(x):
        return 0.0
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / 8000)
    band = (f > freq - 15) & (f < freq + 15)
    return float(spec[band].sum() / spec.sum())


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, ua: Ua, rtp: bool) -> None:
        self.ua, self.rtp = ua, rtp

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.rtp:
            self.ua._rtp_in(data, addr)
        else:
            self.ua._sip_in(data, addr)


@dataclass
class Call:
    """One call of the UA: its dialog and media."""

    call_id: str
    ok: Response | None = None          # the 2xx of our INVITE
    invite: Request | None = None       # the switch's INVITE to us
    remote_rtp: tuple[str, int] | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    established: asyncio.Event = field(default_factory=asyncio.Event)


class Ua:
    """A phone (``user``/``password``) or a carrier (no password) at ``host`` (a loopback
    address: a carrier on 127.0.0.2 is told apart from phones on 127.0.0.1)."""

    def __init__(self, user: str, switch: tuple[str, int], password: str | None = None,
                 *, voice: np.ndarray | None = None, auto_answer: bool = True,
                 host: str = "127.0.0.1") -> None:
        self.user, self.password, self.switch = user, password, switch
        self.host = host
        self.voice = voice if voice is not None else np.zeros(160, dtype=np.int16)
        self.auto_answer = auto_answer
        self.tag = os.urandom(4).hex()
        self.cseq = 0
        self.calls: dict[str, Call] = {}
        self.incoming: asyncio.Queue[Call] = asyncio.Queue()
        self._waiting: dict[tuple[str, int, str], asyncio.Future[Response]] = {}
        self._received: list[np.ndarray] = []
        self._rx = RtpReceiver(0, 101)
        self._tx = RtpSender(0, 101)
        self._pos = 0
        self._keys: list[bytes] = []
        self.requests: list[Request] = []
        #: keys received as RFC 4733 events, one per press
        self.keys: list[str] = []

    async def start(self) -> Ua:
        loop = asyncio.get_running_loop()
        self.sip, _ = await loop.create_datagram_endpoint(lambda: _Proto(self, False),
                                                          local_addr=(self.host, 0))
        self.rtp, _ = await loop.create_datagram_endpoint(lambda: _Proto(self, True),
                                                          local_addr=(self.host, 0))
        self.addr = self.sip.get_extra_info("sockname")[:2]
        self.rtp_port = self.rtp.get_extra_info("sockname")[1]
        self._sender = asyncio.ensure_future(self._send_audio())
        return self

    def close(self) -> None:
        self._sender.cancel()
        self.sip.close()
        self.rtp.close()

    # ---------------------------------------------------------------- signalling

    def _headers(self, method: str, to: str, call_id: str, *, frm: str | None = None,
                 cseq: int | None = None) -> tuple[tuple[str, str], ...]:
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        host, port = self.addr
        sw = f"{self.switch[0]}:{self.switch[1]}"
        return (("Via", f"SIP/2.0/UDP {host}:{port};branch={new_branch()};rport"),
                ("Max-Forwards", "70"),
                ("From", frm or f"<sip:{self.user}@{sw}>;tag={self.tag}"), ("To", to),
                ("Call-ID", call_id), ("CSeq", f"{cseq} {method}"),
                ("Contact", f"<sip:{self.user}@{host}:{port}>"))

    async def request(self, req: Request, timeout: float = 5.0) -> Response:
        """Send ``req``; its final response (a 401 answered once with our password)."""
        resp = await self._send(req, timeout)
        if resp.status == 401 and self.password is not None:
            ch = resp.get_all("WWW-Authenticate")[0]
            auth = answer_challenge(ch, method=req.method, uri=req.uri, username=self.user,
                                    password=self.password)
            assert auth is not None
            self.cseq += 1
            again = req.with_headers(("Via", self._headers("X", "", "")[0][1]),
                                     ("CSeq", f"{self.cseq} {req.method}"),
                                     ("Authorization", auth))
            assert isinstance(again, Request)
            resp = await self._send(again, timeout)
        return resp

    async def _send(self, req: Request, timeout: float) -> Response:
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._waiting[(req.call_id, req.cseq.seq, req.method)] = fut
        self.sip.sendto(req.to_bytes(), self.switch)
        return await asyncio.wait_for(fut, timeout)

    async def register(self, expires: int = 300, timeout: float = 5.0) -> Response:
        sw = f"{self.switch[0]}:{self.switch[1]}"
        h = self._headers("REGISTER", f"<sip:{self.user}@{sw}>", os.urandom(6).hex())
        return await self.request(Request(headers=h + (("Expires", str(expires)),),
                                          method="REGISTER", uri=f"sip:{sw}"), timeout)

    async def dial(self, number: str) -> tuple[Response, Call]:
        """INVITE ``number``; the final response and the call (established on 2xx)."""
        sw = f"{self.switch[0]}:{self.switch[1]}"
        call = Call(os.urandom(6).hex())
        self.calls[call.call_id] = call
        body = sdp.build(self.host, self.rtp_port, [sdp.Codec("PCMU", 0)], session_id=1)
        h = self._headers("INVITE", f"<sip:{number}@{sw}>", call.call_id) + (
            ("Content-Type", "application/sdp"),)
        resp = await self.request(Request(headers=h, method="INVITE",
                                          uri=f"sip:{number}@{sw}", body=body))
        if 200 <= resp.status < 300:
            call.ok = resp
            m = sdp.parse(resp.body)
            call.remote_rtp = (m.address, m.port)
            ack = self._headers("ACK", resp.get("To") or "", call.call_id, cseq=resp.cseq.seq)
            self.sip.sendto(Request(headers=ack, method="ACK",
                                    uri=NameAddr.parse(resp.get("Contact") or "").uri).to_bytes(),
                            self.switch)
            call.established.set()
        return resp, call

    async def hang_up(self, call: Call) -> Response:
        """BYE a call we placed (``call.ok``) or answered (``call.invite``)."""
        if call.ok is not None:
            h = self._headers("BYE", call.ok.get("To") or "", call.call_id)
            uri = NameAddr.parse(call.ok.get("Contact") or "").uri
        else:
            assert call.invite is not None
            h = self._headers("BYE", call.invite.get("From") or "", call.call_id,
                              frm=f"{call.invite.get('To')};tag={self.tag}")
            uri = NameAddr.parse(call.invite.get("Contact") or "").uri
        resp = await self.request(Request(headers=h, method="BYE", uri=uri))
        call.remote_rtp = None
        call.ended.set()
        return resp

    def press(self, digit: str) -> None:
        """Send ``digit`` as RFC 4733 events in place of audio."""
        self._keys.extend(self._tx.key(digit, 120))

    def _sip_in(self, data: bytes, addr: Any) -> None:
        msg = parse(data)
        if isinstance(msg, Response):
            key = (msg.call_id, msg.cseq.seq, msg.cseq.method)
            if msg.cseq.method == "INVITE" and msg.status >= 300:
                # ACK a failure (RFC 3261 §17.1.1.3), as a phone does.
                ack = (("Via", msg.get_all("Via")[0]), ("From", msg.get("From") or ""), ("To", msg.get("To") or ""),
                       ("Call-ID", msg.call_id), ("CSeq", f"{msg.cseq.seq} ACK"))
                self.sip.sendto(Request(headers=ack, method="ACK", uri="sip:x@127.0.0.1").to_bytes(),
                                self.switch)
            fut = self._waiting.get(key)
            if fut is not None and not fut.done() and msg.status >= 200:
                fut.set_result(msg)
            return
        self.requests.append(msg)
        if msg.method == "INVITE":
            call = self.calls.get(msg.call_id) or Call(msg.call_id)
            self.calls[msg.call_id] = call
            call.invite = msg
            m = sdp.parse(msg.body)
            call.remote_rtp = (m.address, m.port)
            self.sip.sendto(response_to(msg, 180, to_tag=self.tag).to_bytes(), addr)
            if self.auto_answer:
                self.answer(call)
            self.incoming.put_nowait(call)
        elif msg.method == "BYE":
            self.sip.sendto(response_to(msg, 200, to_tag=self.tag).to_bytes(), addr)
            call = self.calls.get(msg.call_id)
            if call is not None:
                call.remote_rtp = None
                call.ended.set()
        elif msg.method == "CANCEL":
            self.sip.sendto(response_to(msg, 200, to_tag=self.tag).to_bytes(), addr)
            call = self.calls.get(msg.call_id)
            if call is not None and call.invite is not None:
                self.sip.sendto(response_to(call.invite, 487, to_tag=self.tag).to_bytes(), addr)
                call.ended.set()
        elif msg.method == "ACK":
            call = self.calls.get(msg.call_id)
            if call is not None:
                call.established.set()

    def answer(self, call: Call) -> None:
        """Answer the switch's INVITE with 200 and our SDP."""
        assert call.invite is not None
        body = sdp.build(self.host, self.rtp_port, [sdp.Codec("PCMU", 0)], session_id=2)
        host, port = self.addr
        resp = response_to(call.invite, 200, to_tag=self.tag, body=body, headers=(
            ("Contact", f"<sip:{self.user}@{host}:{port}>"), ("Content-Type", "application/sdp")))
        self.sip.sendto(resp.to_bytes(), self.switch)

    # ---------------------------------------------------------------- media

    def _rtp_in(self, data: bytes, addr: Any) -> None:
        pkt = RtpPacket.parse(data)
        if pkt is None:
            return
        if pkt.payload_type == 0:
            self._received.append(g711.ulaw_decode(np.frombuffer(pkt.payload, dtype=np.uint8)))
        key = self._rx.receive(pkt, 0.0)
        if key is not None:
            self.keys.append(key.digit)

    def heard(self) -> np.ndarray:
        """Everything heard so far (int16 at 8 kHz), and forget it."""
        out = np.concatenate(self._received) if self._received else np.zeros(0, np.int16)
        self._received = []
        return out

    async def _send_audio(self) -> None:
        loop = asyncio.get_running_loop()
        next_t = loop.time()
        while True:
            next_t += 0.02
            await asyncio.sleep(max(0.0, next_t - loop.time()))
            for call in self.calls.values():
                if call.remote_rtp is None or not call.established.is_set():
                    continue
                if self._keys:
                    self.rtp.sendto(self._keys.pop(0), call.remote_rtp)
                    continue
                frame = np.resize(np.roll(self.voice, -self._pos), 160)
                self._pos = (self._pos + 160) % max(1, len(self.voice))
                self.rtp.sendto(self._tx.audio(g711.ulaw_encode(frame).tobytes()), call.remote_rtp)
