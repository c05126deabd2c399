"""Who hears whom, read from the mixed samples of the real core and the real media plane.

Every party's phone sends its own sine tone through a fake board driver (an
``AudioPort`` defined here); the real :class:`SwitchCore` is driven with inputs, every
event it returns goes to a real :class:`MediaPlane`, and the test reads what each line
*hears* (the driver's outbound) at each party's frequency. Who hears whom is data
(DESIGN §3, §9): a supervisor's "listen" that the caller can hear, or a held caller who
hears the consultation, shows up here as energy at the wrong frequency.

The tones sit away from everything the switch plays by itself (cn ringback 450 Hz, the
music-on-hold chime's 523/659 Hz), and each is a single sine, which the DTMF detector
cannot take for a digit (a digit needs one low-group and one high-group tone).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from switchd.core.engine import SwitchCore, new_call_id
from switchd.core.inputs import (
    Answer,
    BlindTransfer,
    Cancel,
    Complete,
    Conference,
    Consult,
    Dial,
    Hangup,
    Hold,
    Incoming,
    Monitor,
    Retrieve,
    SetMonitorMode,
)
from switchd.core.routing import CoreConfig, Route, Target, TargetKind
from switchd.engine import Input
from switchd.events import BridgeChanged, BridgeMember, CallEnded, Event, LineError, Role
from switchd.lines.media import FRAME, MediaPlane
from switchd.lines.state import LineStatus

T0 = 1_764_000_000.0
RATE = 8000
FRAME_S = FRAME / RATE
#: Peak amplitude of every party's tone (about −14 dBFS): three talkers summed stay
#: far below full scale, so saturation never makes intermodulation products.
LEVEL = 6000.0
#: A tone this far below the sent level or louder is heard ...
PRESENT_DB = -20.0
#: ... and one this far below or quieter is not; anything in between fails the test.
ABSENT_DB = -60.0
#: Frames run after each step: the first one after a bridge change is a crossfade.
SETTLE_FRAMES = 12
#: Frames analysed (the last ones run): 200 ms, 5 Hz resolution.
ANALYSE_FRAMES = 10

CALLER = "trunk/1"
AGENT = "ext/201"
CONSULTED = "ext/202"
BYSTANDER = "ext/203"
SUPERVISOR = "ext/209"
OTHER_TRUNK = "trunk/2"

#: The tone every line's party sends, Hz. Idle lines talk too: nobody may hear them.
TONES: Mapping[str, float] = {
    CALLER: 900.0,
    AGENT: 1200.0,
    CONSULTED: 1500.0,
    SUPERVISOR: 1800.0,
    BYSTANDER: 2100.0,
    OTHER_TRUNK: 2400.0,
}
PARTIES = (CALLER, AGENT, CONSULTED, SUPERVISOR)
#: The music-on-hold chime's two notes (E5, C5).
MOH_HZ = (659.25, 523.25)


# ----------------------------------------------------------------------------- the rig


class ToneBoard:
    """A fake board driver's audio: each line's party sends one steady sine; what each
    line hears is kept frame by frame."""

    def __init__(self, lines: Sequence[str], tones: Mapping[str, float]) -> None:
        self.lines = list(lines)
        self.freqs = np.array([tones.get(name, 0.0) for name in self.lines], dtype=np.float64)
        self.heard: list[np.ndarray] = []

    def inbound(self, frame: int, time: float) -> np.ndarray:
        """int16 [C, 160]: a phase-continuous sine per line (frequency 0 = silence)."""
        n = frame * FRAME + np.arange(FRAME, dtype=np.float64)
        x = LEVEL * np.sin(2 * np.pi * self.freqs[:, None] * n[None, :] / RATE)
        return np.rint(x).astype(np.int16)

    def outbound(self, frame: int, time: float, samples: np.ndarray) -> None:
        """Keep a copy of what every line hears (the array is reused by the plane)."""
        self.heard.append(samples.copy())


def _blackman_harris(n: int) -> np.ndarray:
    k = 2 * np.pi * np.arange(n) / (n - 1)
    return 0.35875 - 0.48829 * np.cos(k) + 0.14128 * np.cos(2 * k) - 0.01168 * np.cos(3 * k)


def level_db(samples: np.ndarray, hz: float) -> float:
    """Level of ``hz`` in ``samples`` relative to a sine of amplitude ``LEVEL``, dB.

    A windowed single-bin DFT (Goertzel): the 4-term Blackman-Harris window keeps the
    leakage of a tone 100 Hz away below −90 dB, so "absent" means absent.
    """
    x = samples.astype(np.float64)
    w = _blackman_harris(len(x))
    t = np.arange(len(x)) / RATE
    mag = abs(np.sum(x * w * np.exp(-2j * np.pi * hz * t)))
    ref = LEVEL * np.sum(w) / 2
    return 20 * np.log10(max(mag, 1e-12) / ref)


@dataclass
class Rig:
    """The real core and the real media plane over a fake tone board, on one clock."""

    core: SwitchCore
    media: MediaPlane
    board: ToneBoard
    t: float = T0
    #: Bridges as the emitted ``bridge.changed`` events describe them.
    bridges: dict[str, tuple[BridgeMember, ...]] = field(default_factory=dict)
    ended: list[CallEnded] = field(default_factory=list)

    def do(self, item: Input) -> list[Event]:
        """Give ``item`` to the core now; every event goes to the media plane.

        Fails the test if the core refused it (``line.error``).
        """
        events = self.core.handle(self.t, item)
        for ev in events:
            self.media.on_event(ev)
            if isinstance(ev, BridgeChanged):
                if ev.members:
                    self.bridges[ev.bridge] = ev.members
                else:
                    self.bridges.pop(ev.bridge, None)
            elif isinstance(ev, CallEnded):
                self.ended.append(ev)
        refused = [ev for ev in events if isinstance(ev, LineError)]
        assert not refused, f"the core refused {item}: {refused}"
        return events

    def run(self, frames: int = SETTLE_FRAMES) -> None:
        """Run ``frames`` media frames; no party's tone may be taken for a DTMF digit."""
        for _ in range(frames):
            self.t += FRAME_S
            hits = self.media.process(1, self.t)
            assert not hits, f"single tones detected as DTMF: {hits}"

    def step(self, item: Input) -> list[Event]:
        """``do`` then ``run`` past the crossfade."""
        events = self.do(item)
        self.run()
        return events

    def heard(self, line: str, frames: int = ANALYSE_FRAMES) -> np.ndarray:
        """What ``line``'s party heard in the last ``frames`` frames, int16 1-D."""
        ch = self.media.channel_of[line]
        return np.concatenate([f[ch] for f in self.board.heard[-frames:]])

    def heard_by(self, listener: str) -> set[str]:
        """The lines whose party ``listener`` hears (of every line that sends a tone).

        Fails if a tone is neither clearly present nor clearly absent.
        """
        samples = self.heard(listener)
        out: set[str] = set()
        for talker, hz in TONES.items():
            db = level_db(samples, hz)
            if db > PRESENT_DB:
                out.add(talker)
            else:
                assert db < ABSENT_DB, (
                    f"{listener} hears {talker} ({hz:.0f} Hz) at {db:.1f} dB: neither "
                    f"present (> {PRESENT_DB} dB) nor absent (< {ABSENT_DB} dB)"
                )
        return out

    def who_hears_whom(self) -> dict[str, set[str]]:
        """For every party line, the set of lines it hears."""
        return {line: self.heard_by(line) for line in PARTIES}

    def hears_music_on_hold(self, line: str) -> bool:
        """True when ``line`` hears a non-silent signal at the chime's notes."""
        samples = self.heard(line)
        loud = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) > 100.0
        return loud and max(level_db(samples, hz) for hz in MOH_HZ) > -40.0

    def silent(self, line: str) -> bool:
        """True when ``line`` heard exact digital silence."""
        return not np.any(self.heard(line))

    def status(self, line: str) -> LineStatus:
        return self.core.lines[line].status

    def statuses(self, *lines: str) -> dict[str, LineStatus]:
        return {line: self.status(line) for line in lines}

    def core_bridges(self, call_id: str) -> list[dict[str, Role]]:
        """The call's bridges in the core, as line -> role, in bridge order.

        Also checks that the emitted ``bridge.changed`` events say the same.
        """
        call = self.core.calls[call_id]
        core_view = {b.bridge_id: b.snapshot() for b in call.bridges.values()}
        mine = {k: v for k, v in self.bridges.items() if k.startswith(f"{call_id}/")}
        assert mine == core_view, "bridge.changed events disagree with the core's bridges"
        return [dict(b.members) for b in call.bridges.values()]


