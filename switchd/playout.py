"""Playout: the IVR's prompts on the media plane (the daemon's side of ``PlayPrompt``).

An engine under the shell (DESIGN §1) that takes the interpreter's
:class:`~switchd.ivr.inputs.PlayPrompt` / :class:`~switchd.ivr.inputs.StopPrompt`
and starts or stops a play on the caller's line, from the prompt cache only (no
file I/O: every prompt of every loaded flow was preloaded off the loop). When the
media tick reports a play that reached its end, :meth:`Playout.finished` turns it
into the :class:`~switchd.ivr.inputs.PromptDone` the interpreter waits for.

A prompt that cannot be played (it was never loaded, or the cache dropped it and the
file is gone) is answered at once with ``PromptDone(error=…)`` naming the file: the
interpreter reports it and the call goes on, it never waits for audio that will not
come. ``switchd flows try`` uses :class:`~switchd.ivr.vplayer.VirtualPlayer`
instead, with the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from switchd.core.inputs import Digit
from switchd.engine import Input
from switchd.ivr.inputs import PlayPrompt, PromptDone, StopPrompt
from switchd.lines.media import MediaPlane
from switchd.lines.prompts import PromptCache, PromptError
from switchd.lines.ticker import FRAME_S

__all__ = ["Playout", "run_frames"]


class Playout:
    """Plays flow prompts on a :class:`MediaPlane` and reports the ones that ended."""

    TAKES: tuple[type, ...] = (PlayPrompt, StopPrompt)

    def __init__(self, media: MediaPlane, cache: PromptCache) -> None:
        self.media = media
        self.cache = cache
        #: line -> (call id, token, media play id) of the prompt playing there
        self._playing: dict[str, tuple[str, int, int]] = {}
        #: files -> their samples joined once (read-only, so the player stores them once)
        self._joined: dict[tuple[Path, ...], np.ndarray] = {}

    def forget_joined(self) -> None:
        """Drop the joined prompt audio (a reload may have replaced files)."""
        self._joined.clear()

    # ------------------------------------------------------------ engine protocol

    def handle(self, now: float, item: Any) -> list[PromptDone]:
        """Start or stop a play. Returns ``PromptDone(error=…)`` for a prompt that cannot play."""
        if isinstance(item, StopPrompt):
            current = self._playing.get(item.line)
            if current is not None and current[0] == item.call_id:
                del self._playing[item.line]
                # Through the plane, so music on hold paused under the prompt resumes.
                self.media.stop(item.line, current[2])
            return []
        assert isinstance(item, PlayPrompt)
        if item.line not in self.media.channel_of:
            return [PromptDone(item.call_id, item.token, f"no line {item.line} on the media plane")]
        try:
            samples = self._samples(item.files)
        except PromptError as exc:
            self._playing.pop(item.line, None)
            return [PromptDone(item.call_id, item.token, f"prompt {exc.path} {exc.reason}")]
        pid = self.media.play(item.line, samples, loop=item.loop, barge_in=item.barge_in)
        self._playing[item.line] = (item.call_id, item.token, pid)
        return []

    def next_deadline(self) -> float | None:
        """Never: the media tick says when plays end (:meth:`finished`)."""
        return None

    def handle_timer(self, now: float) -> list[Any]:
        """Nothing is timed here."""
        return []

    # ------------------------------------------------------------ from the tick

    def finished(self, plays: list[tuple[str, int]]) -> list[PromptDone]:
        """Turn the media plane's finished ``(line, play id)`` into ``PromptDone`` for the
        plays this engine started (music on hold and others are not ours)."""
        out: list[PromptDone] = []
        for line, pid in plays:
            current = self._playing.get(line)
            if current is not None and current[2] == pid:
                del self._playing[line]
                out.append(PromptDone(current[0], current[1]))
        return out

    def _samples(self, files: tuple[Path, ...]) -> np.ndarray:
        joined = self._joined.get(files)
        if joined is None:
            parts = [self.cache.lookup(f) for f in files]
            joined = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else \
                np.zeros(0, dtype=np.int16)
            joined.flags.writeable = False
            if len(self._joined) >= 1024:
                # ``say`` joins a new fragment list per value (amounts): keep this bounded.
                self._joined.clear()
            self._joined[files] = joined
        return joined


def run_frames(media: MediaPlane, playout: Playout, submit: Callable[[Input], object],
               frames: int, now: float) -> tuple[int, int]:
    """Run ``frames`` media frames ending at epoch ``now`` (s) and hand on what they bring:
    each key detected (a core ``Digit``) and each prompt of ``playout`` that ran out
    (``PromptDone``), through ``submit``. Returns (keys, prompts ended).

    Frame by frame, keys before prompt ends: a key confirmed in the frame where a
    prompt ran out was pressed while it played, so the node that played it (a
    barge-in) consumes it, never the next node (each key counted once, by the right
    node, however late the tick ran). The daemon's tick and ``switchd bench ivr`` both
    run frames through here, so they cannot order them differently.
    """
    keys = ended = 0
    for k in range(frames):
        for hit in media.process(1, now - (frames - 1 - k) * FRAME_S):
            keys += 1
            submit(Digit(hit.line, hit.digit, hit.time))
        finished = media.take_finished_plays()
        if finished:
            for done in playout.finished(finished):
                ended += 1
                submit(done)
    return keys, ended
