"""Simulated demo callers press keys as real in-band DTMF (issue 14 item 9), in virtual time.

The board's key scripts (``sim.traffic.keys``) run through the production wiring: the
shell on a virtual clock, the real core, and the simulated board following the core's
events. A stand-in for the IVR answers every call in the switch (and may offer it to a
phone later), so these tests do not depend on any flow. End to end, the simulated
driver is the media plane's audio port: the keys are tones on the trunk's line, and
the digits come out of the DTMF detector, as on an analog board.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from switchd.bus import Bus
from switchd.config import load_config
from switchd.core.engine import CoreError, SwitchCore
from switchd.core.inputs import Digit, Hangup, Incoming, Offer, SwitchAnswer
from switchd.core.routing import CoreConfig, Route, Target, TargetKind
from switchd.drivers.sim.audio import SimAudio, SourceKind
from switchd.drivers.sim.board import (
    KEY_OFF_MS,
    KEY_ON_MS,
    AgentMode,
    BotSettings,
    PressKeys,
    SimBoard,
    SimSettings,
    TrafficSettings,
)
from switchd.drivers.sim.driver import SimDriver
from switchd.engine import Input, TimerHeap
from switchd.events import CallAnswered, CallNew, CallSwitchAnswered, Direction, DtmfReceived, Event
from switchd.exceptions import ConfigError
from switchd.lines.media import FRAME, MediaPlane
from switchd.shell import Shell, VirtualClock

T0 = 1_764_000_000.0
FOREVER = 1e9
#: The IVR stand-in answers in the switch at once; the phone it may offer the call to.
PARKED = 208
AGENT = "ext/202"
SCRIPT = ("1", "12345678#", "0")
FIRST_S, GAP_S = 9.0, 6.0
KEY_S = (KEY_ON_MS + KEY_OFF_MS) / 1000.0
CORE = CoreConfig(trunks=4, extensions=(201, 202, PARKED),
                  routes=(Route(Target(TargetKind.EXTENSION, str(PARKED)), dnis="8000"),))
#: The board's lines in channel order (the core's).
LINES = list(SwitchCore(CORE).lines)


@pytest.fixture(autouse=True)
def _no_swallowed_failures() -> Iterator[None]:
    """The shell and the bus log a failing engine or handler and go on: fail the test instead."""
    with capture_logs() as logs:
        yield
    failed = [e for e in logs if e["event"] in
              ("engine_failed", "engine_timer_failed", "bus_handler_failed")]
    assert failed == []


def settings(keys: tuple[tuple[str, ...], ...] = (SCRIPT,), *, seed: int = 7,
             calls_per_minute: float = 1e-6) -> SimSettings:
    """Demo traffic whose first caller rings within a second (and, by default, no other
    within the test), with key scripts; callers never give up nor hang up by themselves."""
    return SimSettings(
        traffic=TrafficSettings(enabled=True, calls_per_minute=calls_per_minute, dnis="8000",
                                seed=seed, keys=keys, first_key_after_s=FIRST_S,
                                key_gap_s=GAP_S),
        caller_patience_s=FOREVER, caller_talk_s=(FOREVER, FOREVER),
        bots=BotSettings(answer_after_s=2.0, talk_s=(FOREVER, FOREVER)),
    )


class IvrStandIn:
    """What an IVR does to the board's eyes: answers every inbound call in the switch at
    once; with ``offer_after_s``, offers it to :data:`AGENT` that long after."""

    def __init__(self, offer_after_s: float | None = None) -> None:
        self.offer_after_s = offer_after_s
        self.timers: TimerHeap[str] = TimerHeap()

    def handle(self, now: float, item: object) -> list[Input]:
        if isinstance(item, CallNew) and item.direction is Direction.INBOUND:
            if self.offer_after_s is not None:
                self.timers.arm(item.call_id, now + self.offer_after_s,
                                Offer(item.call_id, AGENT, 30.0))
            return [SwitchAnswer(item.call_id)]
        return []

    def next_deadline(self) -> float | None:
        return self.timers.next_deadline()

    def handle_timer(self, now: float) -> list[Input]:
        due = self.timers.pop_due(now)
        return [] if due is None else [due[1]]


class KeyPad:
    """Takes the board's :class:`PressKeys` actions (the driver's job) and keeps them."""

    def __init__(self) -> None:
        self.pressed: list[tuple[float, str, str]] = []

    def handle(self, now: float, item: PressKeys) -> list[Input]:
        self.pressed.append((now, item.line, item.keys))
        return []

    def next_deadline(self) -> None:
        return None

    def handle_timer(self, now: float) -> list[Input]:
        return []


class Run:
    """Core, simulated board (or driver) and the IVR stand-in on a shell in virtual time."""

    def __init__(self, board: SimBoard | SimDriver, ivr: IvrStandIn | None = None) -> None:
        self.core = SwitchCore(CORE)
        self.board = board
        self.events: list[Event] = []
        self.clock = VirtualClock(T0)
        bus = Bus()
        bus.on_any(self.events.append)
        self.shell = Shell(bus, self.clock, log_events=False, refusals=(CoreError,))
        self.shell.add(self.core, takes=(Input,))
        self.keypad = KeyPad()
        self.shell.add(self.keypad, takes=(PressKeys,))
        if isinstance(board, SimDriver):
            self.shell.add(board, follows=board.FOLLOWS)
        else:
            self.shell.add(board, follows=True)
        if ivr is not None:
            self.shell.add(ivr, follows=True)
        # Nobody answers the parked call: the IVR has it.
        board.set_agent(PARKED, mode=AgentMode.MANUAL)
        board.start(T0)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def expected_presses(answered: float, script: tuple[str, ...] = SCRIPT) -> list[tuple[float, str]]:
    out, t = [], answered + FIRST_S
    for group in script:
        out.append((t, group))
        t += len(group) * KEY_S + GAP_S
    return out


def test_a_scripted_caller_presses_each_group_at_its_time_once_the_switch_answers() -> None:
    run = Run(SimBoard(settings(), (201, 202, PARKED)), IvrStandIn())
    run.shell.run_until(T0 + 60)
    [new] = run.of(CallNew)
    [answered] = run.of(CallSwitchAnswered)
    line = answered.line
    assert line == f"trunk/{new.trunk}"
    got = [(t, keys) for t, ln, keys in run.keypad.pressed if ln == line]
    want = expected_presses(answered.time)
    assert [k for _, k in got] == [k for _, k in want]
    assert np.allclose([t for t, _ in got], [t for t, _ in want])
    # 9 s, then 6 s after the last key of each group: 1 key, then 9 keys of 0.2 s each.
    assert np.allclose(np.diff([answered.time] + [t for t, _ in got]), [9.0, 6.2, 7.8])


def test_the_caller_stops_pressing_once_a_person_answers() -> None:
    # Offered to the agent 12 s after the switch answered: the phone answers 2 s later,
    # before the second group (due at 15.2 s).
    run = Run(SimBoard(settings(), (201, 202, PARKED)), IvrStandIn(offer_after_s=12.0))
    run.shell.run_until(T0 + 60)
    [answered] = run.of(CallSwitchAnswered)
    [person] = run.of(CallAnswered)
    assert person.line == AGENT and person.time == pytest.approx(answered.time + 14.0)
    assert [k for _, _, k in run.keypad.pressed] == ["1"]


def test_a_call_that_ends_stops_its_script() -> None:
    run = Run(SimBoard(settings(), (201, 202, PARKED)), IvrStandIn())
    run.shell.run_until(T0 + 12)
    [new] = run.of(CallNew)
    run.shell.submit(Hangup(f"trunk/{new.trunk}"))
    run.shell.run_until(T0 + 60)
    assert [k for _, _, k in run.keypad.pressed] == ["1"]


def test_a_call_the_board_did_not_place_presses_nothing() -> None:
    run = Run(SimBoard(settings(calls_per_minute=0.0), (201, 202, PARKED)), IvrStandIn())
    run.shell.submit(Incoming("13900001111", "8000"))  # a SIM.CALL, a test: not demo traffic
    run.shell.run_until(T0 + 60)
    assert run.of(CallSwitchAnswered) and run.keypad.pressed == []


def test_a_call_routed_to_a_phone_never_starts_its_script() -> None:
    # Without an IVR nobody answers in the switch: the caller waits for a person, silently.
    run = Run(SimBoard(settings(), (201, 202, PARKED)))
    run.shell.run_until(T0 + 60)
    assert run.of(CallNew) and run.keypad.pressed == []


def test_scripts_are_drawn_uniformly_and_repeatably_without_moving_the_arrivals() -> None:
    scripts = (("1",), ("2",), ("3", "12345678#"), ("0",), ("9", "1"), ())

    def drawn(seed: int, keys: tuple[tuple[str, ...], ...]) -> tuple[list[float], list[str]]:
        # Callers give up after 20 s in the "IVR": long enough for the longest script.
        sim = replace(settings(keys, seed=seed, calls_per_minute=6.0), caller_patience_s=20.0)
        run = Run(SimBoard(sim, (201, 202, PARKED)), IvrStandIn())
        run.shell.run_until(T0 + 1200)
        arrivals = [e.time for e in run.of(CallNew)]
        return arrivals, [k for _, _, k in run.keypad.pressed]

    a1, k1 = drawn(5, scripts)
    a2, k2 = drawn(5, scripts)
    a0, k0 = drawn(5, ())
    assert (a1, k1) == (a2, k2)  # the same seed gives the same run
    assert a1 == a0 and k0 == []  # the scripts have their own generator
    assert len(a1) > 50
    # Every script's first group came up, in about the proportions drawn (uniform).
    firsts = [k for k in k1 if k in ("1", "2", "3", "0", "9")]
    assert {"1", "2", "3", "0", "9"} <= set(firsts)
    _, k3 = drawn(6, scripts)
    assert k3 != k1


def test_key_groups_are_checked_by_the_settings() -> None:
    with pytest.raises(ValueError, match="'x' in '12x' is not a key"):
        TrafficSettings(keys=(("12x",),))
    with pytest.raises(ValueError, match="non-empty"):
        TrafficSettings(keys=(("",),))
    with pytest.raises(ValueError, match="at most 32 keys"):
        TrafficSettings(keys=(("1" * 33,),))
    TrafficSettings(keys=(("1" * 32, "*#ABCD"), ()))


# ------------------------------------------------------------------ end to end in-band


def test_scripted_keys_reach_the_detector_as_exactly_the_scripted_digits() -> None:
    script = ("1", "12345678#", "0", "*")
    # The callers talk (a test tone) between their keys; the driver mutes it while keys sound.
    driver = SimDriver(settings((script,)), (201, 202, PARKED), LINES,
                       audio=SimAudio(len(LINES), tone_hz=1000.0, tone_dbm0=-20.0),
                       caller_source=SourceKind.TONE)
    run = Run(driver, IvrStandIn())
    media = MediaPlane(LINES, port=driver)
    run.shell.bus.on_any(media.on_event)
    hits = []
    t = T0
    for _ in range(int(50.0 / (FRAME / 8000))):
        t += FRAME / 8000
        run.shell.run_until(t)
        for hit in media.process(1, t):
            hits.append(hit)
            run.shell.submit(Digit(hit.line, hit.digit, hit.time))
    [answered] = run.of(CallSwitchAnswered)
    assert run.keypad.pressed == []  # the driver sent the keys itself, as audio
    assert "".join(h.digit for h in hits) == "".join(script)
    assert {h.line for h in hits} == {answered.line}
    # Each group's first digit is confirmed within 40 ms of its press (detection takes two blocks).
    starts = [t0 for t0, _ in expected_presses(answered.time, script)]
    firsts = [hits[i] for i in np.cumsum([0] + [len(g) for g in script[:-1]])]
    assert all(0 < h.time - s <= 0.04 + 1e-9 for h, s in zip(firsts, starts, strict=True))
    # The core turned each into one call.dtmf of the call.
    dtmf = run.of(DtmfReceived)
    assert "".join(e.digit for e in dtmf) == "".join(script)
    assert {e.call_id for e in dtmf} == {answered.call_id}


# ------------------------------------------------------------------ config


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)

    def _write(text: str) -> str:
        (tmp_path / "c.yaml").write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return "c.yaml"

    return _write


def test_config_takes_key_scripts_and_their_timing(write) -> None:
    cfg = load_config(write(
        """
        sim:
          traffic:
            seed: 3
            keys: [["1"], ["3", "12345678#"], [], ["*", "A"]]
            first_key_after_s: 4.5
            key_gap_s: 0
        """))
    t = cfg.sim.traffic
    assert t.keys == (("1",), ("3", "12345678#"), (), ("*", "A"))
    assert (t.first_key_after_s, t.key_gap_s) == (4.5, 0.0)


def test_config_defaults_press_nothing() -> None:
    from switchd.config import TrafficConfig
    assert TrafficConfig().keys == () and TrafficConfig().first_key_after_s == 9.0
    assert TrafficConfig().key_gap_s == 6.0


def test_bad_key_groups_are_named_at_their_file_line_col(write) -> None:
    name = write(
        """
        sim:
          traffic:
            keys:
              - ["1", "12x"]
              - [""]
              - [1234]
              - ["1234567890123456789012345678901234"]
              - "12"
            first_key_after_s: -1
        """)
    with pytest.raises(ConfigError) as info:
        load_config(name)
    assert info.value.problems == [
        "c.yaml:4:15: sim.traffic.keys[0][1]: 'x' in '12x' is not a key; keys are 0-9, *, # "
        "and A-D",
        "c.yaml:5:10: sim.traffic.keys[1][0]: a key group must be a non-empty string of keys "
        "(0123456789*#ABCD), got ''",
        'c.yaml:6:10: sim.traffic.keys[2][0]: expected text, got the number 1234; put it in '
        'quotes, e.g. "1234"',
        "c.yaml:7:10: sim.traffic.keys[3][0]: a key group has at most 32 keys, got 34",
        "c.yaml:8:9: sim.traffic.keys[4]: expected a list, got the text '12'",
        "c.yaml:9:24: sim.traffic.first_key_after_s: must be at least 0, got -1",
    ]


def test_the_shipped_config_documents_the_keys_and_presses_nothing_by_default() -> None:
    root = Path(__file__).resolve().parent.parent
    text = (root / "config.yaml").read_text(encoding="utf-8")
    assert "keys:" in text and "first_key_after_s:" in text and "key_gap_s:" in text
