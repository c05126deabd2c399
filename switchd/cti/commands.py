"""The CTI verbs: session verbs (AUTH, PING, HELP, …) and switch verbs (CALLS, CDR.QUERY, …).

Each verb is one entry of the verb table (``cti/verbs.py``: roles allowed, usage,
handler), so HELP, permission checks and dispatch read the same table. Handlers
raise :class:`~switchd.exceptions.ProtocolError` with a code from the closed set and
a message that tells the client what to fix. They reach the switch only through
the narrow :class:`~switchd.control.Control` interface; the ``SIM.*`` verbs live in
``cti/sim_verbs.py``, the ``QUEUE.*`` verbs in ``cti/queue_verbs.py``.
"""

from __future__ import annotations

import asyncio
import difflib
import functools
import re
from collections.abc import Awaitable, Callable

import structlog

from switchd.control import Control, SimControl
from switchd.cti.agent_verbs import AGENT_VERBS, AgentVerbs
from switchd.cti.board_verbs import BOARD_VERBS, BoardVerbs
from switchd.cti.call_verbs import CALL_VERBS, CallVerbs
from switchd.cti.codec import Request
from switchd.cti.note_verbs import NOTE_VERBS, NoteVerbs
from switchd.cti.phone_verbs import PHONE_VERBS, PhoneVerbs
from switchd.cti.queue_verbs import QUEUE_VERBS, QueueVerbs
from switchd.cti.rec_verbs import REC_VERBS, RecVerbs
from switchd.cti.report_verbs import REPORT_VERBS, ReportVerbs
from switchd.cti.server import Reply, Session
from switchd.cti.sim_verbs import SIM_VERBS, SimVerbs
from switchd.cti.sip_verbs import SIP_VERBS, SipVerbs
from switchd.cti.super_verbs import SUPER_VERBS, SuperVerbs
from switchd.cti.verbs import (
    ADMIN,
    ALL_ROLES,
    PHONE_NUMBER,
    STAFF,
    VERBS,
    Verb,
    arg,
    bool_arg,
    calls_on,
    int_arg,
    on_line,
    one_of,
    only,
    register,
)
from switchd.cti.vm_verbs import VM_VERBS, VmVerbs
from switchd.exceptions import ProtocolError
from switchd.passwords import hash_secret, verify_secret
from switchd.timefmt import iso_utc

__all__ = ["ALL_ROLES", "Commands", "VERBS", "Verb"]

log = structlog.get_logger("switchd")

register((
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
    Verb("CDR.QUERY", STAFF,
         "CDR.QUERY [caller=] [callee=] [since=] [until=] [disposition=] [limit=]",
         "search call detail records, newest first", "cdr_query"),
    Verb("CONTACT.GET", ALL_ROLES, "CONTACT.GET number=<number>", "read a contact", "contact_get"),
    Verb("CONTACT.SET", STAFF,
         "CONTACT.SET number=<number> [name=] [vip=true|false] [blacklisted=true|false] [notes=]",
         "create or update a contact", "contact_set"),
    Verb("RELOAD", ADMIN, "RELOAD", "re-read the config file; live calls are untouched", "reload"),
    Verb("ROUTE.REPLY", STAFF, "ROUTE.REPLY call=<id> [next=<node>] [<variable>=<value> ...]",
         "answer an ivr.route_request: where the call goes next, and variables to set",
         "route_reply"),
))
register(QUEUE_VERBS)
register(SIM_VERBS)
register(VM_VERBS)
register(REC_VERBS)
register(AGENT_VERBS)
register(PHONE_VERBS)
register(CALL_VERBS)
register(NOTE_VERBS)
register(SUPER_VERBS)
register(BOARD_VERBS)
register(REPORT_VERBS)
register(SIP_VERBS)


def _balanced(pattern: str) -> bool:
    """True when every ``[`` of a glob pattern closes with a later ``]`` (``[`` alone would
    match only a literal bracket, which no event name has: a typo, refused rather than
    a subscription that silently never matches)."""
    depth = 0
    for ch in pattern:
        if ch == "[":
            if depth:
                return False
            depth = 1
        elif ch == "]":
            if not depth:
                return False
            depth = 0
    return depth == 0


def _text_only(req: Request) -> None:
    """Refuse values that are not Unicode text (a lone surrogate from a ``\\uD800`` escape):
    they cannot be stored or sent on as UTF-8."""
    for key, value in [*req.args.items(), *(("positional", p) for p in req.positional)]:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ProtocolError("bad_arg", f"{key}= holds a lone surrogate (an unpaired "
                                "\\uD800-\\uDFFF escape); values must be Unicode text") from None


@functools.cache
def _dummy_hash() -> str:
    """A hash with the default cost, verified for unknown users so AUTH takes as long for them."""
    return hash_secret("no such user")


