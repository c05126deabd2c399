"""Password hashes for CTI users: PBKDF2-HMAC-SHA256 from the standard library.

Why PBKDF2 and the stdlib: ``hashlib.pbkdf2_hmac`` is in every Python, needs no
compiled dependency, and is the algorithm OWASP's Password Storage Cheat Sheet
lists for FIPS settings; 600 000 iterations of SHA-256 is its current
recommendation. Comparison uses ``hmac.compare_digest`` so timing does not leak
how many bytes of a guess were right.

Encoded form (one string, safe in YAML without quoting)::

    pbkdf2_sha256$<iterations>$<salt, urlsafe base64, no padding>$<hash, same>

The ``$``-separated layout follows Django's ``pbkdf2_sha256`` hashes so the format
is familiar to operators; the base64 alphabet differs (urlsafe), so the strings
are not interchangeable with Django's.

Cost: one verification at 600 000 iterations takes about 0.3 s of CPU. Callers on
the event loop must run :func:`verify_secret` in a thread
(``await asyncio.to_thread(verify_secret, ...)``); the small cache below makes the
repeated ``AUTH`` of the same user (reconnecting softphones) instant.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
from collections import OrderedDict

__all__ = [
    "ALGORITHM",
    "DEFAULT_ITERATIONS",
    "DEMO_SECRETS",
    "hash_secret",
    "is_hash",
    "uses_demo_secret",
    "verify_secret",
]

#: Prefix of every encoded hash; names the algorithm so it can change later.
ALGORITHM = "pbkdf2_sha256"

#: OWASP Password Storage Cheat Sheet (2023+) figure for PBKDF2-HMAC-SHA256.
DEFAULT_ITERATIONS = 600_000

#: The secrets of the demo users shipped in ``config.yaml``. switchd refuses to
#: listen on a non-loopback address while any user still has one of them.
DEMO_SECRETS: tuple[str, ...] = ("demo", "demo-admin")

_SALT_BYTES = 16  # 128 bits, NIST SP 800-132 asks for at least 128.
_HASH_BYTES = 32  # SHA-256 output size; longer output only adds work for us.
# An encoded hash from a config file decides how long we compute; cap it so a
# typo such as 6000000000 cannot hang the switch for hours.
_MAX_ITERATIONS = 10_000_000

# Verification cache. Why: every AUTH would otherwise cost ~0.3 s of CPU, and a
# softphone that reconnects, or a CRM that opens several connections, repeats the
# same AUTH many times. Key: (encoded hash, digest of the secret); the secret
# itself is never stored. The digest is SHA-256 over a random per-process key plus
# the secret, so the cache holds nothing an attacker could reuse outside this
# process. Failed verifications are cached too, so a client retrying a wrong
# secret in a loop cannot burn a CPU; a *different* guess still pays the full
# PBKDF2 cost, so the cache gives a brute-force attack nothing. Bounded (LRU) so a
# stream of distinct guesses cannot grow memory.
_CACHE_MAX = 1024
_cache: OrderedDict[tuple[str, bytes], bool] = OrderedDict()
_cache_lock = threading.Lock()  # verify_secret is meant to run in worker threads.
_cache_key = os.urandom(32)


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Decode urlsafe base64 with or without padding; raises ValueError if malformed."""
    if not text or not text.isascii() or not all(c.isalnum() or c in "-_" for c in text):
        raise ValueError("not urlsafe base64")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not urlsafe base64") from exc


def _parse(encoded: str) -> tuple[int, bytes, bytes]:
    """Split an encoded hash into (iterations, salt, hash); ValueError if malformed."""
    if not isinstance(encoded, str):
        raise ValueError("not a string")
    parts = encoded.split("$")
    if len(parts) != 4 or parts[0] != ALGORITHM:
        raise ValueError(f"expected {ALGORITHM}$<iterations>$<salt>$<hash>")
    if not parts[1].isdigit() or not parts[1].isascii():
        raise ValueError("iterations must be a number")
    iterations = int(parts[1])
    if not 1 <= iterations <= _MAX_ITERATIONS:
        raise ValueError(f"iterations must be 1..{_MAX_ITERATIONS}")
    salt = _b64decode(parts[2])
    digest = _b64decode(parts[3])
    if len(digest) != _HASH_BYTES:
        raise ValueError(f"hash must be {_HASH_BYTES} bytes")
    return iterations, salt, digest


def hash_secret(
    secret: str, *, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None
) -> str:
    """Hash ``secret`` for storing in ``config.yaml`` (``users[].secret``).

    ``iterations`` defaults to 600 000 (OWASP); tests pass a small number to stay
    fast. ``salt`` is 16 random bytes unless given (give one only for reproducible
    test vectors). Returns ``pbkdf2_sha256$<iterations>$<salt>$<hash>``.

    Raises ValueError for an empty secret, iterations outside 1..10 000 000, or an
    empty salt.
    """
    if not secret:
        raise ValueError("secret must not be empty")
    if not 1 <= iterations <= _MAX_ITERATIONS:
        raise ValueError(f"iterations must be 1..{_MAX_ITERATIONS}, got {iterations}")
    if salt is None:
        salt = os.urandom(_SALT_BYTES)
    if not salt:
        raise ValueError("salt must not be empty")
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode("utf-8"), salt, iterations, _HASH_BYTES)
    return f"{ALGORITHM}${iterations}${_b64encode(salt)}${_b64encode(digest)}"


def is_hash(encoded: str) -> bool:
    """True when ``encoded`` is a well-formed hash made by :func:`hash_secret`.

    Used by config validation to reject a plain-text secret pasted into
    ``config.yaml``. Never raises.
    """
    try:
        _parse(encoded)
    except ValueError:
        return False
    return True


def verify_secret(secret: str, encoded: str) -> bool:
    """True when ``secret`` matches the stored hash ``encoded``.

    Returns False (never raises) when ``encoded`` is malformed or ``secret`` is not
    a string, so a bad config entry locks that user out rather than crashing AUTH.
    Costs one PBKDF2 run (~0.3 s at 600 000 iterations) the first time a given
    (hash, secret) pair is seen, then nothing: see the cache note at the top of
    this module. Thread-safe.
    """
    if not isinstance(secret, str):
        return False
    try:
        iterations, salt, expected = _parse(encoded)
        raw = secret.encode("utf-8")  # a lone surrogate cannot match any stored hash
    except (ValueError, UnicodeEncodeError):
        return False
    key = (encoded, hashlib.sha256(_cache_key + raw).digest())
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
            return cached
    actual = hashlib.pbkdf2_hmac("sha256", raw, salt, iterations, len(expected))
    ok = hmac.compare_digest(actual, expected)
    with _cache_lock:
        _cache[key] = ok
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_MAX:
            _cache.popitem(last=False)
    return ok


def uses_demo_secret(encoded: str) -> bool:
    """True when ``encoded`` is the hash of one of :data:`DEMO_SECRETS`.

    The daemon uses this to refuse a non-loopback ``cti.listen`` while demo
    credentials are configured. Costs one verification per demo secret on first
    use (cached afterwards). False for a malformed hash.
    """
    return any(verify_secret(demo, encoded) for demo in DEMO_SECRETS)


def _clear_cache() -> None:
    """Forget every cached verification (tests use this to measure real work)."""
    with _cache_lock:
        _cache.clear()
