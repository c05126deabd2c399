"""``switchd bench dtmf``: switchd's DTMF detector beside the Debian packages' decoders.

Why (issue 20 item 3): keys pressed on real lines arrive under speech, music or noise,
with twist, and G.711-coded; the detector must hear them and still never hear a key
in speech or music (talk-off, ITU-T Q.24).  The only honest comparison is every
decoder on the same material, so this tool generates it (fixed seeds, so every run
is the same) and runs:

* ``switchd``: :func:`switchd.lines.dtmf.detect_digits`;
* ``spandsp``: ``dtmf_rx`` of libspandsp.so.2 through ctypes, default parameters,
  fed 160 samples at a time (``dtmf_rx_init(NULL, NULL, NULL)``, ``dtmf_rx``,
  ``dtmf_rx_get`` after every chunk, ``dtmf_rx_free``);
* ``multimon-ng``: ``multimon-ng -q -a DTMF -t raw -`` on 22 050 Hz s16le (resampled
  here with an FFT, band-limited, no extra tool needed);
* ``dtmf2num``: ``dtmf2num <file.wav>`` with its default options (it removes DC and
  normalises the file itself).

A decoder that is not installed gets the column "not installed"; the others still run.

Material (all 8 kHz, every signal through a G.711 µ-law encode/decode at the end):

* **Keys**: per cell (interference class × SNR × twist) every one of the 16 keys
  ``reps`` times in a shuffled order; each key 50-100 ms of tone after 100-300 ms of
  interference alone; each tone within ±1 % of nominal, random phase; key level
  ``L`` uniform in -20 … -10 dBm0 with the low tone at ``L - twist/2`` and the high
  tone at ``L + twist/2`` dBm0 (twist > 0: high group louder, "reverse twist").
* **SNR** = the key's power (both tones) over the interference's power, both measured
  over the key's own samples: the interference around each key is scaled to it (the
  gain changes over 10 ms in the middle of the pause, never under a key).
* **Classes**: ``speech`` (espeak-ng: English, German, French, Spanish, Italian and
  Mandarin texts, 8 voice variants, 4 speeds and pitches; each key placed where
  speech is active; skipped with a note when espeak-ng is missing), ``music``
  (synthetic piano melodies and chords of notes with harmonics from
  ``tools/talkoff.py``), ``noise`` (white and pink, alternately).
* **Talk-off**: the same kinds of material with no key at all: espeak-ng speech plus
  the shipped prompts (recorded speech), synthetic music (chords, sweeps, vowels, DTMF
  pairs with a strong third tone, piano melodies) plus the shipped music on hold, and
  white/pink noise at -30 … -10 dBm0.

Scoring: the decoded string of a cell is aligned to the sent one (longest matching
blocks, :class:`difflib.SequenceMatcher`); matched keys are "detected", every other
decoded key is a false digit.  A twist of +6 dB is beyond Q.24's acceptance (high
group up to 4 dB louder) and switchd rejects it by design (tests/test_dtmf.py), so
those cells are shown apart and left out of the ranking.  The ranking (the issue's
rule): among the decoders with zero false digits on the talk-off material, the one
that detects the most in-spec keys is first; false digits inside the key cells (a key
heard twice, or a wrong key) are shown beside each figure.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import difflib
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from switchd.lines import g711
from switchd.lines.dtmf import COL_FREQS, DBM0_PEAK, DIGITS, ROW_FREQS, detect_digits

__all__ = [
    "CLASSES",
    "SNRS_DB",
    "TWISTS_DB",
    "Cell",
    "DtmfBenchResult",
    "Decoder",
    "KeyMaterial",
    "bench_dtmf",
    "decoders",
    "format_table",
    "key_material",
    "music_bed",
    "run_dtmf_bench",
    "score",
    "speech_bed",
    "talkoff_material",
]

RATE = 8000
_ROOT = Path(__file__).resolve().parent.parent
CLASSES: tuple[str, ...] = ("speech", "music", "noise")
SNRS_DB: tuple[float, ...] = (20.0, 15.0, 10.0, 8.0, 6.0)
TWISTS_DB: tuple[float, ...] = (0.0, -3.0, -6.0, 3.0, 6.0)
#: Reverse twist (high group louder) that Q.24 asks a receiver to accept (REFERENCE.md).
MAX_SPEC_REVERSE_TWIST_DB = 4.0
KEY_LEVEL_DBM0 = (-20.0, -10.0)
KEY_ON_MS = (50.0, 100.0)
KEY_GAP_MS = (100.0, 300.0)
KEY_FREQ_ERROR = 0.01
_MULTIMON_RATE = 22050


# --- material ----------------------------------------------------------------------------------


def _load_talkoff() -> ModuleType:
    """tools/talkoff.py (the talk-off material generators) from the source tree.

    Raises RuntimeError when the tree is not beside the package (an installed wheel).
    """
    path = _ROOT / "tools" / "talkoff.py"
    if not path.is_file():
        raise RuntimeError(f"{path} not found: run the DTMF bench from a source checkout")
    spec = importlib.util.spec_from_file_location("switchd_talkoff_tool", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def have_espeak() -> bool:
    """True when espeak-ng is on PATH (the speech class needs it)."""
    return shutil.which("espeak-ng") is not None


def g711_round_trip(x: np.ndarray) -> np.ndarray:
    """Saturate float/int ``x`` (1-D, 8 kHz, int16 scale) to int16 and pass it through
    µ-law encode/decode (what a G.711 line delivers); int16 [n]."""
    pcm = np.clip(np.round(np.asarray(x, dtype=np.float64)), -32768, 32767).astype(np.int16)
    return g711.ulaw_decode(g711.ulaw_encode(pcm))


def _noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS ``white`` or ``pink`` (-3 dB/octave above 50 Hz) noise, float64 [n]."""
    w = rng.standard_normal(n)
    if kind == "pink":
        spec = np.fft.rfft(w)
        f = np.fft.rfftfreq(n, 1.0 / RATE)
        spec /= np.sqrt(np.maximum(f, 50.0))
        w = np.fft.irfft(spec, n)
    return w / max(float(np.sqrt(np.mean(w**2))), 1e-12)


