"""The media plane driven by the real call core's events: what each party actually hears."""

from __future__ import annotations

import numpy as np
import pytest

from switchd.core.engine import SwitchCore
from switchd.core.inputs import Answer, Hold, Incoming, Retrieve
from switchd.core.routing import CoreConfig, Route, Target, TargetKind
from switchd.drivers.sim.audio import SimAudio, SourceKind
from switchd.drivers.sim.board import SimSettings
from switchd.drivers.sim.driver import SimDriver
from switchd.lines.media import FRAME, MediaPlane
from switchd.lines.prompts import MusicOnHold, PromptCache, PromptError
from switchd.lines.ticker import FrameSchedule

T0 = 1_764_000_000.0


def _setup(tone_plan: str = "cn", callers: SourceKind = SourceKind.TONE,
           agents: SourceKind = SourceKind.SILENCE, tmp_path=None):
    cfg = CoreConfig(trunks=2, extensions=(201, 202),
                     routes=(Route(Target(TargetKind.BUSY), dnis="0"),
                             Route(Target(TargetKind.EXTENSION, "201"))))
    core = SwitchCore(cfg)
    lines = list(core.lines)
    # The simulated board's audio reaches the media plane through the board-driver seam.
    driver = SimDriver(SimSettings(), (201, 202), lines,
                       audio=SimAudio(4, tone_hz=1000.0, tone_dbm0=-20.0),
                       caller_source=callers, agent_source=agents)
    cache = PromptCache()
    moh = MusicOnHold(tmp_path, cache)
    moh.preload()
    media = MediaPlane(lines, port=driver, tone_plan=tone_plan, moh=moh, prompt_cache=cache)
    media.driver = driver  # type: ignore[attr-defined]  # the tests press keys through it
    return core, media


def _feed(media: MediaPlane, events):
    for ev in events:
        media.driver.handle(T0, ev)  # type: ignore[attr-defined]
        media.on_event(ev)
    return events


def _run(media: MediaPlane, frames: int, line: str) -> tuple[np.ndarray, np.ndarray]:
    """Run ``frames`` frames; return (what ``line`` says, what ``line`` hears)."""
    ch = media.channel_of[line]
    rx, tx = [], []
    for _ in range(frames):
        media.process(1, T0)
        rx.append(media.last_inbound[ch].copy())
        tx.append(media.last_outbound[ch].copy())
    return np.concatenate(rx), np.concatenate(tx)


def _peak_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(np.argmax(spec) * 8000 / len(x))


def test_caller_hears_real_busy_tone_with_the_cn_cadence(tmp_path):
    core, media = _setup(tmp_path=tmp_path)
    events = core.handle(T0, Incoming("100", "0"))
    _feed(media, events)
    _, heard = _run(media, 100, "trunk/1")          # 2 s
    on = np.abs(heard.reshape(-1, 40)).max(axis=1) > 1000   # 5 ms windows
    # 0.35 s on / 0.35 s off: 70 windows per on or off burst.
    edges = np.flatnonzero(np.diff(on.astype(int)))
    assert np.allclose(np.diff(edges), 70, atol=2)
    assert abs(_peak_hz(heard[:2800]) - 450) < 3


def test_two_party_call_carries_each_side_to_the_other_exactly(tmp_path):
    core, media = _setup(callers=SourceKind.TONE, agents=SourceKind.SILENCE, tmp_path=tmp_path)
    ev = core.handle(T0, Incoming("100", "8000"))
    _feed(media, ev)
    _feed(media, core.handle(T0 + 1, Answer("ext/201")))
    media.process(2, T0)  # the frame after the bridge change crossfades
    trunk, ext = media.channel_of["trunk/1"], media.channel_of["ext/201"]
    said, heard = [], []
    for _ in range(10):
        media.process(1, T0)
        said.append(media.last_inbound[trunk].copy())
        heard.append(media.last_outbound[ext].copy())
    assert np.array_equal(np.concatenate(said), np.concatenate(heard))
    assert np.abs(np.concatenate(said)).max() > 2000
    # The caller hears the silent agent: nothing (no ringback any more either).
    assert np.abs(media.last_outbound[trunk]).max() == 0
    # A line not in the call hears nothing.
    assert np.abs(media.last_outbound[media.channel_of["ext/202"]]).max() == 0


