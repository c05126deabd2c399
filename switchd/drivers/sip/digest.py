"""SIP digest authentication (RFC 3261 §22, RFC 7616, RFC 8760): challenge, check, answer.

Server side (phones registering, calling out): :class:`DigestServer` makes challenges
(one ``WWW-Authenticate`` per algorithm, MD5 and SHA-256, as RFC 8760 §2.4 lets a server
offer several; MD5 alone by default, see :data:`ALGORITHMS`) and checks the
``Authorization`` a phone sends back. Nonces are stateless: ``<issued at>.<HMAC of it>``
with a per-process key, so a restart or a forged nonce cannot pass, and one older than
:attr:`DigestServer.nonce_ttl_s` gets a fresh challenge with ``stale=true`` (the phone
retries without asking its user). ``qop=auth`` with the nonce count checked to grow
per nonce (an answer without it is refused), so a captured ``Authorization`` cannot be
replayed, nor used for another Request-URI.

Credentials are kept as HA1 = H(username ":" realm ":" password) for each algorithm, the
form a SIP registrar can store without the password (Asterisk's ``md5secret``);
:func:`ha1_line` makes the config value, ``digest$<realm>$<md5 HA1>$<sha256 HA1>``.

Client side (trunks registering to a carrier): :func:`answer_challenge`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHMS", "Credentials", "DigestServer", "answer_challenge", "ha1_line",
           "parse_credentials_line", "parse_digest"]

#: Algorithms a server may offer (RFC 8760 §2.4: one challenge each, most preferred
#: first). The switch offers ``sip.auth_algorithms``, MD5 alone by default: phones on
#: older SIP stacks fail on the first challenge they cannot answer, or on seeing two
#: (baresip 1.0 answers "Function not implemented" to a SHA-256 one beside MD5).
ALGORITHMS = ("SHA-256", "MD5")
DEFAULT_ALGORITHMS = ("MD5",)
_HASH = {"SHA-256": hashlib.sha256, "MD5": hashlib.md5}
_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]+)\s*,?')


def _h(algorithm: str, text: str) -> str:
    return _HASH[algorithm](text.encode("utf-8")).hexdigest()


def ha1_line(username: str, realm: str, password: str) -> str:
    """The config value for a SIP password: ``digest$<realm>$<MD5 HA1>$<SHA-256 HA1>``.

    The password itself is not recoverable from it; it is valid only in ``realm``."""
    if "$" in realm:
        raise ValueError("a realm cannot contain '$'")
    return (f"digest${realm}${_h('MD5', f'{username}:{realm}:{password}')}"
            f"${_h('SHA-256', f'{username}:{realm}:{password}')}")


@dataclass(frozen=True, slots=True)
class Credentials:
    """One user's stored digest credentials: HA1 per algorithm, for ``realm``."""

    username: str
    realm: str
    ha1: tuple[tuple[str, str], ...]

    def ha1_for(self, algorithm: str) -> str | None:
        """The stored HA1 for ``algorithm``, or None."""
        return dict(self.ha1).get(algorithm)


def parse_credentials_line(username: str, line: str) -> Credentials:
    """Parse a :func:`ha1_line` value. Raises ValueError saying what is wrong."""
    parts = line.split("$")
    if len(parts) != 4 or parts[0] != "digest":
        raise ValueError("expected 'digest$<realm>$<md5 ha1>$<sha256 ha1>' "
                         "(print one with `switchd passwd --sip USER`)")
    _, realm, md5, sha = parts
    if not re.fullmatch(r"[0-9a-f]{32}", md5) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise ValueError("the HA1 values are not 32 and 64 lower-case hex digits")
    return Credentials(username, realm, (("MD5", md5), ("SHA-256", sha)))


