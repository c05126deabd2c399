"""Generate the IVR prompts with espeak-ng: 8 kHz mono 16-bit WAV in prompts/zh and prompts/en.

Usage::

    python tools/make_prompts.py            # (re)write what is missing or changed
    python tools/make_prompts.py --check    # exit 1 listing missing or malformed files
    python tools/make_prompts.py --lang zh --out /tmp/prompts

What it writes, for each language (``zh``, ``en``):

* ``prompts/<lang>/say/<fragment>.wav`` for every fragment of
  :func:`switchd.ivr.say.all_fragments` (the words from ``fragment_text``), which
  the ``say`` node strings together;
* ``prompts/<lang>/<name>.wav`` for the demo flow's prompts (``DEMO`` below) and the
  queue announcements (``QUEUE``).

Why generated and committed: the demo needs no TTS at run time, and anyone can
rebuild or extend the set with one command (``make prompts``).

How each file is made, deliberately simple:

1. ``espeak-ng -v VOICE -s SPEED -w tmp.wav TEXT`` (22 050 Hz). The Chinese voice is
   ``cmn-latn-pinyin``: in espeak-ng 1.51 the plain ``cmn`` voice maps each
   character to pinyin with a tone number and then reads that pinyin with
   *English* rules (一 comes out as "yi one", espeak-ng issue #1236); the
   ``-latn-pinyin`` variant reads the same pinyin as Mandarin. Older espeak-ng
   without it falls back to ``cmn`` / ``zh``.
2. Resampled to 8 kHz mono with switchd's own loader
   (:func:`switchd.lines.prompts.load_prompt`, a windowed-sinc low-pass), so the
   result does not depend on whether sox is installed or which version.
3. Silence trimmed: everything before the first and after the last 10 ms frame
   within 40 dB of the loudest one goes, keeping 20 ms before and 40 ms after,
   with 5 ms fades so the cut never clicks. Fragments are therefore short and
   play back to back without gaps longer than espeak's own.
4. Level: scaled so the speech (the frames kept in step 3) is about -20 dBFS RMS,
   but never with peaks above -6 dBFS -- the same level as the music on hold
   (prompts/moh/README.md), loud enough on a phone and clean after G.711.
5. Written with the stdlib ``wave`` module only when the bytes differ from the file
   already there: espeak-ng is deterministic, so a second run changes nothing
   (idempotent; git sees no churn).

Needs espeak-ng (``apt-get install espeak-ng``, or ``make speech-tools``) and numpy.
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import subprocess
import sys
import tempfile
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from switchd.ivr.say import LANGUAGES, all_fragments, fragment_text
from switchd.lines.prompts import RATE, load_prompt

ROOT = Path(__file__).resolve().parent.parent
#: espeak-ng voices to try per language, best first (see step 1 in the module doc).
VOICES = {"zh": ("cmn-latn-pinyin", "cmn", "zh"), "en": ("en-us", "en")}
#: Words per minute: English a little slower than espeak's 175 for the telephone;
#: Mandarin at 175, already a calm pace (espeak counts syllables there).
SPEED = {"zh": 175, "en": 160}

FRAME_S = 0.010
TRIM_DB = 40.0
LEAD_S, TAIL_S, FADE_S = 0.020, 0.040, 0.005
TARGET_RMS_DBFS, PEAK_CEILING_DBFS = -20.0, -6.0

#: The demo flow's prompts (flows/main.yaml): name -> text per language. The Chinese
#: voice reads Latin letters as pinyin, which fixes what its dictionary gets wrong:
#: 欢 has a neutral tone there, so "huan1迎" is written for 欢迎.
DEMO: dict[str, dict[str, str]] = {
    "welcome": {
        "en": "Welcome to the switch D demo service centre.",
        "zh": "huan1迎致电演示服务中心。",
    },
    "vip_welcome": {
        "en": "Welcome back, valued customer. Connecting you to our priority desk.",
        "zh": "尊敬的贵宾，huan1迎您再次来电。正在为您接通贵宾专线。",
    },
    "menu": {
        "en": "For sales, press 1. For support, press 2. For self-service, press 3. "
              "For an operator, press 0. To hear this again, press 9.",
        "zh": "销售咨询请按一，技术支持请按二，自助服务请按三，人工服务请按零，再听一遍请按九。",
    },
    "invalid": {
        "en": "Sorry, that is not a valid choice.",
        "zh": "对不起，您的选择无效。",
    },
    "no_input": {
        "en": "Sorry, we did not hear your choice.",
        "zh": "对不起，我们没有听到您的选择。",
    },
    "closed": {
        "en": "Our office is open Monday to Friday, nine a.m. to six p.m.",
        "zh": "我们的服务时间是周一至周五，上午九点到下午六点。",
    },
    "urgent": {
        "en": "For urgent support, press 1. Otherwise, please call again during office "
              "hours. Goodbye.",
        "zh": "紧急求助请按一，或请在服务时间内再次来电。再见。",
    },
    "holiday": {
        "en": "Our office is closed today for the public holiday. Goodbye.",
        "zh": "今天是法定节日，我们暂停服务。再见。",
    },
    "enter_account": {
        "en": "Please enter your eight digit account number, then press the hash key.",
        "zh": "请输入您的八位账号，以井号键结束。",
    },
    "please_wait": {
        "en": "One moment please.",
        "zh": "请稍候。",
    },
    "balance_is": {
        "en": "Your balance is",
        "zh": "您的余额是",
    },
    "crm_unavailable": {
        "en": "Sorry, our account service is not available right now.",
        "zh": "对不起，账户服务暂时无法使用。",
    },
    "account_unknown": {
        "en": "Sorry, we could not find that account.",
        "zh": "对不起，没有找到这个账户。",
    },
    "transferring": {
        "en": "Connecting you now.",
        "zh": "正在为您转接，请稍候。",
    },
    "all_busy": {
        "en": "Sorry, all our agents are busy. Please try again later. Goodbye.",
        "zh": "对不起，所有座席都在忙。请稍后再拨。再见。",
    },
    "goodbye": {
        "en": "Thank you for calling. Goodbye.",
        "zh": "感谢您的来电，再见。",
    },
}

#: The queue announcements (the ACD: a queue's ``greeting``, ``periodic`` and position
#: prompts). The position is said as ``queue_position_before``, the number (the
#: ``say`` fragments), ``queue_position_after``: "You are caller number 3 in line." /
#: "您现在排在第三位。".
QUEUE: dict[str, dict[str, str]] = {
    "queue_greeting": {
        "en": "Thank you for calling. All our agents are busy; please hold and you will "
              "be answered in turn.",
        "zh": "感谢您的来电。所有座席都在忙，请您稍候，我们将按顺序为您接听。",
    },
    "queue_periodic": {
        "en": "Thank you for holding; your call is important to us.",
        "zh": "感谢您的耐心等待，您的来电对我们很重要。",
    },
    "queue_position_before": {
        "en": "You are caller number",
        "zh": "您现在排在第",
    },
    "queue_position_after": {
        "en": "in line.",
        "zh": "位。",
    },
    "queue_wait_before": {
        "en": "Your estimated wait is about",
        "zh": "您预计还需等待大约",
    },
    "queue_wait_after": {
        "en": "minutes.",
        "zh": "分钟。",
    },
    "queue_periodic_callback": {
        "en": "Thank you for holding. To be called back instead, keeping your place in "
              "line, press 2.",
        "zh": "感谢您的耐心等待。如需保留排队位置并由我们回电，请按2。",
    },
    "callback_confirm": {
        "en": "To be called back on the number you are calling from, press 1. To be called "
              "on another number, enter it and press the hash key.",
        "zh": "如需回拨到您现在的号码，请按1。如需回拨到其他号码，请输入号码并以井号键结束。",
    },
    "callback_done": {
        "en": "Thank you. You keep your place in line, and an agent will call you back. "
              "Goodbye.",
        "zh": "谢谢。您的排队位置已保留，座席将为您回电。再见。",
    },
    "voicemail_greeting": {
        "en": "Please leave a message after the tone. Press the hash key when you are done.",
        "zh": "请在提示音后留言，留言完毕请按井号键。",
    },
    "voicemail_afterhours": {
        "en": "We are closed now. Please leave your name, number and message after the tone, "
              "and we will call you back.",
        "zh": "现在是非工作时间。请在提示音后留下您的姓名、电话和留言，我们会给您回电。",
    },
    "voicemail_saved": {
        "en": "Your message has been saved. Thank you, goodbye.",
        "zh": "您的留言已保存。谢谢，再见。",
    },
}


@dataclass(frozen=True, slots=True)
class Prompt:
    """One file to make: where, in which language, saying what."""

    path: Path
    language: str
    text: str


def planned(out: Path, languages: tuple[str, ...] = LANGUAGES) -> list[Prompt]:
    """Every prompt file this script makes under ``out``, in a stable order."""
    plan: list[Prompt] = []
    for lang in languages:
        for name in all_fragments(lang):  # "zh/say/5" -> out/zh/say/5.wav
            plan.append(Prompt(out / f"{name}.wav", lang, fragment_text(lang, name)))
        for name, texts in (DEMO | QUEUE).items():
            plan.append(Prompt(out / lang / f"{name}.wav", lang, texts[lang]))
    return plan


def pick_voice(espeak: str, language: str) -> str:
    """The first voice of ``VOICES[language]`` this espeak-ng has.

    Raises SystemExit naming the voices tried when none is installed.
    """
    listing = subprocess.run([espeak, "--voices"], capture_output=True, text=True,
                             check=True).stdout
    names: set[str] = set()
    for line in listing.splitlines()[1:]:  # Pty Language Age/Gender VoiceName File (Other Langs)
        cols = line.split()
        if len(cols) > 4:
            names |= {cols[1].lower(), cols[4].rsplit("/", 1)[-1].lower()}
            names |= {m.lower() for m in re.findall(r"\(([^\s()]+) \d+\)", line)}  # (zh 5)
    for voice in VOICES[language]:
        if voice.lower() in names:
            return voice
    raise SystemExit(f"espeak-ng has none of the voices {', '.join(VOICES[language])} for "
                     f"{language}; install espeak-ng-data")


def synthesise(espeak: str, voice: str, speed: int, text: str) -> np.ndarray:
    """``text`` spoken by espeak-ng, as 8 kHz int16 mono (not yet trimmed or levelled)."""
    with tempfile.TemporaryDirectory(prefix="make_prompts_") as tmp:
        raw = Path(tmp) / "espeak.wav"
        result = subprocess.run([espeak, "-v", voice, "-s", str(speed), "-w", str(raw), text],
                                capture_output=True, text=True)
        if result.returncode != 0 or not raw.exists():
            raise SystemExit(f"espeak-ng failed on {text!r} ({voice}): {result.stderr.strip()}")
        return load_prompt(raw)


def trim_and_level(samples: np.ndarray) -> np.ndarray:
    """Trim leading/trailing silence and set the level (steps 3 and 4 of the module doc)."""
    x = samples.astype(np.float64) / 32768.0
    frame = int(FRAME_S * RATE)
    n_frames = len(x) // frame
    if n_frames == 0 or not np.any(x):
        return samples
    frames = x[: n_frames * frame].reshape(n_frames, frame)
    peaks = np.abs(frames).max(axis=1)
    loud = np.flatnonzero(peaks >= peaks.max() * 10 ** (-TRIM_DB / 20))
    first = max(0, loud[0] * frame - int(LEAD_S * RATE))
    last = min(len(x), (loud[-1] + 1) * frame + int(TAIL_S * RATE))
    speech = frames[loud].ravel()
    x = x[first:last].copy()
    fade = int(FADE_S * RATE)
    ramp = np.linspace(0.0, 1.0, fade, endpoint=False)
    x[:fade] *= ramp
    x[-fade:] *= ramp[::-1]
    rms = np.sqrt(np.mean(speech**2))
    gain = min(10 ** (TARGET_RMS_DBFS / 20) / rms, 10 ** (PEAK_CEILING_DBFS / 20) / np.abs(x).max())
    return np.clip(np.rint(x * gain * 32768.0), -32768, 32767).astype(np.int16)


def wav_bytes(samples: np.ndarray) -> bytes:
    """``samples`` as an 8 kHz mono 16-bit PCM WAV file."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.astype("<i2").tobytes())
    return buf.getvalue()


