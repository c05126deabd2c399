"""The recording tap on the real media plane: which voice lands in which channel, sample by sample.

Every line sends audio of its own (a tone 100 Hz apart from the others, or noise);
the plane mixes by ``bridge.changed`` roles as the core sends them; a fake writer
keeps the bytes the tap hands over. Each file is checked against what the port
said each line sent (``rx``) and heard (``tx``) in every frame.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from switchd.events import BridgeChanged, BridgeMember, Role
from switchd.lines.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from switchd.lines.media import FRAME, MediaPlane
from switchd.recorder.inputs import TapMode
from switchd.recorder.model import RecordFormat, RecordLayout
from switchd.recorder.tap import RecordingTap, TapError, frame_bytes

T0 = 1_764_000_000.0
LINES = ["trunk/1", "trunk/2", "ext/201", "ext/202", "ext/203"]
RATE = 8000


class TonePort:
    """Every line says a tone of its own (500 Hz, 600 Hz, …, ``level`` peak) and the
    port keeps what each line said and heard per frame."""

    def __init__(self, channels: int, level: float = 8000.0) -> None:
        self.freqs = 500.0 + 100.0 * np.arange(channels)
        self.level = level
        self.sent: dict[int, np.ndarray] = {}
        self.got: dict[int, np.ndarray] = {}

    def inbound(self, frame: int, time: float) -> np.ndarray:
        n = frame * FRAME + np.arange(FRAME, dtype=np.float64)
        out = np.rint(self.level * np.sin(2 * np.pi * self.freqs[:, None] * n / RATE))
        self.sent[frame] = out.astype(np.int16)
        return self.sent[frame]

    def outbound(self, frame: int, time: float, samples: np.ndarray) -> None:
        self.got[frame] = samples.copy()


class NoisePort(TonePort):
    """Every line says its own random audio (so a row can only match itself)."""

    def inbound(self, frame: int, time: float) -> np.ndarray:
        rng = np.random.default_rng(frame)
        self.sent[frame] = rng.integers(-6000, 6000, (self.freqs.size, FRAME), dtype=np.int16)
        return self.sent[frame]


class FakeWriter:
    """Keeps every hand-off: bytes per recording, and (tap frame count, id, bytes) per write."""

    def __init__(self) -> None:
        self.data: dict[str, bytearray] = defaultdict(bytearray)
        self.writes: list[tuple[int, str, int]] = []
        self.tap: RecordingTap | None = None

    def write(self, rec_id: str, data: bytes) -> None:
        assert isinstance(data, bytes)
        self.data[rec_id].extend(data)
        frames = self.tap.stats().frames if self.tap is not None else -1
        self.writes.append((frames, rec_id, len(data)))


def rig(port: TonePort | None = None, lines: list[str] | None = None,
        **kw) -> tuple[MediaPlane, TonePort, RecordingTap, FakeWriter]:
    lines = lines or LINES
    port = port or TonePort(len(lines))
    media = MediaPlane(lines, port=port)
    writer = FakeWriter()
    tap = RecordingTap(media.taps, media.channel_of, writer, **kw)
    writer.tap = tap
    return media, port, tap, writer


def bridge(media: MediaPlane, key: str, *members: tuple[str, Role] | tuple[str, Role, str]) -> None:
    """A core-like ``bridge.changed``: the plane derives who hears whom from the roles."""
    media.on_event(BridgeChanged("call-1", T0, key, tuple(BridgeMember(*m) for m in members)))


def run(media: MediaPlane, frames: int) -> list[int]:
    """Process ``frames`` frames one by one; return their frame indices."""
    first = media.frames
    for _ in range(frames):
        media.process(1, T0)
    return list(range(first, media.frames))


def stereo(data: bytearray) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) int16 from interleaved little-endian stereo PCM."""
    a = np.frombuffer(bytes(data), dtype="<i2").reshape(-1, 2)
    return a[:, 0], a[:, 1]


def ch(media: MediaPlane, line: str) -> int:
    return media.channel_of[line]


