"""The CTI verbs: argument checks, role checks, and the calls into the switch.

Each verb is one entry of :data:`VERBS` (roles allowed, usage, handler), so HELP,
permission checks and dispatch read the same table. Handlers raise
:class:`~switchd.exceptions.ProtocolError` with a code from the closed set and a
message that tells the client what to fix.
"""

from __future__ import annotations

import asyncio
import difflib
import functools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from switchd.core.engine import CoreError
from switchd.cti.codec import Request
from switchd.cti.server import Reply, Session
from switchd.events import LineError
from switchd.exceptions import ProtocolError, StorageError
from switchd.passwords import hash_secret, verify_secret
from switchd.sim.board import AgentMode
from switchd.timefmt import iso_utc

if TYPE_CHECKING:
    from switchd.app import App

__all__ = ["ALL_ROLES", "Commands", "VERBS", "Verb"]

#: Seconds CDR.QUERY waits for CDRs still being written.
FLUSH_WAIT_S = 2.0
ALL_ROLES = frozenset({"agent", "supervisor", "crm", "admin"})
_STAFF = frozenset({"supervisor", "crm", "admin"})
_ADMIN = frozenset({"admin"})
_BEFORE_AUTH = None  # marker: the verb works before AUTH
_DIGITS = re.compile(r"^[0-9A-Da-d*#]+$")
_NUMBER = re.compile(r"^\+?[0-9*#]{1,32}$")


@dataclass(frozen=True, slots=True)
class Verb:
    """One verb: who may use it (None = anyone, even before AUTH), its usage line and handler name."""

    name: str
    roles: frozenset[str] | None
    usage: str
    summary: str
    handler: str


VERBS: dict[str, Verb] = {v.name: v for v in (
    Verb("AUTH", None, "AUTH user=<name> secret=<secret>", "log in", "auth"),
    Verb("PING", None, "PING", "check the connection; replies with the server time", "ping"),
    Verb("HELP", None, "HELP [verb]", "list verbs, or show one verb's usage", "help"),
    Verb("QUIT", None, "QUIT", "close the connection", "quit"),
    Verb("FORMAT", ALL_ROLES, "FORMAT json|text", "switch this connection to JSON lines or back",
         "format"),
    Verb("SUB", ALL_ROLES, "SUB [events=<pattern>,...]",
         "receive events (glob patterns such as call.*,line.state; default all)", "sub"),
    Verb("UNSUB", ALL_ROLES, "UNSUB", "stop receiving events", "unsub"),
    Verb("CALLS", ALL_ROLES, "CALLS", "list active calls (an agent sees its own)", "calls"),
    Verb("CDR.QUERY", _STAFF,
         "CDR.QUERY [caller=] [callee=] [since=] [until=] [disposition=] [limit=]",
         "search call detail records, newest first", "cdr_query"),
    Verb("CONTACT.GET", ALL_ROLES, "CONTACT.GET number=<number>", "read a contact", "contact_get"),
    Verb("CONTACT.SET", _STAFF,
         "CONTACT.SET number=<number> [name=] [vip=true|false] [blacklisted=true|false] [notes=]",
         "create or update a contact", "contact_set"),
    Verb("RELOAD", _ADMIN, "RELOAD", "re-read the config file; live calls are untouched", "reload"),
    Verb("SIM.CALL", _ADMIN, "SIM.CALL caller=<number> [dnis=<number>] [trunk=<n>]",
         "a simulated caller dials in", "sim_call"),
    Verb("SIM.DTMF", _ADMIN, "SIM.DTMF call=<id> digits=<0-9A-D*#>",
         "the simulated caller presses keys", "sim_dtmf"),
    Verb("SIM.HANGUP", _ADMIN, "SIM.HANGUP call=<id> [line=<line>]",
         "a simulated party hangs up (default: the caller)", "sim_hangup"),
    Verb("SIM.ANSWER", _ADMIN, "SIM.ANSWER ext=<number>",
         "the simulated phone on an extension answers its ringing call", "sim_answer"),
    Verb("SIM.DIAL", _ADMIN, "SIM.DIAL ext=<number> number=<digits>",
         "the simulated phone on an extension dials (an extension, or prefix + outside number)",
         "sim_dial"),
    Verb("SIM.AGENT", _ADMIN,
         "SIM.AGENT ext=<number> mode=auto|manual [answer_after=<s>] [talk=<s>|<min>-<max>]",
         "set how a simulated agent phone behaves", "sim_agent"),
)}


