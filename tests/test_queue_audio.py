"""What a queue caller hears: music on hold, and announcements that pause it.

The ACD turns the music on with the core's ``HoldMusic`` (``tone.started moh`` on the
caller's line) and plays its greeting, position and periodic announcements with
``PlayPrompt(barge_in=False)`` through :class:`~switchd.playout.Playout`, without
stopping the music first. The media plane plays each announcement alone and then
goes on with the music where it paused, unless the line's tone is no longer music
on hold by then (an agent answered, another tone, the line went idle).

Real call core, real :class:`~switchd.lines.media.MediaPlane` and ``Playout``, driven
by hand in virtual time; what the caller hears is the plane's outbound row, sample
for sample. The music is pseudo-random noise, so a window of it matches exactly one
offset of the source: "resumes where it paused" is checked to the sample.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from switchd.core.engine import SwitchCore, new_call_id
from switchd.core.inputs import Answer, Hangup, HoldMusic, Incoming, Offer, Route
from switchd.core.routing import CoreConfig, Target, TargetKind
from switchd.core.routing import Route as InboundRoute
from switchd.events import Event, Tone
from switchd.ivr.inputs import PlayPrompt, PromptDone, StopPrompt
from switchd.lines.dtmf import generate_digits
from switchd.lines.media import FRAME, MediaPlane
from switchd.lines.prompts import MusicOnHold, PromptCache
from switchd.playout import Playout

T0 = 1_764_000_000.0
CALLER = "trunk/1"
AGENT = "ext/201"
QUEUE_DNIS = "6000"
FLOW_DNIS = "5000"
#: Prompt length in samples: not a whole number of frames, so it ends inside one.
PROMPT_N = 4037
PROMPT_FRAMES = -(-PROMPT_N // FRAME)  # 26: the last one is 37 samples of prompt, then silence
MUSIC_N = 3 * 8000


def _wav(path: Path, samples: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


class Port:
    """The board's audio: ``said[line]`` (int16, indexed by absolute sample) is what that
    line's party says; everyone else is silent. Outbound goes nowhere (read
    :attr:`MediaPlane.last_outbound`)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.said: dict[str, np.ndarray] = {}

    def inbound(self, frame: int, time: float) -> np.ndarray:
        out = np.zeros((len(self.lines), FRAME), np.int16)
        for line, x in self.said.items():
            seg = x[frame * FRAME:(frame + 1) * FRAME]
            out[self.lines.index(line), :seg.size] = seg
        return out

    def outbound(self, frame: int, time: float, samples: np.ndarray) -> None:
        pass


class Queue:
    """A switch-held caller on trunk/1 (queue route), the media plane and Playout."""

    def __init__(self, tmp_path: Path) -> None:
        self.core = SwitchCore(CoreConfig(
            trunks=2, extensions=(201, 202), ring_timeout_s=20.0,
            routes=(InboundRoute(Target(TargetKind.QUEUE, "sales"), dnis=QUEUE_DNIS),
                    InboundRoute(Target(TargetKind.FLOW, "main"), dnis=FLOW_DNIS))))
        rng = np.random.default_rng(15)
        self.music_file = _wav(tmp_path / "moh" / "music.wav",
                               rng.integers(-6000, 6000, MUSIC_N).astype(np.int16))
        t = np.arange(PROMPT_N)
        self.prompt = (np.sin(2 * np.pi * 600 * t / 8000) * 3000).astype(np.int16)
        self.prompt_file = _wav(tmp_path / "prompt.wav", self.prompt)
        cache = PromptCache()
        cache.preload([self.prompt_file])
        moh = MusicOnHold(tmp_path / "moh", cache)
        assert moh.preload() == []
        lines = list(self.core.lines)
        self.port = Port(lines)
        self.media = MediaPlane(lines, port=self.port, moh=moh, prompt_cache=cache)
        self.music = moh.samples
        assert np.array_equal(self.music, np.fromfile(self.music_file, "<i2")[22:])  # as written
        self.playout = Playout(self.media, cache)
        self.now = T0
        self.done: list[PromptDone] = []
        self.keys: list[str] = []
        self.events: list[Event] = []

    def do(self, item: object) -> list[Event]:
        """One core input; its events reach the media plane as on the daemon's bus."""
        events = self.core.handle(self.now, item)
        for ev in events:
            self.media.on_event(ev)
        self.events += events
        return events

    def call(self, dnis: str = QUEUE_DNIS) -> str:
        call_id = new_call_id(self.do(Incoming("13900001111", dnis, trunk=1)))
        assert call_id is not None
        return call_id

    def play(self, call_id: str, token: int, *, barge_in: bool = False) -> None:
        assert self.playout.handle(self.now, PlayPrompt(call_id, CALLER, token,
                                                        (self.prompt_file,),
                                                        barge_in=barge_in)) == []

    def hear(self, frames: int, line: str = CALLER) -> np.ndarray:
        """Run ``frames`` frames; return what ``line`` heard (int16 [frames * 160])."""
        ch = self.media.channel_of[line]
        out = []
        for _ in range(frames):
            self.now += FRAME / 8000
            self.keys += [h.digit for h in self.media.process(1, self.now)]
            self.done += self.playout.finished(self.media.take_finished_plays())
            out.append(self.media.last_outbound[ch].copy())
        return np.concatenate(out)

    def prompt_heard(self) -> np.ndarray:
        """What one whole prompt sounds like, frame by frame: the prompt alone, then
        silence to the end of its last frame."""
        return np.concatenate([self.prompt,
                               np.zeros(PROMPT_FRAMES * FRAME - PROMPT_N, np.int16)])