def make_rig() -> Rig:
    config = CoreConfig(
        trunks=2,
        extensions=(201, 202, 203, 209),
        ring_timeout_s=30.0,
        routes=(Route(Target(TargetKind.EXTENSION, "201")),),
    )
    core = SwitchCore(config)
    lines = list(core.lines)
    board = ToneBoard(lines, TONES)
    media = MediaPlane(lines, port=board, tone_plan="cn")
    rig = Rig(core, media, board)
    rig.run(2)
    return rig


def answered_call(rig: Rig) -> str:
    """Caller on trunk/1 routed to ext/201, answered; returns the call id."""
    events = rig.do(Incoming(caller="5551000", dnis="100"))
    call_id = new_call_id(events)
    assert call_id is not None
    rig.run()
    assert rig.statuses(CALLER, AGENT) == {CALLER: LineStatus.ALERTING,
                                          AGENT: LineStatus.ALERTING}
    rig.step(Answer(line=AGENT))
    return call_id


def consulting(rig: Rig, *, answered: bool) -> str:
    call_id = answered_call(rig)
    rig.step(Consult(line=AGENT, number="202"))
    if answered:
        rig.step(Answer(line=CONSULTED))
    return call_id


def monitored(rig: Rig, mode: Role) -> str:
    call_id = answered_call(rig)
    rig.step(Monitor(line=SUPERVISOR, call_id=call_id, mode=mode))
    rig.step(Answer(line=SUPERVISOR))
    return call_id


