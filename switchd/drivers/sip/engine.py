"""SIP signalling for every line of the board, sans-IO: a registrar, phones and trunks.

:class:`SipEngine` is the board's signalling half (the media half is
:mod:`switchd.drivers.sip.driver`). It takes what arrives on the SIP socket
(:meth:`~SipEngine.receive`), the core's events (:meth:`~SipEngine.handle`) and time
(:meth:`~SipEngine.handle_timer`), and returns outputs: :class:`Send` (bytes for an
address), core inputs (``Incoming``, ``OffHook``, ``Dial``, ``Answer``, ``Hangup``,
``FarBusy``, ``Hold``, ``Retrieve``), :class:`MediaStart`/:class:`MediaStop` for the
RTP side, and bus events (``sip.registration``, ``sip.auth_failed``).

How SIP maps onto the board's lines (DESIGN §3: the core sees lines, not SIP):

* **Extensions** (``ext/N``) are agents' phones. They REGISTER with digest
  authentication; a call the core rings on ``ext/N`` is an INVITE to each bound
  contact (the first to answer takes it, the others are cancelled). A phone's own
  INVITE, authenticated as extension N, takes ``ext/N`` off-hook and dials the
  Request-URI's number; the switch answers it at once, so the phone hears the
  switch's own tones (ringback, busy) like an analog set (RFC 3264 media from the
  start, no early-media dialect).
* **Trunks** (``trunk/N``) belong to carriers (:class:`SipTrunk`). An INVITE from a
  carrier's address takes an idle line of that carrier (``Incoming`` with the DID's
  DNIS); it is answered with 200 when the core connects the line. A call the core
  places on a trunk line is an INVITE to the carrier.
* Hold: a phone's re-INVITE with ``a=sendonly``/``inactive`` is the core's ``Hold``,
  back to ``sendrecv`` its ``Retrieve``.

Who may do what (toll fraud is the classic loss of a SIP switch): only an
authenticated extension or a listed carrier address starts a call; anything else gets
401/403 and nothing else. Wrong answers are counted per source address; after
``auth_fail_limit`` in a minute the address is ignored for ``block_s``.
"""

from __future__ import annotations

import os
import re
import time as _time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import structlog

from switchd.core.inputs import Answer, Dial, FarBusy, Hangup, Hold, Incoming, OffHook, Retrieve
from switchd.drivers.sip import sdp
from switchd.drivers.sip.digest import DigestServer, answer_challenge
from switchd.drivers.sip.message import (
    NameAddr,
    Request,
    Response,
    SipParseError,
    Uri,
    is_number,
    parse,
)
from switchd.drivers.sip.settings import SipSettings, SipTrunk
from switchd.drivers.sip.transaction import (
    AckTimeout,
    Deliver,
    Send,
    Timeout,
    Transactions,
    new_branch,
    response_to,
)
from switchd.engine import TimerHeap
from switchd.events import CallRinging, LineState, SipAuthFailed, SipRegistration, Tone, ToneStarted
from switchd.lines.state import LineStatus

__all__ = ["FOLLOWS", "Binding", "MediaStart", "MediaStop", "SipEngine"]

log = structlog.get_logger("switchd.sip")

#: Characters a header value copied into a reply must not hold (C0 controls but tab, DEL).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
Address = tuple[str, int]

#: The core events the SIP board follows.
FOLLOWS: tuple[type, ...] = (LineState, CallRinging, ToneStarted)
_ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER"


@dataclass(frozen=True, slots=True)
class MediaStart:
    """RTP for ``line`` starts (or changes): send to ``remote`` with ``codec``."""

    line: str
    remote: Address
    codec: sdp.Codec
    send: bool = True           # False while the peer holds the call (sendonly/inactive)


@dataclass(frozen=True, slots=True)
class MediaStop:
    """RTP for ``line`` ends; its receive and send statistics are final."""

    line: str


@dataclass(frozen=True, slots=True)
class Binding:
    """One registered contact of an extension (RFC 3261 §10.3)."""

    contact: str
    source: Address
    transport: str
    expires_at: float
    call_id: str
    cseq: int


class LegState(Enum):
    """Where one line's SIP dialog is."""

    INCOMING = "incoming"       # a carrier's INVITE, not answered yet
    OUTGOING = "outgoing"       # our INVITE(s) ringing a phone or a carrier
    CONFIRMED = "confirmed"     # in a call


@dataclass(eq=False)
class _Fork:
    """One INVITE we sent (to one contact of a phone, or to a carrier)."""

    key: str
    request: Request
    addr: Address
    transport: str = "UDP"
    provisional: bool = False
    cancel_when_provisional: bool = False
    auth_tried: bool = False


@dataclass(eq=False)
class _Leg:
    line: str
    state: LegState
    call_id: str
    local_tag: str
    local: str                  # our address header in this dialog's requests (From), tag on
    remote: str                 # the peer's (To), with its tag once known
    remote_target: str = ""     # where in-dialog requests go (its Contact)
    remote_tag: str | None = None
    addr: Address = ("", 0)
    transport: str = "UDP"
    cseq: int = 1
    server_key: str | None = None       # the peer's INVITE transaction (incoming)
    invite: Request | None = None
    forks: list[_Fork] = field(default_factory=list)
    codec: sdp.Codec | None = None
    media: sdp.Media | None = None
    sdp_version: int = 1
    held: bool = False
    trunk: SipTrunk | None = None
    #: the dialog's route set (RFC 3261 §12.1): Route headers of our in-dialog requests
    route: tuple[str, ...] = ()


def _tag() -> str:
    return os.urandom(6).hex()


def _user_of(addr_header: str) -> str:
    try:
        return Uri.parse(NameAddr.parse(addr_header).uri).user
    except SipParseError:
        return ""