def said(port: TonePort, media: MediaPlane, line: str, frames: list[int]) -> np.ndarray:
    return np.concatenate([port.sent[f][ch(media, line)] for f in frames]) if frames else \
        np.zeros(0, np.int16)


def heard(port: TonePort, media: MediaPlane, line: str, frames: list[int]) -> np.ndarray:
    return np.concatenate([port.got[f][ch(media, line)] for f in frames]) if frames else \
        np.zeros(0, np.int16)


def sat(x: np.ndarray) -> np.ndarray:
    return np.clip(x, -32768, 32767).astype(np.int16)


def expected_right(port, media, customer, extras, frames) -> np.ndarray:
    total = heard(port, media, customer, frames).astype(np.int32)
    for e in extras:
        total += said(port, media, e, frames)
    return sat(total)


def peak_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(np.argmax(spec) * RATE / len(x))


def level_at(x: np.ndarray, hz: float) -> float:
    """Amplitude of the ``hz`` component of ``x`` (a tone of peak A gives ≈ A)."""
    n = np.arange(len(x))
    return float(2 * abs(np.dot(x.astype(np.float64), np.exp(-2j * np.pi * hz * n / RATE)))
                 / len(x))


# ------------------------------------------------------------------ channels


def test_stereo_file_is_the_customer_left_and_the_agent_right():
    media, port, tap, writer = rig()
    bridge(media, "b1", ("trunk/1", Role.PARTY), ("ext/201", Role.PARTY))
    tap.open("r1", "trunk/1")
    frames = run(media, 60)
    tap.close("r1")
    left, right = stereo(writer.data["r1"])
    assert left.size == right.size == 60 * FRAME
    assert np.array_equal(left, said(port, media, "trunk/1", frames))
    assert np.array_equal(right, said(port, media, "ext/201", frames))
    assert peak_hz(left) == pytest.approx(500, abs=10)   # the caller's tone
    assert peak_hz(right) == pytest.approx(700, abs=10)  # the agent's tone


def test_a_whisper_is_only_in_the_right_channel():
    media, port, tap, writer = rig()
    # ext/203 coaches ext/201: the agent hears it, the caller does not.
    bridge(media, "b1", ("trunk/1", Role.PARTY), ("ext/201", Role.PARTY),
           ("ext/203", Role.WHISPER, "ext/201"))
    tap.open("r1", "trunk/1", extras=("ext/203",))
    frames = run(media, 60)
    tap.close("r1")
    left, right = stereo(writer.data["r1"])
    assert np.array_equal(left, said(port, media, "trunk/1", frames))
    assert np.array_equal(right, expected_right(port, media, "trunk/1", ["ext/203"], frames))
    whisper_hz = port.freqs[ch(media, "ext/203")]
    assert level_at(left, whisper_hz) < 1.0           # not a trace in the caller's channel
    assert level_at(right, whisper_hz) == pytest.approx(port.level, rel=0.01)
    assert level_at(right, port.freqs[ch(media, "ext/201")]) == pytest.approx(port.level, rel=0.01)


def test_a_listen_only_supervisor_is_never_in_the_file():
    media, port, tap, writer = rig()
    bridge(media, "b1", ("trunk/1", Role.PARTY), ("ext/201", Role.PARTY),
           ("ext/203", Role.LISTEN))
    tap.open("r1", "trunk/1")  # the engine never names a listener as an extra
    frames = run(media, 50)
    tap.close("r1")
    left, right = stereo(writer.data["r1"])
    assert np.array_equal(left, said(port, media, "trunk/1", frames))
    assert np.array_equal(right, said(port, media, "ext/201", frames))
    sup_hz = port.freqs[ch(media, "ext/203")]
    assert level_at(left, sup_hz) < 1.0 and level_at(right, sup_hz) < 1.0