@pytest.fixture
def rig() -> Rig:
    return make_rig()


# ------------------------------------------------------------------ the rig itself


def test_level_meter_tells_a_sent_tone_from_its_neighbours() -> None:
    n = np.arange(ANALYSE_FRAMES * FRAME)
    tone = np.rint(LEVEL * np.sin(2 * np.pi * 900.0 * n / RATE)).astype(np.int16)
    assert abs(level_db(tone, 900.0)) < 0.5
    for hz in (*TONES.values(), *MOH_HZ, 450.0):
        if hz != 900.0:
            assert level_db(tone, hz) < ABSENT_DB


def test_nobody_hears_anything_before_a_call(rig: Rig) -> None:
    for line in rig.media.lines:
        assert rig.silent(line)


# ------------------------------------------------------------------ two-party, hold


def test_caller_and_agent_hear_each_other_and_nobody_else(rig: Rig) -> None:
    call_id = answered_call(rig)
    assert rig.statuses(CALLER, AGENT) == {CALLER: LineStatus.CONNECTED,
                                          AGENT: LineStatus.CONNECTED}
    assert rig.core_bridges(call_id) == [{CALLER: Role.PARTY, AGENT: Role.PARTY}]
    assert rig.who_hears_whom() == {
        CALLER: {AGENT}, AGENT: {CALLER}, CONSULTED: set(), SUPERVISOR: set(),
    }
    for line in (CONSULTED, SUPERVISOR, BYSTANDER, OTHER_TRUNK):
        assert rig.silent(line)


def test_caller_hears_ringback_not_the_ringing_agent(rig: Rig) -> None:
    rig.do(Incoming(caller="5551000", dnis="100"))
    rig.run()
    assert rig.heard_by(CALLER) == set()
    assert level_db(rig.heard(CALLER), 450.0) > -30.0  # cn ringback, −10 dBm0
    assert rig.heard_by(AGENT) == set()


