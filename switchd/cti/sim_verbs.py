"""The ``SIM.*`` verbs: an admin drives the simulated board's people from the socket.

They act only through the narrow interfaces of ``switchd.control``: core inputs go
through :meth:`Control.submit` (the same path as every other verb and the board
driver), key presses and bot settings through :class:`~switchd.control.SimControl`.
"""

from __future__ import annotations

import re

from switchd.control import Control, SimControl
from switchd.core.engine import CoreError, new_call_id
from switchd.core.inputs import Answer, Dial, Hangup, Incoming
from switchd.cti.codec import Request
from switchd.cti.server import Reply, Session
from switchd.cti.verbs import (
    ADMIN,
    PHONE_NUMBER,
    Verb,
    arg,
    core_error,
    float_arg,
    int_arg,
    only,
    refusal,
)
from switchd.drivers.sim.board import AgentMode
from switchd.exceptions import ProtocolError

__all__ = ["SIM_VERBS", "SimVerbs"]

_DIGITS = re.compile(r"^[0-9A-Da-d*#]+$")

SIM_VERBS: tuple[Verb, ...] = (
    Verb("SIM.CALL", ADMIN, "SIM.CALL caller=<number> [dnis=<number>] [trunk=<n>]",
         "a simulated caller dials in", "sim_call"),
    Verb("SIM.DTMF", ADMIN, "SIM.DTMF call=<id> digits=<0-9A-D*#> [hold_ms=<ms>]",
         "the simulated caller presses keys", "sim_dtmf"),
    Verb("SIM.HANGUP", ADMIN, "SIM.HANGUP call=<id> [line=<line>]",
         "a simulated party hangs up (default: the caller)", "sim_hangup"),
    Verb("SIM.ANSWER", ADMIN, "SIM.ANSWER ext=<number>",
         "the simulated phone on an extension answers its ringing call", "sim_answer"),
    Verb("SIM.DIAL", ADMIN, "SIM.DIAL ext=<number> number=<digits>",
         "the simulated phone on an extension dials (an extension, or prefix + outside number)",
         "sim_dial"),
    Verb("SIM.AGENT", ADMIN,
         "SIM.AGENT ext=<number> mode=auto|manual [answer_after=<s>] [talk=<s>|<min>-<max>]",
         "set how a simulated agent phone behaves", "sim_agent"),
)


