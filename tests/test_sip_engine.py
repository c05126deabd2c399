"""The SIP engine in virtual time (switchd.drivers.sip.engine): registration with digest,
a phone's call, ringing a phone, a carrier's call, BYE and CANCEL both ways, hold by
re-INVITE, refusals for unauthenticated sources, and the rate limit on bad credentials."""

from __future__ import annotations

from switchd.core.inputs import Answer, Dial, FarBusy, Hangup, Hold, Incoming, OffHook, Retrieve
from switchd.drivers.sip.digest import ha1_line, parse_credentials_line
from switchd.drivers.sip.engine import MediaStart, MediaStop, SipEngine
from switchd.drivers.sip.message import Request, Response, parse
from switchd.drivers.sip.settings import SipSettings, SipTrunk
from switchd.events import CallRinging, LineState, SipAuthFailed, SipRegistration
from switchd.lines.state import LineStatus
from tests.sip_phone import Phone, msgs

LINES = ["trunk/1", "trunk/2", "ext/201", "ext/202"]
CARRIER = ("10.1.1.1", 5060)
T0 = 1_800_000_000.0


def _engine() -> SipEngine:
    creds = {n: parse_credentials_line(str(n), ha1_line(str(n), "switchd", "s3cret"))
             for n in (201, 202)}
    trunk = SipTrunk("carrier", host=CARRIER[0], port=CARRIER[1], channels=2, first_line=1,
                     dids={"4930123": "8000"})
    return SipEngine(SipSettings(extensions=creds, trunks=(trunk,), auth_fail_limit=3,
                                 auth_algorithms=("SHA-256", "MD5")),
                     LINES, nonce_key=b"k" * 32)


def _only(outputs: list, kind: type) -> list:
    return [o for o in outputs if isinstance(o, kind)]


def _register(e: SipEngine, phone: Phone, now: float = T0) -> None:
    first = msgs(e.receive(now, phone.register().to_bytes(), phone.addr))
    assert first[0].status == 401
    out = e.receive(now, phone.register(challenge=first[0]).to_bytes(), phone.addr)
    assert msgs(out)[0].status == 200


def _state(e: SipEngine, line: str, state: LineStatus, now: float = T0) -> list:
    return e.handle(now, LineState(line, state, e.status[line], now))


def _ring_201(e: SipEngine) -> tuple[Phone, Request]:
    """Extension 201's phone registered, and the core ringing it: (the phone, our INVITE)."""
    phone = Phone("201")
    _register(e, phone)
    _state(e, "ext/201", LineStatus.ALERTING)
    invite = msgs(e.handle(T0, CallRinging("c1", T0, line="ext/201", caller="1", callee="201")))[0]
    return phone, invite


def test_a_phone_registers_with_digest_and_its_binding_expires() -> None:
    e = _engine()
    phone = Phone("201")
    out = e.receive(T0, phone.register(expires=120).to_bytes(), phone.addr)
    challenge = msgs(out)[0]
    assert challenge.status == 401
    assert [c.split(",")[2].strip() for c in challenge.get_all("WWW-Authenticate")] == [
        "algorithm=SHA-256", "algorithm=MD5"]
    out = e.receive(T0, phone.register(expires=120, challenge=challenge).to_bytes(), phone.addr)
    ok = msgs(out)[0]
    assert ok.status == 200 and "expires=120" in ok.get("Contact")
    assert _only(out, SipRegistration)[0].contacts == 1
    assert list(e.registrations(T0)) == ["ext/201"]
    while (d := e.next_deadline()) is not None and d <= T0 + 121:
        gone = e.handle_timer(d)
    assert e.registrations(T0 + 121) == {}
    assert _only(gone, SipRegistration)[0].contacts == 0