def test_held_caller_hears_music_on_hold_and_not_the_agent(rig: Rig) -> None:
    call_id = answered_call(rig)
    rig.step(Hold(line=AGENT))
    assert rig.statuses(CALLER, AGENT) == {CALLER: LineStatus.HELD,
                                          AGENT: LineStatus.CONNECTED}
    assert rig.core_bridges(call_id) == [{CALLER: Role.HELD, AGENT: Role.PARTY}]
    assert rig.heard_by(CALLER) == set()
    assert rig.hears_music_on_hold(CALLER)
    assert rig.silent(AGENT)  # the holder hears neither the caller nor the music


def test_retrieved_caller_hears_the_agent_again_and_the_music_stops(rig: Rig) -> None:
    call_id = answered_call(rig)
    rig.step(Hold(line=AGENT))
    rig.step(Retrieve(line=AGENT))
    assert rig.statuses(CALLER, AGENT) == {CALLER: LineStatus.CONNECTED,
                                          AGENT: LineStatus.CONNECTED}
    assert rig.core_bridges(call_id) == [{CALLER: Role.PARTY, AGENT: Role.PARTY}]
    assert rig.heard_by(CALLER) == {AGENT}
    assert rig.heard_by(AGENT) == {CALLER}
    assert not rig.hears_music_on_hold(CALLER)
    assert max(level_db(rig.heard(CALLER), hz) for hz in MOH_HZ) < ABSENT_DB


# ------------------------------------------------------------------ consult


def test_consult_while_ringing_agent_hears_ringback_and_caller_hears_music(rig: Rig) -> None:
    call_id = consulting(rig, answered=False)
    assert rig.statuses(CALLER, AGENT, CONSULTED) == {
        CALLER: LineStatus.HELD, AGENT: LineStatus.RINGBACK, CONSULTED: LineStatus.ALERTING,
    }
    assert rig.core_bridges(call_id) == [{CALLER: Role.HELD}, {AGENT: Role.PARTY}]
    assert rig.who_hears_whom() == {
        CALLER: set(), AGENT: set(), CONSULTED: set(), SUPERVISOR: set(),
    }
    assert rig.hears_music_on_hold(CALLER)
    assert level_db(rig.heard(AGENT), 450.0) > -30.0  # ringback while 202 rings
    assert not rig.hears_music_on_hold(AGENT)
    assert rig.silent(CONSULTED)  # a ringing phone hears nothing


def test_held_caller_never_hears_the_consultation(rig: Rig) -> None:
    call_id = consulting(rig, answered=True)
    assert rig.statuses(CALLER, AGENT, CONSULTED) == {
        CALLER: LineStatus.HELD, AGENT: LineStatus.CONNECTED, CONSULTED: LineStatus.CONNECTED,
    }
    assert rig.core_bridges(call_id) == [
        {CALLER: Role.HELD}, {AGENT: Role.PARTY, CONSULTED: Role.PARTY},
    ]
    heard = rig.who_hears_whom()
    assert heard[CALLER] == set()
    assert rig.hears_music_on_hold(CALLER)
    assert heard[AGENT] == {CONSULTED}
    assert heard[CONSULTED] == {AGENT}  # never the held caller
    assert not rig.hears_music_on_hold(AGENT)
    assert not rig.hears_music_on_hold(CONSULTED)


def test_after_complete_caller_and_consulted_talk_and_the_agent_hears_nothing(rig: Rig) -> None:
    call_id = consulting(rig, answered=True)
    rig.step(Complete(line=AGENT))
    assert rig.statuses(CALLER, AGENT, CONSULTED) == {
        CALLER: LineStatus.CONNECTED, AGENT: LineStatus.IDLE, CONSULTED: LineStatus.CONNECTED,
    }
    assert rig.core_bridges(call_id) == [{CALLER: Role.PARTY, CONSULTED: Role.PARTY}]
    assert rig.who_hears_whom() == {
        CALLER: {CONSULTED}, AGENT: set(), CONSULTED: {CALLER}, SUPERVISOR: set(),
    }
    assert rig.silent(AGENT)
    assert not rig.hears_music_on_hold(CALLER)


