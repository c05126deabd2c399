"""Synthesise the demo music on hold: a soft 20-second chord loop, 8 kHz mono 16-bit WAV.

Usage::

    python tools/make_demo_moh.py                  # writes prompts/moh/demo.wav
    python tools/make_demo_moh.py --out /tmp/x.wav --seconds 40

Why generate it: switchd ships without licensed music (playing commercial
recordings on hold needs a public-performance licence in most countries), and
a demo that holds a call should sound like hold music, not a test tone.

What it is: I–vi–IV–V in C major (C, Am, F, G), one chord per quarter of the
loop, each as a slowly swelling pad plus a gentle plucked arpeggio. Every note
is rendered into a circular buffer, so the tails of the last chord ring over
into the first one and the loop point is seamless.

Telephone rules it follows:

* Only pure sines with fundamentals from 262 to 1047 Hz: nothing above
  1.1 kHz, so the DTMF detector can never see a high-group tone (1209–1633 Hz)
  and cannot mistake the music for a key press (Q.24 talk-off).
* Peak at −7 dBFS and an RMS around −20 dBFS: audible over a phone line,
  never clipping after G.711 companding or the mixer's saturation.

Needs numpy only (the WAV is written with the stdlib ``wave`` module).
"""

from __future__ import annotations

import argparse
import wave
from pathlib import Path

import numpy as np

RATE = 8000
#: Equal-tempered frequencies (A4 = 440 Hz) of the notes used.
NOTE_HZ = {
    "C4": 261.63, "D4": 293.66, "E4": 329.63, "F4": 349.23, "G4": 392.00, "A4": 440.00,
    "B4": 493.88, "C5": 523.25, "D5": 587.33, "E5": 659.25, "F5": 698.46, "G5": 783.99,
    "A5": 880.00, "B5": 987.77, "C6": 1046.50,
}
#: (pad voicing, arpeggio pattern) per chord, in loop order.
CHORDS = [
    (("C4", "E4", "G4"), ("C5", "E5", "G5", "C6", "G5", "E5", "C5", "E5")),
    (("A4", "C5", "E5"), ("A4", "C5", "E5", "A5", "E5", "C5", "A4", "C5")),
    (("F4", "A4", "C5"), ("F4", "A4", "C5", "F5", "C5", "A4", "F4", "A4")),
    (("G4", "B4", "D5"), ("G4", "B4", "D5", "G5", "D5", "B4", "G4", "B4")),
]
PEAK = 10 ** (-7 / 20)
HIGHEST_HZ = 1100.0


def _add(out: np.ndarray, start_s: float, tone: np.ndarray) -> None:
    """Add ``tone`` into the circular ``out`` starting at ``start_s`` seconds (wrapping)."""
    idx = (int(round(start_s * RATE)) + np.arange(len(tone))) % len(out)
    np.add.at(out, idx, tone)


def _pad(freq: float, length_s: float) -> np.ndarray:
    """A soft sustained note: two sines 0.6 Hz apart (a slow chorus), 0.8 s swell, 1.5 s release."""
    t = np.arange(int((length_s + 1.5) * RATE)) / RATE
    swell = np.clip(t / 0.8, 0.0, 1.0) ** 2
    release = np.clip((length_s + 1.5 - t) / 1.5, 0.0, 1.0) ** 2
    wave_ = np.sin(2 * np.pi * (freq - 0.3) * t) + np.sin(2 * np.pi * (freq + 0.3) * t + 1.0)
    return 0.5 * wave_ * swell * release


def _pluck(freq: float) -> np.ndarray:
    """A plucked note: 8 ms attack, exponential decay, faded to zero by 1.6 s."""
    t = np.arange(int(1.6 * RATE)) / RATE
    env = np.minimum(t / 0.008, 1.0) * np.exp(-t / 0.35) * np.clip((1.6 - t) / 0.3, 0.0, 1.0)
    return env * np.sin(2 * np.pi * freq * t)


def synthesise(seconds: float = 20.0) -> np.ndarray:
    """Return the loop as int16 mono at 8 kHz, ``seconds`` long (a multiple of 4 chords)."""
    out = np.zeros(int(seconds * RATE), dtype=np.float64)
    bar = seconds / len(CHORDS)
    for i, (pad, arpeggio) in enumerate(CHORDS):
        start = i * bar
        for note in pad:
            _add(out, start, 0.22 * _pad(NOTE_HZ[note], bar))
        step = bar / len(arpeggio)
        for j, note in enumerate(arpeggio):
            accent = 1.0 if j % 4 == 0 else 0.75
            _add(out, start + j * step, 0.35 * accent * _pluck(NOTE_HZ[note]))
    assert max(NOTE_HZ[n] for p, a in CHORDS for n in (*p, *a)) < HIGHEST_HZ
    out *= PEAK / np.abs(out).max()
    return np.clip(np.rint(out * 32767), -32768, 32767).astype(np.int16)


def write_wav(path: Path, samples: np.ndarray) -> None:
    """Write int16 mono ``samples`` as an 8 kHz 16-bit PCM WAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.astype("<i2").tobytes())


def main() -> None:
    """Command line: synthesise and write the loop, then say where and how loud."""
    default = Path(__file__).resolve().parent.parent / "prompts" / "moh" / "demo.wav"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=default, help=f"output WAV (default {default})")
    parser.add_argument("--seconds", type=float, default=20.0, help="loop length (default 20)")
    args = parser.parse_args()
    samples = synthesise(args.seconds)
    write_wav(args.out, samples)
    x = samples.astype(np.float64) / 32768
    rms_db = 20 * np.log10(np.sqrt(np.mean(x**2)))
    peak_db = 20 * np.log10(np.abs(x).max())
    print(f"wrote {args.out}: {len(samples) / RATE:.1f} s, peak {peak_db:.1f} dBFS, "
          f"RMS {rms_db:.1f} dBFS")


if __name__ == "__main__":
    main()