def test_a_register_too_short_gets_423_and_another_users_address_403() -> None:
    e = _engine()
    phone = Phone("201")
    ch = msgs(e.receive(T0, phone.register(expires=10).to_bytes(), phone.addr))[0]
    out = msgs(e.receive(T0, phone.register(expires=10, challenge=ch).to_bytes(), phone.addr))
    assert out[0].status == 423 and out[0].get("Min-Expires") == "60"
    ch = msgs(e.receive(T0, phone.register().to_bytes(), phone.addr))[0]
    forged = phone.register(challenge=ch).with_headers(("To", "<sip:202@127.0.0.1>"))
    assert msgs(e.receive(T0, forged.to_bytes(), phone.addr))[0].status == 403


def test_a_phone_dials_out_is_answered_at_once_and_goes_off_hook_and_dials() -> None:
    e = _engine()
    phone = Phone("201")
    ch = msgs(e.receive(T0, phone.invite("8000").to_bytes(), phone.addr))
    assert [m.status for m in ch] == [100, 401]
    out = e.receive(T0, phone.invite("8000", challenge=ch[1]).to_bytes(), phone.addr)
    sent = msgs(out)
    assert [m.status for m in sent] == [100, 200]
    assert b"m=audio 20004 RTP/AVP 0 101" in sent[1].body    # ext/201 is channel 2
    assert _only(out, OffHook) == [OffHook("ext/201")] and _only(out, Dial) == [Dial("ext/201", "8000")]
    assert _only(out, MediaStart)[0].remote == ("127.0.0.1", 30000)
    ok = sent[1]
    assert e.receive(T0, phone.in_dialog("ACK", ok).to_bytes(), phone.addr) == []
    # The phone hangs up.
    out = e.receive(T0 + 5, phone.in_dialog("BYE", ok).to_bytes(), phone.addr)
    assert msgs(out)[0].status == 200
    assert _only(out, Hangup) == [Hangup("ext/201")] and _only(out, MediaStop)


def test_the_switch_hanging_up_sends_bye_to_the_phone() -> None:
    e = _engine()
    phone = Phone("201")
    ch = msgs(e.receive(T0, phone.invite("8000").to_bytes(), phone.addr))[1]
    ok = msgs(e.receive(T0, phone.invite("8000", challenge=ch).to_bytes(), phone.addr))[1]
    _state(e, "ext/201", LineStatus.OFFHOOK)
    out = _state(e, "ext/201", LineStatus.IDLE, T0 + 3)
    bye = msgs(out)[0]
    assert isinstance(bye, Request) and bye.method == "BYE"
    assert bye.call_id == ok.call_id and bye.to.tag == phone.tag and bye.from_.tag == ok.to.tag
    assert bye.uri == "sip:201@127.0.0.1:5062"


def test_a_rung_extension_gets_an_invite_and_answering_it_answers_the_line() -> None:
    e = _engine()
    phone = Phone("201")
    _register(e, phone)
    _state(e, "ext/201", LineStatus.ALERTING)
    out = e.handle(T0, CallRinging("c1", T0, line="ext/201", caller="13800000000", callee="201"))
    invite = msgs(out)[0]
    assert isinstance(invite, Request) and invite.method == "INVITE"
    assert invite.uri == "sip:201@127.0.0.1:5062" and "13800000000" in invite.get("From")
    e.receive(T0, phone.answer(invite, 180).to_bytes(), phone.addr)
    out = e.receive(T0 + 2, phone.answer(invite).to_bytes(), phone.addr)
    assert _only(out, Answer) == [Answer("ext/201")]
    ack = msgs(out)[0]
    assert ack.method == "ACK" and ack.cseq.seq == invite.cseq.seq
    assert _only(out, MediaStart)[0].codec.name == "PCMU"
    # The phone hangs up: BYE from the called side.
    ok = phone.answer(invite)
    out = e.receive(T0 + 9, phone.request_to_switch(invite, "BYE", ok).to_bytes(), phone.addr)
    assert msgs(out)[0].status == 200 and _only(out, Hangup) == [Hangup("ext/201")]