@functools.cache
def _dummy_hash() -> str:
    """A hash with the default cost, verified for unknown users so AUTH takes as long for them."""
    return hash_secret("no such user")


def _arg(req: Request, key: str) -> str:
    value = req.args.get(key)
    if value is None or value == "":
        raise ProtocolError("missing_arg", f"{req.verb} needs {key}=; usage: {VERBS[req.verb].usage}")
    return value


def _float(req: Request, key: str, lo: float = 0.0, hi: float = 86_400.0) -> float | None:
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


def _int(req: Request, key: str, lo: int, hi: int) -> int | None:
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


def _bool(req: Request, key: str) -> bool | None:
    raw = req.args.get(key)
    if raw is None:
        return None
    low = raw.lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise ProtocolError("bad_arg", f"{key}={raw!r} must be true or false")


def _only(req: Request, *keys: str) -> None:
    extra = sorted(set(req.args) - set(keys))
    if extra or req.positional:
        what = extra[0] if extra else req.positional[0]
        raise ProtocolError("bad_arg", f"{req.verb} takes no argument {what!r}; "
                            f"usage: {VERBS[req.verb].usage}")


def _core(exc: CoreError) -> ProtocolError:
    return ProtocolError(exc.code, exc.msg)


def _refusal(events: list[Any]) -> None:
    for ev in events:
        if isinstance(ev, LineError):
            raise ProtocolError("wrong_state", ev.reason)


