"""The audio mixer of the media tick: who hears whom, as data.

Every bridge (a call, a conference, a supervisor's monitor) is a set of
``(listener, talker, gain)`` weights over channel numbers (one channel per line).
Once per 20 ms tick :meth:`Mixer.mix` turns what every line's party *says*
(``inbound``, int16 ``[C, n]``, 8 kHz) into what every line's party *hears*
(``outbound``, int16 ``[C, n]``)::

    out[l] = saturate( Σ gain · inbound[t]  over all weights (l, t, gain) of all bridges
                       + every switch-generated source (tone, prompt, MOH) aimed at l )

Why sparse (DESIGN §3): a dense ``C × C`` matrix is 4 M entries for 2000 lines and
almost all zero; the sparse form costs one gather, one multiply and a few
contiguous in-place adds (segment sums per listener, see ``_Compiled``) over the
weights that exist, with no per-channel Python loop. The compiled form is rebuilt
only when a bridge changes. Measured: ~0.1 ms per tick for 1000 channels.

Why a crossfade: switching weights between two samples (hold, barge, hang-up of one
conference member) puts a step into the audio that the ear hears as a click. The
frame in which the weights change is therefore a linear crossfade from the old mix
to the new one; the next frame uses only the new weights. Rows whose weights did
not change come out bit-identical in that frame too (the blend of equal values is
exact), so one call's change never disturbs another call.

The helpers (:func:`two_party`, :func:`conference`, :func:`listen`, :func:`whisper`,
:func:`barge`, :func:`held`) each return the *complete* weight set of their parties.
Use one bridge key per call and replace its weights when the mode changes
(``set_bridge(call_id, listen(...))`` replaces ``two_party``): adding a ``listen``
bridge *next to* the call's ``two_party`` bridge would make agent and caller hear
each other twice (weights of all bridges add up).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from switchd.events import BridgeMember, Role

__all__ = [
    "Mixer",
    "barge",
    "bridge_weights",
    "conference",
    "held",
    "listen",
    "two_party",
    "whisper",
]

Weight = tuple[int, int, float]

_INT16_MIN = -32768.0
_INT16_MAX = 32767.0


@dataclass(frozen=True, eq=False)
class _Compiled:
    """The weights of all bridges in the form :meth:`Mixer.mix` consumes.

    Two views of the same weights:

    * canonical arrays, sorted by (listener, talker), duplicate pairs summed into
      one weight, zero gains dropped: two compilations of the same effective
      matrix have the same keys, which is how a change (and the rows it touches)
      is found;
    * an execution plan in *layers*: listeners ordered by how many talkers they
      hear, most first; layer ``k`` holds the ``k``-th talker of every listener
      that hears more than ``k``, so each layer's listeners are a prefix of the
      previous layer's and the sums are ``L`` contiguous in-place adds (``L`` =
      most talkers any listener hears: 1 in a two-party call, N−1 in an N-party
      conference). Python loops over layers, never over channels.

    Why layers rather than ``np.add.reduceat`` (which DESIGN §3 names): the sums
    are the same segment sums over the same sparse gather, but numpy 2.4's
    ``reduceat`` along axis 0 of a ``[W, 160]`` array runs one inner loop per
    segment and column: ~640 µs for 1000 two-party channels against ~10 µs here.
    """

    listeners: np.ndarray  # int64 [W], canonical order
    talkers: np.ndarray  # int64 [W]
    gains: np.ndarray  # float32 [W]
    plan_talkers: np.ndarray  # int64 [W], layer-major
    plan_gains: np.ndarray  # float32 [W, 1], ready to broadcast over samples
    plan_rows: np.ndarray  # int64 [R], listeners with most talkers first
    layer_sizes: tuple[int, ...]  # listeners in each layer, non-increasing
    unit: bool  # every gain is 1.0: the multiply can be skipped
    integral: bool  # every gain is an integer: sums of int16 need no rounding

    @classmethod
    def build(cls, listeners: np.ndarray, talkers: np.ndarray, gains: np.ndarray) -> _Compiled:
        """Canonicalise raw weight arrays (any order, duplicates allowed) and plan the sums."""
        listeners = listeners.astype(np.int64)
        talkers = talkers.astype(np.int64)
        if listeners.size:
            span = int(max(listeners.max(), talkers.max())) + 1
            uniq, inverse = np.unique(listeners * span + talkers, return_inverse=True)
            # Summed in float64 so duplicate pairs combine exactly before the one rounding.
            summed = np.bincount(inverse.ravel(), weights=gains, minlength=uniq.size)
            keep = summed != 0.0
            uniq, summed = uniq[keep], summed[keep]
            listeners, talkers = uniq // span, uniq % span
            gains = summed
        gains32 = np.ascontiguousarray(gains, dtype=np.float32)

        first = np.ones(listeners.size, dtype=bool)
        np.not_equal(listeners[1:], listeners[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        counts = np.diff(np.append(starts, listeners.size))
        by_count = np.argsort(-counts, kind="stable")
        starts, counts = starts[by_count], counts[by_count]
        depth = int(counts[0]) if counts.size else 0
        # Listeners in layer k = how many hear more than k talkers (counts descend).
        sizes = np.searchsorted(-counts, -np.arange(depth), side="left")
        index = np.concatenate(
            [starts[:size] + k for k, size in enumerate(sizes)] or [np.zeros(0, np.int64)]
        )
        return cls(
            listeners=listeners,
            talkers=talkers,
            gains=gains32,
            plan_talkers=talkers[index],
            plan_gains=gains32[index].reshape(-1, 1),
            plan_rows=listeners[starts],
            layer_sizes=tuple(int(s) for s in sizes),
            unit=bool((gains32 == 1.0).all()),
            integral=bool((np.floor(gains32) == gains32).all()),
        )

    @classmethod
    def empty(cls) -> _Compiled:
        """No weights: everybody hears silence (plus any extra sources)."""
        z = np.zeros(0, dtype=np.int64)
        return cls.build(z, z, np.zeros(0, dtype=np.float64))

    def _keys(self, channels: int) -> np.ndarray:
        # (listener, talker) in the high 32 bits, the gain's float32 bits in the low 32.
        pair = self.listeners * channels + self.talkers
        return (pair << 32) | self.gains.view(np.uint32).astype(np.int64)

    def changed_listeners(self, other: _Compiled, channels: int) -> np.ndarray:
        """Sorted listeners whose weights differ between ``self`` and ``other``."""
        differing = np.setxor1d(self._keys(channels), other._keys(channels))
        return np.unique((differing >> 32) // channels)

    def only_listeners(self, rows: np.ndarray) -> _Compiled:
        """The weights of the given listeners only."""
        keep = np.isin(self.listeners, rows)
        return _Compiled.build(self.listeners[keep], self.talkers[keep],
                               self.gains[keep].astype(np.float64))

    def restricted(self, channels: int) -> _Compiled:
        """The weights that involve only channels below ``channels`` (after a shrink)."""
        keep = (self.listeners < channels) & (self.talkers < channels)
        if keep.all():
            return self
        return _Compiled.build(self.listeners[keep], self.talkers[keep],
                               self.gains[keep].astype(np.float64))

    def apply(self, inbound: np.ndarray, out_rows: np.ndarray | None = None) -> np.ndarray:
        """Sum the weighted talkers of every listener, float32, not yet saturated.

        Returns ``[C, n]``, or ``[len(out_rows), n]`` holding only the sorted
        listeners ``out_rows`` (which must include every listener of ``self``).
        float32 is exact for integer gains: sums of int16 samples stay exact up
        to 2**24, i.e. 256 full-scale talkers into one listener.
        """
        rows = inbound.shape[0] if out_rows is None else out_rows.size
        out = np.zeros((rows, inbound.shape[1]), dtype=np.float32)
        if not self.layer_sizes:
            return out
        gathered = np.take(inbound, self.plan_talkers, axis=0).astype(np.float32)
        if not self.unit:
            gathered *= self.plan_gains
        acc = gathered[: self.layer_sizes[0]]
        offset = self.layer_sizes[0]
        for size in self.layer_sizes[1:]:
            acc[:size] += gathered[offset : offset + size]
            offset += size
        dest = self.plan_rows if out_rows is None else np.searchsorted(out_rows, self.plan_rows)
        out[dest] = acc
        return out


@dataclass(frozen=True)
class _Sources:
    """Switch-generated audio for one frame: ``samples[i]`` goes onto row ``rows[i]``."""

    samples: np.ndarray  # int16 [K, n]
    rows: np.ndarray  # intp [K]
    distinct: bool  # no row repeats, so fancy-index += is correct (and ~10x faster than add.at)

    def add_onto(self, out: np.ndarray, out_rows: np.ndarray | None = None) -> None:
        """Add the sources onto ``out`` (``[C, n]``, or the sorted listeners ``out_rows``)."""
        samples, rows = self.samples, self.rows
        if out_rows is not None:
            mine = np.isin(rows, out_rows)
            samples, rows = samples[mine], np.searchsorted(out_rows, rows[mine])
        if self.distinct:
            out[rows] += samples
        else:
            np.add.at(out, rows, samples)


class Mixer:
    """Mixes all channels of the board once per media tick from sparse bridge weights.

    State: the weights of every bridge by key, and the compiled form that the
    previous :meth:`mix` used (to crossfade from it when the weights change).
    Sans-IO and single-threaded: the media tick owns it.

    Raises ``ValueError`` for channel numbers outside ``0..channels-1``,
    non-finite gains, or arrays of the wrong shape; ``TypeError`` for audio that
    is not int16 (float audio scaled to ±1.0 would otherwise mix as silence).
    """

    def __init__(self, channels: int) -> None:
        """Create a mixer for ``channels`` lines, all silent (no bridges)."""
        self._channels = _check_channels(channels)
        self._bridges: dict[str, tuple[Weight, ...]] = {}
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._current: _Compiled | None = None  # compiled from _bridges; None = stale
        self._last: _Compiled | None = None  # what the previous mix() used; None = never mixed
        self._ramps: dict[int, np.ndarray] = {}

    @property
    def channels(self) -> int:
        """Number of channels (rows of ``inbound`` and ``outbound``)."""
        return self._channels

    def set_bridge(self, key: str, weights: Iterable[tuple[int, int, float]]) -> None:
        """Replace the weights of bridge ``key`` (creating it if new).

        ``weights`` are ``(listener, talker, gain)``: ``listener`` hears ``talker``
        scaled by ``gain`` (linear, 1.0 = unchanged level). Weights of all bridges
        add up, also for a repeated (listener, talker) pair. Gains are applied in
        float32. The change is heard from the next :meth:`mix`, crossfaded.

        Raises ``ValueError`` (and keeps the old weights) if a channel is outside
        ``0..channels-1`` or a gain is not finite.
        """
        checked: list[Weight] = []
        for weight in weights:
            listener, talker, gain = weight
            listener, talker, gain = operator.index(listener), operator.index(talker), float(gain)
            for role, channel in (("listener", listener), ("talker", talker)):
                if not 0 <= channel < self._channels:
                    raise ValueError(
                        f"bridge {key!r}: {role} channel {channel} is outside "
                        f"0..{self._channels - 1}"
                    )
            if not math.isfinite(gain):
                raise ValueError(f"bridge {key!r}: gain {gain!r} for {listener}<-{talker} is not finite")
            checked.append((listener, talker, gain))
        self._bridges[key] = tuple(checked)
        self._arrays[key] = (
            np.fromiter((w[0] for w in checked), dtype=np.int64, count=len(checked)),
            np.fromiter((w[1] for w in checked), dtype=np.int64, count=len(checked)),
            np.fromiter((w[2] for w in checked), dtype=np.float64, count=len(checked)),
        )
        self._current = None

    def remove_bridge(self, key: str) -> None:
        """Forget bridge ``key``; its listeners stop hearing its talkers (crossfaded).

        Removing an unknown key does nothing, so cleanup paths (hang-up, failed
        transfer, cancelled consult) may call it unconditionally.
        """
        if self._bridges.pop(key, None) is not None:
            del self._arrays[key]
            self._current = None

    def listeners_of(self, talker: int) -> list[int]:
        """The channels that hear ``talker`` now (a weight > 0 in any bridge), ascending.

        What the mixer routes, not what the call's state says: a held party, a
        listen-only supervisor and a line in no bridge are nobody's talkers.
        """
        heard = {lst for ws in self._bridges.values() for lst, tlk, gain in ws
                 if tlk == talker and gain > 0 and lst != talker}
        return sorted(heard)

    def bridge_weights(self, key: str) -> tuple[tuple[int, int, float], ...]:
        """The weights of bridge ``key`` as last set; ``()`` for an unknown key."""
        return self._bridges.get(key, ())

    def resize(self, channels: int) -> None:
        """Change the number of channels (lines added or removed by a config reload).

        Raises ``ValueError`` (and changes nothing) if a bridge still uses a
        channel that would vanish: remove those bridges first, so no call loses
        its audio silently.
        """
        channels = _check_channels(channels)
        if channels < self._channels:
            users = sorted(
                key
                for key, weights in self._bridges.items()
                if any(max(listener, talker) >= channels for listener, talker, _ in weights)
            )
            if users:
                raise ValueError(
                    f"cannot shrink to {channels} channels: bridges {users} use channels "
                    f">= {channels}"
                )
            if self._last is not None:
                self._last = self._last.restricted(channels)
        self._channels = channels

    def mix(
        self,
        inbound: np.ndarray,
        extra: np.ndarray | None = None,
        extra_rows: np.ndarray | None = None,
    ) -> np.ndarray:
        """Return what every channel hears this frame: int16 ``[C, n]``.

        ``inbound`` is int16 ``[C, n]``, what each line's party says. ``extra``
        (int16 ``[K, n]``) holds switch-generated sources (tones, prompts, music
        on hold); ``extra[i]`` is added onto row ``extra_rows[i]`` (rows may
        repeat: their sources add). Sums are formed in float32, saturated to
        −32768..32767 (clipped, never wrapped) and rounded half to even.

        If the weights changed since the previous call, this frame fades
        linearly from the old mix to the new one (sample ``k`` of ``n`` takes
        ``(k+1)/(n+1)`` of the new), each saturated before blending so the ramp
        has no step larger than ``|old−new|/(n+1)`` plus rounding. The first
        call ever does not fade: nothing was heard before it. ``extra`` sources
        are added in full in every frame, a crossfade frame included: their
        onset is their source's business (tones and prompts carry their own
        envelopes), and fading them would delay a tone the caller must hear.

        Raises ``ValueError`` for shapes that do not fit ``channels``, ``n`` or
        ``extra_rows``; ``TypeError`` for audio that is not int16.
        """
        inbound = np.asarray(inbound)
        if inbound.ndim != 2 or inbound.shape[0] != self._channels:
            raise ValueError(
                f"inbound must have shape ({self._channels}, n), got {inbound.shape}"
            )
        if inbound.dtype != np.int16:
            raise TypeError(f"inbound must be int16 samples, got {inbound.dtype}")
        sources = self._check_extra(extra, extra_rows, inbound.shape[1])

        if self._current is None:
            self._current = self._compile()
        new = self._current
        old = self._last if self._last is not None else new
        self._last = new

        out = new.apply(inbound)
        if sources is not None:
            sources.add_onto(out)
        np.clip(out, _INT16_MIN, _INT16_MAX, out=out)
        exact = new.integral
        if old is not new and inbound.shape[1]:
            # Blend only the listeners whose weights changed; the others stay bit-exact.
            changed = old.changed_listeners(new, self._channels)
            if changed.size:
                before = old.only_listeners(changed).apply(inbound, changed)
                if sources is not None:
                    sources.add_onto(before, changed)
                np.clip(before, _INT16_MIN, _INT16_MAX, out=before)
                after = out[changed]
                after -= before
                after *= self._ramp(inbound.shape[1])
                after += before
                out[changed] = after
                exact = False
        if not exact:
            np.rint(out, out=out)
        return out.astype(np.int16)

    def _check_extra(
        self, extra: np.ndarray | None, extra_rows: np.ndarray | None, n: int
    ) -> _Sources | None:
        if extra is None and extra_rows is None:
            return None
        if extra is None or extra_rows is None:
            raise ValueError("extra and extra_rows must be given together")
        extra = np.asarray(extra)
        rows = np.asarray(extra_rows)
        if extra.dtype != np.int16:
            raise TypeError(f"extra must be int16 samples, got {extra.dtype}")
        if extra.ndim != 2 or extra.shape[1] != n:
            raise ValueError(f"extra must have shape (K, {n}), got {extra.shape}")
        if rows.shape != (extra.shape[0],) or (rows.size and rows.dtype.kind not in "iu"):
            raise ValueError(
                f"extra_rows must be {extra.shape[0]} integer row numbers, got shape "
                f"{rows.shape} of {rows.dtype}"
            )
        if rows.size and (rows.min() < 0 or rows.max() >= self._channels):
            raise ValueError(f"extra_rows must lie in 0..{self._channels - 1}")
        if not rows.size:
            return None
        rows = rows.astype(np.intp)
        return _Sources(extra, rows, np.unique(rows).size == rows.size)

    def _compile(self) -> _Compiled:
        if not self._arrays:
            return _Compiled.empty()
        parts = list(self._arrays.values())
        return _Compiled.build(
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]),
        )

    def _ramp(self, n: int) -> np.ndarray:
        ramp = self._ramps.get(n)
        if ramp is None:
            ramp = (np.arange(1, n + 1, dtype=np.float32) / np.float32(n + 1)).reshape(1, n)
            self._ramps[n] = ramp
        return ramp


def _check_channels(channels: int) -> int:
    channels = operator.index(channels)
    if channels < 0:
        raise ValueError(f"channels must be >= 0, got {channels}")
    return channels


def _distinct(mode: str, parties: Sequence[int]) -> None:
    if len(set(parties)) != len(parties):
        raise ValueError(f"{mode}: parties must be distinct channels, got {list(parties)}")


def two_party(a: int, b: int) -> list[Weight]:
    """A plain call: ``a`` hears ``b`` and ``b`` hears ``a``, both at unit gain.

    Raises ``ValueError`` if ``a == b`` (a line cannot be bridged to itself).
    """
    _distinct("two_party", (a, b))
    return [(a, b, 1.0), (b, a, 1.0)]


def conference(members: Sequence[int]) -> list[Weight]:
    """An N-party conference: each member hears every other member, never itself.

    Gain is 1.0 per talker, not 1/(N−1). Call-centre conferences are small
    (caller, agent, a third party or supervisor) and mostly one person speaks at
    a time; attenuating by 1/(N−1) would make every voice 6 dB quieter the moment
    a third party joins, which callers hear as a failing line. The rare peak of
    two people speaking loudly at once is clipped by the mixer's saturation, as
    in Asterisk's ConfBridge and FreeSWITCH's mod_conference, which also sum and clip.

    Raises ``ValueError`` for a repeated member. Fewer than two members give no weights.
    """
    _distinct("conference", members)
    return [(listener, talker, 1.0) for listener in members for talker in members
            if listener != talker]


def listen(agent: int, caller: int, supervisor: int) -> list[Weight]:
    """Silent monitoring: agent and caller talk; the supervisor hears both; nobody hears him.

    Raises ``ValueError`` unless the three channels are distinct.
    """
    _distinct("listen", (agent, caller, supervisor))
    return [*two_party(agent, caller), (supervisor, agent, 1.0), (supervisor, caller, 1.0)]


def whisper(agent: int, caller: int, supervisor: int) -> list[Weight]:
    """Coaching: as :func:`listen`, and the agent also hears the supervisor; the caller does not.

    Raises ``ValueError`` unless the three channels are distinct.
    """
    return [*listen(agent, caller, supervisor), (agent, supervisor, 1.0)]


def barge(agent: int, caller: int, supervisor: int) -> list[Weight]:
    """Barge-in: the supervisor joins the call; all three hear each other (a 3-party conference).

    Raises ``ValueError`` unless the three channels are distinct.
    """
    _distinct("barge", (agent, caller, supervisor))
    return conference((agent, caller, supervisor))


def held(holder: int, held_party: int) -> list[Weight]:
    """A call on hold: nobody hears anybody through the bridge (no weights).

    The held party's music on hold is not a weight: the media tick passes it to
    :meth:`Mixer.mix` as an ``extra`` row for ``held_party``; the holder hears
    silence. Keeping the call's bridge key with these (empty) weights, rather
    than removing it, keeps the crossfade and the bridge's identity.

    Raises ``ValueError`` if ``holder == held_party``.
    """
    _distinct("held", (holder, held_party))
    return []


#: Roles whose voice the conversation carries (heard by everyone but held members).
_TALKERS = frozenset({Role.PARTY, Role.BARGE})
#: Roles that hear the conversation.
_LISTENERS = frozenset({Role.PARTY, Role.BARGE, Role.LISTEN, Role.WHISPER})


def bridge_weights(members: Sequence[BridgeMember], channel_of: Mapping[str, int]) -> list[Weight]:
    """Who hears whom in one bridge, from its members and their roles alone (DESIGN §3).

    The one place roles become mixing weights (``bridge.changed`` → :meth:`Mixer.set_bridge`):

    * ``party`` and ``barge`` members talk: every other ``party``, ``barge``,
      ``listen`` and ``whisper`` member hears them;
    * ``listen`` hears the talkers and nobody hears it;
    * ``whisper`` hears the talkers, and only the member named in its ``to`` hears it
      (the coached agent, never the caller), and only while that member is a
      ``party`` or ``barge``;
    * ``held`` hears nobody through the bridge (its music on hold is a source the
      media plane adds) and nobody hears it.

    All gains are 1.0 (see :func:`conference` for why not 1/(N−1)). Members whose line
    has no channel are skipped. Returns ``(listener, talker, gain)`` weights.
    """
    chans = [(channel_of.get(m.line), m) for m in members]
    present = [(ch, m) for ch, m in chans if ch is not None]
    out: list[Weight] = []
    for lch, listener in present:
        if listener.role not in _LISTENERS:
            continue
        for tch, talker in present:
            if tch != lch and talker.role in _TALKERS:
                out.append((lch, tch, 1.0))
    # Only a member taking part in the conversation hears a whisper: a held party (the
    # agent's peer put on hold, or a held agent) hears music on hold and nothing else.
    talking = {m.line: ch for ch, m in present if m.role in _TALKERS}
    for wch, m in present:
        if m.role is Role.WHISPER and m.to is not None:
            to = talking.get(m.to)
            if to is not None and to != wch:
                out.append((to, wch, 1.0))
    return out