class SipEngine:
    """Signalling of every line over SIP (see the module docstring).

    ``lines``: the board's lines in channel order (``trunk/1``…, ``ext/201``…); the RTP
    port of line ``i`` is ``settings.rtp_port + 2·i``.
    """

    def __init__(self, settings: SipSettings, lines: list[str], *,
                 nonce_key: bytes | None = None) -> None:
        self.settings = settings
        #: the SIP port in Via and Contact (the bound one: the OS picks for port 0)
        self.port = settings.port
        self.lines = list(lines)
        self.channel_of = {name: i for i, name in enumerate(self.lines)}
        self.tx = Transactions()
        self.digest = DigestServer(settings.realm, key=nonce_key,
                                   algorithms=settings.auth_algorithms)
        self.bindings: dict[int, list[Binding]] = defaultdict(list)
        self.status: dict[str, LineStatus] = dict.fromkeys(self.lines, LineStatus.IDLE)
        self.legs: dict[str, _Leg] = {}
        self._dialogs: dict[tuple[str, str], str] = {}      # (Call-ID, our tag) -> line
        self._timers: TimerHeap[tuple[str, Any]] = TimerHeap()
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._blocked: dict[str, float] = {}
        self._session_id = int(_time.time())
        self._trunk_of_line = {ln: t for t in settings.trunks for ln in t.lines}
        #: INVITEs of calls that ended while they rang (client transaction key -> fork)
        self._orphans: dict[str, _Fork] = {}
        #: carriers: registration and reachability; our REGISTER/OPTIONS to them by key
        self._trunks: dict[str, _TrunkStatus] = {}
        self._client_for: dict[str, tuple[str, str]] = {}

    # ------------------------------------------------------------------ helpers

    @property
    def _me(self) -> str:
        return f"{self.settings.address}:{self.port}"

    def _via(self, transport: str = "UDP") -> str:
        return f"SIP/2.0/{transport} {self._me};branch={new_branch()};rport"

    def _contact(self, user: str = "switchd") -> str:
        return f"<sip:{user}@{self._me}>"

    def rtp_port(self, line: str) -> int:
        """The RTP port of ``line`` (RTCP is one above)."""
        return self.settings.rtp_port + 2 * self.channel_of[line]

    def _our_sdp(self, leg: _Leg, direction: str = "sendrecv") -> bytes:
        codecs = [leg.codec] if leg.codec is not None else [
            sdp.Codec(n, sdp.PCMU if n == "PCMU" else sdp.PCMA) for n in self.settings.codecs]
        dtmf = leg.codec.dtmf_payload if leg.codec is not None and leg.codec.dtmf_payload \
            is not None else 101
        leg.sdp_version += 1
        return sdp.build(self.settings.address, self.rtp_port(leg.line), codecs,
                         session_id=self._session_id + self.channel_of[leg.line],
                         version=leg.sdp_version, direction=direction, dtmf_payload=dtmf)

    def _respond(self, now: float, key: str, req: Request, status: int, *,
                 to_tag: str | None = None, headers: tuple[tuple[str, str], ...] = (),
                 body: bytes = b"", reason: str | None = None) -> list[Any]:
        extra = headers + (("Server", self.settings.user_agent),)
        if req.method == "INVITE" and 100 < status < 300:
            # Proxies that record-route see the dialog's requests (RFC 3261 §12.1.1).
            extra = tuple(("Record-Route", r) for r in req.get_all("Record-Route")) + extra
        if body:
            extra += (("Content-Type", "application/sdp"),)
        return list(self.tx.respond(now, key, response_to(
            req, status, reason, to_tag=to_tag or _tag(), headers=extra, body=body)))

    def _media_start(self, leg: _Leg) -> list[Any]:
        if leg.media is None or leg.codec is None:
            return []
        return [MediaStart(leg.line, (leg.media.address, leg.media.port), leg.codec,
                           send=not leg.media.on_hold)]

    # ------------------------------------------------------------------ network in

    def receive(self, now: float, data: bytes, source: Address, transport: str = "UDP") -> list[Any]:
        """A datagram arrived from ``source``. A request that does not parse gets a 400
        naming the fault (when its Via can be read); nothing else ever comes of garbage."""
        until = self._blocked.get(source[0])
        if until is not None:
            if now >= until:
                del self._blocked[source[0]]
            elif not self._registered_from(source, now):
                # Blocked; a phone registered from this very address (an office behind
                # the same NAT as the attacker) keeps working.
                return []
        if data.strip(b"\r\n") == b"":
            return []               # a keep-alive
        try:
            msg = parse(data, stream=transport != "UDP")
        except SipParseError as e:
            return self._bad_request(data, source, transport, e)
        try:
            items = self.tx.receive(now, msg, source, transport)
            # The transaction's own sends (a 100 Trying, a resent answer) go first.
            out: list[Any] = [i for i in items if not isinstance(i, Deliver)]
            for item in items:
                if isinstance(item, Deliver):
                    out += self._deliver(now, item)
        except SipParseError as e:
            # A header read only now (a Contact, a Request-URI) is broken: 400 it too, in
            # its transaction if it has one (which then ends).
            key = self.tx.key_of(msg) if isinstance(msg, Request) and msg.method != "ACK" \
                else None
            if key is not None and isinstance(msg, Request):
                reason = str(e)[:100].replace("\r", " ").replace("\n", " ")
                return list(self.tx.respond_once(key, response_to(
                    msg, e.status, reason, to_tag=_tag())))
            return self._bad_request(data, source, transport, e)
        except Exception:
            # A bug of ours must not leave the request's transaction alive for ever.
            log.exception("sip_request_failed", source=f"{source[0]}:{source[1]}")
            if isinstance(msg, Request) and msg.method != "ACK":
                key = self.tx.key_of(msg)
                if key is not None:
                    return list(self.tx.respond_once(key, response_to(msg, 500, to_tag=_tag())))
            return []
        return out

    def _bad_request(self, data: bytes, source: Address, transport: str,
                     err: SipParseError) -> list[Any]:
        """Answer a broken request with ``err.status`` if there is enough of it to answer
        (RFC 3261 §8.2: Via, From, To, Call-ID and CSeq copied); drop anything else."""
        log.info("sip_bad_message", source=f"{source[0]}:{source[1]}", error=str(err))
        try:
            head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
        except Exception:   # pragma: no cover - decode with "replace" does not raise
            return []
        lines = head.split("\r\n")
        if not lines or lines[0].startswith("SIP/"):
            return []
        keep = []
        for ln in lines[1:]:
            name, _, value = ln.partition(":")
            canon = {"v": "Via", "f": "From", "t": "To", "i": "Call-ID"}.get(
                name.strip().lower(), name.strip())
            if canon.lower() in ("via", "from", "to", "call-id", "cseq"):
                keep.append((canon if canon != "call-id" else "Call-ID", value.strip()))
        names = {n.lower() for n, _ in keep}
        if not {"via", "from", "to", "call-id", "cseq"} <= names:
            return []
        if any(_CONTROL.search(v) for _, v in keep):
            return []     # NULs and the like: nothing of it is fit to echo (RFC 3261 §18.3)
        reason = str(err)[:100].replace("\r", " ").replace("\n", " ")
        status = err.status
        try:
            data_out = Response(headers=tuple(keep), status=status, reason=reason).to_bytes()
            if status != 400:
                try:
                    parse(data_out)
                except SipParseError as again:
                    # The copied headers are broken too (a From without its '>'): the
                    # request is a bad one before it is another version or too big.
                    reason = str(again)[:100].replace("\r", " ").replace("\n", " ")
                    data_out = Response(headers=tuple(keep), status=400,
                                        reason=reason).to_bytes()
        except Exception:   # pragma: no cover
            return []
        return [Send(data_out, source, transport)]

    def _deliver(self, now: float, d: Deliver) -> list[Any]:
        msg = d.message
        if isinstance(msg, Response):
            return self._on_response(now, d.key, msg)
        method = msg.method
        if method == "ACK":
            return self._on_ack(now, msg)
        handler = {
            "REGISTER": self._on_register, "INVITE": self._on_invite, "BYE": self._on_bye,
            "CANCEL": self._on_cancel, "OPTIONS": self._on_options,
        }.get(method)
        if handler is None:
            return self._respond(now, d.key, msg, 405, headers=(("Allow", _ALLOW),))
        return handler(now, d.key, msg, d.source, d.transport)

    # ------------------------------------------------------------------ authentication

    def _fail(self, now: float, source: Address, method: str, user: str,
              reason: str) -> list[Any]:
        """Count a failed authentication from ``source``; block it past the limit."""
        q = self._failures[source[0]]
        q.append(now)
        while q and q[0] < now - 60.0:
            q.popleft()
        if len(self._failures) > 10_000:
            # Forget the addresses with no failure in the last minute (oldest first).
            for ip in [ip for ip, d in self._failures.items() if d[-1] < now - 60.0]:
                del self._failures[ip]
        out: list[Any] = [SipAuthFailed(f"{source[0]}:{source[1]}", method, user, reason,
                                        len(q), now)]
        if len(q) >= self.settings.auth_fail_limit and self._trunk_from(source) is None:
            # A carrier's address is never blocked: a forged source (UDP) must not be able
            # to cut the centre off from its inbound calls.
            self._blocked[source[0]] = now + self.settings.block_s
            q.clear()
            out.append(SipAuthFailed(f"{source[0]}:{source[1]}", method, user, "rate_limited",
                                     self.settings.auth_fail_limit, now))
            log.warning("sip_source_blocked", source=source[0], seconds=self.settings.block_s)
        return out

    def _authenticate(self, now: float, key: str, req: Request,
                      source: Address) -> tuple[int | None, list[Any]]:
        """(extension number, []) when ``req`` carries a right answer for an extension;
        else (None, what to send: a challenge, or a refusal and failure events)."""
        user = _user_of(req.get("From") or "")
        auth = req.get("Authorization") or req.get("Proxy-Authorization")
        lookup = {str(n): c for n, c in self.settings.extensions.items()}
        who, stale = self.digest.check(now, req.method, auth, lookup, request_uri=req.uri)
        if who is not None:
            return int(who), []
        challenge = tuple(("WWW-Authenticate", c) for c in self.digest.challenges(now, stale=stale))
        # Sent once and forgotten (a proxy's stateless 401): a forged source gets one packet.
        out: list[Any] = list(self.tx.respond_once(key, response_to(
            req, 401, to_tag=_tag(), headers=challenge + (("Server", self.settings.user_agent),))))
        if auth and not stale:
            out += self._fail(now, source, req.method, user,
                              "bad_credentials" if user in lookup else "unknown_user")
        return None, out

    # ------------------------------------------------------------------ REGISTER

    def _on_register(self, now: float, key: str, req: Request, source: Address,
                     transport: str) -> list[Any]:
        ext, out = self._authenticate(now, key, req, source)
        if ext is None:
            return out
        to_user = _user_of(req.get("To") or "")
        if to_user != str(ext):
            return self._respond(now, key, req, 403,
                                 reason=f"{ext} may not register {to_user or 'that address'}")
        line = f"ext/{ext}"
        if line not in self.channel_of:
            return self._respond(now, key, req, 404, reason=f"extension {ext} is not on this board")
        default = req.get("Expires")
        events: list[Any] = []
        contacts = req.get_all("Contact")
        current = self.bindings[ext]
        if contacts == ["*"]:
            if default != "0":
                return self._respond(now, key, req, 400, reason="Contact * needs Expires: 0")
            for b in current:
                self._timers.cancel(("reg", ext, b.contact))
                events.append(SipRegistration(line, 0, b.contact, 0.0,
                                              f"{source[0]}:{source[1]}", now))
            current.clear()
        for c in contacts if contacts != ["*"] else []:
            try:
                na = NameAddr.parse(c)
                Uri.parse(na.uri)
            except SipParseError as e:
                return self._respond(now, key, req, 400, reason=f"Contact: {e}")
            exp_text = na.param("expires") or default or "3600"
            if not is_number(exp_text):
                return self._respond(now, key, req, 400, reason=f"expires {exp_text!r} is not a number")
            expires = int(exp_text)
            if 0 < expires < self.settings.min_expires_s:
                return self._respond(now, key, req, 423, headers=(
                    ("Min-Expires", str(self.settings.min_expires_s)),))
            expires = min(expires, self.settings.max_expires_s)
            old = next((b for b in current if b.contact == na.uri), None)
            if old is not None:
                if old.call_id == req.call_id and req.cseq.seq <= old.cseq:
                    continue        # an older request overtaken (§10.3 step 7)
                current.remove(old)
            if expires == 0:
                self._timers.cancel(("reg", ext, na.uri))
                events.append(SipRegistration(line, len(current), na.uri, 0.0,
                                              f"{source[0]}:{source[1]}", now))
                continue
            b = Binding(na.uri, source, transport, now + expires, req.call_id, req.cseq.seq)
            current.append(b)
            self._timers.arm(("reg", ext, na.uri), b.expires_at)
            events.append(SipRegistration(line, len(current), na.uri, float(expires),
                                          f"{source[0]}:{source[1]}", now))
        bound = tuple(("Contact", f"<{b.contact}>;expires={max(0, round(b.expires_at - now))}")
                      for b in current)
        return self._respond(now, key, req, 200, headers=bound + (("Date", _http_date(now)),)) \
            + events

    def _registered_from(self, source: Address, now: float) -> bool:
        return any(b.source == source and b.expires_at > now
                   for binds in self.bindings.values() for b in binds)

    def _trunk_from(self, source: Address) -> SipTrunk | None:
        return next((t for t in self.settings.trunks if t.accepts(*source)), None)

    # ------------------------------------------------------------------ OPTIONS

    def _on_options(self, now: float, key: str, req: Request, source: Address,
                    transport: str) -> list[Any]:
        return self._respond(now, key, req, 200, headers=(
            ("Allow", _ALLOW), ("Accept", "application/sdp")))

    # ------------------------------------------------------------------ INVITE in

    def _on_invite(self, now: float, key: str, req: Request, source: Address,
                   transport: str) -> list[Any]:
        to_tag = req.to.tag
        if to_tag:
            return self._on_reinvite(now, key, req, to_tag)
        trunk = self._trunk_from(source)
        if trunk is not None:
            return self._trunk_invite(now, key, req, source, trunk)
        ext, out = self._authenticate(now, key, req, source)
        if ext is None:
            return out
        return self._phone_invite(now, key, req, source, ext, transport)

    def _offer(self, now: float, key: str, req: Request,
               codecs: tuple[str, ...]) -> tuple[sdp.Media | None, sdp.Codec | None, list[Any]]:
        if not req.body:
            return None, None, self._respond(now, key, req, 488,
                                             reason="an SDP offer in the INVITE is required")
        try:
            media = sdp.parse(req.body)
        except sdp.SdpError as e:
            # Broken SDP is a bad request (400); good SDP we cannot use is 488 below.
            return None, None, self._respond(now, key, req, 400,
                                             reason=f"SDP: {e}"[:120].replace("\n", " "))
        try:
            return media, sdp.answer(media, codecs), []
        except sdp.SdpError as e:
            return None, None, self._respond(now, key, req, 488, reason=str(e)[:120])

    def _phone_invite(self, now: float, key: str, req: Request, source: Address,
                      ext: int, transport: str = "UDP") -> list[Any]:
        line = f"ext/{ext}"
        if line not in self.channel_of:
            return self._respond(now, key, req, 404, reason=f"extension {ext} is not on this board")
        if self.status[line] is not LineStatus.IDLE or line in self.legs:
            return self._respond(now, key, req, 486)
        number = _dialled(req.uri)
        media, codec, refused = self._offer(now, key, req, self.settings.codecs)
        if refused:
            return refused
        tag = _tag()
        leg = _Leg(line, LegState.CONFIRMED, req.call_id, tag,
                   local=f"{req.get('To') or ''};tag={tag}", remote=req.get("From") or "",
                   remote_tag=req.from_.tag, addr=source, transport=transport,
                   server_key=key, invite=req, codec=codec, media=media)
        leg.remote_target = self._target(req)
        leg.route = tuple(req.get_all("Record-Route"))
        self._add_leg(leg)
        out = self._respond(now, key, req, 200, to_tag=leg.local_tag,
                            headers=(("Contact", self._contact(str(ext))), ("Allow", _ALLOW)),
                            body=self._our_sdp(leg))
        out += [OffHook(line)]
        if number:
            out.append(Dial(line, number))
        return out + self._media_start(leg)

    def _trunk_invite(self, now: float, key: str, req: Request, source: Address,
                      trunk: SipTrunk) -> list[Any]:
        line = next((ln for ln in trunk.lines if self.status.get(ln) is LineStatus.IDLE
                     and ln not in self.legs and ln in self.channel_of), None)
        if line is None:
            return self._respond(now, key, req, 486, reason=f"all {trunk.channels} channels "
                                 f"of trunk {trunk.name} are busy")
        media, codec, refused = self._offer(now, key, req, trunk.codecs)
        if refused:
            return refused
        did = _dialled(req.uri)
        dnis = trunk.dids.get(did, did)
        caller = _user_of(req.get("P-Asserted-Identity") or req.get("From") or "") or "anonymous"
        tag = _tag()
        leg = _Leg(line, LegState.INCOMING, req.call_id, tag,
                   local=f"{req.get('To') or ''};tag={tag}", remote=req.get("From") or "",
                   remote_tag=req.from_.tag, addr=source, server_key=key, invite=req,
                   codec=codec, media=media, trunk=trunk)
        leg.remote_target = self._target(req)
        leg.route = tuple(req.get_all("Record-Route"))
        self._add_leg(leg)
        return [Incoming(caller=caller, dnis=dnis, trunk=int(line.split("/")[1]))]

    def _target(self, req: Request | Response) -> str:
        contact = req.get("Contact")
        if contact:
            try:
                return NameAddr.parse(contact).uri
            except SipParseError:
                pass
        return NameAddr.parse(req.get("From") or "").uri if isinstance(req, Request) else ""

    def _add_leg(self, leg: _Leg) -> None:
        self.legs[leg.line] = leg
        self._dialogs[(leg.call_id, leg.local_tag)] = leg.line

    def _drop_leg(self, leg: _Leg) -> list[Any]:
        self.legs.pop(leg.line, None)
        self._dialogs.pop((leg.call_id, leg.local_tag), None)
        return [MediaStop(leg.line)]

    def _on_reinvite(self, now: float, key: str, req: Request, to_tag: str) -> list[Any]:
        leg = self._dialog_leg(req)
        line = leg.line if leg is not None else None
        if leg is None or leg.state is not LegState.CONFIRMED:
            return self._respond(now, key, req, 481)
        leg.server_key = key        # its ACK stops this 2xx's retransmissions
        if not req.body:
            return self._respond(now, key, req, 488, reason="a re-INVITE without SDP is not taken")
        try:
            media = sdp.parse(req.body)
        except sdp.SdpError as e:
            return self._respond(now, key, req, 400, reason=f"SDP: {e}"[:120])
        try:
            # A new offer is negotiated anew (RFC 3264 §8): its codec, its event type.
            leg.codec = sdp.answer(media, leg.trunk.codecs if leg.trunk else self.settings.codecs)
        except sdp.SdpError as e:
            return self._respond(now, key, req, 488, reason=str(e)[:120])
        leg.media = media
        leg.remote_target = self._target(req) or leg.remote_target
        answer_dir = {"sendonly": "recvonly", "inactive": "inactive",
                      "recvonly": "sendonly"}.get(media.direction, "sendrecv")
        out = self._respond(now, key, req, 200, to_tag=leg.local_tag,
                            headers=(("Contact", self._contact()),),
                            body=self._our_sdp(leg, answer_dir))
        out += self._media_start(leg)
        if line is not None and line.startswith("ext/"):
            if media.on_hold and not leg.held:
                leg.held = True
                out.append(Hold(line))
            elif not media.on_hold and leg.held:
                leg.held = False
                out.append(Retrieve(line))
        return out

    def _on_ack(self, now: float, req: Request) -> list[Any]:
        leg = self._dialog_leg(req)
        if leg is not None and leg.server_key is not None:
            self.tx.acked(leg.server_key)
        return []

    # ------------------------------------------------------------------ BYE / CANCEL in

    def _dialog_leg(self, req: Request) -> _Leg | None:
        """The confirmed leg whose dialog ``req`` is in: Call-ID, our tag (its To) and the
        peer's (its From) — a forked phone that lost the race shares the first two."""
        line = self._dialogs.get((req.call_id, req.to.tag or ""))
        leg = self.legs.get(line) if line is not None else None
        if leg is None or (leg.remote_tag is not None and req.from_.tag != leg.remote_tag):
            return None
        return leg

    def _on_bye(self, now: float, key: str, req: Request, source: Address,
                transport: str) -> list[Any]:
        leg = self._dialog_leg(req)
        if leg is None:
            return self._respond(now, key, req, 481)
        out = self._respond(now, key, req, 200, to_tag=leg.local_tag)
        out += self._drop_leg(leg)
        return out + [Hangup(leg.line)]

    def _on_cancel(self, now: float, key: str, req: Request, source: Address,
                   transport: str) -> list[Any]:
        leg = next((lg for lg in self.legs.values() if lg.state is LegState.INCOMING
                    and lg.invite is not None and lg.invite.call_id == req.call_id
                    and lg.invite.vias[0].branch == req.vias[0].branch), None)
        if leg is None or leg.server_key is None or leg.invite is None:
            return self._respond(now, key, req, 481)
        out = self._respond(now, key, req, 200)
        out += self._respond(now, leg.server_key, leg.invite, 487, to_tag=leg.local_tag)
        out += self._drop_leg(leg)
        return out + [Hangup(leg.line)]

    # ------------------------------------------------------------------ INVITE out

    def _invite(self, now: float, leg: _Leg, target: str, addr: Address,
                transport: str = "UDP") -> list[Any]:
        headers = (("Via", self._via(transport)), ("Max-Forwards", "70"),
                   ("From", leg.local), ("To", leg.remote),
                   ("Call-ID", leg.call_id), ("CSeq", f"{leg.cseq} INVITE"),
                   ("Contact", self._contact()), ("Allow", _ALLOW),
                   ("User-Agent", self.settings.user_agent), ("Content-Type", "application/sdp"))
        req = Request(headers=headers, method="INVITE", uri=target, body=self._our_sdp(leg))
        key, sends = self.tx.request(now, req, addr, transport)
        leg.forks.append(_Fork(key, req, addr, transport))
        return list(sends)

    def _ring_phone(self, now: float, line: str, caller: str) -> list[Any]:
        ext = int(line.split("/")[1])
        contacts = [b for b in self.bindings.get(ext, []) if b.expires_at > now]
        if not contacts:
            log.info("sip_extension_unregistered", line=line, then=self.settings.unregistered)
            if self.settings.unregistered == "busy":
                return [Hangup(line)]       # the phone "declines" at once (not registered)
            return []           # it rings nowhere: the core's ring timeout ends the offer
        call_id = f"{os.urandom(8).hex()}@{self.settings.address}"
        tag = _tag()
        leg = _Leg(line, LegState.OUTGOING, call_id, tag,
                   local=f'"{caller}" <sip:{caller}@{self._me}>;tag={tag}',
                   remote=f"<sip:{ext}@{self._me}>")
        self._add_leg(leg)
        out: list[Any] = []
        for b in contacts:
            out += self._invite(now, leg, b.contact, b.source, b.transport)
        return out

    def _call_out(self, now: float, line: str, callee: str, caller: str) -> list[Any]:
        trunk = self._trunk_of_line.get(line)
        if trunk is None:
            return [FarBusy(line)]
        shown = trunk.caller_id or caller
        call_id = f"{os.urandom(8).hex()}@{self.settings.address}"
        tag = _tag()
        leg = _Leg(line, LegState.OUTGOING, call_id, tag,
                   local=f"<sip:{shown}@{self._me}>;tag={tag}",
                   remote=f"<sip:{callee}@{trunk.host}:{trunk.port}>", trunk=trunk)
        self._add_leg(leg)
        return self._invite(now, leg, f"sip:{callee}@{trunk.host}:{trunk.port}",
                            (trunk.host, trunk.port))

    def _on_response(self, now: float, key: str, resp: Response) -> list[Any]:
        if resp.cseq.method != "INVITE":
            return self._trunk_response(now, key, resp)
        leg, fork = self._fork_of(key)
        if leg is None or fork is None:
            return self._orphan_response(now, key, resp)
        status = resp.status
        if status < 200:
            fork.provisional = True
            if fork.cancel_when_provisional:
                return self._cancel(now, fork)
            return []
        if status < 300:
            return self._fork_answered(now, leg, fork, resp)
        if status in (401, 407) and not fork.auth_tried and leg.trunk is not None \
                and leg.trunk.username and leg.trunk.password:
            return self._retry_with_auth(now, leg, fork, resp)
        leg.forks.remove(fork)
        if leg.forks or leg.state is not LegState.OUTGOING:
            return []
        out = self._drop_leg(leg)
        if leg.line.startswith("trunk/"):
            return out + [FarBusy(leg.line)]
        return out + [Hangup(leg.line)]     # every phone of the extension declined

    def _orphan_response(self, now: float, key: str, resp: Response) -> list[Any]:
        """A response to an INVITE of a call the switch already ended: CANCEL it at its
        first provisional (RFC 3261 §9.1), and a 2xx that won the race gets ACK and BYE."""
        fork = self._orphans.get(key)
        if fork is None:
            return []
        if resp.status < 200:
            if fork.provisional:
                return []
            fork.provisional = True
            return self._cancel(now, fork)
        del self._orphans[key]
        if resp.status < 300:
            return self._ack(now, fork, resp) + self._bye_dialog(now, fork, resp)
        return []

    def _fork_of(self, key: str) -> tuple[_Leg | None, _Fork | None]:
        for leg in self.legs.values():
            for f in leg.forks:
                if f.key == key:
                    return leg, f
        return None, None

    def _fork_answered(self, now: float, leg: _Leg, fork: _Fork, resp: Response) -> list[Any]:
        out = self._ack(now, fork, resp)
        if leg.state is LegState.CONFIRMED:
            if resp.to.tag == leg.remote_tag:
                return out      # our ACK was lost: the 2xx again gets the ACK again
            # Another contact answered too late: it gets ACK and BYE (§13.2.2.4).
            return out + self._bye_dialog(now, fork, resp)
        try:
            media = sdp.parse(resp.body)
            codec = sdp.answer(media, leg.trunk.codecs if leg.trunk else self.settings.codecs)
        except sdp.SdpError as e:
            log.warning("sip_bad_answer", line=leg.line, error=str(e))
            leg.remote_tag = resp.to.tag
            leg.remote = resp.get("To") or leg.remote
            leg.remote_target = self._target(resp) or fork.request.uri
            leg.addr = fork.addr
            leg.state = LegState.CONFIRMED
            return out + self._hang_up(now, leg) + [Hangup(leg.line)]
        leg.state = LegState.CONFIRMED
        leg.remote_tag = resp.to.tag
        leg.remote = resp.get("To") or leg.remote
        leg.remote_target = self._target(resp) or fork.request.uri
        leg.addr, leg.transport = fork.addr, fork.transport
        leg.route = tuple(reversed(resp.get_all("Record-Route")))
        leg.media, leg.codec = media, codec
        for other in leg.forks:
            if other is not fork:
                out += self._cancel(now, other)
                # Its answer may cross the CANCEL: a 1xx is cancelled, a 2xx gets ACK+BYE.
                self._orphans[other.key] = other
        leg.forks = [fork]
        return out + self._media_start(leg) + [Answer(leg.line)]

    def _in_fork_dialog(self, now: float, fork: _Fork, resp: Response, method: str,
                        cseq: int) -> list[Any]:
        """Send ``method`` in the dialog ``resp`` (a 2xx to ``fork``'s INVITE) made: to its
        Contact, through its record-route set (RFC 3261 §12.2.1.1)."""
        routes = tuple(("Route", r) for r in reversed(resp.get_all("Record-Route")))
        headers = (("Via", self._via(fork.transport)), ("Max-Forwards", "70"), *routes,
                   ("From", fork.request.get("From") or ""), ("To", resp.get("To") or ""),
                   ("Call-ID", fork.request.call_id), ("CSeq", f"{cseq} {method}"))
        target = self._target(resp) or fork.request.uri
        _, sends = self.tx.request(now, Request(headers=headers, method=method, uri=target),
                                   fork.addr, fork.transport)
        return list(sends)

    def _ack(self, now: float, fork: _Fork, resp: Response) -> list[Any]:
        return self._in_fork_dialog(now, fork, resp, "ACK", fork.request.cseq.seq)

    def _bye_dialog(self, now: float, fork: _Fork, resp: Response) -> list[Any]:
        return self._in_fork_dialog(now, fork, resp, "BYE", fork.request.cseq.seq + 1)

    def _cancel(self, now: float, fork: _Fork) -> list[Any]:
        if not fork.provisional:
            fork.cancel_when_provisional = True     # §9.1: no CANCEL before a provisional
            return []
        req = fork.request
        headers = (("Via", req.get_all("Via")[0]), ("Max-Forwards", "70"),
                   ("From", req.get("From") or ""), ("To", req.get("To") or ""),
                   ("Call-ID", req.call_id), ("CSeq", f"{req.cseq.seq} CANCEL"))
        _, sends = self.tx.request(now, Request(headers=headers, method="CANCEL", uri=req.uri),
                                   fork.addr, fork.transport)
        return list(sends)

    def _retry_with_auth(self, now: float, leg: _Leg, fork: _Fork, resp: Response) -> list[Any]:
        trunk = leg.trunk
        assert trunk is not None and trunk.username and trunk.password
        challenge = resp.get("WWW-Authenticate") or resp.get("Proxy-Authenticate") or ""
        header = "Authorization" if resp.status == 401 else "Proxy-Authorization"
        auth = answer_challenge(challenge, method="INVITE", uri=fork.request.uri,
                                username=trunk.username, password=trunk.password)
        leg.forks.remove(fork)
        if auth is None:
            out = self._drop_leg(leg)
            return out + [FarBusy(leg.line)]
        leg.cseq += 1
        req = fork.request.with_headers(("Via", self._via(fork.transport)),
                                        ("CSeq", f"{leg.cseq} INVITE"), (header, auth))
        assert isinstance(req, Request)
        key, sends = self.tx.request(now, req, fork.addr, fork.transport)
        leg.forks.append(_Fork(key, req, fork.addr, fork.transport, auth_tried=True))
        return list(sends)

    # ------------------------------------------------------------------ ending a call

    def _hang_up(self, now: float, leg: _Leg) -> list[Any]:
        """The switch released ``leg``'s line: end its SIP side however far it got."""
        out: list[Any] = []
        if leg.state is LegState.CONFIRMED:
            leg.cseq += 1
            headers = (("Via", self._via(leg.transport)), ("Max-Forwards", "70"),
                       *(("Route", r) for r in leg.route), ("From", leg.local),
                       ("To", leg.remote), ("Call-ID", leg.call_id), ("CSeq", f"{leg.cseq} BYE"))
            req = Request(headers=headers, method="BYE", uri=leg.remote_target)
            _, sends = self.tx.request(now, req, leg.addr, leg.transport)
            out += sends
        elif leg.state is LegState.INCOMING and leg.server_key is not None and leg.invite:
            out += self._respond(now, leg.server_key, leg.invite, 480, to_tag=leg.local_tag)
        elif leg.state is LegState.OUTGOING:
            for f in leg.forks:
                out += self._cancel(now, f)
                # Its answers still come: a 1xx gets the CANCEL, a 2xx ACK and BYE.
                self._orphans[f.key] = f
        return out + self._drop_leg(leg)

    # ------------------------------------------------------------------ core events

    def handle(self, now: float, event: Any) -> list[Any]:
        """Follow a core event: ring phones and carriers, answer and end SIP calls."""
        kind = type(event)
        if kind is LineState:
            return self._line_state(now, event)
        if kind is ToneStarted:
            return self._tone(now, event)
        if kind is CallRinging:
            line = event.line
            if line in self.legs:
                return []
            if line.startswith("ext/"):
                return self._ring_phone(now, line, event.caller)
            if line.startswith("trunk/") and self.status.get(line) is not LineStatus.IDLE:
                return self._call_out(now, line, event.callee, event.caller)
        return []

    def _line_state(self, now: float, ev: LineState) -> list[Any]:
        line = ev.line
        if line not in self.status:
            return []
        self.status[line] = ev.state
        leg = self.legs.get(line)
        if leg is None:
            return []
        if ev.state is LineStatus.IDLE:
            return self._hang_up(now, leg)
        if leg.state is LegState.INCOMING and leg.server_key is not None and leg.invite:
            if ev.state is LineStatus.ALERTING:
                return self._respond(now, leg.server_key, leg.invite, 180, to_tag=leg.local_tag)
            if ev.state in (LineStatus.CONNECTED, LineStatus.HELD):
                # The switch connected the caller (an IVR, a queue, an agent): answer.
                leg.state = LegState.CONFIRMED
                out = self._respond(now, leg.server_key, leg.invite, 200, to_tag=leg.local_tag,
                                    headers=(("Contact", self._contact()), ("Allow", _ALLOW)),
                                    body=self._our_sdp(leg))
                return out + self._media_start(leg)
        return []

    def _tone(self, now: float, ev: ToneStarted) -> list[Any]:
        """Busy or congestion for a carrier's call not answered yet: a SIP answer (486 /
        503), not a 200 to play the tone over: an answered call is a billed one."""
        leg = self.legs.get(ev.line)
        if leg is None or leg.state is not LegState.INCOMING or leg.server_key is None \
                or leg.invite is None or ev.tone not in (Tone.BUSY, Tone.CONGESTION):
            return []
        status = 486 if ev.tone is Tone.BUSY else 503
        out = self._respond(now, leg.server_key, leg.invite, status, to_tag=leg.local_tag)
        return out + self._drop_leg(leg) + [Hangup(leg.line)]

    # ------------------------------------------------------------------ time

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must next run, epoch s."""
        a, b = self.tx.next_deadline(), self._timers.next_deadline()
        return min((t for t in (a, b) if t is not None), default=None)

    def handle_timer(self, now: float) -> list[Any]:
        """Retransmissions, transaction time-outs, registrations that expired."""
        out: list[Any] = []
        for item in self.tx.handle_timer(now):
            if isinstance(item, Timeout):
                out += self._on_timeout(now, item)
            elif isinstance(item, AckTimeout):
                out += self._on_ack_timeout(now, item.key)
            elif isinstance(item, Deliver):
                out += self._deliver(now, item)
            else:
                out.append(item)
        while (due := self._timers.pop_due(now)) is not None:
            (what, *rest), _ = due
            if what in ("trunk-reg", "trunk-ping"):
                out += self._trunk_timer(now, what, rest[0])
                continue
            if what == "reg":
                ext, contact = rest
                binds = self.bindings.get(ext, [])
                gone = [b for b in binds if b.contact == contact and b.expires_at <= now]
                for b in gone:
                    binds.remove(b)
                    out.append(SipRegistration(f"ext/{ext}", len(binds), contact, 0.0,
                                               f"{b.source[0]}:{b.source[1]}", now))
        return out

    def _on_ack_timeout(self, now: float, key: str) -> list[Any]:
        """Our 2xx got no ACK (RFC 3261 §13.3.1.4): the peer is not there — BYE, and the
        core's line hangs up (a forged INVITE cannot keep a call streaming anywhere)."""
        leg = next((lg for lg in self.legs.values() if lg.server_key == key), None)
        if leg is None or leg.state is not LegState.CONFIRMED:
            return []
        log.info("sip_no_ack", line=leg.line)
        return self._hang_up(now, leg) + [Hangup(leg.line)]

    def refused(self, now: float, line: str, reason: str) -> list[Any]:
        """The core refused a carrier's call on ``line`` (shutting down, the trunk not
        idle): answer its INVITE 503 and forget it."""
        leg = self.legs.get(line)
        if leg is None or leg.state is not LegState.INCOMING or leg.server_key is None \
                or leg.invite is None:
            return []
        out = self._respond(now, leg.server_key, leg.invite, 503, to_tag=leg.local_tag,
                            reason=reason[:100])
        return out + self._drop_leg(leg)

    def _on_timeout(self, now: float, t: Timeout) -> list[Any]:
        if t.request.method != "INVITE":
            return self._trunk_timeout(now, t.key)
        self._orphans.pop(t.key, None)
        leg, fork = self._fork_of(t.key)
        if leg is None or fork is None or leg.state is not LegState.OUTGOING:
            return []
        leg.forks.remove(fork)
        if leg.forks:
            return []
        out = self._drop_leg(leg)
        # Nobody answered in time at SIP level: a carrier is busy, a phone declines.
        return out + [FarBusy(leg.line) if leg.line.startswith("trunk/") else Hangup(leg.line)]

    # ------------------------------------------------------------------ carriers

    def start(self, now: float) -> list[Any]:
        """Register to the carriers that want it and start their keep-alives (again after a
        reload: timers already armed are kept)."""
        out: list[Any] = []
        for t in self.settings.trunks:
            status = self._trunks.setdefault(t.name, _TrunkStatus())
            if t.register and not self._timers.armed(("trunk-reg", t.name)) \
                    and status.reg_key is None:
                out += self._trunk_register(now, t)
            if t.keepalive_s > 0 and not self._timers.armed(("trunk-ping", t.name)):
                self._timers.arm(("trunk-ping", t.name), now + t.keepalive_s)
        return out

    def _trunk_request(self, now: float, t: SipTrunk, method: str, *,
                       extra: tuple[tuple[str, str], ...] = ()) -> tuple[str, list[Any]]:
        status = self._trunks[t.name]
        status.cseq += 1
        user = t.username or "switchd"
        aor = f"<sip:{user}@{t.host}:{t.port}>"
        headers = (("Via", self._via()), ("Max-Forwards", "70"),
                   ("From", f"{aor};tag={status.tag}"), ("To", aor),
                   ("Call-ID", status.call_id + method.lower()),
                   ("CSeq", f"{status.cseq} {method}"), ("Contact", self._contact(user)),
                   ("User-Agent", self.settings.user_agent)) + extra
        uri = f"sip:{t.host}:{t.port}"
        key, sends = self.tx.request(now, Request(headers=headers, method=method, uri=uri),
                                     (t.host, t.port))
        self._client_for[key] = (t.name, method)
        return key, list(sends)

    def _trunk_register(self, now: float, t: SipTrunk, auth: str | None = None,
                        header: str = "Authorization") -> list[Any]:
        extra: tuple[tuple[str, str], ...] = (("Expires", str(t.register_s)),)
        if auth is not None:
            extra += ((header, auth),)
        key, sends = self._trunk_request(now, t, "REGISTER", extra=extra)
        self._trunks[t.name].reg_key = key
        self._trunks[t.name].auth_tried = auth is not None
        return sends

    def _trunk_response(self, now: float, key: str, resp: Response) -> list[Any]:
        who = self._client_for.pop(key, None)
        if who is None:
            return []
        name, method = who
        trunk = next((t for t in self.settings.trunks if t.name == name), None)
        status = self._trunks.get(name)
        if trunk is None or status is None:
            return []
        status.reachable = True
        if method == "OPTIONS":
            return []
        status.reg_key = None
        if resp.status in (401, 407) and not status.auth_tried and trunk.password:
            challenge = resp.get("WWW-Authenticate") or resp.get("Proxy-Authenticate") or ""
            auth = answer_challenge(challenge, method="REGISTER",
                                    uri=f"sip:{trunk.host}:{trunk.port}",
                                    username=trunk.username or "", password=trunk.password)
            if auth is not None:
                return self._trunk_register(now, trunk, auth, "Authorization"
                                            if resp.status == 401 else "Proxy-Authorization")
        if 200 <= resp.status < 300:
            expires = _granted_expires(resp, trunk.register_s)
            status.registered = True
            status.reason = "registered"
            # Refresh before it runs out (RFC 3261 §10.2.4 leaves the margin to us).
            self._timers.arm(("trunk-reg", name), now + max(30.0, expires * 0.8))
            log.info("sip_trunk_registered", trunk=name, expires_s=expires)
        else:
            status.registered = False
            status.reason = f"{resp.status} {resp.reason}"
            self._timers.arm(("trunk-reg", name), now + 60.0)
            log.warning("sip_trunk_register_failed", trunk=name, status=resp.status,
                        reason=resp.reason)
        return []

    def _trunk_timeout(self, now: float, key: str) -> list[Any]:
        who = self._client_for.pop(key, None)
        if who is None:
            return []
        name, method = who
        status = self._trunks.get(name)
        if status is None:
            return []
        if status.reachable is not False:
            # Once per change (or at the first check): not every unanswered keep-alive.
            log.warning("sip_trunk_unreachable", trunk=name, method=method)
        status.reachable = False
        if method == "REGISTER":
            status.reg_key = None
            status.registered = False
            status.reason = "no answer"
            self._timers.arm(("trunk-reg", name), now + 60.0)
        return []

    def _trunk_timer(self, now: float, what: str, name: str) -> list[Any]:
        trunk = next((t for t in self.settings.trunks if t.name == name), None)
        if trunk is None:
            return []
        if what == "trunk-reg":
            return self._trunk_register(now, trunk) if trunk.register else []
        if trunk.keepalive_s > 0:
            self._timers.arm(("trunk-ping", name), now + trunk.keepalive_s)
            return self._trunk_request(now, trunk, "OPTIONS")[1]
        return []

    def trunk_status(self) -> dict[str, dict[str, Any]]:
        """Per carrier: ``reachable`` (its last keep-alive or registration was answered),
        ``registered`` and the last registration result."""
        return {name: {"reachable": st.reachable, "registered": st.registered,
                       "reason": st.reason} for name, st in self._trunks.items()}

    # ------------------------------------------------------------------ views

    def registrations(self, now: float) -> dict[str, list[Binding]]:
        """Live bindings per extension line (``ext/N``), for ``CALLS`` and switchctl."""
        return {f"ext/{ext}": [b for b in binds if b.expires_at > now]
                for ext, binds in self.bindings.items() if binds}