def parse_digest(value: str) -> dict[str, str]:
    """The parameters of a ``Digest …`` header value (names lower-cased, quotes removed).
    Returns {} for another scheme or garbage (never raises)."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return {}
    out: dict[str, str] = {}
    for m in _PARAM.finditer(rest):
        v = m.group(2)
        if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
            v = v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out[m.group(1).lower()] = v
    return out


class DigestServer:
    """Challenges and checks for one realm (see the module docstring).

    ``key``: the nonce HMAC key (random per process unless given, for tests);
    ``nonce_ttl_s``: how long a nonce is good for (s); ``algorithms``: those offered, in
    order (an answer with another is refused).
    """

    def __init__(self, realm: str, *, key: bytes | None = None, nonce_ttl_s: float = 300.0,
                 max_nonces: int = 10_000,
                 algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS) -> None:
        self.realm = realm
        self.algorithms = algorithms
        self.nonce_ttl_s = nonce_ttl_s
        self._key = key if key is not None else os.urandom(32)
        #: nonce -> highest nonce count used (oldest first; bounded)
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._max = max_nonces

    def _nonce(self, now: float) -> str:
        # A random part: two phones challenged in the same millisecond get different
        # nonces (their nonce counts are checked per nonce).
        stamp = f"{now:.3f}.{os.urandom(6).hex()}"
        mac = hmac.new(self._key, stamp.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{stamp}.{mac}"

    def _nonce_age(self, nonce: str, now: float) -> float | None:
        """Age (s) of a nonce this server made, or None for a forged/garbled one."""
        stamp, _, mac = nonce.rpartition(".")
        want = hmac.new(self._key, stamp.encode(), hashlib.sha256).hexdigest()[:32]
        if not hmac.compare_digest(want.encode(), mac.encode()):
            return None
        try:
            return now - float(stamp.rpartition(".")[0])
        except ValueError:
            return None

    def challenges(self, now: float, *, stale: bool = False) -> list[str]:
        """``WWW-Authenticate`` values to send with a 401, one per algorithm."""
        nonce = self._nonce(now)
        extra = ", stale=true" if stale else ""
        return [f'Digest realm="{self.realm}", nonce="{nonce}", algorithm={alg}, '
                f'qop="auth"{extra}' for alg in self.algorithms]

    def check(self, now: float, method: str, authorization: str | None,
              lookup: dict[str, Credentials], request_uri: str | None = None
              ) -> tuple[str | None, bool]:
        """Check an ``Authorization`` header value for a request with ``method`` (and
        ``request_uri``: the answer's ``uri`` must be it, RFC 3261 §22.4).

        Only ``qop=auth`` answers are taken — the switch always asks for it — so every
        answer carries a nonce count, and a count not above the nonce's last is a replay
        (an answer without qop, RFC 2069's, could be replayed as it stands). Returns (the
        authenticated username or None, stale): stale is True when the answer was right
        but its nonce expired (challenge again with ``stale=true``). ``lookup``:
        username -> credentials. Never raises for a peer's garbage.
        """
        if not authorization or not authorization.isascii():
            return None, False
        p = parse_digest(authorization)
        user, nonce, uri, response = (p.get(k) for k in ("username", "nonce", "uri", "response"))
        if not (user and nonce and uri and response) or p.get("realm") != self.realm:
            return None, False
        if request_uri is not None and uri != request_uri:
            return None, False      # an answer made for another request
        alg = p.get("algorithm", "MD5").upper()
        cred = lookup.get(user)
        if cred is None or alg not in self.algorithms or cred.realm != self.realm:
            return None, False
        ha1 = cred.ha1_for(alg)
        age = self._nonce_age(nonce, now)
        if ha1 is None or age is None:
            return None, False
        nc, cnonce = p.get("nc", ""), p.get("cnonce", "")
        if p.get("qop") != "auth" or not re.fullmatch(r"[0-9a-fA-F]{8}", nc) or not cnonce:
            return None, False
        ha2 = _h(alg, f"{method}:{uri}")
        want = _h(alg, f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        if not hmac.compare_digest(want.encode(), response.lower().encode()):
            return None, False
        if age > self.nonce_ttl_s or age < -5.0:
            return None, True
        count = int(nc, 16)
        if count <= self._counts.get(nonce, 0):
            return None, False      # a replayed answer
        self._counts[nonce] = count
        self._counts.move_to_end(nonce)
        while len(self._counts) > self._max:
            self._counts.popitem(last=False)
        return user, False


def answer_challenge(challenge: str, *, method: str, uri: str, username: str, password: str,
                     cnonce: str | None = None, nc: int = 1) -> str | None:
    """The ``Authorization`` value answering one ``WWW-Authenticate``/``Proxy-Authenticate``
    challenge (a trunk registering to its carrier), or None when it is not a Digest
    challenge with an algorithm we know (MD5, SHA-256)."""
    p = parse_digest(challenge)
    realm, nonce = p.get("realm"), p.get("nonce")
    alg = p.get("algorithm", "MD5").upper()
    if realm is None or nonce is None or alg not in _HASH:
        return None
    ha1 = _h(alg, f"{username}:{realm}:{password}")
    ha2 = _h(alg, f"{method}:{uri}")
    parts = [f'username="{username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"',
             f"algorithm={alg}"]
    qops = [q.strip() for q in p.get("qop", "").split(",") if q.strip()]
    if "auth" in qops:
        cn = cnonce or hashlib.sha256(f"{time.time()}{os.getpid()}".encode()).hexdigest()[:16]
        ncs = f"{nc:08x}"
        resp = _h(alg, f"{ha1}:{nonce}:{ncs}:{cn}:auth:{ha2}")
        parts += [f'response="{resp}"', "qop=auth", f"nc={ncs}", f'cnonce="{cn}"']
    else:
        parts.append(f'response="{_h(alg, f"{ha1}:{nonce}:{ha2}")}"')
    if "opaque" in p:
        parts.append(f'opaque="{p["opaque"]}"')
    return "Digest " + ", ".join(parts)
