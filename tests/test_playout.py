"""Playout: flow prompts on the real media plane, and the order keys and prompt ends reach a flow.

Runs the daemon's own frame handler (``App._on_frames``) over a real MediaPlane, call
core, interpreter and Playout in virtual time, with the caller's key as real DTMF audio.
"""

from __future__ import annotations

import dataclasses
import types
import wave
from pathlib import Path

import numpy as np
import pytest

from switchd.app import App
from switchd.bus import Bus
from switchd.core.engine import CoreError, SwitchCore
from switchd.core.inputs import CORE_INPUTS, Incoming
from switchd.core.routing import CoreConfig, Route, Target, TargetKind
from switchd.events import Event, IvrError, IvrLeave
from switchd.ivr.inputs import PlayPrompt, PromptDone, StopPrompt
from switchd.ivr.interpreter import Ivr
from switchd.ivr.model import Hangup, Menu, Play
from switchd.lines.dtmf import generate_digits
from switchd.lines.media import FRAME, MediaPlane
from switchd.lines.prompts import PromptCache
from switchd.playout import Playout
from switchd.shell import Shell, VirtualClock
from tests.ivrhelp import flow, flowset, node


def _tone_wav(path: Path, seconds: float) -> Path:
    n = int(seconds * 8000)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes((np.sin(np.arange(n) * 2 * np.pi * 400 / 8000) * 3000)
                      .astype(np.int16).tobytes())
    return path


class _Caller:
    """An audio port: the trunk's caller says ``said`` (int16), everyone else is silent."""

    def __init__(self, channels: int, said: np.ndarray) -> None:
        self.channels, self.said = channels, said

    def inbound(self, frame: int, time: float) -> np.ndarray:
        out = np.zeros((self.channels, FRAME), np.int16)
        seg = self.said[frame * FRAME:(frame + 1) * FRAME]
        out[0, :seg.size] = seg
        return out

    def outbound(self, frame: int, time: float, samples: np.ndarray) -> None:
        pass