class SimVerbs:
    """Handlers of :data:`SIM_VERBS` (methods named after each verb's ``handler``)."""

    def __init__(self, control: Control, sim: SimControl) -> None:
        self.control = control
        self.sim = sim

    def _submit(self, item: object) -> list[object]:
        try:
            events = self.control.submit(item)  # type: ignore[arg-type]
        except CoreError as exc:
            raise core_error(exc) from None
        refusal(events)
        return list(events)

    async def sim_call(self, session: Session, req: Request) -> Reply:
        """SIM.CALL: a simulated caller rings in on a trunk (the first idle one by default)."""
        only(req, "caller", "dnis", "trunk")
        caller = arg(req, "caller")
        if not PHONE_NUMBER.match(caller):
            raise ProtocolError("bad_arg", f"caller={caller!r} must be a phone number")
        dnis = req.args.get("dnis", "")
        if dnis and not PHONE_NUMBER.match(dnis):
            raise ProtocolError("bad_arg", f"dnis={dnis!r} must be a phone number")
        trunk = int_arg(req, "trunk", 1, self.control.trunks)
        events = self._submit(Incoming(caller, dnis, trunk=trunk))
        call_id = new_call_id(events)  # type: ignore[arg-type]
        trunk_no = next((getattr(e, "trunk", None) for e in events
                         if getattr(e, "name", "") == "call.new"), None)
        return Reply({"call": call_id, "trunk": trunk_no})

    async def sim_dtmf(self, session: Session, req: Request) -> Reply:
        """SIM.DTMF: the simulated caller presses keys (real DTMF audio on its line)."""
        only(req, "call", "digits", "hold_ms")
        call_id, digits = arg(req, "call"), arg(req, "digits")
        hold = int_arg(req, "hold_ms", 40, 10_000)
        if not _DIGITS.match(digits) or len(digits) > 64:
            raise ProtocolError("bad_arg", f"digits={digits!r}: use up to 64 of 0-9 A-D * #")
        try:
            call = self.control.call_info(call_id)
        except CoreError as exc:
            raise core_error(exc) from None
        if not (call.answered or call.switch_answered):
            raise ProtocolError("wrong_state", f"call {call_id} is {call.state}; "
                                "keys can be pressed once it is answered")
        self.sim.press(call.anchor, digits.upper(), on_ms=float(hold or 50))
        return Reply({"call": call_id, "line": call.anchor, "digits": digits.upper()})

    async def sim_hangup(self, session: Session, req: Request) -> Reply:
        """SIM.HANGUP: a simulated party of a call hangs up (the caller by default)."""
        only(req, "call", "line")
        call_id = arg(req, "call")
        try:
            call = self.control.call_info(call_id)
        except CoreError as exc:
            raise core_error(exc) from None
        line = req.args.get("line", call.anchor)
        if line not in call.lines:
            raise ProtocolError("bad_arg", f"line={line} is not part of call {call_id}; "
                                f"its lines are {','.join(call.lines)}")
        self._submit(Hangup(line))
        return Reply({"call": call_id, "line": line})

    async def sim_answer(self, session: Session, req: Request) -> Reply:
        """SIM.ANSWER: the simulated phone on an extension answers its ringing call."""
        only(req, "ext")
        line = f"ext/{arg(req, 'ext')}"
        events = self._submit(Answer(line))
        call_id = next((getattr(e, "call_id", None) for e in events
                        if getattr(e, "name", "") == "line.state"), None)
        return Reply({"line": line, "call": call_id})

    async def sim_dial(self, session: Session, req: Request) -> Reply:
        """SIM.DIAL: the simulated phone on an extension dials a number."""
        only(req, "ext", "number")
        line = f"ext/{arg(req, 'ext')}"
        number = arg(req, "number")
        if not re.fullmatch(r"[0-9*#]{1,32}", number):
            raise ProtocolError("bad_arg", f"number={number!r} must be 1 to 32 of 0-9 * #")
        events = self._submit(Dial(line, number))
        return Reply({"call": new_call_id(events), "line": line})  # type: ignore[arg-type]

    async def sim_agent(self, session: Session, req: Request) -> Reply:
        """SIM.AGENT: set how a simulated agent phone behaves (auto bot or manual)."""
        only(req, "ext", "mode", "answer_after", "talk")
        ext_raw = arg(req, "ext")
        mode_raw = arg(req, "mode")
        try:
            mode = AgentMode(mode_raw.lower())
        except ValueError:
            raise ProtocolError("bad_arg", f"mode={mode_raw!r}: use auto or manual") from None
        answer_after = float_arg(req, "answer_after")
        talk = None
        raw_talk = req.args.get("talk")
        if raw_talk is not None:
            lo_s, dash, hi_s = raw_talk.partition("-")
            try:
                lo = float(lo_s)
                if dash and not hi_s:
                    raise ValueError("a range needs its maximum")
                hi = float(hi_s) if dash else lo
            except ValueError:
                raise ProtocolError("bad_arg", f"talk={raw_talk!r}: give seconds, e.g. talk=30 "
                                    "or talk=20-90") from None
            if not 0 <= lo <= hi <= 86_400:
                raise ProtocolError("bad_arg", f"talk={raw_talk!r}: need 0 <= min <= max <= 86400")
            talk = (lo, hi)
        try:
            ext = int(ext_raw)
            bot = self.sim.set_agent(ext, mode=mode, answer_after_s=answer_after, talk_s=talk)
        except (ValueError, KeyError):
            raise ProtocolError("not_found", f"no extension {ext_raw} on this board") from None
        return Reply({"ext": ext, "mode": bot.mode.value, "answer_after": bot.answer_after_s,
                      "talk": f"{bot.talk_s[0]:g}-{bot.talk_s[1]:g}"})