def test_an_announcement_pauses_the_music_plays_alone_and_the_music_goes_on_where_it_was(
        tmp_path):
    q = Queue(tmp_path)
    call_id = q.call()
    q.do(HoldMusic(call_id))
    before = q.hear(30)
    assert np.abs(before).max() > 3000
    assert np.array_equal(before, q.music[:30 * FRAME])  # the music, from its start

    q.play(call_id, 1)  # the greeting, music still on
    during = q.hear(PROMPT_FRAMES)
    assert np.array_equal(during, q.prompt_heard())  # alone: not one sample of music in it
    assert q.done == [PromptDone(call_id, 1)]

    paused_at = 30 * FRAME
    after = q.hear(50)
    assert np.array_equal(after, q.music[paused_at:paused_at + 50 * FRAME])
    assert q.done == [PromptDone(call_id, 1)]  # once


def test_announcements_back_to_back_and_one_cut_short_by_the_next_leak_no_music(tmp_path):
    """The ACD plays the position right after the greeting ends (same tick), and a new
    announcement may replace one still playing: the music waits for the last of them."""
    q = Queue(tmp_path)
    call_id = q.call()
    q.do(HoldMusic(call_id))
    q.hear(10)
    q.play(call_id, 1)
    first = q.hear(PROMPT_FRAMES)
    assert q.done == [PromptDone(call_id, 1)]
    q.play(call_id, 2)  # what the ACD does on PromptDone: before the next frame
    second = q.hear(12)
    q.play(call_id, 3)  # replaces token 2 mid-way: 2 is never done
    third = q.hear(PROMPT_FRAMES)
    assert np.array_equal(first, q.prompt_heard())
    assert np.array_equal(second, q.prompt[:12 * FRAME])
    assert np.array_equal(third, q.prompt_heard())
    assert q.done == [PromptDone(call_id, 1), PromptDone(call_id, 3)]
    assert np.array_equal(q.hear(20), q.music[10 * FRAME:30 * FRAME])


def test_music_turned_on_during_an_announcement_waits_for_its_end(tmp_path):
    """The ACD may send the greeting before HoldMusic: the greeting is not cut short."""
    q = Queue(tmp_path)
    call_id = q.call()
    q.play(call_id, 1)
    head = q.hear(5)
    q.do(HoldMusic(call_id))
    rest = q.hear(PROMPT_FRAMES - 5)
    assert np.array_equal(np.concatenate([head, rest]), q.prompt_heard())
    assert q.done == [PromptDone(call_id, 1)]
    assert np.array_equal(q.hear(10), q.music[:10 * FRAME])


def test_stopping_an_announcement_resumes_the_music_at_the_next_frame(tmp_path):
    q = Queue(tmp_path)
    call_id = q.call()
    q.do(HoldMusic(call_id))
    q.hear(7)
    q.play(call_id, 1)
    assert np.array_equal(q.hear(4), q.prompt[:4 * FRAME])
    assert q.playout.handle(q.now, StopPrompt(call_id, CALLER)) == []
    assert np.array_equal(q.hear(10), q.music[7 * FRAME:17 * FRAME])
    assert q.done == []  # stopped, not done


def test_a_key_barging_into_an_announcement_resumes_the_music(tmp_path):
    q = Queue(tmp_path)
    call_id = q.call()
    q.do(HoldMusic(call_id))
    q.hear(5)
    start = q.media.frames * FRAME
    key = generate_digits("5", on_ms=80, off_ms=0)
    said = np.zeros(start + 2400 + key.size + 8000, np.int16)  # the key 0.3 s into the prompt
    said[start + 2400:start + 2400 + key.size] = key
    q.port.said[CALLER] = said
    q.play(call_id, 1, barge_in=True)
    frames = q.hear(40).reshape(40, FRAME)
    assert q.keys == ["5"]
    cut = next(k for k in range(40)
               if not np.array_equal(frames[k], q.prompt[k * FRAME:(k + 1) * FRAME]))
    assert 15 < cut < PROMPT_FRAMES - 1  # stopped early, by the key
    assert np.array_equal(frames[cut:].ravel(), q.music[5 * FRAME:(5 + 40 - cut) * FRAME])
    assert q.done == []