def test_a_ring_the_switch_withdraws_is_cancelled_once_the_phone_rang() -> None:
    e = _engine()
    phone, invite = _ring_201(e)
    assert msgs(_state(e, "ext/201", LineStatus.IDLE, T0 + 1)) == []   # no provisional yet
    out = e.receive(T0 + 1.1, phone.answer(invite, 180).to_bytes(), phone.addr)
    cancel = msgs(out)[0]
    assert cancel.method == "CANCEL" and cancel.vias[0].branch == invite.vias[0].branch


def test_an_unregistered_extension_declines_at_once_or_rings_out_as_configured() -> None:
    e = _engine()
    _state(e, "ext/202", LineStatus.ALERTING)
    ring = CallRinging("c1", T0, line="ext/202", caller="1", callee="202")
    assert e.handle(T0, ring) == [Hangup("ext/202")]        # busy, the default
    quiet = SipEngine(SipSettings(unregistered="ring"), LINES)
    quiet.handle(T0, LineState("ext/202", LineStatus.ALERTING, LineStatus.IDLE, T0))
    assert quiet.handle(T0, ring) == []


def test_a_phone_that_declines_declines_the_ring() -> None:
    e = _engine()
    phone, invite = _ring_201(e)
    out = e.receive(T0 + 1, phone.answer(invite, 603).to_bytes(), phone.addr)
    assert _only(out, Hangup) == [Hangup("ext/201")] and msgs(out)[0].method == "ACK"


def test_a_carriers_call_takes_a_trunk_line_with_the_dids_dnis_and_is_answered_on_connect() -> None:
    e = _engine()
    carrier = Phone("13900000000", addr=CARRIER)
    out = e.receive(T0, carrier.invite("4930123").to_bytes(), CARRIER)
    assert _only(out, Incoming) == [Incoming(caller="13900000000", dnis="8000", trunk=1)]
    assert [m.status for m in msgs(out)] == [100]
    assert msgs(_state(e, "trunk/1", LineStatus.ALERTING))[0].status == 180
    out = _state(e, "trunk/1", LineStatus.CONNECTED)
    ok = msgs(out)[0]
    assert ok.status == 200 and b"m=audio 20000" in ok.body and _only(out, MediaStart)
    # The caller gives up before... no: after; it hangs up with BYE.
    out = e.receive(T0 + 20, carrier.in_dialog("BYE", ok).to_bytes(), CARRIER)
    assert _only(out, Hangup) == [Hangup("trunk/1")]


def test_a_caller_cancelling_before_the_answer_hangs_up_the_trunk_with_487() -> None:
    e = _engine()
    carrier = Phone("139", addr=CARRIER)
    invite = carrier.invite("4930123")
    e.receive(T0, invite.to_bytes(), CARRIER)
    cancel = Request(headers=invite.with_headers(("CSeq", f"{invite.cseq.seq} CANCEL")).headers,
                     method="CANCEL", uri=invite.uri)
    out = e.receive(T0 + 1, cancel.to_bytes(), CARRIER)
    assert sorted(m.status for m in msgs(out)) == [200, 487]
    assert _only(out, Hangup) == [Hangup("trunk/1")]


def test_the_switch_calling_out_on_a_trunk_reports_the_carriers_busy() -> None:
    e = _engine()
    _state(e, "trunk/2", LineStatus.DIALING)
    out = e.handle(T0, CallRinging("c2", T0, line="trunk/2", caller="201", callee="13700000000"))
    invite = msgs(out)[0]
    assert invite.uri == "sip:13700000000@10.1.1.1:5060" and out[0].addr == CARRIER
    carrier = Phone("x", addr=CARRIER)
    out = e.receive(T0 + 1, carrier.answer(invite, 486).to_bytes(), CARRIER)
    assert _only(out, FarBusy) == [FarBusy("trunk/2")]
    assert msgs(out)[0].method == "ACK"


