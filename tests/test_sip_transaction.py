"""SIP transactions in virtual time (switchd.drivers.sip.transaction): RFC 3261 §17 timers,
retransmissions, ACK of non-2xx, absorbed retransmissions, time-outs, RFC 6026 Accepted."""

from __future__ import annotations

from switchd.drivers.sip.message import Request, Response, parse
from switchd.drivers.sip.transaction import (
    T1,
    T2,
    Deliver,
    Send,
    State,
    Timeout,
    Transactions,
    new_branch,
    response_to,
)

PHONE = ("127.0.0.1", 5062)


def _req(method: str = "INVITE", branch: str = "z9hG4bKabc", seq: int = 1) -> Request:
    return Request(headers=(("Via", f"SIP/2.0/UDP 127.0.0.1:5062;branch={branch};rport"),
                            ("From", "<sip:201@h>;tag=f1"), ("To", "<sip:8000@h>"),
                            ("Call-ID", "call-1"), ("CSeq", f"{seq} {method}")),
                   method=method, uri="sip:8000@h")


def _run(t: Transactions, until: float, now: float = 0.0) -> list[tuple[float, object]]:
    """Fire every timer up to ``until``; (time, output) pairs."""
    out = []
    while (d := t.next_deadline()) is not None and d <= until:
        out += [(d, o) for o in t.handle_timer(d)]
    return out


def test_an_invite_client_retransmits_at_t1_doubling_then_times_out_at_64_t1() -> None:
    t = Transactions()
    key, sent = t.request(0.0, _req(), PHONE)
    assert len(sent) == 1
    fired = _run(t, 100.0)
    resends = [at for at, o in fired if isinstance(o, Send)]
    assert resends == [T1, 3 * T1, 7 * T1, 15 * T1, 31 * T1, 63 * T1]   # timer A: 0.5, 1, 2, 4...
    assert [(at, type(o)) for at, o in fired if isinstance(o, Timeout)] == [(64 * T1, Timeout)]
    assert t.state(key) is None


def test_a_provisional_stops_invite_retransmission_and_a_final_error_is_acked_each_time() -> None:
    t = Transactions()
    req = _req()
    key, _ = t.request(0.0, req, PHONE)
    out = t.receive(0.1, response_to(req, 180, to_tag="t9"), PHONE)
    assert [type(o) for o in out] == [Deliver]
    assert not [o for _, o in _run(t, 10.0) if isinstance(o, Send)]   # no timer A in PROCEEDING
    busy = response_to(req, 486, to_tag="t9")
    out = t.receive(11.0, busy, PHONE)
    assert [type(o) for o in out] == [Deliver, Send]
    ack = parse(out[1].data)
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert ack.vias[0].branch == "z9hG4bKabc" and ack.to.tag == "t9" and ack.cseq.method == "ACK"
    again = t.receive(11.5, busy, PHONE)     # a retransmitted 486: ACK again, UA not told
    assert [type(o) for o in again] == [Send]
    assert t.state(key) is State.COMPLETED
    _run(t, 11.0 + 32.0)                      # timer D
    assert t.state(key) is None


def test_a_non_invite_client_retransmits_capped_at_t2() -> None:
    t = Transactions()
    t.request(0.0, _req("OPTIONS", branch=new_branch()), PHONE)
    fired = [at for at, o in _run(t, 40.0) if isinstance(o, Send)]
    gaps = [b - a for a, b in zip([0.0] + fired, fired, strict=False)]
    assert gaps[:4] == [0.5, 1.0, 2.0, 4.0] and all(g == T2 for g in gaps[3:])
    assert any(isinstance(o, Timeout) for _, o in _run(t, 40.0)) or t.next_deadline() is None


def test_an_invite_server_sends_trying_absorbs_retransmissions_and_resends_its_last_answer() -> None:
    t = Transactions()
    req = _req()
    out = t.receive(0.0, req, PHONE)
    assert isinstance(out[0], Deliver) and out[0].message == req
    trying = parse(out[1].data)
    assert isinstance(trying, Response) and trying.status == 100
    key = out[0].key
    assert t.receive(0.5, req, PHONE) == [Send(out[1].data, PHONE)]   # retransmission: 100 again
    sent = t.respond(1.0, key, response_to(req, 486, to_tag="x"))
    assert parse(sent[0].data).status == 486
    assert t.receive(1.2, req, PHONE) == sent          # the INVITE again: the 486 again
    resends = [at for at, o in _run(t, 5.0) if isinstance(o, Send)]
    assert resends == [1.5, 2.5, 4.5]                  # timer G
    ack = Request(headers=(("Via", "SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKabc"),
                           ("From", "<sip:201@h>;tag=f1"), ("To", "<sip:8000@h>;tag=x"),
                           ("Call-ID", "call-1"), ("CSeq", "1 ACK")), method="ACK", uri="sip:8000@h")
    assert t.receive(5.0, ack, PHONE) == []
    assert t.state(key) is State.CONFIRMED
    assert not [o for _, o in _run(t, 60.0) if isinstance(o, Send)]
    assert t.state(key) is None


def test_an_invite_server_with_no_ack_gives_up_at_timer_h() -> None:
    t = Transactions()
    req = _req()
    key = t.receive(0.0, req, PHONE)[0].key
    t.respond(0.0, key, response_to(req, 603, to_tag="x"))
    _run(t, 64 * T1)
    assert t.state(key) is None


def test_a_2xx_is_retransmitted_until_the_ua_sees_its_ack_and_a_late_answer_is_dropped() -> None:
    t = Transactions()
    req = _req()
    key = t.receive(0.0, req, PHONE)[0].key
    ok = response_to(req, 200, to_tag="x")
    assert len(t.respond(0.0, key, ok)) == 1
    assert t.state(key) is State.ACCEPTED
    assert [at for at, o in _run(t, 1.6) if isinstance(o, Send)] == [0.5, 1.5]
    t.acked(key)
    assert not [o for _, o in _run(t, 20.0) if isinstance(o, Send)]
    assert t.respond(20.0, key, response_to(req, 486)) == []
    assert t.receive(20.0, req, PHONE) == [Send(ok.to_bytes(), PHONE)]   # absorbed, answered
    _run(t, 64 * T1 + 1)
    assert t.state(key) is None


def test_a_non_invite_server_answers_retransmissions_from_completed_until_timer_j() -> None:
    t = Transactions()
    req = _req("REGISTER")
    out = t.receive(0.0, req, PHONE)
    assert [type(o) for o in out] == [Deliver]           # no 100 for a non-INVITE
    key = out[0].key
    sent = t.respond(0.0, key, response_to(req, 200, to_tag="r"))
    assert t.receive(3.0, req, PHONE) == sent
    _run(t, 64 * T1)
    assert t.state(key) is None
    assert [type(o) for o in t.receive(40.0, req, PHONE)] == [Deliver]   # a new transaction


def test_over_tcp_nothing_is_retransmitted() -> None:
    t = Transactions()
    key, _ = t.request(0.0, _req(), PHONE, "TCP")
    fired = _run(t, 100.0)
    assert [type(o) for _, o in fired] == [Timeout]


def test_responses_go_to_the_source_port_when_the_via_asks_for_rport() -> None:
    t = Transactions()
    out = t.receive(0.0, _req(), ("10.9.9.9", 40000))
    assert out[1].addr == ("10.9.9.9", 40000)