def test_after_cancel_caller_and_agent_talk_and_the_consulted_hears_nothing(rig: Rig) -> None:
    call_id = consulting(rig, answered=True)
    rig.step(Cancel(line=AGENT))
    assert rig.statuses(CALLER, AGENT, CONSULTED) == {
        CALLER: LineStatus.CONNECTED, AGENT: LineStatus.CONNECTED, CONSULTED: LineStatus.IDLE,
    }
    assert rig.core_bridges(call_id) == [{CALLER: Role.PARTY, AGENT: Role.PARTY}]
    assert rig.who_hears_whom() == {
        CALLER: {AGENT}, AGENT: {CALLER}, CONSULTED: set(), SUPERVISOR: set(),
    }
    assert rig.silent(CONSULTED)
    assert not rig.hears_music_on_hold(CALLER)


def test_cancel_while_ringing_brings_back_caller_and_agent(rig: Rig) -> None:
    call_id = consulting(rig, answered=False)
    rig.step(Cancel(line=AGENT))
    assert rig.statuses(CALLER, AGENT, CONSULTED) == {
        CALLER: LineStatus.CONNECTED, AGENT: LineStatus.CONNECTED, CONSULTED: LineStatus.IDLE,
    }
    assert rig.core_bridges(call_id) == [{CALLER: Role.PARTY, AGENT: Role.PARTY}]
    assert rig.heard_by(CALLER) == {AGENT}
    assert rig.heard_by(AGENT) == {CALLER}
    assert level_db(rig.heard(AGENT), 450.0) < ABSENT_DB  # ringback stopped


def test_conference_everyone_hears_the_other_two(rig: Rig) -> None:
    call_id = consulting(rig, answered=True)
    rig.step(Conference(line=AGENT))
    assert rig.statuses(CALLER, AGENT, CONSULTED) == {
        CALLER: LineStatus.CONNECTED, AGENT: LineStatus.CONNECTED,
        CONSULTED: LineStatus.CONNECTED,
    }
    assert rig.core_bridges(call_id) == [
        {CALLER: Role.PARTY, AGENT: Role.PARTY, CONSULTED: Role.PARTY},
    ]
    assert rig.who_hears_whom() == {
        CALLER: {AGENT, CONSULTED}, AGENT: {CALLER, CONSULTED}, CONSULTED: {CALLER, AGENT},
        SUPERVISOR: set(),
    }
    assert not rig.hears_music_on_hold(CALLER)


# ------------------------------------------------------------------ monitoring


def test_ringing_supervisor_hears_nothing_and_is_heard_by_nobody(rig: Rig) -> None:
    call_id = answered_call(rig)
    rig.step(Monitor(line=SUPERVISOR, call_id=call_id, mode=Role.LISTEN))
    assert rig.status(SUPERVISOR) is LineStatus.ALERTING
    assert rig.core_bridges(call_id) == [{CALLER: Role.PARTY, AGENT: Role.PARTY}]
    assert rig.who_hears_whom() == {
        CALLER: {AGENT}, AGENT: {CALLER}, CONSULTED: set(), SUPERVISOR: set(),
    }
    assert rig.silent(SUPERVISOR)


def test_caller_never_hears_listening_supervisor(rig: Rig) -> None:
    call_id = monitored(rig, Role.LISTEN)
    assert rig.statuses(CALLER, AGENT, SUPERVISOR) == {
        CALLER: LineStatus.CONNECTED, AGENT: LineStatus.CONNECTED,
        SUPERVISOR: LineStatus.CONNECTED,
    }
    assert rig.core_bridges(call_id) == [
        {CALLER: Role.PARTY, AGENT: Role.PARTY, SUPERVISOR: Role.LISTEN},
    ]
    assert rig.who_hears_whom() == {
        CALLER: {AGENT}, AGENT: {CALLER}, CONSULTED: set(), SUPERVISOR: {CALLER, AGENT},
    }


