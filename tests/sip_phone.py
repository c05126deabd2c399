"""A tiny scripted SIP phone for tests of the SIP engine and driver: it builds the requests
and responses a softphone sends (REGISTER with digest, INVITE with SDP, ACK, BYE, 200 to
an INVITE) so tests read as a call, not as header lists."""

from __future__ import annotations

import os

from switchd.drivers.sip import sdp
from switchd.drivers.sip.digest import answer_challenge
from switchd.drivers.sip.message import NameAddr, Request, Response, parse
from switchd.drivers.sip.transaction import new_branch, response_to

SWITCH = "127.0.0.1:5070"


class Phone:
    """Extension ``user`` with ``password`` at ``addr``; its RTP at ``rtp_port``."""

    def __init__(self, user: str, password: str = "s3cret", addr: tuple[str, int] = ("127.0.0.1", 5062),
                 rtp_port: int = 30000) -> None:
        self.user, self.password, self.addr, self.rtp_port = user, password, addr, rtp_port
        self.cseq = 0
        self.call_id = os.urandom(6).hex()
        self.tag = os.urandom(4).hex()

    def _headers(self, method: str, to: str, *, call_id: str | None = None,
                 tag: str | None = None, cseq: int | None = None) -> tuple[tuple[str, str], ...]:
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        host, port = self.addr
        return (("Via", f"SIP/2.0/UDP {host}:{port};branch={new_branch()};rport"),
                ("Max-Forwards", "70"), ("From", f"<sip:{self.user}@{SWITCH}>;tag={tag or self.tag}"),
                ("To", to), ("Call-ID", call_id or self.call_id), ("CSeq", f"{cseq} {method}"),
                ("Contact", f"<sip:{self.user}@{host}:{port}>"))

    def register(self, expires: int = 300, challenge: Response | None = None) -> Request:
        """A REGISTER (answering ``challenge`` if given)."""
        h = self._headers("REGISTER", f"<sip:{self.user}@{SWITCH}>") + (("Expires", str(expires)),)
        if challenge is not None:
            auth = answer_challenge(challenge.get_all("WWW-Authenticate")[0], method="REGISTER",
                                    uri=f"sip:{SWITCH}", username=self.user, password=self.password)
            assert auth is not None
            h += (("Authorization", auth),)
        return Request(headers=h, method="REGISTER", uri=f"sip:{SWITCH}")

    def offer(self, direction: str = "sendrecv") -> bytes:
        return sdp.build(self.addr[0], self.rtp_port, [sdp.Codec("PCMU", 0), sdp.Codec("PCMA", 8)],
                         session_id=1, direction=direction)

    def invite(self, number: str, challenge: Response | None = None, *, call_id: str | None = None) -> Request:
        """An INVITE dialling ``number`` (answering ``challenge`` if given)."""
        h = self._headers("INVITE", f"<sip:{number}@{SWITCH}>", call_id=call_id) + (
            ("Content-Type", "application/sdp"),)
        uri = f"sip:{number}@{SWITCH}"
        if challenge is not None:
            auth = answer_challenge(challenge.get_all("WWW-Authenticate")[0], method="INVITE",
                                    uri=uri, username=self.user, password=self.password)
            assert auth is not None
            h += (("Authorization", auth),)
        return Request(headers=h, method="INVITE", uri=uri, body=self.offer())

    def in_dialog(self, method: str, ok: Response, *, body: bytes = b"") -> Request:
        """ACK/BYE/re-INVITE in the dialog ``ok`` (the switch's 2xx to our INVITE) made."""
        cseq = ok.cseq.seq if method == "ACK" else None
        h = self._headers(method, ok.get("To") or "", call_id=ok.call_id, cseq=cseq)
        if body:
            h += (("Content-Type", "application/sdp"),)
        return Request(headers=h, method=method, uri=f"sip:{SWITCH}", body=body)

    def answer(self, invite: Request, status: int = 200) -> Response:
        """Our answer to the switch's INVITE (200 with SDP, or an error)."""
        body = self.offer() if status == 200 else b""
        extra = (("Contact", f"<sip:{self.user}@{self.addr[0]}:{self.addr[1]}>"),)
        if body:
            extra += (("Content-Type", "application/sdp"),)
        return response_to(invite, status, to_tag=self.tag, headers=extra, body=body)

    def request_to_switch(self, invite: Request, method: str, ok: Response) -> Request:
        """BYE for a call the switch placed to us (we are the called side)."""
        self.cseq += 1
        host, port = self.addr
        h = (("Via", f"SIP/2.0/UDP {host}:{port};branch={new_branch()};rport"),
             ("From", ok.get("To") or ""), ("To", invite.get("From") or ""),
             ("Call-ID", invite.call_id), ("CSeq", f"{self.cseq} {method}"))
        return Request(headers=h, method=method, uri=NameAddr.parse(invite.get("Contact") or "").uri)


def msgs(outputs: list) -> list:
    """The SIP messages among engine outputs (parsed)."""
    from switchd.drivers.sip.transaction import Send
    return [parse(o.data) for o in outputs if isinstance(o, Send)]