def test_a_consult_puts_agent_and_consulted_party_right_saturated():
    media, port, tap, writer = rig(TonePort(len(LINES), level=20000.0))
    bridge(media, "b1", ("trunk/1", Role.PARTY), ("ext/201", Role.PARTY))
    tap.open("r1", "trunk/1")
    talk = run(media, 10)
    # Consult: the caller is held, the agent talks to ext/202 in a second bridge.
    bridge(media, "b1", ("trunk/1", Role.HELD), ("ext/201", Role.HELD))
    bridge(media, "b2", ("ext/201", Role.PARTY), ("ext/202", Role.PARTY))
    tap.sources("r1", "trunk/1", ("ext/201", "ext/202"))
    consult = run(media, 20)
    tap.close("r1")
    left, right = stereo(writer.data["r1"])
    assert np.array_equal(left, said(port, media, "trunk/1", talk + consult))
    n = len(talk) * FRAME
    assert np.array_equal(right[:n], said(port, media, "ext/201", talk))
    want = expected_right(port, media, "trunk/1", ["ext/201", "ext/202"], consult)
    assert np.array_equal(right[n:], want)
    # Two 20000-peak voices exceed int16: clipped, never wrapped.
    assert right[n:].max() == 32767 and right[n:].min() == -32768
    raw = said(port, media, "ext/201", consult).astype(np.int32) + \
        said(port, media, "ext/202", consult)
    assert np.all(np.sign(right[n:][np.abs(raw) > 32767]) == np.sign(raw[np.abs(raw) > 32767]))


def test_mono_is_the_saturated_sum_of_both_sides():
    media, port, tap, writer = rig(TonePort(len(LINES), level=20000.0))
    bridge(media, "b1", ("trunk/1", Role.PARTY), ("ext/201", Role.PARTY))
    tap.open("r1", "trunk/1", layout=RecordLayout.MONO)
    frames = run(media, 30)
    tap.close("r1")
    mono = np.frombuffer(bytes(writer.data["r1"]), dtype="<i2")
    want = sat(said(port, media, "trunk/1", frames).astype(np.int32)
               + heard(port, media, "trunk/1", frames))
    assert np.array_equal(mono, want)
    assert mono.max() == 32767 and mono.min() == -32768


def test_a_transfer_moves_the_right_channel_to_the_new_agent():
    media, port, tap, writer = rig()
    bridge(media, "b1", ("trunk/1", Role.PARTY), ("ext/201", Role.PARTY))
    tap.open("r1", "trunk/1")
    first = run(media, 10)
    bridge(media, "b1", ("trunk/1", Role.PARTY), ("ext/202", Role.PARTY))
    tap.sources("r1", "trunk/1", ())  # unchanged sources: nothing to do
    second = run(media, 10)
    tap.close("r1")
    left, right = stereo(writer.data["r1"])
    assert np.array_equal(left, said(port, media, "trunk/1", first + second))
    assert np.array_equal(right, heard(port, media, "trunk/1", first + second))
    assert peak_hz(right[:10 * FRAME]) == pytest.approx(700, abs=10)
    assert peak_hz(right[-5 * FRAME:]) == pytest.approx(800, abs=20)


# ------------------------------------------------------------------ modes and time


def test_pause_writes_silence_of_the_same_length_and_stop_writes_nothing():
    media, port, tap, writer = rig()
    bridge(media, "b1", ("trunk/1", Role.PARTY), ("ext/201", Role.PARTY))
    tap.open("r1", "trunk/1")
    a = run(media, 10)
    tap.set_mode("r1", TapMode.PAUSED)
    run(media, 10)
    tap.set_mode("r1", TapMode.RUNNING)
    b = run(media, 5)
    tap.set_mode("r1", TapMode.STOPPED)
    size_at_stop = len(writer.data["r1"])
    run(media, 10)
    assert len(writer.data["r1"]) == size_at_stop  # handed at once, then nothing
    assert size_at_stop == 25 * frame_bytes(RecordLayout.STEREO, RecordFormat.PCM)
    tap.set_mode("r1", TapMode.RUNNING)
    c = run(media, 5)
    tap.close("r1")
    left, right = stereo(writer.data["r1"])
    assert left.size == 30 * FRAME
    zeros = np.zeros(10 * FRAME, np.int16)
    assert np.array_equal(left, np.concatenate(
        [said(port, media, "trunk/1", a), zeros, said(port, media, "trunk/1", b + c)]))
    assert np.array_equal(right, np.concatenate(
        [heard(port, media, "trunk/1", a), zeros, heard(port, media, "trunk/1", b + c)]))
    assert tap.stats().recording_frames == 30