def test_whisper_reaches_the_agent_and_never_the_caller(rig: Rig) -> None:
    call_id = monitored(rig, Role.WHISPER)
    assert rig.core_bridges(call_id) == [
        {CALLER: Role.PARTY, AGENT: Role.PARTY, SUPERVISOR: Role.WHISPER},
    ]
    (members,) = rig.bridges.values()
    assert BridgeMember(SUPERVISOR, Role.WHISPER, AGENT) in members
    assert rig.who_hears_whom() == {
        CALLER: {AGENT}, AGENT: {CALLER, SUPERVISOR}, CONSULTED: set(),
        SUPERVISOR: {CALLER, AGENT},
    }


def test_barging_supervisor_talks_with_caller_and_agent(rig: Rig) -> None:
    call_id = monitored(rig, Role.BARGE)
    assert rig.core_bridges(call_id) == [
        {CALLER: Role.PARTY, AGENT: Role.PARTY, SUPERVISOR: Role.BARGE},
    ]
    assert rig.who_hears_whom() == {
        CALLER: {AGENT, SUPERVISOR}, AGENT: {CALLER, SUPERVISOR}, CONSULTED: set(),
        SUPERVISOR: {CALLER, AGENT},
    }


def test_monitor_mode_switches_live_listen_whisper_barge_listen(rig: Rig) -> None:
    call_id = monitored(rig, Role.LISTEN)
    expected = {
        Role.LISTEN: {CALLER: {AGENT}, AGENT: {CALLER}, SUPERVISOR: {CALLER, AGENT}},
        Role.WHISPER: {CALLER: {AGENT}, AGENT: {CALLER, SUPERVISOR},
                       SUPERVISOR: {CALLER, AGENT}},
        Role.BARGE: {CALLER: {AGENT, SUPERVISOR}, AGENT: {CALLER, SUPERVISOR},
                     SUPERVISOR: {CALLER, AGENT}},
    }
    assert {k: v for k, v in rig.who_hears_whom().items() if k != CONSULTED} \
        == expected[Role.LISTEN]
    for mode in (Role.WHISPER, Role.BARGE, Role.LISTEN):
        rig.step(SetMonitorMode(line=SUPERVISOR, mode=mode))
        assert rig.core_bridges(call_id) == [
            {CALLER: Role.PARTY, AGENT: Role.PARTY, SUPERVISOR: mode},
        ], mode
        heard = rig.who_hears_whom()
        assert heard.pop(CONSULTED) == set()
        assert heard == expected[mode], mode
        assert rig.statuses(CALLER, AGENT, SUPERVISOR) == {
            CALLER: LineStatus.CONNECTED, AGENT: LineStatus.CONNECTED,
            SUPERVISOR: LineStatus.CONNECTED,
        }


def test_mode_set_while_supervisor_rings_applies_when_it_answers(rig: Rig) -> None:
    call_id = answered_call(rig)
    rig.step(Monitor(line=SUPERVISOR, call_id=call_id, mode=Role.LISTEN))
    rig.step(SetMonitorMode(line=SUPERVISOR, mode=Role.WHISPER))
    rig.step(Answer(line=SUPERVISOR))
    assert rig.core_bridges(call_id) == [
        {CALLER: Role.PARTY, AGENT: Role.PARTY, SUPERVISOR: Role.WHISPER},
    ]
    assert rig.heard_by(CALLER) == {AGENT}
    assert rig.heard_by(AGENT) == {CALLER, SUPERVISOR}


@pytest.mark.parametrize("mode", [Role.LISTEN, Role.WHISPER, Role.BARGE])
def test_supervisor_hanging_up_leaves_caller_and_agent_talking(rig: Rig, mode: Role) -> None:
    call_id = monitored(rig, mode)
    rig.step(Hangup(line=SUPERVISOR))
    assert rig.statuses(CALLER, AGENT, SUPERVISOR) == {
        CALLER: LineStatus.CONNECTED, AGENT: LineStatus.CONNECTED, SUPERVISOR: LineStatus.IDLE,
    }
    assert call_id in rig.core.calls
    assert rig.core.calls[call_id].monitors == {}
    assert rig.core_bridges(call_id) == [{CALLER: Role.PARTY, AGENT: Role.PARTY}]
    assert rig.who_hears_whom() == {
        CALLER: {AGENT}, AGENT: {CALLER}, CONSULTED: set(), SUPERVISOR: set(),
    }
    assert rig.silent(SUPERVISOR)
    assert rig.ended == []


