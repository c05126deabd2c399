"""Password hashing for CTI users (switchd.passwords)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from switchd import passwords
from switchd.passwords import (
    DEMO_SECRETS,
    hash_secret,
    is_hash,
    uses_demo_secret,
    verify_secret,
)

FAST = 1000  # iterations: enough to exercise PBKDF2, cheap enough for tests


@pytest.fixture(autouse=True)
def _fresh_cache():
    passwords._clear_cache()
    yield
    passwords._clear_cache()


def test_hash_then_verify_round_trips():
    encoded = hash_secret("s3cret!", iterations=FAST)
    assert verify_secret("s3cret!", encoded)


def test_wrong_secret_does_not_verify():
    encoded = hash_secret("s3cret!", iterations=FAST)
    assert not verify_secret("s3cret", encoded)
    assert not verify_secret("S3CRET!", encoded)
    assert not verify_secret("", encoded)


def test_encoded_form_names_algorithm_iterations_salt_and_hash():
    encoded = hash_secret("x", iterations=FAST)
    algorithm, iterations, salt, digest = encoded.split("$")
    assert algorithm == "pbkdf2_sha256"
    assert iterations == str(FAST)
    assert len(base64.urlsafe_b64decode(salt + "==")) == 16
    assert len(base64.urlsafe_b64decode(digest + "=")) == 32


def test_default_iterations_follow_owasp():
    assert passwords.DEFAULT_ITERATIONS == 600_000


def test_hash_matches_rfc7914_pbkdf2_sha256_vector():
    # RFC 7914 §11: PBKDF2-HMAC-SHA256(P="passwd", S="salt", c=1), first 32 bytes.
    expected = bytes.fromhex("55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc")
    encoded = hash_secret("passwd", iterations=1, salt=b"salt")
    digest = encoded.split("$")[3]
    assert base64.urlsafe_b64decode(digest + "=") == expected


def test_each_hash_gets_its_own_salt():
    assert hash_secret("same", iterations=FAST) != hash_secret("same", iterations=FAST)


@pytest.mark.parametrize("bad_iterations", [0, -1, 10_000_001])
def test_hash_rejects_unreasonable_iterations(bad_iterations):
    with pytest.raises(ValueError, match="iterations"):
        hash_secret("x", iterations=bad_iterations)


def test_hash_rejects_an_empty_secret():
    with pytest.raises(ValueError, match="empty"):
        hash_secret("", iterations=FAST)


def _valid() -> str:
    return hash_secret("x", iterations=FAST, salt=b"0123456789abcdef")


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "x",
        "plain text password",
        "pbkdf2_sha256$1000$c2FsdA",  # three fields
        "pbkdf2_sha1$1000$c2FsdA$" + "A" * 43,  # other algorithm
        "pbkdf2_sha256$many$c2FsdA$" + "A" * 43,  # iterations not a number
        "pbkdf2_sha256$0$c2FsdA$" + "A" * 43,  # zero iterations
        "pbkdf2_sha256$99999999999$c2FsdA$" + "A" * 43,  # would hang the switch
        "pbkdf2_sha256$1000$c2F*dA$" + "A" * 43,  # salt not base64
        "pbkdf2_sha256$1000$$" + "A" * 43,  # empty salt
        "pbkdf2_sha256$1000$c2FsdA$AAAA",  # hash too short
        "pbkdf2_sha256$1000$c2FsdA$" + "é" * 43,  # non-ASCII
    ],
)
def test_malformed_hash_is_rejected_without_raising(encoded):
    assert not is_hash(encoded)
    assert not verify_secret("x", encoded)
    assert not uses_demo_secret(encoded)


def test_is_hash_accepts_what_hash_secret_makes():
    assert is_hash(_valid())
    assert is_hash(hash_secret("x", iterations=FAST))


def test_verify_never_raises_on_odd_secrets():
    encoded = _valid()
    assert not verify_secret("\ud800", encoded)  # lone surrogate cannot be UTF-8
    assert not verify_secret(None, encoded)  # type: ignore[arg-type]
    assert not verify_secret("x", None)  # type: ignore[arg-type]


def test_uses_demo_secret_detects_each_demo_secret():
    assert DEMO_SECRETS == ("demo", "demo-admin")
    for demo in DEMO_SECRETS:
        assert uses_demo_secret(hash_secret(demo, iterations=FAST))
    assert not uses_demo_secret(hash_secret("demo2", iterations=FAST))


def test_repeated_verification_is_served_from_cache(monkeypatch):
    encoded = _valid()
    calls: list[int] = []
    real = hashlib.pbkdf2_hmac

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(passwords.hashlib, "pbkdf2_hmac", counting)
    assert verify_secret("x", encoded)
    assert verify_secret("x", encoded)
    assert not verify_secret("y", encoded)
    assert not verify_secret("y", encoded)
    assert len(calls) == 2  # one real run per distinct (hash, secret) pair
    assert not verify_secret("z", encoded)  # a new guess still pays full price
    assert len(calls) == 3


def test_cache_does_not_hold_the_secret_itself():
    encoded = _valid()
    verify_secret("x", encoded)
    for (_, digest), _ok in passwords._cache.items():
        assert b"x" != digest and len(digest) == 32


def test_cache_is_bounded():
    encoded = hash_secret("x", iterations=1)
    for i in range(passwords._CACHE_MAX + 50):
        verify_secret(f"guess{i}", encoded)
    assert len(passwords._cache) == passwords._CACHE_MAX
    assert verify_secret("x", encoded)
