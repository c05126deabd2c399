"""The verb table and the argument checks every CTI verb shares.

A verb is one :class:`Verb` entry in :data:`VERBS` (roles allowed, usage, handler
name), so HELP, permission checks, usage lines in errors and dispatch all read the
same table. ``cti/commands.py`` registers the session and switch verbs,
``cti/sim_verbs.py`` the simulator's. Every check raises
:class:`~switchd.exceptions.ProtocolError` with a code from the closed set and a
message that says what to fix, quoting the verb's usage.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from switchd.core.engine import CoreError
from switchd.cti.codec import Request
from switchd.events import LineError
from switchd.exceptions import ProtocolError

__all__ = [
    "ADMIN",
    "ALL_ROLES",
    "PHONE_NUMBER",
    "STAFF",
    "SUPERVISORS",
    "VERBS",
    "Verb",
    "arg",
    "bool_arg",
    "calls_on",
    "core_error",
    "float_arg",
    "int_arg",
    "on_line",
    "one_of",
    "only",
    "own_phone",
    "phone_call",
    "refusal",
    "register",
]

ALL_ROLES = frozenset({"agent", "supervisor", "crm", "admin"})
#: A phone number as verbs take it: digits, * and #, an optional leading +.
PHONE_NUMBER = re.compile(r"^\+?[0-9*#]{1,32}$")
STAFF = frozenset({"supervisor", "crm", "admin"})
ADMIN = frozenset({"admin"})
#: Team leaders: who may set another agent's state, monitor and pick up (a CRM may not).
SUPERVISORS = frozenset({"supervisor", "admin"})


@dataclass(frozen=True, slots=True)
class Verb:
    """One verb: who may use it (None = anyone, even before AUTH), its usage line and handler name."""

    name: str
    roles: frozenset[str] | None
    usage: str
    summary: str
    handler: str


#: Every verb by name, in HELP order.
VERBS: dict[str, Verb] = {}


def register(verbs: Iterable[Verb]) -> None:
    """Add ``verbs`` to :data:`VERBS`. Raises ValueError for a name registered twice."""
    for v in verbs:
        if v.name in VERBS:
            raise ValueError(f"verb {v.name} is registered twice")
        VERBS[v.name] = v


def arg(req: Request, key: str) -> str:
    """The non-empty value of ``key=``. Raises ProtocolError(missing_arg) quoting the usage."""
    value = req.args.get(key)
    if value is None or value == "":
        raise ProtocolError("missing_arg", f"{req.verb} needs {key}=; usage: {VERBS[req.verb].usage}")
    return value


def float_arg(req: Request, key: str, lo: float = 0.0, hi: float = 86_400.0) -> float | None:
    """``key=`` as seconds in [lo, hi], or None when absent. Raises ProtocolError(bad_arg)."""
    raw = req.args.get(key)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ProtocolError("bad_arg", f"{key}={raw!r} is not a number of seconds") from None
    if not lo <= value <= hi:
        raise ProtocolError("bad_arg", f"{key}={raw} must be between {lo:g} and {hi:g}")
    return value


def int_arg(req: Request, key: str, lo: int, hi: int) -> int | None:
    """``key=`` as a whole number in [lo, hi], or None when absent. Raises ProtocolError(bad_arg)."""
    raw = req.args.get(key)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ProtocolError("bad_arg", f"{key}={raw!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise ProtocolError("bad_arg", f"{key}={raw} must be between {lo} and {hi}")
    return value


def bool_arg(req: Request, key: str) -> bool | None:
    """``key=`` as true/false (also 1/0, yes/no), or None when absent. Raises ProtocolError(bad_arg)."""
    raw = req.args.get(key)
    if raw is None:
        return None
    low = raw.lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise ProtocolError("bad_arg", f"{key}={raw!r} must be true or false (or 1/0, yes/no)")


def only(req: Request, *keys: str, positional: int = 0) -> None:
    """Refuse keys outside ``keys`` and more than ``positional`` bare tokens (``bad_arg``).

    Why: a misspelt or misplaced argument that is silently ignored makes a request do
    something other than what the client asked; the message quotes the usage line so
    the client learns what the verb accepts.
    """
    usage = VERBS[req.verb].usage
    extra = sorted(set(req.args) - set(keys))
    if extra or (req.positional and not positional):
        what = extra[0] if extra else req.positional[0]
        raise ProtocolError("bad_arg", f"{req.verb} takes no argument {what!r}; usage: {usage}")
    if len(req.positional) > positional:
        given = " ".join(req.positional)
        raise ProtocolError("bad_arg", f"{req.verb} takes at most {positional} positional "
                            f"argument{'s' if positional > 1 else ''}, got "
                            f"{len(req.positional)} ({given}); usage: {usage}")


def one_of(req: Request, key: str) -> str:
    """The value given either as the single positional or as ``key=``; "" when neither.

    Raises ProtocolError(bad_arg) when both are given: which one was meant is a guess.
    """
    if req.positional and key in req.args:
        raise ProtocolError("bad_arg", f"{req.verb} got both {req.positional[0]!r} and "
                            f"{key}={req.args[key]!r}; give one; usage: {VERBS[req.verb].usage}")
    return req.positional[0] if req.positional else req.args.get(key, "")


def core_error(exc: CoreError) -> ProtocolError:
    """The CTI error for a request the core refused before changing anything."""
    return ProtocolError(exc.code, exc.msg)


def refusal(events: list[Any]) -> None:
    """Raise ProtocolError(wrong_state) with the reason of the first ``line.error`` in ``events``."""
    for ev in events:
        if isinstance(ev, LineError):
            raise ProtocolError("wrong_state", ev.reason)


def own_phone(control: Any, session: Any, verb: str) -> int:
    """The extension of the session's user (``users[].extension``), which the softphone
    verbs act on. Raises ProtocolError(forbidden) naming ``verb`` for a user without one."""
    user = control.user(session.user or "")
    if user is None or user.extension is None:
        raise ProtocolError("forbidden", f"{verb} acts on your own phone, and user "
                            f"{session.user} has none (users[].extension in the config)")
    return int(user.extension)


def on_line(call: Mapping[str, Any], line: str) -> bool:
    """True when ``line`` is one of the lines of ``call`` (a ``Control.calls()`` item:
    ringing, talking, held or monitoring)."""
    return line in str(call.get("lines") or "").split(",")


def calls_on(control: Any, line: str) -> list[str]:
    """The ids of the live calls ``line`` is in (:func:`on_line`), oldest first."""
    return [str(c["call"]) for c in control.calls() if on_line(c, line)]


def phone_call(control: Any, session: Any, verb: str, call_id: str | None) -> tuple[str, str | None]:
    """The user's phone (``ext/<n>``) and the call on it a verb acts on.

    ``call_id`` given: it must be a call on that phone, else ProtocolError(forbidden)
    — the same answer whether the call exists or not, so a user cannot probe for other
    people's call ids. Not given: the phone's call (the oldest, when it holds two), or
    None when it is idle. Raises ProtocolError(forbidden) for a user without a phone.
    """
    line = f"ext/{own_phone(control, session, verb)}"
    mine = calls_on(control, line)
    if call_id is None:
        return line, (mine[0] if mine else None)
    if call_id not in mine:
        raise ProtocolError("forbidden", f"call {call_id} is not on your phone {line}; "
                            f"{verb} acts only on your own call (CALLS lists them)")
    return line, call_id
