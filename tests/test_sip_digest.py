"""SIP digest authentication (switchd.drivers.sip.digest): RFC 7616 vectors, RFC 8760 algorithms,
stale nonces, replays, forged nonces."""

from __future__ import annotations

import pytest

from switchd.drivers.sip.digest import (
    DigestServer,
    answer_challenge,
    ha1_line,
    parse_credentials_line,
    parse_digest,
)

NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


@pytest.mark.parametrize(("alg", "response"), [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_the_answer_to_a_challenge_matches_rfc_7616_section_3_9_1(alg: str, response: str) -> None:
    challenge = (f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={alg}, '
                 f'nonce="{NONCE}", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
    auth = answer_challenge(challenge, method="GET", uri="/dir/index.html", username="Mufasa",
                            password="Circle of Life", cnonce=CNONCE, nc=1)
    assert auth is not None
    p = parse_digest(auth)
    assert p["response"] == response
    assert (p["qop"], p["nc"], p["opaque"]) == ("auth", "00000001",
                                                "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")


def _users() -> dict:
    return {"201": parse_credentials_line("201", ha1_line("201", "switchd", "s3cret"))}


@pytest.mark.parametrize("which", [0, 1])
def test_a_phone_answering_either_offered_algorithm_is_let_in(which: int) -> None:
    srv = DigestServer("switchd", key=b"k" * 32, algorithms=("SHA-256", "MD5"))
    challenge = srv.challenges(1000.0)[which]
    auth = answer_challenge(challenge, method="REGISTER", uri="sip:127.0.0.1", username="201",
                            password="s3cret")
    assert srv.check(1001.0, "REGISTER", auth, _users()) == ("201", False)


def test_wrong_password_forged_nonce_other_realm_and_replay_are_refused() -> None:
    srv = DigestServer("switchd", key=b"k" * 32)
    users = _users()
    ch = srv.challenges(1000.0)[0]

    def auth(password: str = "s3cret", challenge: str = ch, nc: int = 1) -> str | None:
        return answer_challenge(challenge, method="INVITE", uri="sip:8000@h", username="201",
                                password=password, nc=nc, cnonce="abc")

    assert srv.check(1000.0, "INVITE", auth("wrong"), users) == (None, False)
    other = DigestServer("switchd", key=b"x" * 32).challenges(1000.0)[0]
    assert srv.check(1000.0, "INVITE", auth(challenge=other), users) == (None, False)
    assert srv.check(1000.0, "INVITE", auth(challenge=ch.replace("switchd", "evil")),
                     users) == (None, False)
    good = auth()
    assert srv.check(1000.0, "INVITE", good, users) == ("201", False)
    assert srv.check(1000.0, "INVITE", good, users) == (None, False)     # replayed nc
    assert srv.check(1000.0, "INVITE", auth(nc=2), users) == ("201", False)
    assert srv.check(1000.0, "BYE", auth(nc=3), users) == (None, False)  # other method
    assert srv.check(1000.0, "INVITE", "Digest garbage", users) == (None, False)
    assert srv.check(1000.0, "INVITE", None, users) == (None, False)


def test_an_expired_nonce_with_the_right_answer_is_stale() -> None:
    srv = DigestServer("switchd", key=b"k" * 32, nonce_ttl_s=300)
    ch = srv.challenges(1000.0)[0]
    auth = answer_challenge(ch, method="REGISTER", uri="sip:h", username="201", password="s3cret")
    assert srv.check(1400.0, "REGISTER", auth, _users()) == (None, True)
    assert "stale=true" in srv.challenges(1400.0, stale=True)[0]


def test_a_credentials_line_that_is_not_ours_says_how_to_make_one() -> None:
    with pytest.raises(ValueError, match="switchd passwd --sip"):
        parse_credentials_line("201", "plaintext")


def test_an_answer_with_an_algorithm_not_offered_is_refused() -> None:
    srv = DigestServer("switchd", key=b"k" * 32)            # MD5 only, the default
    sha = DigestServer("switchd", key=b"k" * 32, algorithms=("SHA-256",)).challenges(1000.0)[0]
    auth = answer_challenge(sha, method="REGISTER", uri="sip:h", username="201", password="s3cret")
    assert srv.check(1000.0, "REGISTER", auth, _users()) == (None, False)


def test_an_answer_without_qop_or_for_another_uri_or_not_ascii_is_refused() -> None:
    srv = DigestServer("switchd", key=b"k" * 32)
    ch = srv.challenges(1000.0)[0].replace(', qop="auth"', "")    # qop stripped on the path
    no_qop = answer_challenge(ch, method="INVITE", uri="sip:202@h", username="201",
                              password="s3cret")
    assert no_qop is not None and "qop" not in no_qop
    assert srv.check(1000.0, "INVITE", no_qop, _users(), "sip:202@h") == (None, False)
    good = answer_challenge(srv.challenges(1000.0)[0], method="INVITE", uri="sip:202@h",
                            username="201", password="s3cret")
    assert srv.check(1000.0, "INVITE", good, _users(), "sip:0900123456@h") == (None, False)
    assert srv.check(1000.0, "INVITE", good, _users(), "sip:202@h") == ("201", False)
    weird = good.replace('nonce="', 'nonce="é')
    assert srv.check(1000.0, "INVITE", weird, _users(), "sip:202@h") == (None, False)