class Commands:
    """Carries out CTI verbs through the :class:`~switchd.control.Control` interface.

    ``sim``: the simulated board's controls; without it the ``SIM.*`` verbs answer
    ``not_found`` (a board with no simulated people).
    """

    def __init__(self, control: Control, *, sim: SimControl | None = None) -> None:
        self.control = control
        self._auth_slots = asyncio.Semaphore(2)
        # Each module's verbs and the object whose methods (named by each verb's
        # ``handler``) carry them out; the session and switch verbs are this class's own.
        groups: list[tuple[tuple[Verb, ...], object]] = [
            (QUEUE_VERBS, QueueVerbs(control)), (VM_VERBS, VmVerbs(control)),
            (REC_VERBS, RecVerbs(control)), (AGENT_VERBS, AgentVerbs(control)),
            (PHONE_VERBS, PhoneVerbs(control)), (CALL_VERBS, CallVerbs(control)),
            (NOTE_VERBS, NoteVerbs(control)), (SUPER_VERBS, SuperVerbs(control)),
            (BOARD_VERBS, BoardVerbs(control)), (REPORT_VERBS, ReportVerbs(control)),
            (SIP_VERBS, SipVerbs(control)),
        ]
        if sim is not None:
            groups.append((SIM_VERBS, SimVerbs(control, sim)))
        owner = {v.name: obj for verbs, obj in groups for v in verbs}
        self._handlers: dict[str, Callable[[Session, Request], Awaitable[Reply]]] = {}
        for v in VERBS.values():
            if v.name in owner:
                self._handlers[v.name] = getattr(owner[v.name], v.handler)
            elif not v.name.startswith("SIM."):
                self._handlers[v.name] = getattr(self, f"_{v.handler}")

    async def __call__(self, session: Session, req: Request) -> Reply:
        """Check the verb and the session's role, then run the verb."""
        verb = VERBS.get(req.verb)
        if verb is None:
            # Suggest only what this session may use: an agent (or a client before AUTH)
            # must not learn admin verbs from a typo.
            usable = [v.name for v in VERBS.values()
                      if v.roles is None or (session.role is not None and session.role in v.roles)]
            close = difflib.get_close_matches(req.verb, usable, n=1)
            hint = f"; did you mean {close[0]}?" if close else "; HELP lists the verbs"
            raise ProtocolError("unknown_verb", f"unknown verb {req.verb}{hint}")
        if verb.roles is not None:
            if session.role is None:
                raise ProtocolError("not_authenticated",
                                    f"{verb.name} needs AUTH user=<name> secret=<secret> first")
            if session.role not in verb.roles:
                log.warning("cti_forbidden", user=session.user, role=session.role,
                            verb=verb.name, reason="role", peer=session.peer)
                raise ProtocolError("forbidden", f"{verb.name} is for {', '.join(sorted(verb.roles))}; "
                                    f"you are {session.user} ({session.role})")
        _text_only(req)
        handler = self._handlers.get(verb.name)
        if handler is None:
            raise ProtocolError("not_found", f"{verb.name} needs the simulated board "
                                "(board.driver: sim)")
        try:
            return await handler(session, req)
        except ProtocolError as exc:
            if exc.code == "forbidden" and verb.name != "AUTH":  # AUTH logs its own
                # Every refusal of an argument is on record with who asked (issue 17 item 5).
                log.warning("cti_forbidden", user=session.user, role=session.role,
                            verb=verb.name, reason=exc.msg, peer=session.peer)
            raise

    # ------------------------------------------------------------ session verbs

    async def _auth(self, session: Session, req: Request) -> Reply:
        only(req, "user", "secret")
        user, secret = arg(req, "user"), arg(req, "secret")
        if session.user is not None:
            raise ProtocolError("wrong_state", f"already authenticated as {session.user}; "
                                "open a new connection to log in as someone else")
        cfg = self.control.user(user)
        # Verify even for unknown users, so timing does not reveal which names exist.
        # PBKDF2 costs ~0.3 s of CPU: a few at a time, so a crowd of clients guessing
        # secrets cannot occupy every worker thread (RELOAD and CDR writes share them).
        async with self._auth_slots:
            ok = await asyncio.to_thread(
                verify_secret, secret, cfg.secret if cfg is not None else _dummy_hash())
        if cfg is None or not ok:
            log.warning("cti_auth_failed", user=user, peer=session.peer)
            raise ProtocolError("forbidden", "wrong user or secret")
        session.user, session.role = cfg.name, cfg.role
        session.agent_line = f"ext/{cfg.extension}" if cfg.role == "agent" and cfg.extension else None
        if cfg.role == "agent" and session.agent_line is None:
            session.agent_line = "ext/none"
        log.info("cti_auth", user=user, role=cfg.role, peer=session.peer)
        return Reply({"user": cfg.name, "role": cfg.role, "extension": cfg.extension})

    async def _ping(self, session: Session, req: Request) -> Reply:
        only(req)
        return Reply({"pong": True, "time": iso_utc(self.control.now())})

    async def _help(self, session: Session, req: Request) -> Reply:
        # In JSON mode the "verb" key is the request's own verb, so the verb asked
        # about is given as name= there ({"verb":"HELP","name":"CALLS"}).
        only(req, "verb", "name", positional=1)
        if "name" in req.args and (req.positional or "verb" in req.args):
            raise ProtocolError("bad_arg", "HELP takes one verb: give it once; usage: "
                                f"{VERBS['HELP'].usage}")
        name = (req.args["name"] if "name" in req.args else one_of(req, "verb")).upper()
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
        only(req)
        return Reply({"bye": True}, close=True)

    async def _format(self, session: Session, req: Request) -> Reply:
        only(req, "mode", positional=1)
        mode = one_of(req, "mode").lower()
        if mode not in ("json", "text"):
            what = f"format {mode!r}" if mode else "FORMAT needs a format"
            raise ProtocolError("bad_arg", f"{what}: use json or text; usage: FORMAT json|text")
        session.decoder.json_mode = mode == "json"
        return Reply({"format": mode})

    async def _sub(self, session: Session, req: Request) -> Reply:
        only(req, "events")
        raw = req.args.get("events", "*")
        patterns = tuple(p.strip() for p in raw.split(",") if p.strip())
        if not patterns or any(not re.fullmatch(r"[a-z.*?\[\]!_-]+", p) or not _balanced(p)
                                for p in patterns):
            raise ProtocolError("bad_arg", f"events={raw!r}: give comma-separated event names "
                                "or glob patterns, e.g. events=call.*,line.state")
        session.patterns = patterns
        session.subscribed = True
        if session.agent_line is not None:
            # An agent that subscribes mid-call (a softphone reconnecting) follows the calls
            # already on its phone, as if it had seen the event that put them there:
            # recording.* and the other events of those calls carry no line of its own.
            session.own_calls.update(calls_on(self.control, session.agent_line))
        return Reply({"events": ",".join(patterns)})

    async def _unsub(self, session: Session, req: Request) -> Reply:
        only(req)
        session.subscribed = False
        return Reply({})

    # ------------------------------------------------------------ switch verbs

    async def _calls(self, session: Session, req: Request) -> Reply:
        only(req)
        items = self.control.calls()
        if session.agent_line is not None:
            items = [c for c in items if on_line(c, session.agent_line)]
        return Reply(items=items)

    async def _cdr_query(self, session: Session, req: Request) -> Reply:
        only(req, "caller", "callee", "since", "until", "disposition", "limit")
        limit = int_arg(req, "limit", 1, 10_000) or 100
        disposition = req.args.get("disposition")
        if disposition is not None:
            disposition = disposition.upper().replace("_", " ")
            if disposition not in ("ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION"):
                raise ProtocolError("bad_arg", f"disposition={req.args['disposition']!r}: use "
                                    "ANSWERED, NO_ANSWER, BUSY, FAILED or CONGESTION")
        try:
            # Includes the calls that just ended, but never waits on a failing database.
            rows = await self.control.query_cdrs(
                caller=req.args.get("caller"), callee=req.args.get("callee"),
                since=req.args.get("since"), until=req.args.get("until"),
                disposition=disposition, limit=limit)
        except ValueError as exc:
            raise ProtocolError("bad_arg", str(exc)) from None
        return Reply(items=rows)

    async def _contact_get(self, session: Session, req: Request) -> Reply:
        only(req, "number")
        number = arg(req, "number")
        row = await self.control.get_contact(number)
        if row is None:
            raise ProtocolError("not_found", f"no contact {number}")
        return Reply(dict(row))

    async def _contact_set(self, session: Session, req: Request) -> Reply:
        only(req, "number", "name", "vip", "blacklisted", "notes")
        number = arg(req, "number")
        if not PHONE_NUMBER.match(number):
            raise ProtocolError("bad_arg", f"number={number!r} must be a phone number (digits, "
                                "optional leading +)")
        row = await self.control.set_contact(
            number, name=req.args.get("name"), vip=bool_arg(req, "vip"),
            blacklisted=bool_arg(req, "blacklisted"), notes=req.args.get("notes"))
        return Reply(dict(row))

    async def _route_reply(self, session: Session, req: Request) -> Reply:
        call_id = arg(req, "call")
        only(req, *req.args)  # every other key is a variable; no positional tokens
        nxt = req.args.get("next")
        if nxt == "":
            raise ProtocolError("bad_arg", "next= is empty; name a node of the flow, or leave "
                                f"next= out; usage: {VERBS[req.verb].usage}")
        variables = tuple((k, v) for k, v in req.args.items() if k not in ("call", "next"))
        node = self.control.route_reply(call_id, nxt, variables)
        return Reply({"call": call_id, "next": node})

    async def _reload(self, session: Session, req: Request) -> Reply:
        only(req)
        problems = await self.control.reload()
        if problems:
            raise ProtocolError("bad_arg", "config rejected, old config stays in force: "
                                + " | ".join(problems))
        return Reply({"config": str(self.control.config_path.resolve())})