class Commands:
    """Carries out CTI verbs against a running :class:`~switchd.app.App`."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._auth_slots = asyncio.Semaphore(2)
        self._handlers: dict[str, Callable[[Session, Request], Awaitable[Reply]]] = {
            v.name: getattr(self, f"_{v.handler}") for v in VERBS.values()
        }

    async def __call__(self, session: Session, req: Request) -> Reply:
        """Check the verb and the session's role, then run the verb."""
        verb = VERBS.get(req.verb)
        if verb is None:
            close = difflib.get_close_matches(req.verb, list(VERBS), n=1)
            hint = f"; did you mean {close[0]}?" if close else "; HELP lists the verbs"
            raise ProtocolError("unknown_verb", f"unknown verb {req.verb}{hint}")
        if verb.roles is not None:
            if session.role is None:
                raise ProtocolError("not_authenticated",
                                    f"{verb.name} needs AUTH user=<name> secret=<secret> first")
            if session.role not in verb.roles:
                raise ProtocolError("forbidden", f"{verb.name} is for {', '.join(sorted(verb.roles))}; "
                                    f"you are {session.user} ({session.role})")
        return await self._handlers[verb.name](session, req)

    # ------------------------------------------------------------ session verbs

    async def _auth(self, session: Session, req: Request) -> Reply:
        _only(req, "user", "secret")
        user, secret = _arg(req, "user"), _arg(req, "secret")
        if session.user is not None:
            raise ProtocolError("wrong_state", f"already authenticated as {session.user}; "
                                "open a new connection to log in as someone else")
        cfg = next((u for u in self.app.config.users if u.name == user), None)
        # Verify even for unknown users, so timing does not reveal which names exist.
        # PBKDF2 costs ~0.3 s of CPU: a few at a time, so a crowd of clients guessing
        # secrets cannot occupy every worker thread (RELOAD and CDR writes share them).
        async with self._auth_slots:
            ok = await asyncio.to_thread(
                verify_secret, secret, cfg.secret if cfg is not None else _dummy_hash())
        if cfg is None or not ok:
            self.app.log.warning("cti_auth_failed", user=user, peer=session.peer)
            raise ProtocolError("forbidden", "wrong user or secret")
        session.user, session.role = cfg.name, cfg.role
        session.agent_line = f"ext/{cfg.extension}" if cfg.role == "agent" and cfg.extension else None
        if cfg.role == "agent" and session.agent_line is None:
            session.agent_line = "ext/none"
        self.app.log.info("cti_auth", user=user, role=cfg.role, peer=session.peer)
        return Reply({"user": cfg.name, "role": cfg.role, "extension": cfg.extension})

    async def _ping(self, session: Session, req: Request) -> Reply:
        _only(req)
        return Reply({"pong": True, "time": iso_utc(self.app.now())})

    async def _help(self, session: Session, req: Request) -> Reply:
        name = (req.positional[0] if req.positional else req.args.get("verb", "")).upper()
        if name:
            verb = VERBS.get(name)
            if verb is None:
                raise ProtocolError("not_found", f"no verb {name}; HELP lists the verbs")
            return Reply({"verb": verb.name, "usage": verb.usage, "summary": verb.summary,
                          "roles": ",".join(sorted(verb.roles)) if verb.roles else "any"})
        return Reply(items=[{"verb": v.name, "usage": v.usage,
                             "roles": ",".join(sorted(v.roles)) if v.roles else "any"}
                            for v in VERBS.values()])

    async def _quit(self, session: Session, req: Request) -> Reply:
        _only(req)
        return Reply({"bye": True}, close=True)

    async def _format(self, session: Session, req: Request) -> Reply:
        mode = (req.positional[0] if req.positional else req.args.get("mode", "")).lower()
        if mode not in ("json", "text"):
            raise ProtocolError("bad_arg", "usage: FORMAT json|text")
        session.decoder.json_mode = mode == "json"
        return Reply({"format": mode})

    async def _sub(self, session: Session, req: Request) -> Reply:
        _only(req, "events")
        raw = req.args.get("events", "*")
        patterns = tuple(p.strip() for p in raw.split(",") if p.strip())
        if not patterns or any(not re.fullmatch(r"[a-z.*?\[\]!_-]+", p) for p in patterns):
            raise ProtocolError("bad_arg", f"events={raw!r}: give comma-separated event names "
                                "or glob patterns, e.g. events=call.*,line.state")
        session.patterns = patterns
        session.subscribed = True
        return Reply({"events": ",".join(patterns)})

    async def _unsub(self, session: Session, req: Request) -> Reply:
        _only(req)
        session.subscribed = False
        return Reply({})

    # ------------------------------------------------------------ switch verbs

    async def _calls(self, session: Session, req: Request) -> Reply:
        items = self.app.calls_snapshot()
        if session.agent_line is not None:
            items = [c for c in items if session.agent_line in str(c.get("lines", "")).split(",")]
        return Reply(items=items)

    async def _cdr_query(self, session: Session, req: Request) -> Reply:
        _only(req, "caller", "callee", "since", "until", "disposition", "limit")
        limit = _int(req, "limit", 1, 10_000) or 100
        disposition = req.args.get("disposition")
        if disposition is not None:
            disposition = disposition.upper().replace("_", " ")
            if disposition not in ("ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION"):
                raise ProtocolError("bad_arg", f"disposition={req.args['disposition']!r}: use "
                                    "ANSWERED, NO_ANSWER, BUSY, FAILED or CONGESTION")
        try:
            # Include the calls that just ended, but never wait on a failing database:
            # after FLUSH_WAIT_S the query answers with what is committed.
            await asyncio.wait_for(self.app.cdr_writer.flush(), FLUSH_WAIT_S)
        except (TimeoutError, StorageError):
            pass
        try:
            rows = await self.app.store.query_cdrs(
                caller=req.args.get("caller"), callee=req.args.get("callee"),
                since=req.args.get("since"), until=req.args.get("until"),
                disposition=disposition, limit=limit)
        except ValueError as exc:
            raise ProtocolError("bad_arg", str(exc)) from None
        return Reply(items=rows)

    async def _contact_get(self, session: Session, req: Request) -> Reply:
        _only(req, "number")
        number = _arg(req, "number")
        row = await self.app.store.get_contact(number)
        if row is None:
            raise ProtocolError("not_found", f"no contact {number}")
        return Reply(dict(row))

    async def _contact_set(self, session: Session, req: Request) -> Reply:
        _only(req, "number", "name", "vip", "blacklisted", "notes")
        number = _arg(req, "number")
        if not _NUMBER.match(number):
            raise ProtocolError("bad_arg", f"number={number!r} must be a phone number (digits, "
                                "optional leading +)")
        row = await self.app.store.set_contact(
            number, name=req.args.get("name"), vip=_bool(req, "vip"),
            blacklisted=_bool(req, "blacklisted"), notes=req.args.get("notes"))
        self.app.contact_changed(number, bool(row["vip"]), bool(row["blacklisted"]))
        return Reply(dict(row))

    async def _reload(self, session: Session, req: Request) -> Reply:
        _only(req)
        problems = await self.app.reload()
        if problems:
            raise ProtocolError("bad_arg", "config rejected, old config stays in force: "
                                + " | ".join(problems))
        return Reply({"config": str(self.app.config_path.resolve())})

    # ------------------------------------------------------------ simulator verbs

    async def _sim_call(self, session: Session, req: Request) -> Reply:
        _only(req, "caller", "dnis", "trunk")
        caller = _arg(req, "caller")
        if not _NUMBER.match(caller):
            raise ProtocolError("bad_arg", f"caller={caller!r} must be a phone number")
        dnis = req.args.get("dnis", "")
        if dnis and not _NUMBER.match(dnis):
            raise ProtocolError("bad_arg", f"dnis={dnis!r} must be a phone number")
        trunk = _int(req, "trunk", 1, self.app.core.config.trunks)
        try:
            call_id, trunk_no = self.app.sim_incoming(caller, dnis, trunk)
        except CoreError as exc:
            raise _core(exc) from None
        return Reply({"call": call_id, "trunk": trunk_no})

    async def _sim_dtmf(self, session: Session, req: Request) -> Reply:
        _only(req, "call", "digits")
        call_id, digits = _arg(req, "call"), _arg(req, "digits")
        if not _DIGITS.match(digits) or len(digits) > 64:
            raise ProtocolError("bad_arg", f"digits={digits!r}: use up to 64 of 0-9 A-D * #")
        try:
            call = self.app.core.get_call(call_id)
        except CoreError as exc:
            raise _core(exc) from None
        if call.answer_time is None:
            raise ProtocolError("wrong_state", f"call {call_id} is {call.state.value}; "
                                "keys can be pressed once it is answered")
        self.app.inject_dtmf(call.a_line, digits.upper())
        return Reply({"call": call_id, "line": call.a_line, "digits": digits.upper()})

    async def _sim_hangup(self, session: Session, req: Request) -> Reply:
        _only(req, "call", "line")
        call_id = _arg(req, "call")
        try:
            call = self.app.core.get_call(call_id)
            line = req.args.get("line", call.a_line)
            if line not in call.lines():
                raise ProtocolError("bad_arg", f"line={line} is not part of call {call_id}; "
                                    f"its lines are {','.join(call.lines())}")
            events = self.app.core.hangup(self.app.now(), line)
        except CoreError as exc:
            raise _core(exc) from None
        self.app.dispatch(events)
        _refusal(events)
        return Reply({"call": call_id, "line": line})

    async def _sim_answer(self, session: Session, req: Request) -> Reply:
        _only(req, "ext")
        line = f"ext/{_arg(req, 'ext')}"
        try:
            events = self.app.core.answer(self.app.now(), self.app.core.line(line).name)
        except CoreError as exc:
            raise _core(exc) from None
        self.app.dispatch(events)
        _refusal(events)
        call = self.app.core.call_of_line(line)
        return Reply({"line": line, "call": call.call_id if call else None})

    async def _sim_dial(self, session: Session, req: Request) -> Reply:
        _only(req, "ext", "number")
        line = f"ext/{_arg(req, 'ext')}"
        number = _arg(req, "number")
        if not re.fullmatch(r"[0-9*#]{1,32}", number):
            raise ProtocolError("bad_arg", f"number={number!r} must be 1 to 32 of 0-9 * #")
        try:
            call_id, events = self.app.core.dial(self.app.now(), self.app.core.line(line).name,
                                                 number)
        except CoreError as exc:
            raise _core(exc) from None
        self.app.dispatch(events)
        _refusal(events)
        return Reply({"call": call_id, "line": line})

    async def _sim_agent(self, session: Session, req: Request) -> Reply:
        _only(req, "ext", "mode", "answer_after", "talk")
        ext_raw = _arg(req, "ext")
        mode_raw = _arg(req, "mode")
        try:
            mode = AgentMode(mode_raw.lower())
        except ValueError:
            raise ProtocolError("bad_arg", f"mode={mode_raw!r}: use auto or manual") from None
        answer_after = _float(req, "answer_after")
        talk = None
        raw_talk = req.args.get("talk")
        if raw_talk is not None:
            lo_s, _, hi_s = raw_talk.partition("-")
            try:
                lo = float(lo_s)
                hi = float(hi_s) if hi_s else lo
            except ValueError:
                raise ProtocolError("bad_arg", f"talk={raw_talk!r}: give seconds, e.g. talk=30 "
                                    "or talk=20-90") from None
            if not 0 <= lo <= hi <= 86_400:
                raise ProtocolError("bad_arg", f"talk={raw_talk!r}: need 0 <= min <= max <= 86400")
            talk = (lo, hi)
        try:
            ext = int(ext_raw)
            bot = self.app.board.set_agent(ext, mode=mode, answer_after_s=answer_after, talk_s=talk)
        except (ValueError, KeyError):
            raise ProtocolError("not_found", f"no extension {ext_raw} on this board") from None
        return Reply({"ext": ext, "mode": bot.mode.value, "answer_after": bot.answer_after_s,
                      "talk": f"{bot.talk_s[0]:g}-{bot.talk_s[1]:g}"})