def speech_bed(seconds: float, seed: int) -> np.ndarray:
    """espeak-ng speech from tools/talkoff.py, clips back to back, float64 (int16 scale)."""
    talk = _load_talkoff()
    return np.concatenate(
        [c.astype(np.float64) for _, c in talk.speech_clips(seconds, seed=seed)]
    )


def music_bed(seconds: float, seed: int) -> np.ndarray:
    """Synthetic music: piano-like melodies and chords with harmonics (tools/talkoff.py),
    alternating 4 s pieces; float64 (int16 scale)."""
    talk = _load_talkoff()
    piano = np.concatenate(
        [c.astype(np.float64) for _, c in talk.piano_clips(seconds / 2, seed, 8.0)]
    )
    chords = [c.astype(np.float64) for label, c in talk.music_clips(seconds * 2, seed)
              if label == "chords"]
    parts: list[np.ndarray] = []
    step = 4 * RATE
    for i, ch in enumerate(chords):
        parts.append(ch)
        parts.append(piano[i * step : (i + 1) * step])
    return np.concatenate(parts)


@dataclass(frozen=True)
class KeyMaterial:
    """One cell's signal: ``samples`` (int16 [n], 8 kHz, after G.711), the ``sent`` keys,
    each key's SNR in dB as built (float64 [keys]: key power over interference power
    on the key's samples, before G.711) and where each key sounds (``spans``: int64
    [keys, 2], first and one-past-last sample)."""

    samples: np.ndarray
    sent: str
    key_snr_db: np.ndarray
    spans: np.ndarray


