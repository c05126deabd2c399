"""The simulated board: bot phones, the simulated PSTN and the traffic generator, in virtual time.

Runs go through the production wiring: the shell on a virtual clock, the real core
taking the inputs, and the board following the core's events (as ``switchd.bench`` does).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest
from structlog.testing import capture_logs

from switchd.acd.model import RingGroup, RingStrategy
from switchd.bus import Bus
from switchd.core.engine import CoreError, SwitchCore
from switchd.core.inputs import Answer, Dial, FarBusy, Hangup, Incoming, Shutdown, SwitchAnswer
from switchd.core.routing import CoreConfig, Route, Target, TargetKind
from switchd.drivers.sim.board import (
    AgentMode,
    BotSettings,
    OutsideSettings,
    SimBoard,
    SimSettings,
    TrafficSettings,
)
from switchd.engine import Input
from switchd.events import CallAnswered, CallEnded, CallNew, CallRinging, Cdr, Event, LineError
from switchd.shell import Shell, VirtualClock
from tests.corehelp import GroupedCore

T0 = 1_764_000_000.0
CALLER = "13900001111"
#: Simulated callers that never give up or hang up by themselves within a test.
FOREVER = 1e9


#: Ring groups are queues with no waiting: the ACD rings them (tests.corehelp.GroupedCore).
GROUPS = {"sales": RingGroup("sales", RingStrategy.RINGALL, (201, 202, 203))}


def _config(trunks: int = 8) -> CoreConfig:
    return CoreConfig(
        trunks=trunks,
        ring_timeout_s=20.0,
        tone_timeout_s=10.0,
        routes=(
            Route(Target(TargetKind.GROUP, "sales"), dnis="8000"),
            Route(Target(TargetKind.BUSY), dnis="8002"),
            *(Route(Target(TargetKind.EXTENSION, str(n)), dnis=str(n)) for n in range(201, 209)),
        ),
    )


@pytest.fixture(autouse=True)
def _no_swallowed_failures() -> Iterator[None]:
    """The shell and the bus log a failing engine or handler and go on: fail the test instead."""
    with capture_logs() as logs:
        yield
    failed = [e for e in logs if e["event"] in
              ("engine_failed", "engine_timer_failed", "bus_handler_failed")]
    assert failed == []


class Run:
    """Core + simulated board on a shell in virtual time.

    ``events`` keeps every published event in order, ``cdrs`` every CDR, ``rejected``
    the inputs the core refused (simulated callers when every trunk is busy).
    """

    def __init__(self, core: SwitchCore | GroupedCore, board: SimBoard) -> None:
        self.core = core
        self.board = board
        self.events: list[Event] = []
        self.cdrs: list[Cdr] = []
        self.rejected: list[Exception] = []
        bus = Bus()
        bus.on_any(self._keep)
        self.clock = VirtualClock(T0)
        self.shell = Shell(bus, self.clock, log_events=False, refusals=(CoreError,),
                           on_refused=lambda _item, exc: self.rejected.append(exc))
        self.shell.add(core, takes=(Input,))
        self.shell.add(board, follows=True)
        board.start(T0)

    def _keep(self, ev: Event) -> None:
        self.events.append(ev)
        if isinstance(ev, CallEnded):
            self.cdrs.append(ev.cdr)

    @property
    def now(self) -> float:
        return self.clock.now()

    def act(self, item: Input) -> list[Event]:
        """Feed one input now (as a CTI client or the board would); a refusal is kept."""
        try:
            return self.shell.submit(item)
        except CoreError as exc:
            self.rejected.append(exc)
            return []

    def next_deadline(self) -> float | None:
        return self.shell.next_deadline()

    def advance(self, seconds: float) -> None:
        self.shell.advance(seconds)

    def run_until(self, t: float) -> None:
        self.shell.run_until(t)

    def run_idle(self) -> None:
        self.shell.run_idle()


def _run(settings: SimSettings, *, trunks: int = 8,
         contacts: Callable[[str], tuple[bool, bool]] | None = None) -> Run:
    cfg = _config(trunks)
    return Run(GroupedCore(cfg, GROUPS, contacts=contacts), SimBoard(settings, cfg.extensions))


def _dial(run: Run, line: str, number: str) -> None:
    run.act(Dial(line, number))


def test_bot_answers_after_answer_after_s_and_hangs_up_after_talk() -> None:
    run = _run(SimSettings(bots=BotSettings(answer_after_s=2.5, talk_s=(30.0, 30.0))))
    run.act(Incoming(CALLER, "201"))
    run.run_idle()
    [cdr] = run.cdrs
    assert (cdr.disposition, cdr.answer, cdr.end) == ("ANSWERED", T0 + 2.5, T0 + 32.5)
    assert (cdr.extension, cdr.hangup_by, cdr.billsec) == (201, "callee", 30)
    assert all(ln.idle for ln in run.core.lines.values())
    assert run.next_deadline() is None


def test_bot_talk_time_is_drawn_from_the_range() -> None:
    run = _run(SimSettings(bots=BotSettings(answer_after_s=1.0, talk_s=(10.0, 20.0))))
    for _ in range(40):
        run.act(Incoming(CALLER, "201"))
        run.run_idle()
    talk = [c.end - c.answer for c in run.cdrs if c.answer is not None]
    assert len(talk) == 40
    assert all(10.0 <= t <= 20.0 for t in talk)
    assert max(talk) - min(talk) > 5.0  # really drawn, not a constant


def test_manual_phone_never_answers() -> None:
    run = _run(SimSettings(bots=BotSettings(mode=AgentMode.MANUAL, answer_after_s=1.0)))
    run.act(Incoming(CALLER, "8000"))
    run.run_idle()
    [cdr] = run.cdrs
    assert (cdr.disposition, cdr.end, cdr.hangup_by) == ("NO ANSWER", T0 + 20, "system")
    assert not any(isinstance(e, CallAnswered) for e in run.events)


def test_set_agent_changes_one_extension_only() -> None:
    run = _run(SimSettings(bots=BotSettings(answer_after_s=2.0, talk_s=(5.0, 5.0))))
    new = run.board.set_agent(201, answer_after_s=7.0)
    assert new == BotSettings(answer_after_s=7.0, talk_s=(5.0, 5.0))
    assert run.board.agents[202] == BotSettings(answer_after_s=2.0, talk_s=(5.0, 5.0))
    run.act(Incoming(CALLER, "201"))
    run.act(Incoming(CALLER, "202"))
    run.run_idle()
    answers = {c.extension: c.answer - c.start for c in run.cdrs if c.answer is not None}
    assert answers == {201: 7.0, 202: 2.0}
    with pytest.raises(KeyError):
        run.board.set_agent(999, mode=AgentMode.MANUAL)


def test_switching_a_ringing_phone_to_manual_cancels_its_answer() -> None:
    run = _run(SimSettings(bots=BotSettings(answer_after_s=5.0)))
    run.act(Incoming(CALLER, "201"))
    run.advance(1)
    run.board.set_agent(201, mode=AgentMode.MANUAL)
    run.run_idle()
    [cdr] = run.cdrs
    assert cdr.disposition == "NO ANSWER" and cdr.end == T0 + 20


def test_switching_a_talking_phone_to_manual_cancels_its_hangup() -> None:
    # The caller talks (far) longer than this test, so only the agent's phone could hang up.
    run = _run(SimSettings(bots=BotSettings(answer_after_s=1.0, talk_s=(5.0, 5.0)),
                           caller_talk_s=(FOREVER, FOREVER)))
    run.act(Incoming(CALLER, "201"))
    run.advance(2)
    run.board.set_agent(201, mode=AgentMode.MANUAL)
    run.advance(100)
    assert run.cdrs == [] and run.core.lines["ext/201"].status.value == "connected"
    run.act(Hangup("ext/201"))
    assert [c.billsec for c in run.cdrs] == [101]


def test_outside_busy_number_gives_busy() -> None:
    outside = OutsideSettings(busy_numbers=frozenset({"5550001"}))
    run = _run(SimSettings(outside=outside, caller_hangup_after_tone_s=2.0))
    _dial(run, "ext/201", "95550001")
    run.run_idle()
    [cdr] = run.cdrs
    assert (cdr.disposition, cdr.direction, cdr.trunk, cdr.extension) == (
        "BUSY", "outbound", 1, 201)
    # Far end busy after 0.5 s, then the bot on ext/201 hangs up 2 s into the busy tone.
    assert (cdr.end, cdr.hangup_by) == (T0 + 2.5, "caller")


def test_outside_unanswered_number_gives_no_answer() -> None:
    outside = OutsideSettings(unanswered_numbers=frozenset({"5550002"}))
    run = _run(SimSettings(outside=outside))
    _dial(run, "ext/201", "95550002")
    run.run_idle()
    [cdr] = run.cdrs
    assert (cdr.disposition, cdr.end, cdr.hangup_by) == ("NO ANSWER", T0 + 20, "system")


def test_outside_number_answers_and_far_end_hangs_up_after_talking() -> None:
    outside = OutsideSettings(answer_after_s=3.0, talk_s=(12.0, 12.0))
    run = _run(SimSettings(outside=outside,
                           bots=BotSettings(mode=AgentMode.MANUAL)))
    _dial(run, "ext/201", "95550003")
    run.run_idle()
    [cdr] = run.cdrs
    assert (cdr.disposition, cdr.answer, cdr.end) == ("ANSWERED", T0 + 3, T0 + 15)
    assert cdr.hangup_by == "callee"


def test_inbound_caller_does_not_hang_up_by_itself() -> None:
    # A connected caller now hangs up after its own talk time (caller_talk_s); before
    # that, nothing but the caller's own plan is pending, and its patience no longer applies.
    run = _run(SimSettings(bots=BotSettings(mode=AgentMode.MANUAL),
                           caller_talk_s=(FOREVER, FOREVER), caller_patience_s=5.0))
    run.act(Incoming(CALLER, "201"))
    run.act(Answer("ext/201"))
    run.run_until(T0 + 1e6)
    assert run.cdrs == [] and run.core.lines["trunk/1"].status.value == "connected"
    assert run.next_deadline() == T0 + FOREVER


def test_caller_hangs_up_after_busy_tone() -> None:
    run = _run(SimSettings(caller_hangup_after_tone_s=3.5))
    run.act(Incoming(CALLER, "8002"))
    run.run_idle()
    [cdr] = run.cdrs
    assert (cdr.disposition, cdr.end, cdr.hangup_by) == ("BUSY", T0 + 3.5, "caller")


def test_blacklisted_simulated_caller_is_blocked_and_hangs_up() -> None:
    def contacts(number: str) -> tuple[bool, bool]:
        return (False, number == CALLER)

    run = _run(SimSettings(), contacts=contacts)
    run.act(Incoming(CALLER, "201"))
    run.run_idle()
    [cdr] = run.cdrs
    assert (cdr.disposition, cdr.blocked_reason, cdr.end) == ("BUSY", "blacklist", T0 + 2.0)
    assert not any(isinstance(e, CallRinging) for e in run.events)


def test_caller_who_waits_out_the_tone_is_released_by_the_switch() -> None:
    run = _run(SimSettings(caller_hangup_after_tone_s=60.0))
    run.act(Incoming(CALLER, "8002"))
    run.run_idle()
    [cdr] = run.cdrs
    assert (cdr.end, cdr.hangup_by) == (T0 + 10, "system")
    assert not any(isinstance(e, LineError) for e in run.events)


def test_moot_answer_in_ringall_is_not_delivered() -> None:
    # Every bot answers after the same 2 s: only the first answer may reach the core.
    run = _run(SimSettings(bots=BotSettings(answer_after_s=2.0, talk_s=(5.0, 5.0))))
    run.act(Incoming(CALLER, "8000"))
    assert sum(isinstance(e, CallRinging) for e in run.events) == 3
    run.run_idle()
    assert not any(isinstance(e, LineError) for e in run.events)
    assert sum(isinstance(e, CallAnswered) for e in run.events) == 1
    [cdr] = run.cdrs
    assert (cdr.disposition, cdr.extension, cdr.answer) == ("ANSWERED", 201, T0 + 2)
    assert all(ln.idle for ln in run.core.lines.values())


def test_answer_racing_the_ring_timeout_is_not_delivered() -> None:
    run = _run(SimSettings(bots=BotSettings(answer_after_s=20.0)))
    run.act(Incoming(CALLER, "201"))
    run.run_idle()
    assert [c.disposition for c in run.cdrs] == ["NO ANSWER"]
    assert not any(isinstance(e, LineError) for e in run.events)


def _arrivals(seed: int, minutes: float, rate: float = 60.0) -> list[float]:
    traffic = TrafficSettings(enabled=True, calls_per_minute=rate, dnis="8002", seed=seed)
    run = _run(SimSettings(traffic=traffic, caller_hangup_after_tone_s=1.0), trunks=30)
    run.run_until(T0 + minutes * 60)
    assert run.rejected == []
    return [e.time for e in run.events if isinstance(e, CallNew)]


def test_traffic_generator_meets_the_configured_rate() -> None:
    times = _arrivals(seed=7, minutes=60)
    assert 3600 * 0.85 <= len(times) <= 3600 * 1.15
    assert times == sorted(times) and times[0] > T0 and times[-1] <= T0 + 3600
    # Poisson: exponential gaps, so their mean is about 1 s and many are short.
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert 0.85 <= sum(gaps) / len(gaps) <= 1.15
    assert sum(g < 0.5 for g in gaps) / len(gaps) == pytest.approx(0.39, abs=0.05)


def test_traffic_is_repeatable_with_a_seed() -> None:
    assert _arrivals(seed=3, minutes=5) == _arrivals(seed=3, minutes=5)
    assert _arrivals(seed=3, minutes=5) != _arrivals(seed=4, minutes=5)


def test_traffic_is_off_unless_enabled() -> None:
    run = _run(SimSettings())
    run.run_until(T0 + 3600)
    assert run.events == [] and run.next_deadline() is None


def test_disabling_traffic_stops_arrivals_at_once() -> None:
    on = SimSettings(traffic=TrafficSettings(enabled=True, calls_per_minute=600.0, seed=1))
    run = _run(on)
    run.advance(60)
    assert run.board.next_deadline() is not None
    run.board.reconfigure(SimSettings(), run.core.config.extensions)
    run.act(Shutdown())  # from here any late arrival shows as a rejection
    rejected = len(run.rejected)
    run.advance(3600)
    assert len(run.rejected) == rejected
    assert run.next_deadline() is None


def test_board_never_hangs_up_a_line_that_went_idle() -> None:
    # (Was apply_action ignoring a hangup of an idle line; the board now drops a line's
    # plan when the line goes idle, so a stale hangup never reaches the core.)
    run = _run(SimSettings(bots=BotSettings(answer_after_s=1.0, talk_s=(30.0, 30.0)),
                           caller_talk_s=(FOREVER, FOREVER)))
    run.act(Incoming(CALLER, "201"))
    run.advance(5)
    assert run.board.next_deadline() == T0 + 31  # the bot's hangup
    run.act(Hangup("trunk/1"))  # the caller hangs up first
    assert run.next_deadline() is None
    run.run_idle()
    assert not any(isinstance(e, LineError) for e in run.events)
    assert [c.hangup_by for c in run.cdrs] == ["caller"]
    # Busy from the far end of an idle trunk is refused by the core, not ignored.
    assert run.act(FarBusy("trunk/1"))[0].name == "line.error"


def _talk_times(rng: random.Random) -> list[int]:
    board = SimBoard(SimSettings(bots=BotSettings(talk_s=(1.0, 100.0)),
                                 caller_talk_s=(FOREVER, FOREVER)), (201,), rng=rng)
    run = Run(GroupedCore(_config(), GROUPS), board)
    for _ in range(5):
        run.act(Incoming(CALLER, "201"))
        run.run_idle()
    return [c.billsec for c in run.cdrs]


def test_board_uses_the_given_random_source() -> None:
    assert _talk_times(random.Random(5)) == _talk_times(random.Random(5))
    assert _talk_times(random.Random(5)) != _talk_times(random.Random(6))


def test_demo_traffic_rings_the_first_caller_within_a_second():
    from switchd.drivers.sim.board import (
        FIRST_CALL_WITHIN_S,
        SimBoard,
        SimSettings,
        TrafficSettings,
    )

    for seed in range(20):
        board = SimBoard(SimSettings(traffic=TrafficSettings(enabled=True, calls_per_minute=1,
                                                             seed=seed)), (201,))
        board.start(1000.0)
        first = board.next_deadline()
        assert first is not None and first <= 1000.0 + FIRST_CALL_WITHIN_S


# ------------------------------------------------ simulated callers never strand a call


def test_caller_hangs_up_after_its_talk_time_when_the_agent_phone_goes_manual() -> None:
    run = _run(SimSettings(bots=BotSettings(answer_after_s=1.0, talk_s=(500.0, 500.0)),
                           caller_talk_s=(30.0, 30.0)))
    run.act(Incoming(CALLER, "201"))
    run.advance(2)
    assert run.core.lines["ext/201"].status.value == "connected"
    run.board.set_agent(201, mode=AgentMode.MANUAL)  # nobody will hang up ext/201
    run.run_idle()
    [cdr] = run.cdrs
    assert (cdr.disposition, cdr.answer, cdr.end) == ("ANSWERED", T0 + 1, T0 + 31)
    assert (cdr.hangup_by, cdr.billsec, cdr.extension) == ("caller", 30, 201)
    assert (cdr.hangup_cause, cdr.q850) == ("NORMAL_CLEARING", 16)
    assert all(ln.idle for ln in run.core.lines.values()) and run.core.calls == {}
    assert run.next_deadline() is None
    assert not any(isinstance(e, LineError) for e in run.events)


def test_unanswered_caller_gives_up_after_its_patience() -> None:
    # Patience (12 s) shorter than the ring timeout (20 s): the caller leaves first.
    run = _run(SimSettings(bots=BotSettings(mode=AgentMode.MANUAL), caller_patience_s=12.0))
    run.act(Incoming(CALLER, "8000"))
    assert sum(isinstance(e, CallRinging) for e in run.events) == 3
    run.run_idle()
    [cdr] = run.cdrs
    assert (cdr.disposition, cdr.end, cdr.hangup_by) == ("NO ANSWER", T0 + 12, "caller")
    assert (cdr.hangup_cause, cdr.q850) == ("ORIGINATOR_CANCEL", 487)
    assert not any(isinstance(e, CallAnswered) for e in run.events)
    assert all(ln.idle for ln in run.core.lines.values()) and run.core.calls == {}
    assert run.next_deadline() is None
    assert not any(isinstance(e, LineError) for e in run.events)


def test_caller_waiting_in_the_switch_gives_up_after_its_patience() -> None:
    # Answered by the switch (an IVR or a queue would hold it): nobody else will end it.
    run = _run(SimSettings(caller_patience_s=45.0))
    [cid] = [e.call_id for e in run.act(Incoming(CALLER, "201")) if isinstance(e, CallNew)]
    run.act(SwitchAnswer(cid))
    assert run.core.calls[cid].state == "switch"
    run.run_idle()
    [cdr] = run.cdrs
    assert (cdr.uniqueid, cdr.end, cdr.hangup_by) == (cid, T0 + 45, "caller")
    assert all(ln.idle for ln in run.core.lines.values()) and run.core.calls == {}
    assert run.next_deadline() is None