@dataclass(eq=False)
class _TrunkStatus:
    reachable: bool | None = None
    registered: bool = False
    reason: str = ""
    reg_key: str | None = None
    auth_tried: bool = False
    cseq: int = 0
    tag: str = field(default_factory=_tag)
    call_id: str = field(default_factory=lambda: os.urandom(8).hex())


def _granted_expires(resp: Response, asked: int) -> int:
    """The registration lifetime the registrar granted (RFC 3261 §10.2.4): our Contact's
    ``expires``, else the Expires header, else what we asked."""
    for c in resp.get_all("Contact"):
        try:
            e = NameAddr.parse(c).param("expires")
        except SipParseError:
            continue
        if e and is_number(e):
            return int(e)
    e = resp.get("Expires")
    return int(e) if e and is_number(e) else asked


def _dialled(uri: str) -> str:
    """The number a phone dialled: the user part of its ``sip:`` Request-URI, or the number
    of a ``tel:`` one (RFC 3966), visual separators dropped."""
    if uri.lower().startswith("tel:"):
        number = uri[4:].split(";", 1)[0]
    else:
        number = Uri.parse(uri).user
    return "".join(c for c in number if c not in "-.()")


def _http_date(now: float) -> str:
    return _time.strftime("%a, %d %b %Y %H:%M:%S GMT", _time.gmtime(now))
