"""SIP transactions (RFC 3261 §17, with RFC 6026's Accepted state for INVITE servers).

Sans-IO, in the aioquic manner: :class:`Transactions` takes what arrives
(:meth:`~Transactions.receive`) and what the transaction user (the UA) sends
(:meth:`~Transactions.request`, :meth:`~Transactions.respond`) with ``now``, asks for
time through :meth:`~Transactions.next_deadline` / :meth:`~Transactions.handle_timer`, and
returns :class:`Send` (bytes for an address) and :class:`Deliver` / :class:`Timeout`
(for the UA) outputs. Each kind of transaction is a state table keyed by (state, input).

Timers (§17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2, Table 4): T1 = 0.5 s, T2 = 4 s, T4 = 5 s;
A/E/G retransmit (doubling from T1; E and G capped at T2), B/F/H give up after 64·T1,
D (32 s), I (T4), J (64·T1), K (T4) absorb retransmissions before the transaction
ends. On a reliable transport (TCP) nothing is retransmitted and the waits are 0.

Matching (§17.1.3, §17.2.3): a response by its top Via branch and CSeq method; a request
by branch, sent-by and method (an ACK to a non-2xx matches its INVITE). Requests without
an RFC 3261 branch (``z9hG4bK``) are matched by Call-ID, CSeq and From tag instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum

from switchd.drivers.sip.message import Request, Response, Via, reason_phrase
from switchd.engine import TimerHeap

__all__ = ["T1", "T2", "T4", "AckTimeout", "Deliver", "Kind", "Send", "State", "Timeout", "Transactions",
           "new_branch", "response_to"]

T1 = 0.5
T2 = 4.0
T4 = 5.0
Address = tuple[str, int]


def new_branch() -> str:
    """A fresh RFC 3261 branch (the magic cookie ``z9hG4bK`` plus 80 random bits)."""
    return "z9hG4bK" + os.urandom(10).hex()


class Kind(Enum):
    """The four transaction kinds of §17."""

    INVITE_CLIENT = "invite client"
    NON_INVITE_CLIENT = "non-invite client"
    INVITE_SERVER = "invite server"
    NON_INVITE_SERVER = "non-invite server"


class State(Enum):
    """Transaction states (§17.1.1.2 fig. 5, §17.1.2.2 fig. 6, §17.2.1 fig. 7, §17.2.2 fig. 8;
    ACCEPTED from RFC 6026 §7.1)."""

    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(frozen=True, slots=True)
class Send:
    """Bytes to send to ``addr`` over ``transport`` ("UDP"/"TCP")."""

    data: bytes
    addr: Address
    transport: str = "UDP"


@dataclass(frozen=True, slots=True)
class Deliver:
    """A message for the UA: a new request (``key`` of its server transaction) or a
    response to one of its requests (``key`` of its client transaction)."""

    key: str
    message: Request | Response
    source: Address
    transport: str = "UDP"


@dataclass(frozen=True, slots=True)
class Timeout:
    """A client transaction got no final response (timer B/F) or its send failed; the UA
    treats it as a 408 (§8.1.3.1). ``request`` is the request that went unanswered."""

    key: str
    request: Request


@dataclass(frozen=True, slots=True)
class AckTimeout:
    """A 2xx the UA sent in server transaction ``key`` got no ACK within 64·T1: the UA
    ends the session with a BYE (RFC 3261 §13.3.1.4)."""

    key: str


@dataclass(eq=False)
class _Tx:
    kind: Kind
    key: str
    state: State
    request: Request
    addr: Address
    transport: str
    last: bytes = b""           # what this transaction retransmits / resends
    interval: float = T1
    ack: bytes = b""            # an INVITE client's ACK to a non-2xx
    acked: bool = False         # an INVITE server's 2xx got its ACK

    @property
    def reliable(self) -> bool:
        return self.transport != "UDP"


#: (kind, state, input) -> next state. Inputs: "1xx", "2xx", "final" (300-699), "request"
#: (a retransmission of the request), "ack", "send_1xx", "send_2xx", "send_final".
#: A pair not in the table is ignored (a stray or late message), never an error.
_TABLE: dict[tuple[Kind, State, str], State] = {
    (Kind.INVITE_CLIENT, State.CALLING, "1xx"): State.PROCEEDING,
    (Kind.INVITE_CLIENT, State.CALLING, "2xx"): State.ACCEPTED,
    (Kind.INVITE_CLIENT, State.CALLING, "final"): State.COMPLETED,
    (Kind.INVITE_CLIENT, State.PROCEEDING, "1xx"): State.PROCEEDING,
    (Kind.INVITE_CLIENT, State.PROCEEDING, "2xx"): State.ACCEPTED,
    (Kind.INVITE_CLIENT, State.PROCEEDING, "final"): State.COMPLETED,
    (Kind.INVITE_CLIENT, State.ACCEPTED, "2xx"): State.ACCEPTED,
    (Kind.INVITE_CLIENT, State.COMPLETED, "final"): State.COMPLETED,
    (Kind.NON_INVITE_CLIENT, State.TRYING, "1xx"): State.PROCEEDING,
    (Kind.NON_INVITE_CLIENT, State.TRYING, "2xx"): State.COMPLETED,
    (Kind.NON_INVITE_CLIENT, State.TRYING, "final"): State.COMPLETED,
    (Kind.NON_INVITE_CLIENT, State.PROCEEDING, "1xx"): State.PROCEEDING,
    (Kind.NON_INVITE_CLIENT, State.PROCEEDING, "2xx"): State.COMPLETED,
    (Kind.NON_INVITE_CLIENT, State.PROCEEDING, "final"): State.COMPLETED,
    (Kind.INVITE_SERVER, State.PROCEEDING, "request"): State.PROCEEDING,
    (Kind.INVITE_SERVER, State.PROCEEDING, "send_1xx"): State.PROCEEDING,
    (Kind.INVITE_SERVER, State.PROCEEDING, "send_2xx"): State.ACCEPTED,
    (Kind.INVITE_SERVER, State.PROCEEDING, "send_final"): State.COMPLETED,
    (Kind.INVITE_SERVER, State.ACCEPTED, "request"): State.ACCEPTED,
    (Kind.INVITE_SERVER, State.ACCEPTED, "send_2xx"): State.ACCEPTED,
    (Kind.INVITE_SERVER, State.COMPLETED, "request"): State.COMPLETED,
    (Kind.INVITE_SERVER, State.COMPLETED, "ack"): State.CONFIRMED,
    (Kind.NON_INVITE_SERVER, State.TRYING, "request"): State.TRYING,
    (Kind.NON_INVITE_SERVER, State.TRYING, "send_1xx"): State.PROCEEDING,
    (Kind.NON_INVITE_SERVER, State.TRYING, "send_2xx"): State.COMPLETED,
    (Kind.NON_INVITE_SERVER, State.TRYING, "send_final"): State.COMPLETED,
    (Kind.NON_INVITE_SERVER, State.PROCEEDING, "request"): State.PROCEEDING,
    (Kind.NON_INVITE_SERVER, State.PROCEEDING, "send_1xx"): State.PROCEEDING,
    (Kind.NON_INVITE_SERVER, State.PROCEEDING, "send_2xx"): State.COMPLETED,
    (Kind.NON_INVITE_SERVER, State.PROCEEDING, "send_final"): State.COMPLETED,
    (Kind.NON_INVITE_SERVER, State.COMPLETED, "request"): State.COMPLETED,
}


def _status_input(status: int) -> str:
    return "1xx" if status < 200 else "2xx" if status < 300 else "final"


def _server_key(req: Request, via: Via) -> str:
    method = "INVITE" if req.method == "ACK" else req.method
    if via.branch.startswith("z9hG4bK"):
        return f"s|{via.branch}|{via.host}:{via.port or 5060}|{method}"
    # RFC 2543 peer: no usable branch (§17.2.3's fallback, simplified).
    return f"s|{req.call_id}|{req.cseq.seq}|{req.from_.tag}|{method}"


class Transactions:
    """Every transaction of one SIP endpoint (see the module docstring)."""

    def __init__(self, max_transactions: int = 20_000) -> None:
        #: beyond this many live transactions a new request is dropped (a flood must not
        #: eat the memory: each keeps its request, up to 64 KB)
        self.max_transactions = max_transactions
        self._txs: dict[str, _Tx] = {}
        self._timers: TimerHeap[tuple[str, str]] = TimerHeap()

    def __len__(self) -> int:
        return len(self._txs)

    def state(self, key: str) -> State | None:
        """The state of transaction ``key`` (None once it is gone)."""
        tx = self._txs.get(key)
        return tx.state if tx is not None else None

    # ------------------------------------------------------------------ client side

    def request(self, now: float, req: Request, addr: Address,
                transport: str = "UDP") -> tuple[str, list[Send]]:
        """Start a client transaction for ``req`` (its top Via must carry a fresh branch;
        an ACK to a 2xx has no transaction: it is sent once, key ""). Returns its key and
        what to send."""
        data = req.to_bytes()
        if req.method == "ACK":
            return "", [Send(data, addr, transport)]
        branch = req.vias[0].branch
        kind = Kind.INVITE_CLIENT if req.method == "INVITE" else Kind.NON_INVITE_CLIENT
        key = f"c|{branch}|{req.method}"
        state = State.CALLING if kind is Kind.INVITE_CLIENT else State.TRYING
        tx = _Tx(kind, key, state, req, addr, transport, last=data)
        self._txs[key] = tx
        if not tx.reliable:
            self._timers.arm((key, "retransmit"), now + T1)
        self._timers.arm((key, "timeout"), now + 64 * T1)
        return key, [Send(data, addr, transport)]

    def _client_response(self, now: float, resp: Response, source: Address,
                         transport: str) -> list[Deliver | Send]:
        via = resp.vias[0]
        key = f"c|{via.branch}|{resp.cseq.method}"
        tx = self._txs.get(key)
        if tx is None:
            # A 2xx to an INVITE after its transaction ended (a retransmission): the UA's
            # dialog re-sends the ACK (§13.2.2.4).
            if resp.cseq.method == "INVITE" and 200 <= resp.status < 300:
                return [Deliver(key, resp, source, transport)]
            return []
        what = _status_input(resp.status)
        nxt = _TABLE.get((tx.kind, tx.state, what))
        if nxt is None:
            return []
        first = tx.state != nxt or what == "1xx"
        out: list[Deliver | Send] = []
        if tx.kind is Kind.INVITE_CLIENT and what == "final":
            if not tx.ack:
                tx.ack = _ack_for(tx.request, resp).to_bytes()
            out.append(Send(tx.ack, tx.addr, tx.transport))     # each copy of it is ACKed
            first = tx.state is not State.COMPLETED
        if tx.kind is Kind.INVITE_CLIENT and what == "2xx":
            first = True    # every 2xx (forked or retransmitted) is the UA's to ACK
        entering = tx.state is not nxt
        tx.state = nxt
        if not entering:
            return out if not first else [Deliver(key, resp, source, transport), *out]
        self._timers.cancel((key, "retransmit"))
        if nxt is State.PROCEEDING and tx.kind is Kind.INVITE_CLIENT:
            # §17.1.1.2: timer B runs in Calling only; a ringing phone rings until the TU
            # (the core's ring time) cancels it.
            self._timers.cancel((key, "timeout"))
        if nxt is State.PROCEEDING and tx.kind is Kind.NON_INVITE_CLIENT and not tx.reliable:
            self._timers.arm((key, "retransmit"), now + T2)     # §17.1.2.2: keep at T2
        if nxt is State.COMPLETED:
            self._timers.cancel((key, "timeout"))
            wait = 0.0 if tx.reliable else (32.0 if tx.kind is Kind.INVITE_CLIENT else T4)
            self._timers.arm((key, "end"), now + wait)
        elif nxt is State.ACCEPTED:
            self._timers.cancel((key, "timeout"))
            self._timers.arm((key, "end"), now + 64 * T1)       # RFC 6026 timer M
        if first:
            out.insert(0, Deliver(key, resp, source, transport))
        return out

    # ------------------------------------------------------------------ server side

    def _server_request(self, now: float, req: Request, source: Address,
                        transport: str) -> list[Deliver | Send]:
        via = req.vias[0]
        key = _server_key(req, via)
        tx = self._txs.get(key)
        if req.method == "ACK":
            if tx is None or tx.kind is not Kind.INVITE_SERVER:
                return [Deliver("", req, source, transport)]   # ACK to a 2xx: the dialog's
            nxt = _TABLE.get((tx.kind, tx.state, "ack"))
            if nxt is None:
                return [] if tx.state is not State.ACCEPTED else \
                    [Deliver(key, req, source, transport)]
            tx.state = nxt
            self._timers.cancel((key, "retransmit"))
            self._timers.cancel((key, "timeout"))
            self._timers.arm((key, "end"), now + (0.0 if tx.reliable else T4))   # timer I
            return []
        if tx is not None:
            # A retransmission: answer it with the last response, if any (§17.2.1, §17.2.2).
            if _TABLE.get((tx.kind, tx.state, "request")) is not None and tx.last:
                return [Send(tx.last, tx.addr, tx.transport)]
            return []
        if len(self._txs) >= self.max_transactions:
            return []
        kind = Kind.INVITE_SERVER if req.method == "INVITE" else Kind.NON_INVITE_SERVER
        state = State.PROCEEDING if kind is Kind.INVITE_SERVER else State.TRYING
        # Over TCP the answer goes back on the connection the request came in on.
        back = _response_address(via, source) if transport == "UDP" else source
        tx = _Tx(kind, key, state, req, back, transport)
        self._txs[key] = tx
        if kind is Kind.NON_INVITE_SERVER:
            # The UA answers a non-INVITE at once; one it never answers (a bug) still ends.
            self._timers.arm((key, "timeout"), now + 64 * T1)
        out: list[Deliver | Send] = []
        if kind is Kind.INVITE_SERVER:
            # §17.2.1: a 100 Trying at once stops the caller's retransmissions.
            trying = response_to(req, 100)
            tx.last = trying.to_bytes()
            out.append(Send(tx.last, tx.addr, transport))
        out.insert(0, Deliver(key, req, source, transport))
        return out

    def respond(self, now: float, key: str, resp: Response) -> list[Send]:
        """Send ``resp`` in server transaction ``key``. Nothing is sent when the
        transaction is gone or already answered finally (a late answer is dropped)."""
        tx = self._txs.get(key)
        if tx is None:
            return []
        what = "send_" + _status_input(resp.status)
        nxt = _TABLE.get((tx.kind, tx.state, what))
        if nxt is None:
            return []
        tx.state = nxt
        tx.last = resp.to_bytes()
        if nxt is State.COMPLETED:
            if tx.kind is Kind.INVITE_SERVER:
                if not tx.reliable:
                    tx.interval = T1
                    self._timers.arm((key, "retransmit"), now + T1)    # timer G
                self._timers.arm((key, "timeout"), now + 64 * T1)      # timer H
            else:
                self._timers.arm((key, "end"), now + (0.0 if tx.reliable else 64 * T1))  # J
        elif nxt is State.ACCEPTED:
            # RFC 6026 §7.1: the 2xx is retransmitted (by the UA's rules, §13.3.1.4) until
            # its ACK; the transaction absorbs INVITE retransmissions for 64·T1 (timer L).
            if not tx.reliable:
                tx.interval = T1
                self._timers.arm((key, "retransmit"), now + T1)
            self._timers.arm((key, "end"), now + 64 * T1)
        return [Send(tx.last, tx.addr, tx.transport)]

    def acked(self, key: str) -> None:
        """The UA saw the ACK for the 2xx sent in ``key``: stop retransmitting it."""
        self._timers.cancel((key, "retransmit"))
        tx = self._txs.get(key)
        if tx is not None:
            tx.acked = True

    def key_of(self, req: Request) -> str | None:
        """The key of the live server transaction of ``req``, or None."""
        try:
            key = _server_key(req, req.vias[0])
        except (IndexError, ValueError):
            return None
        return key if key in self._txs else None

    def respond_once(self, key: str, resp: Response) -> list[Send]:
        """Send ``resp`` and end server transaction ``key`` at once, keeping nothing to
        retransmit: a challenge to a request without credentials (a proxy's stateless
        401). A spoofed source then gets one answer per request, not a train of them;
        a real phone that lost it retransmits its request and is answered again."""
        tx = self._txs.get(key)
        if tx is None:
            return []
        self._end(key)
        return [Send(resp.to_bytes(), tx.addr, tx.transport)]

    # ------------------------------------------------------------------ in and time

    def receive(self, now: float, msg: Request | Response, source: Address,
                transport: str = "UDP") -> list[Deliver | Send]:
        """A parsed message arrived from ``source``: what the UA gets and what to send."""
        if isinstance(msg, Response):
            return self._client_response(now, msg, source, transport)
        return self._server_request(now, msg, source, transport)

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must next run, epoch s."""
        return self._timers.next_deadline()

    def handle_timer(self, now: float) -> list[Send | Timeout | Deliver | AckTimeout]:
        """Fire the due timers: retransmissions, time-outs, ends."""
        out: list[Send | Timeout | Deliver | AckTimeout] = []
        while (due := self._timers.pop_due(now)) is not None:
            (key, what), _ = due
            tx = self._txs.get(key)
            if tx is None:
                continue
            if what == "retransmit":
                tx.interval *= 2
                if tx.kind is Kind.INVITE_CLIENT:
                    if tx.state is State.CALLING:
                        out.append(Send(tx.last, tx.addr, tx.transport))
                        self._timers.arm((key, "retransmit"), now + tx.interval)   # timer A
                elif tx.kind is Kind.NON_INVITE_CLIENT:
                    if tx.state in (State.TRYING, State.PROCEEDING):
                        out.append(Send(tx.last, tx.addr, tx.transport))
                        nxt = T2 if tx.state is State.PROCEEDING else min(tx.interval, T2)
                        self._timers.arm((key, "retransmit"), now + nxt)            # timer E
                elif tx.state in (State.COMPLETED, State.ACCEPTED):
                    out.append(Send(tx.last, tx.addr, tx.transport))
                    self._timers.arm((key, "retransmit"), now + min(tx.interval, T2))  # G
            elif what == "timeout":
                if tx.kind in (Kind.INVITE_CLIENT, Kind.NON_INVITE_CLIENT):
                    out.append(Timeout(key, tx.request))                        # B / F
                self._end(key)                                                   # H: no ACK
            elif what == "end":
                if tx.kind is Kind.INVITE_SERVER and tx.state is State.ACCEPTED \
                        and not tx.acked:
                    out.append(AckTimeout(key))                           # §13.3.1.4
                self._end(key)
        return out

    def _end(self, key: str) -> None:
        tx = self._txs.pop(key, None)
        if tx is not None:
            tx.state = State.TERMINATED
        for what in ("retransmit", "timeout", "end"):
            self._timers.cancel((key, what))


