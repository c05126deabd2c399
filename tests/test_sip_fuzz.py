"""Hostile input to the SIP engine: whatever arrives — random bytes, real messages with
bytes flipped, cut or repeated, huge bodies, broken SDP — it never raises, never starts a
call for a stranger, and what it sends back parses as SIP."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchd.core.inputs import Dial, Incoming, OffHook
from switchd.drivers.sip.digest import ha1_line, parse_credentials_line
from switchd.drivers.sip.engine import SipEngine
from switchd.drivers.sip.message import SipParseError, parse
from switchd.drivers.sip.settings import SipSettings, SipTrunk
from switchd.drivers.sip.transaction import Send
from tests.sip_phone import Phone

T0 = 1_800_000_000.0
STRANGER = ("198.51.100.7", 5060)


def _engine() -> SipEngine:
    creds = {201: parse_credentials_line("201", ha1_line("201", "switchd", "s3cret"))}
    return SipEngine(SipSettings(extensions=creds,
                                 trunks=(SipTrunk("c", host="10.1.1.1", channels=2),)),
                     ["trunk/1", "trunk/2", "ext/201"], nonce_key=b"k" * 32)


_phone = Phone("201", addr=STRANGER)
SEEDS = [_phone.register().to_bytes(), _phone.invite("0044123456").to_bytes(),
         _phone.invite("8000").to_bytes().replace(b"v=0", b"v=0\r\nm=audio x RTP/AVP"),
         b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4\r\n\r\n"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.integers(0, 3))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == 0:
            data[i] = draw(st.integers(0, 255))
        elif op == 1:
            del data[i:i + draw(st.integers(1, 40))]
        elif op == 2:
            data[i:i] = draw(st.binary(max_size=40))
        else:
            data[i:i] = data[i:i + draw(st.integers(1, 200))] * draw(st.integers(1, 50))
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(mutated(), st.binary(max_size=300)), min_size=1, max_size=6))
def test_garbage_never_raises_and_never_lets_a_stranger_call(datagrams: list[bytes]) -> None:
    e = _engine()
    for k, data in enumerate(datagrams):
        out = e.receive(T0 + k, data, STRANGER)
        assert not [o for o in out if isinstance(o, Incoming | OffHook | Dial)]
        for o in out:
            if isinstance(o, Send) and not o.data.startswith(b"SIP/2.0 400"):
                try:
                    parse(o.data)
                except SipParseError as err:      # pragma: no cover - shown on failure
                    raise AssertionError(f"we sent unparsable SIP: {o.data[:200]!r}") from err
    while (d := e.next_deadline()) is not None and d < T0 + 100:
        e.handle_timer(d)