def test_hold_and_retrieve_by_re_invite_map_to_the_cores_hold() -> None:
    e = _engine()
    phone = Phone("201")
    ch = msgs(e.receive(T0, phone.invite("8000").to_bytes(), phone.addr))[1]
    ok = msgs(e.receive(T0, phone.invite("8000", challenge=ch).to_bytes(), phone.addr))[1]
    out = e.receive(T0 + 1, phone.in_dialog("INVITE", ok, body=phone.offer("sendonly")).to_bytes(),
                    phone.addr)
    assert _only(out, Hold) == [Hold("ext/201")]
    reply = [m for m in msgs(out) if isinstance(m, Response) and m.status == 200][0]
    assert b"a=recvonly" in reply.body
    out = e.receive(T0 + 2, phone.in_dialog("INVITE", ok, body=phone.offer()).to_bytes(), phone.addr)
    assert _only(out, Retrieve) == [Retrieve("ext/201")]


def test_an_unknown_source_never_reaches_a_trunk_and_bad_credentials_are_rate_limited() -> None:
    e = _engine()
    scanner = Phone("100", password="guess", addr=("203.0.113.9", 5060))
    ch = msgs(e.receive(T0, scanner.invite("0044123456789").to_bytes(), scanner.addr))
    assert [m.status for m in ch] == [100, 401]
    failures = []
    for i in range(3):
        out = e.receive(T0 + i, scanner.invite("0044123456789", challenge=ch[1]).to_bytes(),
                        scanner.addr)
        assert not _only(out, Incoming) and not _only(out, OffHook) and not _only(out, Dial)
        failures += _only(out, SipAuthFailed)
    assert [f.reason for f in failures] == ["unknown_user"] * 3 + ["rate_limited"]
    assert e.receive(T0 + 4, scanner.invite("1").to_bytes(), scanner.addr) == []   # ignored
    # A registered phone keeps working meanwhile.
    _register(e, Phone("202", addr=("127.0.0.1", 5064)), T0 + 5)
    assert e.receive(T0 + 70, scanner.invite("1").to_bytes(), scanner.addr) != []   # block ends


def test_garbage_gets_a_400_naming_the_fault_when_it_can_be_answered() -> None:
    e = _engine()
    phone = Phone("201")
    data = phone.invite("8000").to_bytes().replace(b"CSeq: 1 INVITE", b"CSeq: one INVITE")
    out = e.receive(T0, data, phone.addr)
    assert out[0].data.startswith(b"SIP/2.0 400 CSeq 'one INVITE' is not")
    assert b"Call-ID: " + phone.call_id.encode() in out[0].data
    assert e.receive(T0, b"\x00\x01garbage", phone.addr) == []
    assert e.receive(T0, b"\r\n\r\n", phone.addr) == []


def test_a_200_racing_the_cancel_of_a_withdrawn_ring_gets_ack_and_bye() -> None:
    e = _engine()
    phone, invite = _ring_201(e)
    e.receive(T0 + 0.1, phone.answer(invite, 180).to_bytes(), phone.addr)
    cancel = msgs(_state(e, "ext/201", LineStatus.IDLE, T0 + 1))[0]
    assert cancel.method == "CANCEL"
    # The phone was answered just before the CANCEL reached it.
    out = e.receive(T0 + 1.01, phone.answer(invite).to_bytes(), phone.addr)
    assert [m.method for m in msgs(out)] == ["ACK", "BYE"]
    assert not _only(out, Answer)           # the core's line stays released


def test_a_bye_for_no_call_gets_481_and_an_unknown_method_405() -> None:
    e = _engine()
    phone = Phone("201")
    stray = Request(headers=phone._headers("BYE", "<sip:8000@h>;tag=nope"), method="BYE",
                    uri="sip:8000@h")
    assert msgs(e.receive(T0, stray.to_bytes(), phone.addr))[0].status == 481
    info = Request(headers=phone._headers("SUBSCRIBE", "<sip:8000@h>"), method="SUBSCRIBE",
                   uri="sip:8000@h")
    resp = msgs(e.receive(T0, info.to_bytes(), phone.addr))[0]
    assert resp.status == 405 and "INVITE" in resp.get("Allow")


