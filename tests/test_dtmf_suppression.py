"""A key press is delivered once: as a digit, never also as audio (issue 14 item 3).

Read from the mixed samples of the real media plane: each line's party sends a
sample-exact script through a fake board driver (an ``AudioPort`` defined here), the
bridges come in as ``bridge.changed`` events, and the test compares what every line
*hears* (the driver's outbound) with what the others *said*. A caller's key tone may
reach the others for its first 25 ms at most (until the detector has heard one whole
12.75 ms block of it); from then until it ends they hear silence from that line,
while everything else in the call goes on untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from switchd.events import BridgeChanged, BridgeMember, LineState, Role
from switchd.lines.dtmf import detect_digits, generate_digits
from switchd.lines.media import DTMF_TAIL_FRAMES, FRAME, DtmfHit, MediaPlane
from switchd.lines.mixer import two_party
from switchd.lines.state import LineStatus

T0 = 1_764_000_000.0
RATE = 8000
CALLER, AGENT, SUPERVISOR, OTHER = "trunk/1", "ext/201", "ext/209", "trunk/2"
LINES = (CALLER, OTHER, AGENT, SUPERVISOR)
#: Peak amplitude of the parties' voices (single sines: never a digit).
LEVEL = 6000.0
VOICE_HZ = {CALLER: 900.0, AGENT: 1200.0, SUPERVISOR: 1800.0, OTHER: 2400.0}
#: The digit held and its two tones (row 770 Hz, column 1336 Hz).
KEY, KEY_HZ = "5", (770.0, 1336.0)
HELD_MS = 3000
#: Speech before and after the key, s.
VOICE_S = 0.6
#: Longest time the key reaches others: one whole block of 102 samples plus block alignment.
MAX_LEAK_S = 2 * 102 / RATE
#: Longest time the caller stays muted after the key: the detector's three missed
#: blocks plus alignment (~51 ms), the tail frames, and the frame in progress.
MAX_HANGOVER_S = 4 * 102 / RATE + (DTMF_TAIL_FRAMES + 1) * FRAME / RATE


def sine(hz: float, n: int, start: int = 0) -> np.ndarray:
    t = np.arange(start, start + n, dtype=np.float64)
    return np.rint(LEVEL * np.sin(2 * np.pi * hz * t / RATE)).astype(np.int16)


class ScriptPort:
    """A fake board driver's audio: each line's party sends its own 1-D int16 script
    (silence after it ends); what each line hears is kept frame by frame."""

    def __init__(self, lines: Sequence[str], said: Mapping[str, np.ndarray]) -> None:
        self.lines = list(lines)
        self.said = {line: said.get(line, np.zeros(0, np.int16)) for line in self.lines}
        self.heard: list[np.ndarray] = []

    def inbound(self, frame: int, time: float) -> np.ndarray:
        out = np.zeros((len(self.lines), FRAME), dtype=np.int16)
        for ch, line in enumerate(self.lines):
            seg = self.said[line][frame * FRAME : (frame + 1) * FRAME]
            out[ch, : seg.size] = seg
        return out

    def outbound(self, frame: int, time: float, samples: np.ndarray) -> None:
        self.heard.append(samples.copy())

    def heard_by(self, line: str) -> np.ndarray:
        ch = self.lines.index(line)
        return np.concatenate([f[ch] for f in self.heard])

    def said_by(self, line: str, n: int) -> np.ndarray:
        x = np.zeros(n, dtype=np.int16)
        s = self.said[line][:n]
        x[: s.size] = s
        return x


def caller_script(key_at: int) -> tuple[np.ndarray, int]:
    """The caller talks, holds KEY for HELD_MS (a phone mutes its microphone while a key
    sounds), then talks again. Returns the samples and where the key ends."""
    key = generate_digits(KEY, on_ms=HELD_MS, off_ms=0)
    after = int(VOICE_S * RATE)
    x = np.concatenate([sine(VOICE_HZ[CALLER], key_at), key,
                        sine(VOICE_HZ[CALLER], after, key_at + key.size)])
    return x, key_at + key.size


def run(plane: MediaPlane, frames: int) -> list[tuple[int, DtmfHit]]:
    """Run ``frames`` frames one by one; the hits with the frame each was confirmed in."""
    out: list[tuple[int, DtmfHit]] = []
    for k in range(frames):
        out += [(k, h) for h in plane.process(1, T0 + (k + 1) * FRAME / RATE)]
    return out


def level_db(x: np.ndarray, hz: float) -> float:
    """Windowed single-bin DFT of ``x`` at ``hz``, dB relative to a sine of amplitude LEVEL."""
    if x.size == 0:
        return -np.inf
    w = np.hanning(x.size)
    mag = abs(np.sum(x.astype(np.float64) * w * np.exp(-2j * np.pi * hz * np.arange(x.size) / RATE)))
    return 20 * np.log10(max(mag, 1e-12) / (LEVEL * w.sum() / 2))


def bridge(*members: tuple[str, Role]) -> BridgeChanged:
    return BridgeChanged("call1", T0, "call1/1", tuple(BridgeMember(ln, r) for ln, r in members))


#: The caller bridged to an agent with a supervisor listening; and a caller the switch
#: owns (an IVR, a queue) with only a supervisor listening in.
BRIDGED = ((CALLER, Role.PARTY), (AGENT, Role.PARTY), (SUPERVISOR, Role.LISTEN))
OWNED = ((CALLER, Role.PARTY), (SUPERVISOR, Role.LISTEN))


@pytest.mark.parametrize("members", [BRIDGED, OWNED], ids=["bridged_to_agent", "owned_by_switch"])
@pytest.mark.parametrize("offset", [0, 37, 101, 159])
def test_a_held_key_is_one_digit_and_nobody_hears_its_tone_after_detection(
    members: tuple[tuple[str, Role], ...], offset: int
) -> None:
    key_at = int(VOICE_S * RATE) + offset
    said, key_end = caller_script(key_at)
    port = ScriptPort(LINES, {
        CALLER: said,
        AGENT: sine(VOICE_HZ[AGENT], said.size),
        SUPERVISOR: sine(VOICE_HZ[SUPERVISOR], said.size),
    })
    plane = MediaPlane(LINES, port=port)
    taps: list[tuple[np.ndarray, np.ndarray]] = []
    plane.taps.add("rec", plane.channel_of[CALLER],
                   lambda f, t, keys, chs, rx, tx: taps.append((rx[0].copy(), tx[0].copy())))
    plane.on_event(bridge(*members))
    hits = run(plane, said.size // FRAME + 10)

    # One key, one digit, however long it is held.
    assert [(h.line, h.digit) for _, h in hits] == [(CALLER, KEY)]
    confirmed = hits[0][0] * FRAME  # first sample of the frame the digit was confirmed in

    n = len(port.heard) * FRAME
    caller = port.said_by(CALLER, n).astype(np.int32)
    listeners = [line for line, _ in members if line != CALLER]

    def of_caller(line: str) -> np.ndarray:
        """What ``line`` hears of the caller (the supervisor hears the agent too)."""
        heard = port.heard_by(line).astype(np.int32)
        return heard - port.said_by(AGENT, n) if line == SUPERVISOR and AGENT in listeners \
            else heard

    resumed = key_end + int(MAX_HANGOVER_S * RATE)
    for line in listeners:
        heard = of_caller(line)
        # The first frame from which the listener hears nothing of the caller until the key ends.
        muted = next(f * FRAME for f in range(key_at // FRAME, key_end // FRAME)
                     if not heard[f * FRAME : key_end].any())
        # Muted no later than the digit is confirmed, with at most 25 ms of the key leaked.
        assert muted <= confirmed and muted - key_at <= MAX_LEAK_S * RATE
        # Before: the caller's voice (and the key's first milliseconds) exactly.
        assert np.array_equal(heard[:muted], caller[:muted])
        assert max(level_db(heard[key_at + 480 : key_end], hz) for hz in KEY_HZ) < -90.0
        # After the key: the caller's voice again, exactly, within the hang-over.
        assert np.array_equal(heard[resumed:], caller[resumed:])
        assert level_db(heard[resumed:], VOICE_HZ[CALLER]) > -3.0
        # The switch's own detector, listening to what this line hears, finds no key.
        assert detect_digits(heard.astype(np.int16)) == ""

    # The caller hears the agent all along: only the line sending the key is muted.
    if AGENT in listeners:
        assert np.array_equal(port.heard_by(CALLER), port.said_by(AGENT, n))
    else:
        assert not port.heard_by(CALLER).any()
    # A line outside the call hears nothing at all.
    assert not port.heard_by(OTHER).any()
    # The recording keeps the raw key (evidence); what the caller heard is unchanged.
    rx = np.concatenate([r for r, _ in taps])
    assert np.array_equal(rx, port.said_by(CALLER, n))
    assert detect_digits(rx) == KEY
    assert np.array_equal(np.concatenate([t for _, t in taps]), port.heard_by(CALLER))


def test_a_key_held_for_3_s_is_one_digit_whatever_the_tick_batching() -> None:
    key = generate_digits(KEY, on_ms=3000, off_ms=200)
    for batch in (1, 3, 50):
        port = ScriptPort(LINES, {CALLER: key})
        plane = MediaPlane(LINES, port=port)
        frames = key.size // FRAME
        hits = [h for k in range(0, frames, batch)
                for h in plane.process(min(batch, frames - k), T0 + k * FRAME / RATE)]
        assert [(h.line, h.digit) for h in hits] == [(CALLER, KEY)], batch


def test_keys_on_several_lines_at_once_mute_only_those_lines() -> None:
    n = 2 * RATE
    said = {
        CALLER: np.concatenate([generate_digits("1", on_ms=500, off_ms=0),
                                sine(VOICE_HZ[CALLER], n - 4000, 4000)]),
        OTHER: np.concatenate([sine(VOICE_HZ[OTHER], 4000),
                               generate_digits("#", on_ms=500, off_ms=0),
                               sine(VOICE_HZ[OTHER], n - 8000, 8000)]),
        AGENT: sine(VOICE_HZ[AGENT], n),
        SUPERVISOR: sine(VOICE_HZ[SUPERVISOR], n),
    }
    port = ScriptPort(LINES, said)
    plane = MediaPlane(LINES, port=port)
    ch = plane.channel_of
    # caller <-> agent, other trunk <-> supervisor
    plane.mixer.set_bridge("a", two_party(ch[CALLER], ch[AGENT]))
    plane.mixer.set_bridge("b", two_party(ch[OTHER], ch[SUPERVISOR]))
    hits = run(plane, n // FRAME)
    assert sorted((h.line, h.digit) for _, h in hits) == sorted([(OTHER, "#"), (CALLER, "1")])
    for talker, listener in ((CALLER, AGENT), (OTHER, SUPERVISOR)):
        heard = port.heard_by(listener)
        assert detect_digits(heard) == ""
        # The talker's voice after its key comes through exactly.
        tail = n - RATE // 2
        assert np.array_equal(heard[tail:], said[talker][tail:n])
    # The agents never press a key: the callers hear them all along, sample for sample.
    assert np.array_equal(port.heard_by(CALLER), said[AGENT])
    assert np.array_equal(port.heard_by(OTHER), said[SUPERVISOR])


def test_a_line_going_idle_stops_its_mute() -> None:
    key = generate_digits(KEY, on_ms=1000, off_ms=0)
    voice = sine(VOICE_HZ[CALLER], RATE, key.size)
    port = ScriptPort(LINES, {CALLER: np.concatenate([key, voice])})
    plane = MediaPlane(LINES, port=port)
    ch = plane.channel_of
    plane.mixer.set_bridge("a", two_party(ch[CALLER], ch[AGENT]))
    run(plane, 10)
    assert not port.heard[-1][ch[AGENT]].any()  # muted: the key is sounding
    # The call ends mid-key and a new one starts on the line: the old key's mute is gone.
    plane.on_event(LineState(CALLER, LineStatus.IDLE, LineStatus.CONNECTED, T0))
    port.said[CALLER] = np.concatenate([np.zeros(10 * FRAME, np.int16), voice])
    run(plane, 2)
    assert np.array_equal(port.heard[-1][ch[AGENT]], voice[FRAME:2 * FRAME])