@pytest.mark.parametrize("stop_prompt", [False, True])
def test_a_caller_answered_during_an_announcement_never_hears_the_music_again(tmp_path,
                                                                               stop_prompt):
    """tone.stopped (the agent answered) while the music is paused: when the
    announcement ends, or the ACD stops it, the caller hears the agent and nothing else."""
    q = Queue(tmp_path)
    t = np.arange(20 * 8000)
    agent_says = (np.sin(2 * np.pi * 1000 * t / 8000) * 2000).astype(np.int16)
    q.port.said[AGENT] = agent_says
    call_id = q.call()
    q.do(HoldMusic(call_id))
    q.hear(10)
    q.play(call_id, 1)
    q.do(Offer(call_id, AGENT, 15.0))
    q.hear(3)
    stopped = [e for e in q.do(Answer(AGENT)) if e.name == "tone.stopped"]
    assert [e.line for e in stopped] == [CALLER]
    q.hear(5)  # the new bridge settles (crossfade)
    if stop_prompt:
        q.playout.handle(q.now, StopPrompt(call_id, CALLER))
    else:
        q.hear(PROMPT_FRAMES)  # the announcement runs out
        assert q.done == [PromptDone(call_id, 1)]
    first = q.media.frames
    heard = q.hear(50)
    assert np.array_equal(heard, agent_says[first * FRAME:(first + 50) * FRAME])


def test_music_turned_off_during_an_announcement_does_not_come_back(tmp_path):
    q = Queue(tmp_path)
    call_id = q.call()
    q.do(HoldMusic(call_id))
    q.hear(10)
    q.play(call_id, 1)
    head = q.hear(5)
    assert [e.name for e in q.do(HoldMusic(call_id, on=False))] == ["tone.stopped"]
    rest = q.hear(PROMPT_FRAMES - 5)
    assert np.array_equal(np.concatenate([head, rest]), q.prompt_heard())  # not cut short
    assert not q.hear(50).any()
    q.do(HoldMusic(call_id))  # on again: the same call resumes where it was
    assert np.array_equal(q.hear(10), q.music[10 * FRAME:20 * FRAME])


def test_a_caller_who_hangs_up_during_an_announcement_leaves_silence_behind(tmp_path):
    q = Queue(tmp_path)
    call_id = q.call()
    q.do(HoldMusic(call_id))
    q.hear(10)
    q.play(call_id, 1)
    q.hear(5)
    names = [e.name for e in q.do(Hangup(CALLER))]
    assert "call.ended" in names and "line.state" in names
    assert not q.hear(PROMPT_FRAMES + 50).any()
    assert q.done == []
    # The next caller on that trunk starts its own music from the top: nothing stale.
    other = q.call()
    assert other != call_id
    q.do(HoldMusic(other))
    assert np.array_equal(q.hear(10), q.music[:10 * FRAME])


@pytest.mark.parametrize("announcing", [False, True])
def test_another_tone_ends_the_music_and_it_never_mixes_with_it(tmp_path, announcing):
    """An overflow to an extension (Route) while the music plays, or while it is paused
    under an announcement the ACD then stops: the caller hears ringback alone."""
    q = Queue(tmp_path)
    call_id = q.call()
    q.do(HoldMusic(call_id))
    q.hear(10)
    if announcing:
        q.play(call_id, 1)
        q.hear(3)
    started = [e for e in q.do(Route(call_id, Target(TargetKind.EXTENSION, "202")))
               if e.name == "tone.started"]
    assert [(e.line, e.tone) for e in started] == [(CALLER, Tone.RINGBACK)]
    if announcing:
        q.playout.handle(q.now, StopPrompt(call_id, CALLER))
    heard = q.hear(100)
    tones = q.media.tones
    ringback = tones.render(np.array([tones.index(Tone.RINGBACK)]), np.array([0]),
                            100 * FRAME)[0]
    assert np.abs(heard).max() > 1000
    assert np.array_equal(heard, ringback)


def test_an_ivr_prompt_on_a_line_without_music_plays_as_before(tmp_path):
    """No music on the line: the prompt plays, ends in silence, is done once; a stopped
    or barged prompt leaves silence, nothing starts in its place."""
    q = Queue(tmp_path)
    call_id = q.call(FLOW_DNIS)
    q.play(call_id, 1)
    assert np.array_equal(q.hear(PROMPT_FRAMES), q.prompt_heard())
    assert q.done == [PromptDone(call_id, 1)]
    assert not q.hear(20).any()
    q.play(call_id, 2)
    assert np.array_equal(q.hear(3), q.prompt[:3 * FRAME])
    q.playout.handle(q.now, StopPrompt(call_id, CALLER))
    assert not q.hear(20).any()
    q.port.said[CALLER] = np.concatenate([np.zeros(q.media.frames * FRAME + 800, np.int16),
                                          generate_digits("7", on_ms=80, off_ms=0),
                                          np.zeros(8000, np.int16)])
    q.play(call_id, 3, barge_in=True)
    frames = q.hear(30).reshape(30, FRAME)
    assert q.keys == ["7"]
    cut = next(k for k in range(30)
               if not np.array_equal(frames[k], q.prompt[k * FRAME:(k + 1) * FRAME]))
    assert cut < 15 and not frames[cut:].any()
    assert q.done == [PromptDone(call_id, 1)]