def test_held_party_hears_music_on_hold_and_the_holder_hears_silence(tmp_path):
    core, media = _setup(callers=SourceKind.TONE, agents=SourceKind.TONE, tmp_path=tmp_path)
    ev = core.handle(T0, Incoming("100", "8000"))
    _feed(media, ev)
    _feed(media, core.handle(T0 + 1, Answer("ext/201")))
    media.process(2, T0)
    _feed(media, core.handle(T0 + 2, Hold("ext/201")))
    media.process(2, T0)
    _, caller_hears = _run(media, 50, "trunk/1")
    _, agent_hears = _run(media, 5, "ext/201")
    assert np.abs(agent_hears).max() == 0
    moh = media.moh.samples
    # What the held caller hears is the MOH buffer itself, sample for sample.
    start = int(np.flatnonzero(caller_hears)[0])
    window = caller_hears[start:start + 400]
    hits = [i for i in range(len(moh) - 400) if np.array_equal(moh[i:i + 400], window)]
    assert hits, "the held party does not hear the music-on-hold samples"
    _feed(media, core.handle(T0 + 3, Retrieve("ext/201")))
    media.process(2, T0)
    said, _ = _run(media, 1, "ext/201")
    assert np.array_equal(said, media.last_outbound[media.channel_of["trunk/1"]])


def test_injected_dtmf_is_detected_on_the_line_that_sent_it(tmp_path):
    core, media = _setup(callers=SourceKind.SILENCE, tmp_path=tmp_path)
    ev = core.handle(T0, Incoming("100", "8000"))
    _feed(media, ev)
    _feed(media, core.handle(T0 + 1, Answer("ext/201")))
    media.driver.press("trunk/1", "9*0D")
    hits = media.process(60, T0 + 2)
    assert "".join(h.digit for h in hits) == "9*0D"
    assert {h.line for h in hits} == {"trunk/1"}
    assert [h.time for h in hits] == sorted(h.time for h in hits)


def test_taps_hand_over_what_the_caller_says_and_hears(tmp_path):
    core, media = _setup(callers=SourceKind.TONE, agents=SourceKind.SILENCE, tmp_path=tmp_path)
    ev = core.handle(T0, Incoming("100", "8000"))
    _feed(media, ev)
    got: list[tuple[list[str], np.ndarray, np.ndarray]] = []
    media.taps.add("rec1", media.channel_of["trunk/1"],
                   lambda frame, t, keys, chs, rx, tx: got.append((list(keys), rx.copy(), tx.copy())))
    media.process(3, T0)
    assert len(got) == 3 and got[0][0] == ["rec1"]
    keys, rx, tx = got[-1]
    assert rx.shape == tx.shape == (1, FRAME)
    assert abs(_peak_hz(np.concatenate([g[1][0] for g in got])) - 1000) < 60
    # While ringing, what the caller hears is the 450 Hz ringback.
    assert np.abs(tx).max() > 1000
    media.taps.remove("rec1")
    media.process(1, T0)
    assert len(got) == 3


def test_frame_schedule_never_drifts_and_catches_up_late_ticks():
    s = FrameSchedule(100.0)
    assert s.due(100.019) == (0, 0)
    assert s.due(100.020) == (1, 0)
    assert abs(s.next_deadline() - 100.040) < 1e-9
    # Woken 75 ms after the 40 ms deadline: frames 2..5 are due at once, and the next
    # deadline stays on the 20 ms grid.
    assert s.due(100.115) == (4, 0)
    assert abs(s.next_deadline() - 100.120) < 1e-9
    # After an hour of ticks the schedule is still anchored to t0.
    for k in range(6, 180_000):
        s.due(100.0 + k * 0.020 + 0.0015)
    assert s.frames == 179_999 and abs(s.next_deadline() - (100.0 + 180_000 * 0.020)) < 1e-6


def test_frame_schedule_skips_beyond_the_catch_up_limit_and_says_so():
    s = FrameSchedule(0.0, max_catchup=50)
    assert s.due(10.0) == (50, 450)
    assert s.skipped == 450 and s.frames == 500


def test_a_key_press_barges_into_a_prompt_but_not_into_music_on_hold(tmp_path):
    core, media = _setup(callers=SourceKind.SILENCE, tmp_path=tmp_path)
    ev = core.handle(T0, Incoming("100", "8000"))
    _feed(media, ev)
    _feed(media, core.handle(T0 + 1, Answer("ext/201")))
    prompt = (3000 * np.sin(np.arange(8000 * 5) * 2 * np.pi * 300 / 8000)).astype(np.int16)
    media.play("trunk/1", prompt, barge_in=True)
    media.play("ext/201", prompt, barge_in=False)
    media.driver.press("trunk/1", "5")
    hits = media.process(20, T0 + 2)
    assert [h.digit for h in hits] == ["5"]
    assert not media.player.playing(media.channel_of["trunk/1"])
    assert media.player.playing(media.channel_of["ext/201"])


