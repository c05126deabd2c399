"""Taps: per-leg audio handed to a sink (the recorder) every frame.

A tap follows one line. Each tick its sink receives, for all of its taps at once,
``rx`` (what the party on the line says, int16 [T, n]) and ``tx`` (what the switch
sends that party: the other side's voice, prompts, tones, music on hold). For a
stereo call recording, tap the caller's trunk: rx is the caller's channel, tx the
agent's side as the caller hears it — a supervisor's whisper never reaches tx of
the caller, because the caller never hears it (the mixing weights decide).
"""

from __future__ import annotations

import numpy as np

from switchd.lines.board import TapSink

__all__ = ["TapSink", "Taps"]


class Taps:
    """The set of active taps, grouped by sink so delivery is one gather per sink."""

    def __init__(self) -> None:
        self._taps: dict[str, tuple[int, TapSink]] = {}
        self._groups: list[tuple[TapSink, list[str], np.ndarray]] | None = None

    def add(self, key: str, channel: int, sink: TapSink) -> None:
        """Tap ``channel`` under ``key`` (e.g. a recording id); replaces a tap with the same key."""
        self._taps[key] = (channel, sink)
        self._groups = None

    def remove(self, key: str) -> None:
        """Stop the tap ``key`` (no error if it does not exist)."""
        if self._taps.pop(key, None) is not None:
            self._groups = None

    def __len__(self) -> int:
        return len(self._taps)

    def deliver(self, frame: int, time: float, inbound: np.ndarray, outbound: np.ndarray) -> None:
        """Hand frame ``frame`` (ending at epoch ``time`` s) to every sink.

        ``inbound``/``outbound``: int16 [C, n].
        """
        if not self._taps:
            return
        if self._groups is None:
            by_sink: dict[int, tuple[TapSink, list[str], list[int]]] = {}
            for key, (ch, sink) in self._taps.items():
                entry = by_sink.setdefault(id(sink), (sink, [], []))
                entry[1].append(key)
                entry[2].append(ch)
            self._groups = [(s, keys, np.asarray(chs, dtype=np.intp))
                            for s, keys, chs in by_sink.values()]
        for sink, keys, chs in self._groups:
            sink(frame, time, keys, chs, inbound[chs], outbound[chs])