def test_a_gap_in_the_frame_index_becomes_silence_so_the_file_keeps_time():
    media, port, tap, writer = rig()
    bridge(media, "b1", ("trunk/1", Role.PARTY), ("ext/201", Role.PARTY))
    tap.open("r1", "trunk/1")
    a = run(media, 5)
    media.skip(7)  # the tick fell behind: frames 5..11 never ran
    b = run(media, 5)
    tap.close("r1")
    left, right = stereo(writer.data["r1"])
    assert left.size == 17 * FRAME
    assert np.array_equal(left[:5 * FRAME], said(port, media, "trunk/1", a))
    assert not left[5 * FRAME:12 * FRAME].any() and not right[5 * FRAME:12 * FRAME].any()
    assert np.array_equal(left[12 * FRAME:], said(port, media, "trunk/1", b))
    assert b[0] == 12
    assert tap.stats().gap_frames_filled == 7


def test_gap_silence_is_bounded_and_the_rest_counted_lost():
    media, port, tap, writer = rig(max_gap_frames=3)
    tap.open("r1", "trunk/1")
    tap.open("r2", "trunk/2", fmt=RecordFormat.ALAW)
    run(media, 4)
    media.skip(10)
    run(media, 4)
    tap.close("r1")
    tap.close("r2")
    assert len(writer.data["r1"]) == 11 * 640
    a = np.frombuffer(bytes(writer.data["r2"]), np.uint8)
    assert a.size == 11 * 320
    assert (a[4 * 320:7 * 320] == alaw_encode(np.zeros(1, np.int16))[0]).all()  # A-law silence
    stats = tap.stats()
    assert stats.gap_frames_filled == 2 * 3 and stats.gap_frames_lost == 2 * 7


def test_a_recording_opened_after_a_gap_gets_no_silence_for_it():
    media, port, tap, writer = rig()
    tap.open("r1", "trunk/1")
    run(media, 3)
    media.skip(5)
    tap.open("r2", "trunk/2")  # opened during the gap: starts with the next frame
    run(media, 2)
    tap.close("r1")
    tap.close("r2")
    assert len(writer.data["r1"]) == 10 * 640
    assert len(writer.data["r2"]) == 2 * 640


