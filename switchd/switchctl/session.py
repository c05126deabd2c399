"""Connecting and logging in, with failures turned into sentences a person can act on.

Everything that stops switchctl before it could send the user's request (no daemon,
no greeting, a refused login, a secret nobody gave) is a :class:`SessionError`: the
command line prints its message and exits 2, so a script can tell "switchd said no"
(exit 1) from "switchctl never got to ask" (exit 2).
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from switchd.cti.client import ConnectionLost, CtiClient, ReplyError
from switchd.exceptions import SwitchdError

__all__ = ["Login", "SessionError", "connect", "log_in", "resolve_secret"]

#: The environment variable a script puts the secret in (safer than --secret: ps shows argv).
SECRET_ENV = "SWITCHD_SECRET"
#: The environment variable for the user name when --user is not given.
USER_ENV = "SWITCHD_USER"


class SessionError(SwitchdError):
    """switchctl could not connect or log in; the message says what to check."""


@dataclass(frozen=True)
class Login:
    """Who the session is, after ``AUTH``: user name, role and the user's extension, if any."""

    user: str | None
    role: str | None
    extension: str | None = None


def _refusal(host: str, port: int, exc: OSError) -> str:
    """Why a TCP connect failed, in words, and the likely fix."""
    where = f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        return f"cannot connect to {where}: unknown host {host!r} — check --host"
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return (f"cannot connect to {where}: connection refused — is switchd running? "
                "(make run), and is this its cti.listen? (--port, --config)")
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"cannot connect to {where}: {reason} — check --host and --port"


async def connect(host: str, port: int, *, timeout: float) -> CtiClient:
    """Open a CTI connection and read the greeting within ``timeout`` seconds.

    Raises SessionError when the host cannot be reached, nothing listens there, or
    what answers is not a switchd CTI socket.
    """
    try:
        return await CtiClient.connect(host, port, timeout=timeout)
    except TimeoutError:
        raise SessionError(
            f"no greeting from {host}:{port} within {timeout:g} s — is that switchd's CTI "
            "socket (cti.listen)?"
        ) from None
    except ConnectionLost as exc:
        raise SessionError(f"{host}:{port} is not a switchd CTI socket: {exc.reason}") from None
    except OSError as exc:
        raise SessionError(_refusal(host, port, exc)) from None


async def log_in(cti: CtiClient, user: str, secret: str) -> Login:
    """``AUTH`` as ``user``; return who the server says we are.

    Raises SessionError when the server refuses (a wrong user or secret, said with
    what to check) or the connection ends before the reply.
    """
    try:
        reply = await cti.auth(user, secret)
    except ReplyError as exc:
        if exc.code == "forbidden":
            raise SessionError(
                f"login as {user} refused: {exc.msg} — check --user (or {USER_ENV}) and "
                f"--secret (or {SECRET_ENV})"
            ) from None
        raise SessionError(f"login as {user} refused: ERR {exc.code} {exc.msg}") from None
    except ConnectionLost as exc:
        raise SessionError(f"the connection ended during login: {exc.reason}") from None
    extension = reply.get("extension")
    return Login(str(reply.get("user", user)), str(reply.get("role", "")) or None,
                 None if extension is None else str(extension))


def resolve_secret(user: str, given: str | None, environ: Mapping[str, str], *,
                   can_ask: bool, ask: Callable[[str], str]) -> str:
    """The secret for ``user``: ``--secret``, else ``$SWITCHD_SECRET``, else asked for.

    ``ask`` (``getpass.getpass``) is used only when ``can_ask`` (stdin is a
    terminal). Raises SessionError when there is no secret and nobody to ask.
    """
    if given is not None:
        return given
    if environ.get(SECRET_ENV):
        return environ[SECRET_ENV]
    if not can_ask:
        raise SessionError(
            f"no secret for {user}: give --secret, or set {SECRET_ENV} (stdin is not a terminal "
            "to ask on)"
        )
    return ask(f"secret for {user}: ")