def test_a_carriers_address_is_never_blocked_whatever_fails_from_it() -> None:
    e = _engine()
    liar = Phone("201", password="wrong", addr=CARRIER)
    for i in range(5):
        ch = msgs(e.receive(T0 + i, liar.register().to_bytes(), CARRIER))[0]
        e.receive(T0 + i, liar.register(challenge=ch).to_bytes(), CARRIER)
    carrier = Phone("139", addr=CARRIER)
    out = e.receive(T0 + 6, carrier.invite("4930123").to_bytes(), CARRIER)
    assert _only(out, Incoming)


def test_a_carrier_registration_answers_the_challenge_and_is_refreshed_before_it_expires() -> None:
    from switchd.drivers.sip.digest import DigestServer, parse_digest

    creds = {201: parse_credentials_line("201", ha1_line("201", "switchd", "s3cret"))}
    trunk = SipTrunk("carrier", host=CARRIER[0], port=CARRIER[1], channels=1, username="acct",
                     password="carrier-pw", register=True, register_s=300, keepalive_s=0)
    e = SipEngine(SipSettings(extensions=creds, trunks=(trunk,)), ["trunk/1", "ext/201"])
    reg = msgs(e.start(T0))[0]
    assert reg.method == "REGISTER" and reg.uri == "sip:10.1.1.1:5060" and reg.get("Expires") == "300"
    carrier = DigestServer("carrier.example", key=b"c" * 32)
    challenge = response_to_with(reg, 401, ("WWW-Authenticate", carrier.challenges(T0)[0]))
    again = msgs(e.receive(T0, challenge.to_bytes(), CARRIER))[0]
    auth = again.get("Authorization")
    assert parse_digest(auth)["username"] == "acct"
    lookup = {"acct": parse_credentials_line("acct", ha1_line("acct", "carrier.example",
                                                              "carrier-pw"))}
    assert carrier.check(T0, "REGISTER", auth, lookup)[0] == "acct"
    ok = response_to_with(again, 200, ("Contact", f"{again.get('Contact')};expires=120"))
    e.receive(T0, ok.to_bytes(), CARRIER)
    assert e.trunk_status()["carrier"]["registered"] is True
    assert e.start(T0 + 1) == []                    # a reload does not register twice
    refresh = []
    while (d := e.next_deadline()) is not None and d <= T0 + 100:
        refresh += msgs(e.handle_timer(d))
    # One refresh at 0.8 × 120 s (then its UDP retransmissions, unanswered here).
    assert {(m.method, m.cseq.seq) for m in refresh} == {("REGISTER", again.cseq.seq + 1)}


def test_keep_alives_tell_when_a_carrier_stops_answering() -> None:
    trunk = SipTrunk("carrier", host=CARRIER[0], port=CARRIER[1], channels=1, keepalive_s=30)
    e = SipEngine(SipSettings(trunks=(trunk,)), ["trunk/1"])
    assert e.start(T0) == []
    sent = []
    while (d := e.next_deadline()) is not None and d <= T0 + 100:
        sent += msgs(e.handle_timer(d))
    assert {m.method for m in sent} == {"OPTIONS"}
    assert e.trunk_status()["carrier"]["reachable"] is False


def response_to_with(req: Request, status: int, *headers: tuple[str, str]) -> Response:
    from switchd.drivers.sip.transaction import response_to
    return response_to(req, status, to_tag="c1", headers=headers)


def test_busy_for_a_carriers_unanswered_call_is_a_486_not_an_answer() -> None:
    from switchd.events import Tone, ToneStarted

    e = _engine()
    carrier = Phone("139", addr=CARRIER)
    e.receive(T0, carrier.invite("4930123").to_bytes(), CARRIER)
    _state(e, "trunk/1", LineStatus.ALERTING)
    assert msgs(_state(e, "trunk/1", LineStatus.TONE)) == []        # no 200 for a tone
    out = e.handle(T0, ToneStarted("trunk/1", Tone.BUSY, T0))
    assert [m.status for m in msgs(out)] == [486] and _only(out, Hangup) == [Hangup("trunk/1")]