def _run(tmp_path: Path, batch: int, *, barge_in: bool) -> list[tuple[str, str | None, str | None]]:
    """A 1 s intro, then a menu; the caller presses 5 at 0.6 s (during the intro).
    Frames are handed to the app ``batch`` at a time, as a late media tick does."""
    wav = _tone_wav(tmp_path / "intro.wav", 1.0)
    f = flow([node(Play, "intro", prompts=["p"], barge_in=barge_in, next="m"),
              node(Menu, "m", prompts=["p"], choices={"5": "five"}, fallback="bye",
                   timeout_s=5.0),
              node(Hangup, "five"), node(Hangup, "bye")])
    f = dataclasses.replace(f, prompt_files={"p": wav})
    core = SwitchCore(CoreConfig(trunks=1, extensions=(201,),
                                 routes=(Route(Target(TargetKind.FLOW, "main")),)))
    lines = list(core.lines)
    said = np.concatenate([np.zeros(4800, np.int16), generate_digits("5", on_ms=80, off_ms=0),
                           np.zeros(16000, np.int16)])
    cache = PromptCache()
    cache.preload([wav])
    media = MediaPlane(lines, port=_Caller(len(lines), said), prompt_cache=cache)
    clock = VirtualClock(1_764_000_000.0)
    bus = Bus()
    events: list[Event] = []
    bus.on_any(media.on_event)
    bus.on_any(events.append)
    shell = Shell(bus, clock, log_events=False, refusals=(CoreError,))
    playout = Playout(media, cache)
    shell.add(core, takes=CORE_INPUTS)
    shell.add(Ivr(flowset(f)), takes=Ivr.TAKES, follows=Ivr.FOLLOWS)
    shell.add(playout, takes=Playout.TAKES)
    shell.submit(Incoming("13800000000", "8000", trunk=1))
    app = types.SimpleNamespace(media=media, playout=playout, shell=shell)
    for _ in range(75 // batch):
        clock.t += batch * FRAME / 8000
        App._on_frames(app, batch)  # type: ignore[arg-type]
    return [(e.node, e.next, e.digits) for e in events if isinstance(e, IvrLeave)]


@pytest.mark.parametrize("batch", [1, 5, 25])
def test_a_key_during_a_prompt_without_barge_in_is_never_credited_to_the_next_node(tmp_path,
                                                                                   batch):
    """However many frames one tick carries, the intro ends on its own and the menu then
    waits: the key pressed during the intro belongs to nobody."""
    leaves = _run(tmp_path, batch, barge_in=False)
    assert leaves[0] == ("intro", "m", None)
    assert all(node != "m" for node, _, _ in leaves), leaves


@pytest.mark.parametrize("batch", [1, 25])
def test_a_key_that_barges_in_is_consumed_by_the_prompt_it_stopped(tmp_path, batch):
    leaves = _run(tmp_path, batch, barge_in=True)
    assert leaves[0] == ("intro", "m", "5")
    assert all(node != "m" for node, _, _ in leaves), leaves


def _plane(tmp_path: Path) -> tuple[MediaPlane, PromptCache, Path]:
    wav = _tone_wav(tmp_path / "p.wav", 0.1)
    cache = PromptCache()
    cache.preload([wav])
    return MediaPlane(["trunk/1", "trunk/2"], prompt_cache=cache), cache, wav


def test_playout_reports_only_its_own_plays_once_and_stop_is_per_call(tmp_path):
    media, cache, wav = _plane(tmp_path)
    po = Playout(media, cache)
    assert po.handle(0.0, PlayPrompt("c1", "trunk/1", 7, (wav, wav))) == []
    assert media.player.playing(0)
    # Another call cannot stop c1's prompt on that line.
    po.handle(0.0, StopPrompt("c2", "trunk/1"))
    assert media.player.playing(0)
    media.process(10, 0.2)  # 0.2 s: both copies of the 0.1 s prompt played out
    done = po.finished(media.take_finished_plays())
    assert done == [PromptDone("c1", 7)]
    assert po.finished([("trunk/1", 999)]) == []  # music on hold and others are not ours
    po.handle(0.0, PlayPrompt("c1", "trunk/1", 8, (wav,)))
    po.handle(0.0, StopPrompt("c1", "trunk/1"))
    assert not media.player.playing(0)
    media.process(10, 0.4)
    assert po.finished(media.take_finished_plays()) == []


def test_a_prompt_that_was_never_loaded_is_answered_at_once_with_its_file(tmp_path):
    media, cache, _ = _plane(tmp_path)
    po = Playout(media, cache)
    gone = tmp_path / "gone.wav"
    (done,) = po.handle(0.0, PlayPrompt("c1", "trunk/2", 3, (gone,)))
    assert done.call_id == "c1" and done.token == 3
    assert done.error is not None and str(gone) in done.error and "preloaded" in done.error
    assert not media.player.playing(1)


def test_a_missing_prompt_in_a_flow_is_an_ivr_error_and_the_call_goes_on(tmp_path):
    """The flow was checked, then the prompt went away: the caller is not left in silence."""
    wav = _tone_wav(tmp_path / "intro.wav", 0.2)
    f = flow([node(Play, "intro", prompts=["p"], next="m"),
              node(Menu, "m", prompts=["p"], choices={"5": "five"}, fallback="bye",
                   timeout_s=1.0, retries=0),
              node(Hangup, "five"), node(Hangup, "bye")])
    f = dataclasses.replace(f, prompt_files={"p": wav})
    core = SwitchCore(CoreConfig(trunks=1, extensions=(201,),
                                 routes=(Route(Target(TargetKind.FLOW, "main")),)))
    media = MediaPlane(list(core.lines), prompt_cache=PromptCache())  # nothing preloaded
    clock = VirtualClock(1_764_000_000.0)
    bus = Bus()
    events: list[Event] = []
    bus.on_any(events.append)
    shell = Shell(bus, clock, log_events=False, refusals=(CoreError,))
    shell.add(core, takes=CORE_INPUTS)
    shell.add(Ivr(flowset(f)), takes=Ivr.TAKES, follows=Ivr.FOLLOWS)
    shell.add(Playout(media, media.cache), takes=Playout.TAKES)
    shell.submit(Incoming("13800000000", "8000", trunk=1))
    shell.run_idle()
    errors = [e for e in events if isinstance(e, IvrError)]
    assert errors and str(wav) in errors[0].error
    assert [(e.node, e.next) for e in events if isinstance(e, IvrLeave)][-1] == ("bye", None)
    assert not core.calls


def test_the_frame_handler_hands_on_a_frames_keys_before_the_prompts_that_ended_in_it():
    """The order that decides which node gets a key confirmed in the frame where a prompt
    ran out: the key first (it was pressed while the prompt played), frame by frame."""
    from switchd.core.inputs import Digit
    from switchd.lines.media import DtmfHit

    submitted: list[object] = []
    frames = [([DtmfHit("trunk/1", "5", 10.0)], [("trunk/1", 7)]),  # both in one frame
              ([], [("trunk/2", 8)]),
              ([DtmfHit("trunk/2", "1", 10.04)], [])]
    calls = iter(frames)

    class Media:
        def __init__(self) -> None:
            self.ended: list[tuple[str, int]] = []

        def process(self, n: int, now: float) -> list[DtmfHit]:
            assert n == 1, "one frame at a time"
            hits, self.ended = next(calls)
            return hits

        def take_finished_plays(self) -> list[tuple[str, int]]:
            out, self.ended = self.ended, []
            return out

    class Po:
        def finished(self, plays: list[tuple[str, int]]) -> list[PromptDone]:
            return [PromptDone(f"call-{line}", pid) for line, pid in plays]

    shell = types.SimpleNamespace(now=lambda: 10.04, submit=submitted.append)
    app = types.SimpleNamespace(media=Media(), playout=Po(), shell=shell)
    App._on_frames(app, 3)  # type: ignore[arg-type]
    assert submitted == [Digit("trunk/1", "5", 10.0), PromptDone("call-trunk/1", 7),
                         PromptDone("call-trunk/2", 8), Digit("trunk/2", "1", 10.04)]