def test_a_missing_prompt_is_reported_where_it_is_loaded_and_never_read_in_the_tick(tmp_path):
    core, media = _setup(tmp_path=tmp_path)
    ev = core.handle(T0, Incoming("100", "8000"))
    _feed(media, ev)
    missing = tmp_path / "welcome.wav"
    # Loading (off the loop, before anything plays) names the file and the reason ...
    [(path, reason)] = media.cache.preload([missing])
    assert path == missing and reason
    # ... and a prompt that was not loaded is never read from disk inside the tick.
    with pytest.raises(PromptError):
        media.cache.lookup(missing)
    media.process(2, T0)
    assert core.call_of_line("trunk/1") is not None


def test_keys_sent_back_to_back_queue_instead_of_replacing_each_other(tmp_path):
    core, media = _setup(callers=SourceKind.TONE, tmp_path=tmp_path)
    ev = core.handle(T0, Incoming("100", "8000"))
    _feed(media, ev)
    _feed(media, core.handle(T0 + 1, Answer("ext/201")))
    media.driver.press("trunk/1", "12")
    hits = media.process(2, T0)
    media.driver.press("trunk/1", "34")
    hits += media.process(50, T0 + 2)
    # The caller's own tone is muted while the keys are sent, as a phone does.
    assert "".join(h.digit for h in hits) == "1234"


async def test_an_overloaded_media_tick_still_lets_the_event_loop_run():
    import asyncio
    import time as _time

    from switchd.lines.ticker import MediaTicker

    frames = 0

    def slow(n: int) -> None:
        nonlocal frames
        frames += n
        _time.sleep(0.03 * n)  # 30 ms of work per 20 ms frame: cannot keep up

    ticker = MediaTicker(slow, max_catchup=4, batch=2)
    ticker.start()
    worst = 0.0
    t_end = _time.monotonic() + 0.8
    while _time.monotonic() < t_end:
        t0 = _time.monotonic()
        await asyncio.sleep(0.005)
        worst = max(worst, _time.monotonic() - t0)
    await ticker.stop()
    assert frames > 10
    # Other work waits for at most one batch (2 frames × 30 ms) plus slack, never for the backlog.
    assert worst < 0.15, worst
    assert ticker.schedule is not None and ticker.schedule.skipped > 0


def test_a_prompt_that_plays_to_its_end_is_reported_once(tmp_path):
    core, media = _setup(tmp_path=tmp_path)
    ev = core.handle(T0, Incoming("100", "8000"))
    _feed(media, ev)
    pid = media.play("trunk/1", np.ones(400, dtype=np.int16))
    media.process(3, T0)
    assert media.take_finished_plays() == [("trunk/1", pid)]
    assert media.take_finished_plays() == []


def test_keys_a_line_sends_reach_its_hearers_queued_and_over_its_muted_voice():
    # The agent at 201 talks (its 1 kHz test tone) while it sends keys to the caller.
    from switchd.lines.dtmf import detect_digits, generate_digits

    core, media = _setup(callers=SourceKind.SILENCE, agents=SourceKind.TONE)
    _feed(media, core.handle(T0, Incoming("13800138000", "8000")))
    _feed(media, core.handle(T0, Answer("ext/201")))
    assert media.hearers("ext/201") == ["trunk/1"]
    _run(media, 5, "trunk/1")
    keys = generate_digits("0", on_ms=80, off_ms=80)
    media.send_keys("ext/201", keys, ["trunk/1"])
    _run(media, 2, "trunk/1")                       # part way into the first key ...
    media.send_keys("ext/201", generate_digits("#", on_ms=80, off_ms=80), ["trunk/1"])
    _, heard = _run(media, 25, "trunk/1")           # ... the second one queues after it
    assert detect_digits(heard) == "0#"             # 941 Hz row keys, not masked by 1 kHz
    # The voice is back once the keys are over: the caller hears the agent's tone again.
    assert abs(_peak_hz(heard[-1600:]) - 1000.0) < 10