def test_broken_sdp_is_a_400_and_sdp_with_no_codec_we_take_a_488() -> None:
    e = _engine()
    carrier = Phone("139", addr=CARRIER)
    bad = carrier.invite("4930123")
    broken = Request(headers=bad.headers, method="INVITE", uri=bad.uri,
                     body=b"v=0\r\nc=IN IP4 not-an-ip\r\nm=audio 4000 RTP/AVP 0\r\n")
    out = msgs(e.receive(T0, broken.to_bytes(), CARRIER))
    assert out[-1].status == 400 and out[-1].reason.startswith("SDP: c= address")
    g722 = Request(headers=carrier.invite("4930123").headers, method="INVITE", uri=bad.uri,
                   body=b"v=0\r\nc=IN IP4 10.1.1.1\r\nm=audio 4000 RTP/AVP 9\r\n")
    assert msgs(e.receive(T0, g722.to_bytes(), CARRIER))[-1].status == 488
    assert e.legs == {}


def _run_until(e: SipEngine, until: float) -> list:
    out = []
    while (d := e.next_deadline()) is not None and d <= until:
        out += e.handle_timer(d)
    return out


def test_a_retransmitted_200_of_the_answering_phone_gets_the_ack_again_and_nothing_else() -> None:
    e = _engine()
    phone, invite = _ring_201(e)
    ok = phone.answer(invite)
    assert _only(e.receive(T0 + 1, ok.to_bytes(), phone.addr), Answer)
    again = e.receive(T0 + 1.5, ok.to_bytes(), phone.addr)
    assert [m.method for m in msgs(again)] == ["ACK"] and not _only(again, Hangup)


def test_a_second_phone_answering_late_gets_ack_and_bye_and_its_bye_cannot_end_the_call() -> None:
    e = _engine()
    desk, soft = Phone("201"), Phone("201", addr=("127.0.0.1", 5064))
    soft.tag = "softtag"
    _register(e, desk)
    e2 = soft.register()
    ch = msgs(e.receive(T0, e2.to_bytes(), soft.addr))[0]
    e.receive(T0, soft.register(challenge=ch).to_bytes(), soft.addr)
    _state(e, "ext/201", LineStatus.ALERTING)
    invites = msgs(e.handle(T0, CallRinging("c1", T0, line="ext/201", caller="1", callee="201")))
    to_desk = next(m for m in invites if m.uri.endswith(":5062"))
    to_soft = next(m for m in invites if m.uri.endswith(":5064"))
    e.receive(T0 + 0.1, soft.answer(to_soft, 180).to_bytes(), soft.addr)
    out = e.receive(T0 + 1, desk.answer(to_desk).to_bytes(), desk.addr)
    assert _only(out, Answer) == [Answer("ext/201")]
    assert "CANCEL" in [m.method for m in msgs(out)]
    late = e.receive(T0 + 1.01, soft.answer(to_soft).to_bytes(), soft.addr)   # crossed it
    assert [m.method for m in msgs(late)] == ["ACK", "BYE"]
    ok_soft = soft.answer(to_soft)
    bye = e.receive(T0 + 2, soft.request_to_switch(to_soft, "BYE", ok_soft).to_bytes(), soft.addr)
    assert msgs(bye)[0].status == 481 and not _only(bye, Hangup)
    assert e.legs["ext/201"].state.value == "confirmed"


def test_a_phone_ringing_past_timer_b_is_not_given_up_on_by_sip() -> None:
    e = _engine()
    phone, invite = _ring_201(e)
    e.receive(T0 + 0.1, phone.answer(invite, 180).to_bytes(), phone.addr)
    assert not _only(_run_until(e, T0 + 60), Hangup)           # the core's ring time decides
    assert _only(e.receive(T0 + 61, phone.answer(invite).to_bytes(), phone.addr), Answer)