def make(prompt: Prompt, espeak: str, voice: str) -> bool:
    """Make one file; True when it was written (missing or different before)."""
    data = wav_bytes(trim_and_level(synthesise(espeak, voice, SPEED[prompt.language],
                                               prompt.text)))
    if prompt.path.exists() and prompt.path.read_bytes() == data:
        return False
    prompt.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = prompt.path.with_suffix(".wav.tmp")
    tmp.write_bytes(data)
    tmp.replace(prompt.path)
    return True


def problem(path: Path) -> str | None:
    """Why ``path`` is not a usable prompt (missing, not 8 kHz mono 16-bit PCM), or None."""
    if not path.exists():
        return "missing"
    try:
        with wave.open(str(path), "rb") as w:
            shape = (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes())
    except (wave.Error, EOFError) as exc:
        return f"not a PCM WAV ({exc})"
    if shape[:3] != (RATE, 1, 2):
        return f"{shape[0]} Hz, {shape[1]} channel(s), {8 * shape[2]}-bit; want 8000 Hz mono 16-bit"
    if shape[3] == 0:
        return "empty"
    return None


def main(argv: list[str] | None = None) -> int:
    """Command line; returns the exit status (1: ``--check`` found problems)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "prompts",
                        help="prompts directory (default: the repository's prompts/)")
    parser.add_argument("--lang", choices=LANGUAGES, action="append",
                        help="only this language (repeatable; default: all)")
    parser.add_argument("--check", action="store_true",
                        help="make nothing; list missing or malformed files and exit 1 if any")
    parser.add_argument("--espeak", default=shutil.which("espeak-ng"),
                        help="the espeak-ng binary (default: from PATH)")
    args = parser.parse_args(argv)
    languages = tuple(args.lang or LANGUAGES)
    plan = planned(args.out, languages)

    if args.check:
        bad = [(p.path, why) for p in plan if (why := problem(p.path)) is not None]
        for path, why in bad:
            print(f"{path}: {why}", file=sys.stderr)
        if bad:
            print(f"{len(bad)} of {len(plan)} prompts missing or malformed; run "
                  "`make prompts`", file=sys.stderr)
            return 1
        print(f"all {len(plan)} prompts present in {args.out}")
        return 0

    if not args.espeak:
        raise SystemExit("espeak-ng is not installed: apt-get install espeak-ng "
                         "(or `make speech-tools` as root)")
    voices = {lang: pick_voice(args.espeak, lang) for lang in languages}
    with ThreadPoolExecutor() as pool:
        written = list(pool.map(lambda p: make(p, args.espeak, voices[p.language]), plan))
    total = sum(p.path.stat().st_size for p in plan)
    print(f"{sum(written)} written, {len(plan) - sum(written)} unchanged, {len(plan)} prompts "
          f"({total / 1e6:.2f} MB) in {args.out}; voices: "
          + ", ".join(f"{lang} {voice}" for lang, voice in voices.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
