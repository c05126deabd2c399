"""DTMF talk-off measurement: how many false digits per hour of speech and music-like audio.

Why: Q.24 asks that speech and music do not produce digits; the only honest number is
false digits per hour of material.  Speech comes from espeak-ng (several voices,
languages, speeds and pitches); music-like worst cases are synthesised (chords with
harmonics, sweeps, vowel-like harmonic series).  All material is 8 kHz int16.

Usage:  python tools/talkoff.py [--minutes 30] [--seed 1]
Prints minutes of material per kind, false digits found, and false digits per hour.
Also imported by tests/test_dtmf_talkoff.py for its material generators.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np

RATE = 8000
DBM0_PEAK = 22700.0

TEXTS: tuple[tuple[str, str], ...] = (
    (
        "en",
        "Thank you for calling the customer service centre. Your call is important to us. "
        "Please hold the line and one of our agents will be with you shortly. If you know the "
        "extension of the person you wish to reach, you may dial it at any time. For billing "
        "questions, press one. For technical support, press two. To speak to an operator, "
        "stay on the line. We are currently experiencing a higher than usual volume of calls. "
        "Did you know that you can also manage your account online, twenty four hours a day, "
        "seven days a week? Visit our website to check your balance, pay a bill, or change "
        "your tariff. Calls may be recorded for quality and training purposes.",
    ),
    (
        "en",
        "It was a bright cold day in April, and the clocks were striking thirteen. The hallway "
        "smelt of boiled cabbage and old rag mats. At one end of it a coloured poster, too large "
        "for indoor display, had been tacked to the wall. Outside, even through the shut "
        "window pane, the world looked cold. Down in the street little eddies of wind were "
        "whirling dust and torn paper into spirals, and though the sun was shining and the sky "
        "a harsh blue, there seemed to be no colour in anything, except the posters that were "
        "plastered everywhere. Oh, really? Well, I never! Hmm, mmm, aaah, eeeh, oooh, yes, yes.",
    ),
    (
        "en",
        "My account number is four seven one one, two nine eight three, and my postcode is "
        "S W one A, one A A. I called yesterday at half past nine and again at a quarter to "
        "eleven, but nobody answered. Could you please check whether the engineer is coming "
        "on Tuesday or on Wednesday? The broadband keeps dropping every evening around seven "
        "o'clock, and the router lights go orange, then red, then green again. I have already "
        "restarted it three times. Honestly, I would like to speak to a supervisor, please.",
    ),
    (
        "de",
        "Guten Tag, Sie sind mit dem Kundenservice verbunden. Bitte haben Sie einen Moment "
        "Geduld, der nächste freie Mitarbeiter ist gleich für Sie da. Wenn Sie Fragen zu "
        "Ihrer Rechnung haben, drücken Sie bitte die Eins. Für technische Unterstützung "
        "drücken Sie die Zwei. Wir danken für Ihr Verständnis und Ihre Geduld.",
    ),
    (
        "fr",
        "Bonjour et bienvenue. Tous nos conseillers sont actuellement en ligne. Veuillez "
        "patienter, votre appel sera traité dans les meilleurs délais. Pour connaître le "
        "solde de votre compte, tapez un. Pour signaler un incident, tapez deux. Merci "
        "de votre patience, et à très bientôt.",
    ),
    (
        "es",
        "Buenos días, gracias por llamar. En este momento todos nuestros agentes están "
        "ocupados. Por favor, espere en línea y será atendido en breve. Si desea hablar "
        "con el departamento de ventas, marque uno. Para soporte técnico, marque dos.",
    ),
    (
        "it",
        "Buongiorno, grazie per aver chiamato. Tutti i nostri operatori sono occupati. "
        "La preghiamo di attendere in linea per non perdere la priorità acquisita.",
    ),
    (
        "cmn",
        "您好，欢迎致电客户服务中心。查询话费请按一，办理业务请按二，人工服务请按零。"
        "我们的客服代表正在忙，请您稍候。感谢您的耐心等待。",
    ),
)

#: espeak-ng voice variants: male, female, whisper-free, different formant sets.
VARIANTS: tuple[str, ...] = ("", "+m3", "+f2", "+f4", "+m7", "+klatt", "+klatt3", "+f5")
SPEEDS: tuple[int, ...] = (120, 160, 220, 300)
PITCHES: tuple[int, ...] = (20, 50, 80, 99)


def have_espeak() -> bool:
    """True when the espeak-ng binary is on PATH (speech material needs it)."""
    return shutil.which("espeak-ng") is not None


def resample_to_8k(x: np.ndarray, rate: int) -> np.ndarray:
    """Resample float ``x`` at ``rate`` Hz to 8 kHz: windowed-sinc low-pass at 3.6 kHz, then
    linear interpolation (the low-passed signal is ~3x oversampled, so the error is small)."""
    if rate == RATE:
        return x.astype(np.float64)
    taps = 127
    n = np.arange(taps) - (taps - 1) / 2
    fc = 3600.0 / rate
    h = 2 * fc * np.sinc(2 * fc * n) * np.blackman(taps)
    y = np.convolve(x.astype(np.float64), h / h.sum(), mode="same")
    t = np.arange(0, len(y) * RATE / rate) * (rate / RATE)
    return np.interp(t, np.arange(len(y)), y)


def espeak(text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """Synthesise ``text`` with espeak-ng; float64 samples at 8 kHz.

    Raises RuntimeError if espeak-ng is missing or fails.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    proc = subprocess.run(
        [exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
        capture_output=True,
        check=True,
    )
    data = proc.stdout
    # espeak-ng writes a streaming WAV (sizes 0x7fffffff): parse the header by hand.
    rate = int.from_bytes(data[24:28], "little")
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if cid == b"data":
            pcm = np.frombuffer(data[pos + 8 :][: (len(data) - pos - 8) // 2 * 2], "<i2")
            return resample_to_8k(pcm, rate)
        pos += 8 + size
    raise RuntimeError(f"espeak-ng gave no audio for voice {voice!r}")


def to_level(x: np.ndarray, rms_dbm0: float) -> np.ndarray:
    """Scale float ``x`` so its active-speech RMS is ``rms_dbm0`` (0 dBm0 RMS = 22700/√2); int16."""
    active = x[np.abs(x) > 0.05 * np.max(np.abs(x))] if np.any(x) else x
    rms = float(np.sqrt(np.mean(active**2))) if active.size else 1.0
    target = DBM0_PEAK / np.sqrt(2) * 10 ** (rms_dbm0 / 20)
    return np.clip(np.round(x * target / max(rms, 1e-9)), -32768, 32767).astype(np.int16)


def speech_clips(seconds: float, seed: int = 1) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (label, int16 8 kHz clip) of espeak-ng speech until ``seconds`` are produced.

    Voice, variant, speed, pitch and level (-25..-5 dBm0 RMS) vary per clip.
    """
    rng = np.random.default_rng(seed)
    made = 0.0
    i = 0
    while made < seconds:
        lang, text = TEXTS[i % len(TEXTS)]
        variant = VARIANTS[rng.integers(len(VARIANTS))]
        speed = int(SPEEDS[rng.integers(len(SPEEDS))])
        pitch = int(PITCHES[rng.integers(len(PITCHES))])
        level = float(rng.uniform(-25.0, -5.0))
        x = espeak(text, lang + variant, speed, pitch)
        clip = to_level(x, level)
        made += clip.size / RATE
        i += 1
        yield f"{lang}{variant} s={speed} p={pitch} {level:.0f}dBm0", clip


def _tone_with_harmonics(f0: float, t: np.ndarray, n_harm: int, decay: float) -> np.ndarray:
    out = np.zeros_like(t)
    for h in range(1, n_harm + 1):
        if h * f0 < RATE / 2 - 100:
            out += decay ** (h - 1) * np.sin(2 * np.pi * h * f0 * t + h)
    return out


def music_clips(seconds: float, seed: int = 1) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (label, int16 clip) of synthetic music-like worst cases, ``seconds`` in total.

    Kinds, in rotation: equal-tempered chords of 3-4 notes with harmonics; linear/log
    sweeps over 300-3400 Hz at 800-3000 Hz/s, alone or paired in the DTMF ratio 1.73
    (passing through 1, 5, 9, D); vowel-like harmonic series (f0 100-300 Hz, random
    formants, vibrato); DTMF pairs within ±1 % plus a third tone >= 150 Hz away with
    0-3 dB less power than the pair.
    """
    rng = np.random.default_rng(seed)
    made = 0.0
    k = 0
    while made < seconds:
        dur = 4.0
        t = np.arange(int(dur * RATE)) / RATE
        kind = k % 4
        if kind == 0:
            x = np.zeros_like(t)
            seg = int(0.5 * RATE)
            for s in range(0, t.size, seg):
                notes = rng.integers(40, 80, size=int(rng.integers(3, 5)))
                tt = t[s : s + seg]
                for m in notes:
                    f = 440.0 * 2 ** ((m - 69) / 12)
                    x[s : s + seg] += _tone_with_harmonics(f, tt, 6, float(rng.uniform(0.3, 0.8)))
            label = "chords"
        elif kind == 1:
            f_a, f_b = 300.0, 3400.0
            # Below ~630 Hz/s a pair gliding in exactly the DTMF ratio stays inside the
            # ±2.5 % window for > 50 ms: that is a DTMF tone by any definition.
            rate = float(rng.uniform(800, 3000))  # Hz/s
            span = (f_b - f_a) / rate
            ph = np.mod(t, span)
            if rng.random() < 0.5:
                inst = f_a + rate * ph
            else:
                inst = f_a * (f_b / f_a) ** (ph / span)
            x = np.sin(2 * np.pi * np.cumsum(inst) / RATE)
            if rng.random() < 0.5:
                x += np.sin(2 * np.pi * np.cumsum(inst * 1.73) / RATE)
            label = f"sweep {rate:.0f} Hz/s"
        elif kind == 2:
            f0 = float(rng.uniform(100, 300))
            vib = 1 + 0.02 * np.sin(2 * np.pi * float(rng.uniform(3, 7)) * t)
            phase = 2 * np.pi * np.cumsum(f0 * vib) / RATE
            formants = rng.uniform([300, 900, 2200], [900, 2200, 3200])
            x = np.zeros_like(t)
            for h in range(1, int(3800 / f0)):
                fh = h * f0
                gain = sum(1.0 / (1 + ((fh - fm) / 80.0) ** 2) for fm in formants)
                x += gain * np.sin(h * phase)
            label = f"vowel f0={f0:.0f}"
        else:
            x = np.zeros_like(t)
            seg = int(0.25 * RATE)
            for s in range(0, t.size, seg):
                tt = t[s : s + seg]
                r = float(rng.choice([697.0, 770.0, 852.0, 941.0])) * (1 + rng.uniform(-0.01, 0.01))
                c = float(rng.choice([1209.0, 1336.0, 1477.0, 1633.0])) * (
                    1 + rng.uniform(-0.01, 0.01)
                )
                third = float(rng.uniform(300, 3400))
                while min(abs(third - r), abs(third - c)) < 150:
                    third = float(rng.uniform(300, 3400))
                g3 = 10 ** (-float(rng.uniform(0, 3)) / 20)
                x[s : s + seg] = (
                    np.sin(2 * np.pi * r * tt)
                    + np.sin(2 * np.pi * c * tt)
                    + np.sqrt(2) * g3 * np.sin(2 * np.pi * third * tt)
                )
            label = "dtmf pair + third tone"
        level = float(rng.uniform(-20.0, -5.0))
        clip = to_level(x, level)
        made += dur
        k += 1
        yield label, clip


def harmonic_notes(
    f0: np.ndarray,
    seconds: float,
    partials: tuple[float, ...],
    level_dbm0: float = -10.0,
    seed: int = 0,
) -> np.ndarray:
    """Steady notes: one row per fundamental in ``f0`` (Hz), float64 [len(f0), samples].

    ``partials`` are the amplitudes of harmonics 1, 2, 3, ... relative to the
    fundamental (e.g. (1.0, 0.6) = a sine plus its 2nd harmonic at 0.6).  Phases are
    random per row and partial; the peak of the sum is scaled to ``level_dbm0``.
    Why: a note f with its 2nd harmonic 2f is the classic music talk-off (680 + 1360 Hz
    looks like 697 + 1336 = digit 2).
    """
    rng = np.random.default_rng(seed)
    f0 = np.asarray(f0, dtype=np.float64)
    t = np.arange(int(round(seconds * RATE))) / RATE
    x = np.zeros((f0.size, t.size))
    for h, g in enumerate(partials, start=1):
        ph = rng.uniform(0, 2 * np.pi, (f0.size, 1))
        x += g * np.sin(2 * np.pi * h * f0[:, None] * t + ph)
    return x * (DBM0_PEAK * 10 ** (level_dbm0 / 20) / sum(partials))


def piano_clips(
    seconds: float, seed: int = 1, clip_seconds: float = 30.0
) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (label, int16 clip) of synthetic piano-like music, ``seconds`` in total.

    Melodies of random notes over MIDI 48-96 (131-1976 Hz, so every DTMF row and column
    is a fundamental or 2nd harmonic somewhere), one tempo per clip (0.12-0.6 s per
    note).  Each note has 8 partials with a random spectral roll-off (0.35-0.8 per
    partial), slight piano inharmonicity (f_n = n·f·sqrt(1 + B·n²), B up to 4e-4), an
    exponential decay that is faster for higher partials, and rings on under the next
    note (sustain pedal) for one more note length.  Built note-by-note as array rows,
    so 10 minutes take about a second.
    """
    rng = np.random.default_rng(seed)
    made = 0.0
    while made < seconds:
        d = int(RATE * float(rng.uniform(0.12, 0.6)))
        n = max(1, int(clip_seconds * RATE) // d)
        midi = rng.integers(48, 97, size=n)
        f0 = 440.0 * 2.0 ** ((midi - 69) / 12.0)
        rolloff = rng.uniform(0.35, 0.8, size=(n, 1))
        inharm = rng.uniform(0.0, 4e-4, size=(n, 1))
        tau = rng.uniform(0.3, 1.5, size=(n, 1))  # seconds, fundamental
        t = np.arange(2 * d) / RATE
        attack = np.minimum(1.0, t / 0.005)
        notes = np.zeros((n, 2 * d))
        for h in range(1, 9):
            fh = h * f0[:, None] * np.sqrt(1.0 + inharm * h * h)
            amp = rolloff ** (h - 1) * np.where(fh < RATE / 2 - 200, 1.0, 0.0)
            env = np.exp(-t * h**0.5 / tau)
            ph = rng.uniform(0, 2 * np.pi, (n, 1))
            notes += amp * env * np.sin(2 * np.pi * fh * t + ph)
        notes *= attack
        x = np.zeros((n + 1) * d)
        x[: n * d] += notes[:, :d].reshape(-1)
        x[d:] += notes[:, d:].reshape(-1)
        level = float(rng.uniform(-25.0, -5.0))
        made += x.size / RATE
        yield f"piano {d / RATE * 1000:.0f} ms/note {level:.0f}dBm0", to_level(x, level)


def count_false_digits(clips: list[np.ndarray]) -> tuple[int, float, list[tuple[int, str]]]:
    """Run all ``clips`` through one streaming DtmfDetector (one channel per clip, 160-sample
    frames) and return (false digits, seconds of material, [(clip index, digit)])."""
    from switchd.lines.dtmf import DtmfDetector

    if not clips:
        return 0, 0.0, []
    n = max(c.size for c in clips)
    n += (-n) % 160
    x = np.zeros((len(clips), n), dtype=np.int16)
    for i, c in enumerate(clips):
        x[i, : c.size] = c
    det = DtmfDetector(len(clips))
    found: list[tuple[int, str]] = []
    for s in range(0, n, 160):
        found.extend((ch, d) for ch, d, _ in det.process(x[:, s : s + 160]))
    seconds = sum(c.size for c in clips) / RATE
    return len(found), seconds, found


def write_wav(path: Path, x: np.ndarray) -> None:
    """Write int16 mono 8 kHz ``x`` to ``path`` (for listening to a clip that talked off)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(x.astype("<i2").tobytes())


def main(argv: list[str] | None = None) -> int:
    """Measure and print false digits per hour; exit status 0 (it is a measurement, not a test)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="minutes of each kind")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dump", type=Path, default=None, help="write clips that talked off here")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    kinds: list[tuple[str, Iterator[tuple[str, np.ndarray]]]] = []
    if have_espeak():
        kinds.append(("speech (espeak-ng)", speech_clips(args.minutes * 60, args.seed)))
    else:
        print("espeak-ng not installed: speech skipped (apt-get install espeak-ng)")
    kinds.append(("music-like synthetic", music_clips(args.minutes * 60, args.seed)))
    kinds.append(("piano-like synthetic", piano_clips(args.minutes * 60, args.seed)))
    for name, gen in kinds:
        labelled = list(gen)
        clips = [c for _, c in labelled]
        false, seconds, found = count_false_digits(clips)
        per_hour = false / (seconds / 3600)
        print(f"{name}: {seconds / 60:.1f} min, {false} false digits, {per_hour:.2f} per hour")
        for ch, d in found:
            print(f"   {d!r} in clip {ch}: {labelled[ch][0]}")
            if args.dump is not None:
                args.dump.mkdir(parents=True, exist_ok=True)
                write_wav(args.dump / f"talkoff_{ch}_{d}.wav", clips[ch])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