def key_material(
    cls: str,
    snr_db: float,
    twist_db: float,
    reps: int = 1,
    seed: int = 1,
    bed: np.ndarray | None = None,
) -> KeyMaterial:
    """Keys under interference of class ``cls`` ("speech", "music" or "noise") at
    ``snr_db`` dB SNR and ``twist_db`` dB twist: all 16 keys ``reps`` times, shuffled.

    Definitions (level, twist, SNR, timing) in the module docstring.  ``bed``
    (float64, int16 scale, 8 kHz; several seconds or more) is the interference to draw
    from for "speech" and "music" (None: generated here, 60 s, which costs seconds for
    speech); noise is always generated.  Deterministic for a given ``seed``.
    Raises ValueError for an unknown class or reps < 1, RuntimeError when speech is
    asked for without espeak-ng and without a ``bed``.
    """
    if cls not in CLASSES:
        raise ValueError(f"unknown interference class {cls!r} (one of {CLASSES})")
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    rng = np.random.default_rng([seed, CLASSES.index(cls), int(snr_db * 10), int(twist_db * 10) + 100])
    if cls != "noise" and bed is None:
        bed = speech_bed(60.0, seed) if cls == "speech" else music_bed(60.0, seed)
    keys = "".join(rng.permutation(list(DIGITS * reps)))
    spans: list[tuple[int, int]] = []
    pos = 0
    segments: list[np.ndarray] = []
    gains: list[np.ndarray] = []
    tones: list[np.ndarray] = []
    for i, key in enumerate(keys):
        gap = int(rng.uniform(*KEY_GAP_MS) * RATE / 1000)
        on = int(rng.uniform(*KEY_ON_MS) * RATE / 1000)
        level = float(rng.uniform(*KEY_LEVEL_DBM0))
        k = DIGITS.index(key)
        t = np.arange(on) / RATE
        tone = np.zeros(gap + on)
        power = 0.0
        for f, lvl in ((ROW_FREQS[k // 4], level - twist_db / 2), (COL_FREQS[k % 4], level + twist_db / 2)):
            amp = DBM0_PEAK * 10 ** (lvl / 20)
            fr = f * (1 + rng.uniform(-KEY_FREQ_ERROR, KEY_FREQ_ERROR))
            tone[gap:] += amp * np.sin(2 * np.pi * fr * t + rng.uniform(0, 2 * np.pi))
            power += amp * amp / 2
        if cls == "noise":
            seg = _noise("white" if i % 2 == 0 else "pink", gap + on, rng)
        else:
            assert bed is not None
            seg = _active_piece(bed, gap, on, rng)
        p_int = float(np.mean(seg[gap:] ** 2))
        gain = np.sqrt(power / 10 ** (snr_db / 10) / max(p_int, 1e-9))
        segments.append(seg)
        gains.append(np.full(gap + on, gain))
        tones.append(tone)
        spans.append((pos + gap, pos + gap + on))
        pos += gap + on
    tail = int(0.2 * RATE)
    interference = np.concatenate(segments + [np.zeros(tail)])
    gain = np.concatenate(gains + [np.full(tail, gains[-1][0])])
    # The gain changes over 10 ms centred 50 ms into each pause, far from every key.
    shift = int(0.05 * RATE)
    gain = np.concatenate([np.full(shift, gain[0]), gain[:-shift]])
    ramp = int(0.01 * RATE)
    gain = np.convolve(np.pad(gain, (ramp // 2, ramp - 1 - ramp // 2), mode="edge"),
                       np.ones(ramp) / ramp, mode="valid")
    interference *= gain
    keyed = np.concatenate(tones + [np.zeros(tail)])
    snr = np.array([10 * np.log10(np.mean(keyed[a:b] ** 2) / np.mean(interference[a:b] ** 2))
                    for a, b in spans])
    return KeyMaterial(g711_round_trip(interference + keyed), keys, snr,
                       np.array(spans, dtype=np.int64).reshape(-1, 2))


def _active_piece(bed: np.ndarray, gap: int, on: int, rng: np.random.Generator) -> np.ndarray:
    """A piece of ``bed`` of ``gap + on`` samples whose last ``on`` samples are active
    (power within 10 dB of the bed's loud-part power), so SNR scaling never blows up a
    pause into loud hiss; float64 [gap + on]."""
    n = gap + on
    loud = float(np.mean(bed[np.abs(bed) > 0.05 * np.max(np.abs(bed))] ** 2))
    best: np.ndarray | None = None
    best_p = -1.0
    for _ in range(50):
        s = int(rng.integers(0, bed.size - n))
        piece = bed[s : s + n]
        p = float(np.mean(piece[gap:] ** 2))
        if p >= 0.1 * loud:
            return piece.copy()
        if p > best_p:
            best, best_p = piece, p
    assert best is not None
    return best.copy()


def talkoff_material(
    seconds: float, seed: int = 1, classes: tuple[str, ...] = CLASSES
) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (class, int16 [n] after G.711) pieces of key-free material, about ``seconds``
    per class (definitions in the module docstring; speech is skipped without espeak-ng)."""
    talk = _load_talkoff()
    if "speech" in classes and have_espeak():
        made = 0.0
        for _, clip in talk.speech_clips(seconds * 0.8, seed=seed + 100):
            made += clip.size / RATE
            yield "speech", g711_round_trip(clip)
        for wav in sorted(_ROOT.glob("prompts/*/*.wav")):
            if made >= seconds or "moh" in wav.parts:
                continue
            clip = _read_wav(wav)
            if clip is not None:
                made += clip.size / RATE
                yield "speech", g711_round_trip(clip)
    if "music" in classes:
        made = 0.0
        for wav in sorted(_ROOT.glob("prompts/moh/*.wav")):
            clip = _read_wav(wav)
            if clip is not None:
                made += clip.size / RATE
                yield "music", g711_round_trip(clip)
        rest = max(seconds - made, 0.0)
        for _, clip in talk.music_clips(rest / 2, seed=seed + 100):
            yield "music", g711_round_trip(clip)
        for _, clip in talk.piano_clips(rest / 2, seed=seed + 100, clip_seconds=20.0):
            yield "music", g711_round_trip(clip)
    if "noise" in classes:
        rng = np.random.default_rng(seed + 100)
        made = 0.0
        i = 0
        while made < seconds:
            level = float(rng.uniform(-30.0, -10.0))
            x = _noise("white" if i % 2 == 0 else "pink", 10 * RATE, rng)
            yield "noise", g711_round_trip(x * DBM0_PEAK / np.sqrt(2) * 10 ** (level / 20))
            made += 10.0
            i += 1


def _read_wav(path: Path) -> np.ndarray | None:
    """int16 [n] of an 8 kHz mono 16-bit WAV, None for any other format."""
    with wave.open(str(path)) as w:
        if w.getframerate() != RATE or w.getsampwidth() != 2 or w.getnchannels() != 1:
            return None
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()


# --- decoders ----------------------------------------------------------------------------------


@dataclass
class Decoder:
    """One DTMF decoder: ``decode(int16 [n] at 8 kHz) -> digits``, or None and ``note`` why not."""

    name: str
    decode: Callable[[np.ndarray], str] | None
    note: str = ""


def _spandsp_decoder() -> Decoder:
    """spandsp's dtmf_rx through ctypes on libspandsp.so.2 (API of spandsp 0.0.6's dtmf.h)."""
    path = ctypes.util.find_library("spandsp") or "libspandsp.so.2"
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return Decoder("spandsp", None, "not installed (apt-get install libspandsp2)")
    lib.dtmf_rx_init.restype = ctypes.c_void_p
    lib.dtmf_rx_init.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.dtmf_rx.restype = ctypes.c_int
    lib.dtmf_rx.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
    lib.dtmf_rx_get.restype = ctypes.c_size_t
    lib.dtmf_rx_get.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.dtmf_rx_free.restype = ctypes.c_int
    lib.dtmf_rx_free.argtypes = [ctypes.c_void_p]

    def decode(x: np.ndarray) -> str:
        s = lib.dtmf_rx_init(None, None, None)
        if not s:
            raise RuntimeError("dtmf_rx_init failed")
        pcm = np.ascontiguousarray(x, dtype=np.int16)
        buf = ctypes.create_string_buffer(129)
        out: list[str] = []
        try:
            for i in range(0, pcm.size, 160):
                chunk = pcm[i : i + 160]
                lib.dtmf_rx(s, chunk.ctypes.data, chunk.size)
                n = lib.dtmf_rx_get(s, buf, 128)
                if n:
                    out.append(buf.raw[:n].decode("ascii"))
        finally:
            lib.dtmf_rx_free(s)
        return "".join(out)

    return Decoder("spandsp", decode, "dtmf_rx, libspandsp.so.2, default parameters")


def resample_to_22050(x: np.ndarray) -> np.ndarray:
    """Band-limited (FFT) resampling of int16 [n] at 8 kHz to int16 at 22 050 Hz (the
    input rate multimon-ng's demodulators require); the tail is padded to 160 samples."""
    n = x.size + (-x.size) % 160
    spec = np.fft.rfft(x.astype(np.float64), n)
    m = n * _MULTIMON_RATE // RATE
    y = np.fft.irfft(spec, m) * (m / n)
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def _multimon_decoder() -> Decoder:
    """multimon-ng's DTMF demodulator on s16le raw at 22 050 Hz from stdin."""
    exe = shutil.which("multimon-ng")
    if exe is None:
        return Decoder("multimon-ng", None, "not installed (apt-get install multimon-ng)")

    def decode(x: np.ndarray) -> str:
        raw = resample_to_22050(x).astype("<i2").tobytes()
        proc = subprocess.run([exe, "-q", "-a", "DTMF", "-t", "raw", "-"], input=raw,
                              capture_output=True, check=True)
        return "".join(line.split(":", 1)[1].strip()
                       for line in proc.stdout.decode(errors="replace").splitlines()
                       if line.startswith("DTMF:"))

    return Decoder("multimon-ng", decode, "multimon-ng -a DTMF, 22 050 Hz input")


def _dtmf2num_decoder() -> Decoder:
    """dtmf2num on a temporary 8 kHz WAV file, default options."""
    exe = shutil.which("dtmf2num")
    if exe is None:
        return Decoder("dtmf2num", None, "not installed (apt-get install dtmf2num)")

    def decode(x: np.ndarray) -> str:
        with tempfile.TemporaryDirectory(prefix="switchd-dtmf-") as tmp:
            path = Path(tmp) / "in.wav"
            with wave.open(str(path), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(RATE)
                w.writeframes(np.asarray(x, dtype="<i2").tobytes())
            proc = subprocess.run([exe, str(path)], capture_output=True, check=True)
        for line in proc.stdout.decode(errors="replace").splitlines():
            if line.startswith("- DTMF numbers:"):
                got = line.split(":", 1)[1].strip()
                return "" if got == "none" else got
        raise RuntimeError("dtmf2num printed no '- DTMF numbers:' line")

    return Decoder("dtmf2num", decode, "dtmf2num 0.1.1, default options")


def decoders() -> list[Decoder]:
    """All decoders, switchd first; the missing ones with ``decode`` None and a note."""
    ours = Decoder("switchd", detect_digits, "switchd.lines.dtmf.detect_digits")
    return [ours, _spandsp_decoder(), _multimon_decoder(), _dtmf2num_decoder()]


# --- scoring -----------------------------------------------------------------------------------


def score(sent: str, got: str) -> tuple[int, int]:
    """(keys detected, false digits) of decoded ``got`` against ``sent``: the keys
    matched in order (longest matching blocks, no junk heuristic) and the rest of ``got``."""
    sm = difflib.SequenceMatcher(None, sent, got, autojunk=False)
    matched = sum(b.size for b in sm.get_matching_blocks())
    return matched, len(got) - matched


@dataclass
class Cell:
    """One row of the key table: class, SNR (dB), twist (dB), keys sent, and per decoder
    keys detected and false digits (None: decoder not installed)."""

    cls: str
    snr_db: float
    twist_db: float
    keys: int
    detected: dict[str, int | None] = field(default_factory=dict)
    false: dict[str, int | None] = field(default_factory=dict)

    @property
    def in_spec(self) -> bool:
        """Twist inside Q.24's acceptance (REFERENCE.md: -8 … +4 dB)."""
        return -8.0 <= self.twist_db <= MAX_SPEC_REVERSE_TWIST_DB


@dataclass
class DtmfBenchResult:
    """Everything ``switchd bench dtmf`` measured (``--json`` prints it)."""

    decoders: dict[str, str]
    cells: list[Cell]
    talkoff: dict[str, dict[str, Any]]
    summary: dict[str, dict[str, Any]]
    first: str | None
    notes: list[str]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (cells as dicts with ``class`` and ``in_spec``)."""
        d = asdict(self)
        d["cells"] = [{**asdict(c), "in_spec": c.in_spec} for c in self.cells]
        for c in d["cells"]:
            c["class"] = c.pop("cls")
        return d


def bench_dtmf(
    *,
    quick: bool = False,
    reps: int | None = None,
    talkoff_seconds: float | None = None,
    snrs: tuple[float, ...] = SNRS_DB,
    twists: tuple[float, ...] = TWISTS_DB,
    classes: tuple[str, ...] = CLASSES,
    seed: int = 1,
    only: tuple[str, ...] | None = None,
) -> DtmfBenchResult:
    """Generate the material and run every installed decoder on it.

    ``quick``: 1 repetition of the 16 keys per cell and 60 s of talk-off material per
    class (default: 2 and 300 s); ``reps`` / ``talkoff_seconds`` override.  ``only``
    restricts the decoders by name.  Speech is skipped, with a note, without espeak-ng.
    """
    t0 = time.perf_counter()
    reps = reps if reps is not None else (1 if quick else 2)
    talk_s = talkoff_seconds if talkoff_seconds is not None else (60.0 if quick else 300.0)
    notes: list[str] = []
    if "speech" in classes and not have_espeak():
        notes.append("espeak-ng not installed: the speech class is skipped "
                     "(apt-get install espeak-ng)")
        classes = tuple(c for c in classes if c != "speech")
    decs = [d for d in decoders() if only is None or d.name in only]
    cells: list[Cell] = []
    for cls in classes:
        bed = None
        if cls == "speech":
            bed = speech_bed(120.0 if not quick else 60.0, seed)
        elif cls == "music":
            bed = music_bed(120.0 if not quick else 60.0, seed)
        for snr in snrs:
            for tw in twists:
                mat = key_material(cls, snr, tw, reps, seed, bed)
                cell = Cell(cls, snr, tw, len(mat.sent))
                for d in decs:
                    if d.decode is None:
                        cell.detected[d.name] = cell.false[d.name] = None
                        continue
                    det, fal = score(mat.sent, d.decode(mat.samples))
                    cell.detected[d.name], cell.false[d.name] = det, fal
                cells.append(cell)
    talkoff: dict[str, dict[str, Any]] = {}
    pieces: dict[str, list[np.ndarray]] = {}
    for cls, x in talkoff_material(talk_s, seed, classes):
        pieces.setdefault(cls, []).append(x)
    for cls, xs in pieces.items():
        row: dict[str, Any] = {"seconds": round(sum(x.size for x in xs) / RATE, 1)}
        for d in decs:
            if d.decode is None:
                row[d.name] = None
                continue
            # One piece at a time: a digit is never made of the end of one and the next.
            row[d.name] = sum(len(d.decode(x)) for x in xs)
        talkoff[cls] = row
    summary: dict[str, dict[str, Any]] = {}
    for d in decs:
        if d.decode is None:
            summary[d.name] = {"installed": False}
            continue
        spec = [c for c in cells if c.in_spec]
        keys = sum(c.keys for c in spec)
        det = sum(c.detected[d.name] or 0 for c in spec)
        low = [c for c in spec if c.snr_db <= 10.0]
        summary[d.name] = {
            "installed": True,
            "detected_in_spec": det,
            "keys_in_spec": keys,
            "detected_pct": round(100.0 * det / keys, 1) if keys else None,
            "detected_pct_snr_le_10": round(
                100.0 * sum(c.detected[d.name] or 0 for c in low)
                / max(sum(c.keys for c in low), 1), 1),
            "false_in_keys": sum(c.false[d.name] or 0 for c in cells),
            "talkoff_false": sum(talkoff[c][d.name] for c in talkoff),
        }
    clean = [n for n, s in summary.items() if s.get("installed") and s["talkoff_false"] == 0]
    first = max(clean, key=lambda n: summary[n]["detected_in_spec"]) if clean else None
    return DtmfBenchResult(
        decoders={d.name: d.note for d in decs},
        cells=cells,
        talkoff=talkoff,
        summary=summary,
        first=first,
        notes=notes,
        seconds=round(time.perf_counter() - t0, 1),
    )


# --- report ------------------------------------------------------------------------------------


def _decoder_cells(cs: list[Cell], names: Sequence[str], keys: int, width: int) -> str:
    """One table row's cells: per decoder, keys detected in % and (false digits) over the
    cells ``cs`` holding ``keys`` keys, or "not installed"."""
    row = ""
    for n in names:
        if cs[0].detected[n] is None:
            row += f"{'not installed':>{width}}"
        else:
            det = sum(c.detected[n] or 0 for c in cs)
            fal = sum(c.false[n] or 0 for c in cs)
            row += f"{_pct(det, keys) + f' ({fal})':>{width}}"
    return row


def _pct(det: int | None, keys: int) -> str:
    return "n/a" if det is None else f"{100.0 * det / keys:5.1f}"


def format_table(res: DtmfBenchResult) -> str:
    """The result as text tables: detection % (false digits) per class and SNR over the
    in-spec twists, per twist over SNR ≤ 10 dB, talk-off false digits, and the summary."""
    names = list(res.decoders)
    width = 16
    head = "".join(f"{n:>{width}}" for n in names)
    lines = ["DTMF keys detected % (false digits), twists inside Q.24 (-6 … +3 dB); "
             "SNR = key power / interference power over the key's samples; after G.711 µ-law",
             f"{'class':<8}{'SNR dB':>7}{'keys':>6}" + head]
    groups: dict[tuple[str, float], list[Cell]] = {}
    for c in res.cells:
        if c.in_spec:
            groups.setdefault((c.cls, c.snr_db), []).append(c)
    for (cls, snr), cs in groups.items():
        keys = sum(c.keys for c in cs)
        lines.append(f"{cls:<8}{snr:>7.0f}{keys:>6}" + _decoder_cells(cs, names, keys, width))
    lines += ["", "by twist (dB, + = high group louder), all classes, SNR <= 10 dB",
              f"{'twist':<8}{'':>7}{'keys':>6}" + head]
    twists = sorted({c.twist_db for c in res.cells})
    for tw in twists:
        cs = [c for c in res.cells if c.twist_db == tw and c.snr_db <= 10.0]
        if not cs:
            continue
        keys = sum(c.keys for c in cs)
        tag = "" if cs[0].in_spec else " *"
        lines.append(f"{tw:+6.0f}{tag:<2}{'':>7}{keys:>6}"
                     + _decoder_cells(cs, names, keys, width))
    lines.append("  * beyond Q.24's +4 dB reverse twist: not counted in the ranking")
    lines += ["", "talk-off: false digits on key-free material",
              f"{'class':<8}{'min':>7}{'':>6}" + head]
    for cls, row in res.talkoff.items():
        cols = "".join(
            f"{'not installed' if row[n] is None else row[n]:>{width}}" for n in names)
        lines.append(f"{cls:<8}{row['seconds'] / 60:>7.1f}{'':>6}" + cols)
    lines += ["", "summary (in-spec keys)", f"{'':<21}" + head]
    for label, key in (("detected %", "detected_pct"), ("  at SNR <= 10 dB %", "detected_pct_snr_le_10"),
                       ("false in key cells", "false_in_keys"), ("talk-off false", "talkoff_false")):
        row = f"{label:<21}"
        for n in names:
            s = res.summary[n]
            row += f"{(s[key] if s.get('installed') else 'not installed')!s:>{width}}"
        lines.append(row)
    lines.append(f"first on detection among those with zero talk-off: {res.first or 'none'}")
    lines += [f"note: {n}" for n in res.notes]
    lines.append(f"({res.seconds:.0f} s)")
    return "\n".join(lines)


def run_dtmf_bench(args: argparse.Namespace) -> int:
    """``switchd bench dtmf``: print the table (or JSON); exit status 0 (a measurement),
    2 for an unknown ``--only`` decoder name."""
    known = ("switchd", "spandsp", "multimon-ng", "dtmf2num")
    unknown = [n for n in args.only or [] if n not in known]
    if unknown:
        print(f"switchd bench dtmf: unknown decoder {', '.join(unknown)} "
              f"(one of {', '.join(known)})", file=sys.stderr)
        return 2
    res = bench_dtmf(quick=args.quick, reps=args.reps, talkoff_seconds=args.talkoff_seconds,
                     seed=args.seed, only=tuple(args.only) if args.only else None)
    if args.json:
        print(json.dumps(res.to_json()))
    else:
        print(format_table(res))
    return 0


def add_dtmf_bench_parser(bsub: Any) -> argparse.ArgumentParser:
    """``switchd bench dtmf``."""
    p = bsub.add_parser("dtmf", help="DTMF detection under speech/music/noise and talk-off, "
                        "switchd beside spandsp, multimon-ng and dtmf2num")
    p.add_argument("--quick", action="store_true",
                   help="16 keys per cell and 1 min of talk-off material per class")
    p.add_argument("--reps", type=int, default=None,
                   help="repetitions of the 16 keys per cell (default 2, --quick 1)")
    p.add_argument("--talkoff-seconds", type=float, default=None,
                   help="seconds of key-free material per class (default 300, --quick 60)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--only", action="append", default=None,
                   help="run only this decoder (repeatable): switchd, spandsp, multimon-ng, "
                   "dtmf2num")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_dtmf_bench)
    return p