@pytest.mark.parametrize("fmt, encode, decode", [
    (RecordFormat.ALAW, alaw_encode, alaw_decode),
    (RecordFormat.ULAW, ulaw_encode, ulaw_decode),
])
@pytest.mark.parametrize("layout", [RecordLayout.STEREO, RecordLayout.MONO])
def test_g711_bytes_are_the_encoded_frames_and_decode_back(fmt, encode, decode, layout):
    media, port, tap, writer = rig()
    bridge(media, "b1", ("trunk/1", Role.PARTY), ("ext/201", Role.PARTY))
    tap.open("r1", "trunk/1", layout=layout, fmt=fmt)
    a = run(media, 8)
    tap.set_mode("r1", TapMode.PAUSED)
    run(media, 2)
    tap.close("r1")
    codes = np.frombuffer(bytes(writer.data["r1"]), np.uint8)
    left, right = said(port, media, "trunk/1", a), heard(port, media, "trunk/1", a)
    if layout is RecordLayout.STEREO:
        pcm = np.stack([left, right], axis=-1).reshape(-1)
    else:
        pcm = sat(left.astype(np.int32) + right)
    silence = encode(np.zeros(pcm.size // 4, np.int16))  # 2 paused frames of 8
    assert codes.size == frame_bytes(layout, fmt) * 10
    assert np.array_equal(codes, np.concatenate([encode(pcm), silence]))
    back = decode(codes[:pcm.size]).astype(np.int32)
    # G.711 keeps 13-14 bits: within one quantisation step (≤ 1024 at full scale).
    assert np.abs(back - pcm).max() <= 1024
    assert np.abs(back - pcm).mean() < 100


# ------------------------------------------------------------------ many at once


def test_many_recordings_at_once_each_hold_their_own_call():
    """150 recordings of all six layouts/formats, some with extras, opened in random
    order, closed and reopened (slots reused), some paused: each file is its own call."""
    calls = 120
    lines = [f"trunk/{i + 1}" for i in range(calls)] + [f"ext/{1000 + i}" for i in range(calls)]
    media, port, tap, writer = rig(NoisePort(len(lines)), lines, hand_frames=7)
    for i in range(calls):
        bridge(media, f"b{i}", (lines[i], Role.PARTY), (lines[calls + i], Role.PARTY))
    formats = [RecordFormat.PCM, RecordFormat.ALAW, RecordFormat.ULAW]
    layouts = [RecordLayout.STEREO, RecordLayout.MONO]
    #: recording -> (frame, paused) of every frame it wrote
    spans: dict[str, list[tuple[int, bool]]] = {}
    spec: dict[str, tuple[str, tuple[str, ...], RecordLayout, RecordFormat]] = {}
    paused: set[str] = set()
    rng = np.random.default_rng(7)

    def open_(rid: str, i: int) -> None:
        # Every 4th has one or two extras (another line's voice added to the right).
        extras = tuple(lines[calls + (i + k) % calls] for k in range(1, 1 + (i // 4) % 3)) \
            if i % 4 == 0 else ()
        spec[rid] = (lines[i], extras, layouts[i % 2], formats[i % 3])
        tap.open(rid, lines[i], extras, layout=layouts[i % 2], fmt=formats[i % 3])
        spans[rid] = []

    def run_open(frames: int) -> None:
        for f in run(media, frames):
            for rid in tap_open:
                spans[rid].append((f, rid in paused))

    order = rng.permutation(calls)
    for i in order[:80]:
        open_(f"a{i}", int(i))
    tap_open = set(spans)
    run_open(11)
    # Churn: close 30, open 40 more and 30 again on the freed lines (slots are reused).
    for i in order[:30]:
        tap.close(f"a{i}")
        tap_open.discard(f"a{i}")
    for i in order[80:]:
        open_(f"b{i}", int(i))
    for i in order[:30]:
        open_(f"c{i}", int(i))
    tap_open = {rid for rid in spans if rid not in {f"a{i}" for i in order[:30]}}
    run_open(9)
    # Every third open recording pauses for 6 frames, then resumes.
    for rid in sorted(tap_open)[::3]:
        tap.set_mode(rid, TapMode.PAUSED)
        paused.add(rid)
    run_open(6)
    for rid in paused:
        tap.set_mode(rid, TapMode.RUNNING)
    paused.clear()
    run_open(8)
    for rid in tap_open:
        tap.close(rid)
    assert len(tap) == 0 and len(media.taps) == 0
    assert len(spans) == 150
    assert sum(1 for v in spec.values() if len(v[1]) == 2) > 5
    for rid, written in spans.items():
        line, extras, layout, fmt = spec[rid]
        frames = [f for f, _ in written]
        left = said(port, media, line, frames)
        right = expected_right(port, media, line, extras, frames)
        silent = np.repeat([p for _, p in written], FRAME)
        left[silent] = 0
        right[silent] = 0
        if layout is RecordLayout.STEREO:
            pcm = np.stack([left, right], axis=-1).reshape(-1)
        else:
            pcm = sat(left.astype(np.int32) + right)
        got = bytes(writer.data[rid])
        if fmt is RecordFormat.PCM:
            assert np.array_equal(np.frombuffer(got, "<i2"), pcm), rid
        else:
            enc = alaw_encode if fmt is RecordFormat.ALAW else ulaw_encode
            assert np.array_equal(np.frombuffer(got, np.uint8), enc(pcm)), rid


def test_hand_offs_are_whole_seconds_at_most_and_spread_over_frames():
    calls = 100
    lines = [f"trunk/{i + 1}" for i in range(calls)]
    media, port, tap, writer = rig(NoisePort(calls), lines, hand_frames=10)
    for i in range(calls):
        tap.open(f"r{i}", lines[i])
    run(media, 40)
    per_frame: dict[int, int] = defaultdict(int)
    for frames, _, size in writer.writes:
        per_frame[frames] += 1
        assert 0 < size <= 10 * 640 and size % 640 == 0
    # 100 recordings, 10 frames per hand-off: 10 hand-offs per frame, never all at once.
    assert max(per_frame.values()) == 10
    assert sum(per_frame.values()) >= 3 * calls
    for i in range(calls):
        tap.close(f"r{i}")
    assert all(len(writer.data[f"r{i}"]) == 40 * 640 for i in range(calls))


def test_index_arrays_are_rebuilt_only_when_something_changed(monkeypatch):
    media, port, tap, writer = rig()
    calls = []
    real = tap._compile
    monkeypatch.setattr(tap, "_compile", lambda keys: (calls.append(1), real(keys)))
    tap.open("r1", "trunk/1", extras=("ext/203",))
    run(media, 30)
    assert len(calls) == 1
    tap.set_mode("r1", TapMode.PAUSED)
    run(media, 30)
    assert len(calls) == 2


# ------------------------------------------------------------------ taps and refusals


def test_taps_follow_the_customer_and_extras_and_are_removed_on_close():
    media, port, tap, writer = rig()
    tap.open("r1", "trunk/1", extras=("ext/201", "trunk/1", "ext/201", "nowhere/9"))
    assert len(media.taps) == 2  # the customer repeated and a line without channel: left out
    tap.sources("r1", "trunk/2", ("ext/202", "ext/203"))
    assert len(media.taps) == 3
    tap.close("r1")
    assert len(media.taps) == 0 and "r1" not in tap


def test_refusals_name_what_to_fix_and_change_nothing():
    media, port, tap, writer = rig()
    with pytest.raises(TapError, match="line trunk/9 has no audio channel"):
        tap.open("r1", "trunk/9")
    assert len(media.taps) == 0 and "r1" not in tap
    tap.open("r1", "trunk/1")
    with pytest.raises(TapError, match="already open"):
        tap.open("r1", "trunk/2")
    with pytest.raises(TapError, match="no audio channel"):
        tap.sources("r1", "ext/999")
    assert len(media.taps) == 1
    for call in (lambda: tap.set_mode("r2", TapMode.PAUSED), lambda: tap.close("r2"),
                 lambda: tap.sources("r2", "trunk/1")):
        with pytest.raises(TapError, match="no recording r2"):
            call()
    tap.drop("r2")  # dropping an unknown recording is harmless
    run(media, 3)
    tap.drop("r1")  # discards its buffered bytes
    run(media, 3)
    assert len(media.taps) == 0 and len(writer.data["r1"]) < 3 * 640
    with pytest.raises(ValueError, match="hand_frames"):
        RecordingTap(media.taps, media.channel_of, writer, hand_frames=0)


def test_flush_hands_every_buffered_byte():
    media, port, tap, writer = rig()
    tap.open("r1", "trunk/1")
    tap.open("r2", "trunk/2", layout=RecordLayout.MONO)
    run(media, 7)
    assert len(writer.data["r1"]) < 7 * 640 and len(writer.data["r2"]) < 7 * 320
    tap.flush()
    assert len(writer.data["r1"]) == 7 * 640 and len(writer.data["r2"]) == 7 * 320
    run(media, 3)
    tap.close("r1")
    assert len(writer.data["r1"]) == 10 * 640
    assert tap.stats().bytes_handed == 10 * 640 + 7 * 320