def _response_address(via: Via, source: Address) -> Address:
    """Where responses go (RFC 3261 §18.2.2 with RFC 3581 rport): the source address for
    an ``rport`` Via or a Via whose host is not the source's, else its sent-by."""
    if via.param("rport") is not None:
        return source
    if via.host != source[0]:
        return (source[0], via.port or 5060)        # the received= case
    return (via.host, via.port or 5060)


def response_to(req: Request, status: int, reason: str | None = None, *, to_tag: str | None = None,
                headers: tuple[tuple[str, str], ...] = (), body: bytes = b"") -> Response:
    """A response to ``req`` (RFC 3261 §8.2.6): its Via, From, Call-ID, CSeq copied, the To
    with ``to_tag`` added (unless it has one or the status is 100), then ``headers``."""
    to = req.get("To") or ""
    if to_tag and status != 100 and ";tag=" not in to.replace(" ", ""):
        to = f"{to};tag={to_tag}"
    copied = [(n, v) for n, v in req.headers if n in ("Via", "From", "Call-ID", "CSeq")]
    vias = [(n, v) for n, v in copied if n == "Via"]
    rest = [(n, v) for n, v in copied if n != "Via"]
    base = vias[:1] + rest[:1] + [("To", to)] + rest[1:] + vias[1:]
    if req.method != "CANCEL" and status == 100 and req.get("Timestamp"):
        base.append(("Timestamp", req.get("Timestamp") or ""))
    return Response(headers=tuple(base) + headers, status=status,
                    reason=reason or reason_phrase(status), body=body)


def _ack_for(invite: Request, resp: Response) -> Request:
    """The ACK to a non-2xx final response (§17.1.1.3): same branch, the response's To."""
    headers = [("Via", invite.get_all("Via")[0])]
    for name in ("Route", "Max-Forwards"):
        headers += [(name, v) for v in invite.get_all(name)]
    headers += [("From", invite.get("From") or ""), ("To", resp.get("To") or ""),
                ("Call-ID", invite.call_id), ("CSeq", f"{invite.cseq.seq} ACK")]
    return Request(headers=tuple(headers), method="ACK", uri=invite.uri)