def test_whisper_after_a_completed_transfer_coaches_the_new_agent(rig: Rig) -> None:
    call_id = consulting(rig, answered=True)
    rig.step(Complete(line=AGENT))
    rig.step(Monitor(line=SUPERVISOR, call_id=call_id, mode=Role.WHISPER))
    rig.step(Answer(line=SUPERVISOR))
    assert rig.core_bridges(call_id) == [
        {CALLER: Role.PARTY, CONSULTED: Role.PARTY, SUPERVISOR: Role.WHISPER},
    ]
    assert rig.who_hears_whom() == {
        CALLER: {CONSULTED}, AGENT: set(), CONSULTED: {CALLER, SUPERVISOR},
        SUPERVISOR: {CALLER, CONSULTED},
    }


def test_whisper_on_an_agents_outbound_call_never_reaches_the_customer(rig: Rig) -> None:
    """The agent dials out (9 + number): the customer is on the trunk, the agent is the
    call's caller. A whisper with no explicit target must still coach the agent."""
    events = rig.do(Dial(line=AGENT, number="95551234"))
    call_id = new_call_id(events)
    assert call_id is not None
    rig.run()
    assert rig.statuses(AGENT, CALLER) == {AGENT: LineStatus.RINGBACK,
                                          CALLER: LineStatus.ALERTING}
    rig.step(Answer(line=CALLER))  # the far end answers
    assert rig.core_bridges(call_id) == [{AGENT: Role.PARTY, CALLER: Role.PARTY}]
    rig.step(Monitor(line=SUPERVISOR, call_id=call_id, mode=Role.WHISPER))
    rig.step(Answer(line=SUPERVISOR))
    assert rig.heard_by(CALLER) == {AGENT}, "the customer hears the supervisor's whisper"
    assert rig.heard_by(AGENT) == {CALLER, SUPERVISOR}


def test_agent_hanging_up_after_the_consulted_answers_transfers_the_caller(rig: Rig) -> None:
    call_id = consulting(rig, answered=True)
    rig.step(Hangup(line=AGENT))
    assert rig.statuses(CALLER, AGENT, CONSULTED) == {
        CALLER: LineStatus.CONNECTED, AGENT: LineStatus.IDLE, CONSULTED: LineStatus.CONNECTED,
    }
    assert rig.core_bridges(call_id) == [{CALLER: Role.PARTY, CONSULTED: Role.PARTY}]
    assert rig.who_hears_whom() == {
        CALLER: {CONSULTED}, AGENT: set(), CONSULTED: {CALLER}, SUPERVISOR: set(),
    }
    assert not rig.hears_music_on_hold(CALLER)


def test_consulted_hanging_up_brings_the_caller_back_to_the_agent(rig: Rig) -> None:
    call_id = consulting(rig, answered=True)
    rig.step(Hangup(line=CONSULTED))
    assert rig.statuses(CALLER, AGENT, CONSULTED) == {
        CALLER: LineStatus.CONNECTED, AGENT: LineStatus.CONNECTED, CONSULTED: LineStatus.IDLE,
    }
    assert rig.core_bridges(call_id) == [{CALLER: Role.PARTY, AGENT: Role.PARTY}]
    assert rig.who_hears_whom() == {
        CALLER: {AGENT}, AGENT: {CALLER}, CONSULTED: set(), SUPERVISOR: set(),
    }


def test_listening_supervisor_hears_the_held_caller_nowhere_and_is_never_heard(
        rig: Rig) -> None:
    call_id = monitored(rig, Role.LISTEN)
    rig.step(Hold(line=AGENT))
    assert rig.core_bridges(call_id) == [
        {CALLER: Role.HELD, AGENT: Role.PARTY, SUPERVISOR: Role.LISTEN},
    ]
    heard = rig.who_hears_whom()
    assert heard[CALLER] == set()
    assert rig.hears_music_on_hold(CALLER)
    assert heard[AGENT] == set()
    assert heard[SUPERVISOR] == {AGENT}
    assert not rig.hears_music_on_hold(SUPERVISOR)