def test_a_200_never_acked_ends_the_call_with_bye() -> None:
    e = _engine()
    carrier = Phone("139", addr=CARRIER)
    e.receive(T0, carrier.invite("4930123").to_bytes(), CARRIER)
    ok = msgs(_state(e, "trunk/1", LineStatus.CONNECTED))[0]
    assert ok.status == 200
    out = _run_until(e, T0 + 40)
    assert _only(out, Hangup) == [Hangup("trunk/1")]
    assert "BYE" in [m.method for m in msgs(out) if isinstance(m, Request)]


def test_a_carriers_call_the_core_refuses_is_answered_503() -> None:
    e = _engine()
    carrier = Phone("139", addr=CARRIER)
    assert _only(e.receive(T0, carrier.invite("4930123").to_bytes(), CARRIER), Incoming)
    out = e.refused(T0, "trunk/1", "switchd is shutting down")
    assert [m.status for m in msgs(out)] == [503] and e.legs == {}


def test_a_challenge_to_a_request_without_credentials_is_sent_once() -> None:
    e = _engine()
    stranger = Phone("201", addr=("198.51.100.9", 5060))
    first = msgs(e.receive(T0, stranger.invite("8000").to_bytes(), stranger.addr))
    assert [m.status for m in first] == [100, 401]
    assert not msgs(_run_until(e, T0 + 60)) and len(e.tx) == 0


def test_a_record_routing_proxy_is_kept_in_the_dialog() -> None:
    e = _engine()
    carrier = Phone("139", addr=CARRIER)
    rr = ("Record-Route", "<sip:sbc.example.net;lr>")
    invite = carrier.invite("4930123")
    invite = Request(headers=invite.headers + (rr,), method="INVITE", uri=invite.uri,
                     body=invite.body)
    e.receive(T0, invite.to_bytes(), CARRIER)
    ok = msgs(_state(e, "trunk/1", LineStatus.CONNECTED))[0]
    assert ok.get("Record-Route") == "<sip:sbc.example.net;lr>"
    bye = msgs(_state(e, "trunk/1", LineStatus.IDLE, T0 + 5))[0]
    assert bye.method == "BYE" and bye.get("Route") == "<sip:sbc.example.net;lr>"


def test_a_phone_dialling_a_tel_uri_dials_its_number() -> None:
    e = _engine()
    phone = Phone("201")
    inv = phone.invite("90123")
    tel = Request(headers=inv.headers, method="INVITE", uri="tel:9-0123", body=inv.body)
    ch = msgs(e.receive(T0, tel.to_bytes(), phone.addr))[-1]
    inv2 = phone.invite("90123", challenge=ch)
    from switchd.drivers.sip.digest import answer_challenge
    auth = answer_challenge(ch.get_all("WWW-Authenticate")[0], method="INVITE", uri="tel:9-0123",
                            username="201", password="s3cret")
    tel2 = Request(headers=inv2.with_headers(("Authorization", auth)).headers, method="INVITE",
                   uri="tel:9-0123", body=inv2.body)
    out = e.receive(T0, tel2.to_bytes(), phone.addr)
    assert _only(out, Dial) == [Dial("ext/201", "90123")]


def test_a_broken_request_is_never_answered_with_broken_sip() -> None:
    # Found by the fuzzer: a 505 copied a From holding a NUL and no '>' into our reply.
    e = _engine()
    phone = Phone("201")
    good = phone.invite("8000").to_bytes()
    nul = good.replace(b"SIP/2.0\r\n", b"SIP/\x00.0\r\n", 1).replace(b"From: <", b"From: <\x00", 1)
    assert e.receive(T0, nul, phone.addr) == []            # nothing fit to echo
    unclosed = good.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1)
    unclosed = unclosed.replace(b"From: <sip:", b"From: <broken sip:", 1).replace(
        b">;tag=", b";tag=", 1)
    [reply] = e.receive(T0 + 1, unclosed, phone.addr)
    assert reply.data.startswith(b"SIP/2.0 400 ")           # a bad request, said so
    version_only = good.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1)
    [reply] = e.receive(T0 + 2, version_only, phone.addr)
    assert reply.data.startswith(b"SIP/2.0 505 ")
    parse(reply.data)
