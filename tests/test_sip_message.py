"""SIP message parsing and building (switchd.drivers.sip.message): RFC 3261 §7, §20, §25."""

from __future__ import annotations

import pytest

from switchd.drivers.sip.message import (
    MAX_MESSAGE,
    CSeq,
    NameAddr,
    Request,
    Response,
    SipParseError,
    StreamFramer,
    Uri,
    Via,
    parse,
)

INVITE = (
    b"INVITE sip:8000@127.0.0.1:5070 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK776;rport\r\n"
    b"v: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKold\r\n"
    b"Max-Forwards: 70\r\n"
    b'f: "Alice, A." <sip:201@127.0.0.1>;tag=1928\r\n'
    b"To: <sip:8000@127.0.0.1>\r\n"
    b"i: a84b4c76e66710@10.0.0.1\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:201@10.0.0.1:5062;transport=udp>;expires=60, <sip:201@10.0.0.2>\r\n"
    b"Subject: a long\r\n  folded subject\r\n"
    b"c: application/sdp\r\n"
    b"l: 4\r\n\r\n"
    b"v=0\r\nJUNK PAST THE LENGTH"
)


def test_a_request_parses_with_compact_forms_folding_lists_and_its_body_cut_at_content_length() -> None:
    m = parse(INVITE)
    assert isinstance(m, Request)
    assert (m.method, m.uri) == ("INVITE", "sip:8000@127.0.0.1:5070")
    assert m.call_id == "a84b4c76e66710@10.0.0.1"
    assert m.cseq == CSeq(314159, "INVITE")
    assert [v.branch for v in m.vias] == ["z9hG4bK776", "z9hG4bKold"]
    assert m.vias[0].param("rport") == "" and m.vias[0].port == 5062
    assert m.from_.display == "Alice, A." and m.from_.tag == "1928"
    assert Uri.parse(m.from_.uri).user == "201"
    assert m.to.tag is None
    contacts = [NameAddr.parse(c) for c in m.get_all("m")]
    assert [Uri.parse(c.uri).host for c in contacts] == ["10.0.0.1", "10.0.0.2"]
    assert contacts[0].param("expires") == "60"
    assert Uri.parse(contacts[0].uri).param("transport") == "udp"
    assert m.get("subject") == "a long folded subject"
    assert m.body == b"v=0\r"


def test_a_built_message_parses_back_the_same() -> None:
    r = Response(headers=(("Via", "SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bKx"),
                          ("From", "<sip:a@b>;tag=1"), ("To", "<sip:c@d>;tag=2"),
                          ("Call-ID", "x@y"), ("CSeq", "2 BYE")),
                 status=486, reason="Busy Here", body=b"hello")
    back = parse(r.to_bytes())
    assert back == r
    assert b"Content-Length: 5\r\n" in r.to_bytes()


@pytest.mark.parametrize(("data", "words", "status"), [
    (b"\x00\xff\xfe garbage", "not UTF-8", 400),
    (b"hello world\r\n\r\n", "start line", 400),
    (b"INVITE sip:a@b\r\nVia: x\r\n\r\n", "start line", 400),
    (b"INVITE sip:a@b SIP/3.0\r\n\r\n", "version", 505),
    (b"INVITE nosuchscheme SIP/2.0\r\n\r\n", "scheme", 400),
    (INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards 70"), "not 'name: value'", 400),
    (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: x INVITE"), "CSeq", 400),
    (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 1 BYE"), "not the request's", 400),
    (INVITE.replace(b"i: a84b4c76e66710@10.0.0.1\r\n", b""), "no Call-ID", 400),
    (INVITE.replace(b"l: 4", b"l: 4000"), "Content-Length 4000", 400),
    (INVITE.replace(b"l: 4", b"l: 4\r\nContent-Length: 5"), "different values", 400),
    (INVITE.replace(b"l: 4", b"l: -1"), "Content-Length -1", 400),
    (INVITE.replace(b"Subject", "Sübject".encode("latin-1")), "not UTF-8", 400),
    (b"INVITE sip:a@b SIP/2.0\r\n" + b"X-A: b\r\n" * 300 + b"\r\n", "header lines", 400),
    (INVITE + b"x" * MAX_MESSAGE, "over", 513),
])
def test_a_broken_message_raises_an_error_naming_the_fault(data: bytes, words: str,
                                                           status: int) -> None:
    with pytest.raises(SipParseError, match=words) as e:
        parse(data)
    assert e.value.status == status


@pytest.mark.parametrize("text", ["SIP/2.0/UDP", "SIP/1.0/UDP 1.2.3.4", "SIP/2.0/UDP 1.2.3.4:99999",
                                  "SIP/2.0/UDP [::1"])
def test_a_bad_via_raises(text: str) -> None:
    with pytest.raises(SipParseError):
        Via.parse(text)


def test_uris_and_addresses_round_trip() -> None:
    u = Uri.parse("sip:201:pw@[::1]:5062;transport=tcp;lr")
    assert (u.user, u.host, u.port, u.param("lr")) == ("201", "::1", 5062, "")
    assert str(u) == "sip:201@[::1]:5062;transport=tcp;lr"
    with pytest.raises(SipParseError) as e:
        Uri.parse("tel:+4930123")
    assert e.value.status == 416
    a = NameAddr.parse("sip:bob@host;tag=9")
    assert (a.uri, a.tag) == ("sip:bob@host", "9")
    assert str(a.with_tag("x")) == "<sip:bob@host>;tag=x"


def test_the_stream_framer_cuts_messages_by_content_length_across_reads() -> None:
    framer = StreamFramer()
    one = Request(headers=(("Via", "SIP/2.0/TCP h;branch=z9hG4bK1"), ("From", "<sip:a@b>;tag=1"),
                           ("To", "<sip:a@b>"), ("Call-ID", "c"), ("CSeq", "1 MESSAGE")),
                  method="MESSAGE", uri="sip:a@b", body=b"hi there").to_bytes()
    data = b"\r\n\r\n" + one + one
    got: list[bytes] = []
    for i in range(0, len(data), 7):
        got += framer.feed(data[i:i + 7])
    assert got == [one, one]
    assert parse(got[0], stream=True).body == b"hi there"
    with pytest.raises(SipParseError, match="Content-Length"):
        StreamFramer().feed(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n")