def test_listening_supervisor_follows_the_call_through_consult_and_complete(
        rig: Rig) -> None:
    call_id = monitored(rig, Role.LISTEN)
    rig.step(Consult(line=AGENT, number="202"))
    rig.step(Answer(line=CONSULTED))
    assert rig.core_bridges(call_id) == [
        {CALLER: Role.HELD, SUPERVISOR: Role.LISTEN}, {AGENT: Role.PARTY, CONSULTED: Role.PARTY},
    ]
    heard = rig.who_hears_whom()
    assert heard[CALLER] == set()
    assert heard[AGENT] == {CONSULTED}
    assert heard[CONSULTED] == {AGENT}
    rig.step(Complete(line=AGENT))
    assert rig.core_bridges(call_id) == [
        {CALLER: Role.PARTY, SUPERVISOR: Role.LISTEN, CONSULTED: Role.PARTY},
    ]
    assert rig.who_hears_whom() == {
        CALLER: {CONSULTED}, AGENT: set(), CONSULTED: {CALLER}, SUPERVISOR: {CALLER, CONSULTED},
    }


@pytest.mark.parametrize("how", ["complete", "consulter_hangs_up", "blind_transfer"])
def test_whisper_target_is_not_left_pointing_at_an_agent_who_transferred_away(
        rig: Rig, how: str) -> None:
    """The coached agent hands the caller to ext/202 and leaves the call: the
    supervisor's whisper must not keep naming a line that is no longer in the call
    (an agent who simply hangs up is cleared from it, see ``_party_left``)."""
    call_id = monitored(rig, Role.WHISPER)
    if how == "blind_transfer":
        rig.step(BlindTransfer(line=AGENT, number="202"))
    else:
        rig.step(Consult(line=AGENT, number="202"))
    rig.step(Answer(line=CONSULTED))
    if how == "complete":
        rig.step(Complete(line=AGENT))
    elif how == "consulter_hangs_up":
        rig.step(Hangup(line=AGENT))
    call = rig.core.calls[call_id]
    assert rig.statuses(CALLER, AGENT, CONSULTED) == {
        CALLER: LineStatus.CONNECTED, AGENT: LineStatus.IDLE, CONSULTED: LineStatus.CONNECTED,
    }
    assert rig.heard_by(CALLER) == {CONSULTED}  # the customer never hears the whisper
    assert rig.heard_by(SUPERVISOR) == {CALLER, CONSULTED}
    (members,) = rig.bridges.values()
    (sup,) = [m for m in members if m.line == SUPERVISOR]
    assert sup.to is None or sup.to in call.legs, f"whisper still aimed at {sup.to}"
    assert call.monitors[SUPERVISOR] in (None, *call.legs), call.monitors


def test_whisper_on_an_outbound_call_with_the_agent_named_reaches_only_the_agent(
        rig: Rig) -> None:
    call_id = new_call_id(rig.do(Dial(line=AGENT, number="95551234")))
    assert call_id is not None
    rig.step(Answer(line=CALLER))
    rig.step(Monitor(line=SUPERVISOR, call_id=call_id, mode=Role.WHISPER, agent=AGENT))
    rig.step(Answer(line=SUPERVISOR))
    assert rig.who_hears_whom() == {
        CALLER: {AGENT}, AGENT: {CALLER, SUPERVISOR}, CONSULTED: set(),
        SUPERVISOR: {CALLER, AGENT},
    }


def test_caller_hanging_up_ends_the_call_and_silences_every_line(rig: Rig) -> None:
    call_id = monitored(rig, Role.BARGE)
    rig.step(Hangup(line=CALLER))
    assert call_id not in rig.core.calls
    assert [e.call_id for e in rig.ended] == [call_id]
    for line in (CALLER, AGENT, SUPERVISOR):
        assert rig.status(line) is LineStatus.IDLE
        assert rig.silent(line)
    assert rig.bridges == {}
