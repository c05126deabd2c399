"""Prompts and music on hold: audio files played into calls.

Four jobs, one module:

* :func:`load_prompt` turns a file into what the media tick plays: int16, mono,
  8 kHz (DESIGN §3). The common telephony files are decoded here with numpy:
  8- and 16-bit PCM WAV, G.711 (µ-law, A-law) WAV, and Asterisk's headerless
  ``.sln``/``.ulaw``/``.alaw``. Everything else goes through pydub: other PCM
  WAVs (24/32-bit) with its own WAV reader, and the rest (float WAV, RF64, AIFF,
  MP3, OGG, M4A, FLAC, …) through ffmpeg; without ffmpeg the error says how to
  install it or convert the file, instead of a traceback.
* :class:`PromptCache` holds decoded prompts in memory, bounded by bytes. Prompts
  are loaded into it *off the event loop* (:meth:`PromptCache.preload`, a plain
  function for ``asyncio.to_thread``) and looked up in the media tick with
  :meth:`PromptCache.lookup`, which never touches the disk (DESIGN §3: no file I/O
  in the tick).
* :class:`PromptPlayer` plays those buffers to many channels at once: every
  20 ms frame is one gather from one big sample array, whatever the number of
  channels.
* :class:`MusicOnHold` loops a playlist on the player and remembers where each
  held call was; its folder is read once by :meth:`MusicOnHold.preload`.

Why the common WAVs are not read through pydub: its WAV reader rejects G.711
WAVs and ignores the RIFF pad byte of odd-sized chunks, and our reader also plays
an unfinished recording (data size 0) to its end. Why resampling is not pydub's
``set_frame_rate``: ``audioop.ratecv`` interpolates linearly without a low-pass
filter, so 44.1 kHz music folds everything above 4 kHz back into the telephone
band as aliasing; :func:`load_prompt` uses a windowed-sinc polyphase filter
instead.

Loading may take a while for long music (about 0.3 s per minute of 44.1 kHz
audio; pydub's 24-bit WAV reader is slower): always off the event loop. The
player and the music-on-hold playback are pure and cheap.
"""

from __future__ import annotations

import difflib
import math
import os
import shutil
import struct
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog

from switchd.exceptions import SwitchdError
from switchd.lines.g711 import alaw_decode, ulaw_decode

__all__ = [
    "AUDIO_SUFFIXES",
    "RATE",
    "MusicOnHold",
    "PromptCache",
    "PromptError",
    "PromptNotLoaded",
    "PromptPlayer",
    "load_prompt",
]

log = structlog.get_logger(__name__)

#: The media plane's sample rate (DESIGN §3).
RATE = 8000

_WAV_SUFFIXES = frozenset({".wav", ".wave"})
#: Headerless files, by Asterisk's naming: (sample encoding, sample rate).
_RAW_SUFFIXES: dict[str, tuple[str, int]] = {
    ".sln": ("s16le", 8000),
    ".slin": ("s16le", 8000),
    ".raw": ("s16le", 8000),
    ".pcm": ("s16le", 8000),
    ".sln16": ("s16le", 16000),
    ".ul": ("ulaw", 8000),
    ".ulaw": ("ulaw", 8000),
    ".al": ("alaw", 8000),
    ".alaw": ("alaw", 8000),
}
#: Formats only ffmpeg decodes (through pydub).
_FFMPEG_SUFFIXES = frozenset({
    ".aif", ".aiff", ".aifc", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".aac",
    ".flac", ".wma", ".webm", ".gsm",
})
#: Every file suffix :class:`MusicOnHold` picks up from its folder (others, like a README, are ignored).
AUDIO_SUFFIXES = _WAV_SUFFIXES | frozenset(_RAW_SUFFIXES) | _FFMPEG_SUFFIXES

_INSTALL_FFMPEG = "install it (Debian: apt-get install ffmpeg)"

#: WAV format tags we name in messages (Microsoft's mmreg.h); the rest are shown as hex.
_WAV_TAG_NAMES = {
    0x0001: "PCM", 0x0002: "MS ADPCM", 0x0003: "float", 0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10", 0x0040: "G.721 ADPCM", 0x0050: "MPEG", 0x0055: "MP3",
    0x0064: "G.726 ADPCM",
}
_WAV_PCM, _WAV_ALAW, _WAV_ULAW, _WAV_EXTENSIBLE = 0x0001, 0x0006, 0x0007, 0xFFFE
#: (format tag, bits per sample) -> encoding, for the WAVs decoded here.
_WAV_FAST = {(_WAV_PCM, 8): "u8", (_WAV_PCM, 16): "s16le", (_WAV_ULAW, 8): "ulaw",
             (_WAV_ALAW, 8): "alaw"}


class PromptError(SwitchdError):
    """An audio file cannot be played.

    ``path`` is the file as given, ``reason`` says what is wrong and what to do
    about it; ``str(error)`` is ``"<path>: <reason>"`` so it can be shown as is.
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


class PromptNotLoaded(PromptError):
    """:meth:`PromptCache.lookup` or :meth:`MusicOnHold.start` found nothing preloaded.

    A programming error rather than a bad file: whoever names a prompt (config,
    flow) must preload it off the event loop before it can play. A subclass of
    :class:`PromptError` so the media plane treats it like any unplayable prompt
    (logged, skipped) instead of stopping the tick.
    """


class _Undecodable(Exception):
    """Internal: a decoder's reason, turned into a :class:`PromptError` by :func:`load_prompt`."""


class _NotOurs(Exception):
    """Internal: a valid WAV this module does not decode itself.

    ``what`` names its format for messages; ``pcm`` says whether its samples are
    integer PCM, which pydub's own WAV reader decodes (it reads any other format
    tag of a WAVE_FORMAT_EXTENSIBLE file as PCM too, so float would become noise).
    """

    def __init__(self, what: str, *, pcm: bool) -> None:
        super().__init__(what)
        self.what = what
        self.pcm = pcm


# ---------------------------------------------------------------- loading


def load_prompt(path: Path) -> np.ndarray:
    """Load an audio file as the media plane plays it: int16, mono, 8 kHz, 1-D.

    The format is recognised by content (RIFF/WAVE) first, then by suffix
    (``.sln``/``.raw``/``.pcm``: signed 16-bit little-endian 8 kHz mono, ``.sln16``
    the same at 16 kHz, ``.ulaw``/``.alaw``: G.711 at 8 kHz — Asterisk's
    conventions). 8/16-bit PCM and G.711 WAVs are decoded here, other integer-PCM
    WAVs by pydub's WAV reader, everything else (float and RF64 WAV, AIFF, MP3,
    OGG, …) by ffmpeg through pydub.
    Channels are averaged, other rates are resampled with a windowed-sinc low-pass
    (cutoff 3.6 kHz when downsampling), samples are rounded and saturated to
    int16. A WAV whose data size is 0 or runs past the end (an unfinished
    recording) is read to the end of the file, rounded down to whole frames
    (REFERENCE.md, WAV crash safety).

    Reads the file: call it off the event loop. Raises :class:`PromptError` for a
    missing or unreadable file (naming the directory searched and any close
    match), a format that needs ffmpeg when ffmpeg is not installed (naming the
    command to install it and the sox command that converts the file), and a
    corrupt file (the decoder's reason).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PromptError(path, _not_found_reason(path)) from None
    except IsADirectoryError:
        raise PromptError(path, "is a directory, not an audio file") from None
    except OSError as exc:
        raise PromptError(
            path, f"cannot be read ({exc.strerror}); check that switchd's user may read it"
        ) from None
    suffix = path.suffix.lower()
    try:
        if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
            try:
                signal, rate = _decode_wav(data)
            except _NotOurs as exc:
                signal, rate = _decode_with_pydub(
                    path, exc.what, pcm_wav=data if exc.pcm else None, wav=True)
        elif data[:4] == b"RF64" and data[8:12] == b"WAVE":
            signal, rate = _decode_with_pydub(path, "RF64 WAV", wav=True)
        elif suffix in _WAV_SUFFIXES:
            if not data:
                raise _Undecodable("the file is empty")
            raise _Undecodable(
                f"is not a WAV (RIFF/WAVE) file (it starts with {data[:12]!r}); "
                "re-export it as 16-bit PCM WAV"
            )
        elif suffix in _RAW_SUFFIXES:
            encoding, rate = _RAW_SUFFIXES[suffix]
            signal = _decode_samples(data, encoding, channels=1)
        else:
            what = suffix[1:].upper() if suffix else "a file without a known audio suffix"
            signal, rate = _decode_with_pydub(path, what)
    except _Undecodable as exc:
        raise PromptError(path, str(exc)) from None
    return _to_int16(_resample(signal, rate))


def _not_found_reason(path: Path) -> str:
    folder = path.parent.absolute()
    if not folder.is_dir():
        return f"no such file: the directory {folder} does not exist"
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    close = difflib.get_close_matches(path.name, names, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"no such file in {folder} ({len(names)} file(s) there){hint}"


def _needs_ffmpeg(path: Path, what: str) -> PromptError:
    out = path.with_suffix(".wav").name if path.suffix.lower() != ".wav" else f"{path.stem}-8k.wav"
    return PromptError(
        path,
        f"{what} needs ffmpeg to decode; {_INSTALL_FFMPEG} or convert the file to 16-bit "
        f"PCM WAV (sox {path.name} -e signed-integer -b 16 -r 8000 -c 1 {out})",
    )


def _decode_with_pydub(
    path: Path, what: str, *, pcm_wav: bytes | None = None, wav: bool = False
) -> tuple[np.ndarray, int]:
    """Decode ``path`` with pydub: a PCM WAV by its own reader, anything else through ffmpeg.

    ``what`` names the format in messages ("MP3", "WAV (float, 32-bit)").
    ``pcm_wav``: the bytes of an integer-PCM WAV, for pydub's reader (no ffmpeg
    needed). ``wav``: the file is a WAV of some kind, so ffmpeg is given its bytes
    rather than its name: for a name ending in ``.wav`` pydub would try its own
    reader first, and that reads a WAVE_FORMAT_EXTENSIBLE float file as PCM noise.
    """
    with warnings.catch_warnings():
        # pydub warns at import when ffmpeg is missing (we say so ourselves, below)
        # and about the deprecated audioop module it uses.
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        from pydub import AudioSegment
    segment = None
    if pcm_wav is not None:
        try:
            segment = AudioSegment(data=pcm_wav)  # pydub's own reader: PCM WAV of any width
        except Exception:  # pydub raises its own errors, struct.error, ValueError alike
            segment = None
    if segment is None:
        if _find_ffmpeg() is None:
            raise _needs_ffmpeg(path, what)
        try:
            if wav:
                with path.open("rb") as f:
                    segment = AudioSegment.from_file(f)
            else:
                segment = AudioSegment.from_file(str(path))
        except Exception as exc:  # pydub raises bare Exception subclasses and OSErrors alike
            detail = [line for line in str(exc).strip().splitlines() if line.strip()]
            reason = detail[-1] if detail else type(exc).__name__
            raise PromptError(path, f"{what} could not be decoded by ffmpeg: {reason}") from None
    encoding = {1: "s8", 2: "s16le", 4: "s32le"}.get(int(segment.sample_width))
    if encoding is None:
        raise PromptError(
            path, f"{what}: got {segment.sample_width}-byte samples; convert it to 16-bit PCM WAV"
        )
    # pydub hands out signed samples (it re-biases 8-bit WAV and widens 24-bit to
    # 32-bit by adding a low byte), so the integer scale follows from the width.
    return (
        _decode_samples(segment.raw_data, encoding, int(segment.channels)),
        int(segment.frame_rate),
    )


def _find_ffmpeg() -> str | None:
    """Return the ffmpeg (or libav's avconv) executable pydub would run, or None."""
    return shutil.which("ffmpeg") or shutil.which("avconv")


def _riff_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """Walk a RIFF file's chunks after the ``WAVE`` id: ``(id, body offset, body size)``.

    A size that is 0 (for ``data``) or runs past the end of the file is clipped to
    the end (the chunk is the last one; an unfinished recording looks like this);
    chunks are padded to even sizes.
    """
    chunks = []
    pos = 12
    while pos + 8 <= len(data):
        cid = data[pos:pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4:pos + 8])
        body = pos + 8
        if (size == 0 and cid == b"data") or body + size > len(data):
            chunks.append((cid, body, len(data) - body))
            break
        chunks.append((cid, body, size))
        pos = body + size + (size & 1)
    return chunks


def _decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Decode an 8/16-bit PCM or G.711 WAV; raise ``_NotOurs`` for any other valid WAV."""
    chunks = {cid: (off, size) for cid, off, size in reversed(_riff_chunks(data))}
    if b"fmt " not in chunks or chunks[b"fmt "][1] < 16:
        raise _Undecodable("corrupt WAV: no 'fmt ' chunk; re-export it as 16-bit PCM WAV")
    if b"data" not in chunks:
        raise _Undecodable("corrupt WAV: no 'data' chunk (truncated file?)")
    off, size = chunks[b"fmt "]
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[off:off + 16])
    if tag == _WAV_EXTENSIBLE and size >= 26:
        # The real format is the first two bytes of the SubFormat GUID.
        (tag,) = struct.unpack("<H", data[off + 24:off + 26])
    if channels < 1 or rate < 1:
        raise _Undecodable(f"corrupt WAV: {channels} channel(s) at {rate} Hz")
    encoding = _WAV_FAST.get((tag, bits))
    if encoding is None:
        name = _WAV_TAG_NAMES.get(tag, f"format 0x{tag:04X}")
        raise _NotOurs(f"WAV ({name}, {bits}-bit)", pcm=tag == _WAV_PCM)
    off, size = chunks[b"data"]
    return _decode_samples(data[off:off + size], encoding, channels), rate


#: Bytes per sample and numpy dtype of each integer encoding.
_ENCODINGS: dict[str, tuple[int, str]] = {
    "u8": (1, "u1"), "s8": (1, "i1"), "ulaw": (1, "u1"), "alaw": (1, "u1"),
    "s16le": (2, "<i2"), "s32le": (4, "<i4"),
}


def _decode_samples(raw: bytes, encoding: str, channels: int) -> np.ndarray:
    """Interleaved samples → float32 mono in [-1, 1); a trailing partial frame is dropped."""
    width, dtype = _ENCODINGS[encoding]
    usable = len(raw) - len(raw) % (width * channels)
    v = np.frombuffer(raw, dtype=dtype, count=usable // width)
    if encoding == "u8":
        x = (v.astype(np.float32) - 128.0) / 128.0
    elif encoding in ("ulaw", "alaw"):
        decode = ulaw_decode if encoding == "ulaw" else alaw_decode
        x = decode(v).astype(np.float32) / 32768.0
    else:
        x = v.astype(np.float32) / float(1 << (8 * width - 1))
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return x


#: Polyphase resampler design: kernel half-width in zero crossings of the sinc,
#: Kaiser window beta (about 60 dB stopband), and cutoff as a share of the lower
#: Nyquist frequency (3.6 kHz at 8 kHz out: the telephone band ends at 3.4 kHz).
_ZERO_CROSSINGS = 16
_KAISER_BETA = 6.0
_CUTOFF = 0.9


def _resample(x: np.ndarray, rate_in: int) -> np.ndarray:
    """Resample float mono ``x`` from ``rate_in`` Hz to :data:`RATE` with a windowed-sinc filter.

    Output sample ``m`` sits at input time ``m · rate_in / RATE``; its value is the
    input convolved with a Kaiser-windowed sinc low-pass centred there. Only
    ``RATE / gcd`` distinct fractional positions exist, so their weights are
    computed once (a polyphase table). Outside the input is silence. The output
    has ``round(len(x) · RATE / rate_in)`` samples.
    """
    if rate_in == RATE:
        return x
    n_in = len(x)
    n_out = (n_in * RATE + rate_in // 2) // rate_in
    if n_in == 0 or n_out == 0:
        return np.zeros(n_out, dtype=np.float32)
    fc = 0.5 * min(1.0, RATE / rate_in) * _CUTOFF  # cycles per input sample
    half = _ZERO_CROSSINGS / (2.0 * fc)
    reach = math.ceil(half)
    taps = np.arange(-reach + 1, reach + 1)
    step = math.gcd(rate_in, RATE)
    phase_frac = np.arange(RATE // step) * step / RATE  # fractional input positions
    d = phase_frac[:, None] - taps[None, :]
    window = np.i0(_KAISER_BETA * np.sqrt(np.clip(1.0 - (d / half) ** 2, 0.0, None)))
    kernel = np.sinc(2.0 * fc * d) * window * (np.abs(d) < half)
    kernel = (kernel / kernel.sum(axis=1, keepdims=True)).astype(np.float32)  # unity DC gain
    padded = np.concatenate([np.zeros(reach), x, np.zeros(reach + 1)]).astype(np.float32)
    out = np.empty(n_out, dtype=np.float32)
    chunk = max(1, (1 << 20) // len(taps))
    for first in range(0, n_out, chunk):
        pos = np.arange(first, min(n_out, first + chunk), dtype=np.int64) * rate_in
        base = pos // RATE
        phase = (pos - base * RATE) // step
        idx = base[:, None] + taps[None, :] + reach
        out[first:first + len(pos)] = np.einsum("ij,ij->i", padded[idx], kernel[phase])
    return out


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)


# ---------------------------------------------------------------- cache


class PromptCache:
    """Decoded prompts in memory, loaded off the event loop and looked up in the tick.

    Two ways in:

    * :meth:`preload` (a plain function; run it with ``asyncio.to_thread``) loads a
      list of files and *pins* them: they stay until preloaded again, whatever
      else is loaded. Whoever names a prompt (the config, a flow when it is
      checked) preloads it, so a prompt that cannot be loaded fails there, with
      its path and reason, not when a caller should hear it.
    * :meth:`get` loads one file on demand (also off the loop) and keeps it
      least-recently-used: it may be dropped to make room.

    :meth:`lookup` is for the media tick: it answers from memory only and never
    touches the disk; a prompt that was not loaded raises :class:`PromptNotLoaded`.

    Bounded by the total size of the samples held (``max_bytes``, default 64 MiB ≈
    70 minutes of 8 kHz audio); pinned prompts count towards it and are never
    dropped, so a preload that would not fit is reported as a problem instead. An
    entry is keyed by the file's resolved path and remembers its modification
    time and size: :meth:`get` and :meth:`preload` load a file replaced on disk
    (a new recording of the greeting) again and drop the old samples;
    :meth:`lookup` keeps answering with what was loaded last. Returned arrays are
    read-only: they are shared by every call that plays them.

    ``hits``/``misses`` count answers from memory / loads from disk;
    ``bytes_used`` is the size of the samples held. Thread-safe: loading happens
    in worker threads while the loop looks prompts up.
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self.bytes_used = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Path, _Entry] = OrderedDict()  # by resolved path, LRU first
        self._resolved: dict[Path, Path] = {}  # absolute path as given -> resolved path
        self._pinned_bytes = 0
        self._lock = threading.Lock()

    def preload(self, paths: Iterable[Path]) -> list[tuple[Path, str]]:
        """Load ``paths`` into the cache and pin them; return the ``(path, reason)`` of each failure.

        Blocking file I/O and decoding: run it off the event loop
        (``await asyncio.to_thread(cache.preload, paths)``). A file already held
        and unchanged on disk is not decoded again. A failure (missing, corrupt,
        needs ffmpeg, or too big for what ``max_bytes`` leaves beside the other
        pinned prompts) leaves that path out of the cache and does not stop the
        others; ``reason`` is the same sentence :class:`PromptError` carries.
        Never raises for a bad file.
        """
        problems: list[tuple[Path, str]] = []
        for path in paths:
            try:
                self._load(Path(path), pin=True)
            except PromptError as exc:
                problems.append((exc.path, exc.reason))
        return problems

    def unpin(self, paths: Iterable[Path]) -> None:
        """Let the prompts at ``paths`` be dropped again when room is needed (least
        recently used first): a reload's flows no longer use them. They stay in memory
        until then; a path not held, or not pinned, is ignored."""
        with self._lock:
            for path in paths:
                resolved = self._resolved.get(Path(os.path.abspath(path)))
                entry = self._entries.get(resolved) if resolved is not None else None
                if entry is not None and entry.pinned:
                    entry.pinned = False
                    self._pinned_bytes -= entry.samples.nbytes

    def get(self, path: Path) -> np.ndarray:
        """Return the samples of ``path`` (int16, 8 kHz mono, read-only), loading it if needed.

        Reads the disk (at least a ``stat``): never call it in the media tick, use
        :meth:`lookup` there. Raises :class:`PromptError` as :func:`load_prompt`
        does; a failed load leaves nothing in the cache, so the next call tries the
        file again. A prompt larger than the room left is returned but not kept.
        """
        return self._load(Path(path), pin=False)

    def lookup(self, path: Path) -> np.ndarray:
        """The samples of a prompt loaded before, from memory only (for the media tick).

        ``path`` may be spelled as it was given to :meth:`preload` or :meth:`get`
        (relative paths are taken from the current directory, without touching
        the disk). Raises :class:`PromptNotLoaded` when it was not loaded, or was
        loaded with :meth:`get` and since dropped to make room.
        """
        key = Path(os.path.abspath(path))
        with self._lock:
            resolved = self._resolved.get(key)
            entry = self._entries.get(resolved) if resolved is not None else None
            if entry is None:
                raise PromptNotLoaded(
                    Path(path),
                    "was not preloaded: prompts are loaded off the event loop "
                    "(PromptCache.preload) before they play, never in the media tick",
                )
            self._entries.move_to_end(resolved)
            self.hits += 1
            return entry.samples

    def __len__(self) -> int:
        """Number of prompts held."""
        return len(self._entries)

    def _load(self, path: Path, *, pin: bool) -> np.ndarray:
        try:
            st = path.stat()
            resolved = path.resolve()
        except OSError:
            with self._lock:
                self.misses += 1
            return _read_only(load_prompt(path))  # raises the explanatory PromptError
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            entry = self._entries.get(resolved)
            if entry is not None and entry.stamp == stamp:
                self._entries.move_to_end(resolved)
                self._resolved[Path(os.path.abspath(path))] = resolved
                if pin and not entry.pinned:
                    if not self._fits_pinned(entry.samples.nbytes):
                        raise self._too_big(path, entry.samples.nbytes)
                    entry.pinned = True
                    self._pinned_bytes += entry.samples.nbytes
                self.hits += 1
                return entry.samples
            self.misses += 1
        samples = _read_only(load_prompt(path))  # the slow part, outside the lock
        with self._lock:
            old = self._entries.pop(resolved, None)
            if old is not None:  # replaced on disk: the new samples take its place
                self.bytes_used -= old.samples.nbytes
                if old.pinned:
                    self._pinned_bytes -= old.samples.nbytes
                pin = pin or old.pinned
            if pin and not self._fits_pinned(samples.nbytes):
                raise self._too_big(path, samples.nbytes)
            if not pin and samples.nbytes > self.max_bytes - self._pinned_bytes:
                log.warning("prompt_too_big_to_cache", file=str(path), bytes=samples.nbytes,
                            max_bytes=self.max_bytes)
                return samples
            self._entries[resolved] = _Entry(stamp, samples, pin)
            self._resolved[Path(os.path.abspath(path))] = resolved
            self.bytes_used += samples.nbytes
            if pin:
                self._pinned_bytes += samples.nbytes
            self._evict()
            return samples

    def _fits_pinned(self, nbytes: int) -> bool:
        return self._pinned_bytes + nbytes <= self.max_bytes

    def _too_big(self, path: Path, nbytes: int) -> PromptError:
        mib = 1024 * 1024
        return PromptError(
            path,
            f"does not fit in the prompt cache: {nbytes / 1024:.0f} KiB decoded, with "
            f"{self._pinned_bytes / mib:.1f} of {self.max_bytes / mib:.1f} MiB already held by "
            "other prompts; raise media.prompt_cache_mb or shorten the file",
        )

    def _evict(self) -> None:
        """Drop least recently used unpinned prompts until the total fits (lock held)."""
        if self.bytes_used <= self.max_bytes:
            return
        for resolved in [k for k, e in self._entries.items() if not e.pinned]:
            if self.bytes_used <= self.max_bytes:
                break
            self.bytes_used -= self._entries.pop(resolved).samples.nbytes
        gone = [k for k, r in self._resolved.items() if r not in self._entries]
        for k in gone:
            del self._resolved[k]


@dataclass(slots=True)
class _Entry:
    """One cached prompt: the file's (mtime ns, size) when loaded, its samples, pinned or not."""

    stamp: tuple[int, int]
    samples: np.ndarray
    pinned: bool


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


# ---------------------------------------------------------------- player


@dataclass(slots=True)
class _Segment:
    """One buffer copied into the player's big array (mutable: compaction moves it)."""

    offset: int
    length: int
    source: np.ndarray | None  # the caller's read-only array, to reuse the copy; None if writable


class PromptPlayer:
    """Per-channel playback positions over shared sample buffers, rendered for many channels at once.

    Every buffer played is copied once into one big int16 array; each channel
    holds (offset, length, position, loop, barge-in, play id) in numpy arrays,
    so :meth:`render` is one gather for all channels: no Python loop over
    channels on the 20 ms path (DESIGN §3). A read-only buffer (what
    :class:`PromptCache` and :class:`MusicOnHold` hand out) played on many
    channels is stored once; a writable one is copied on every play, since the
    caller may change it afterwards. Space of buffers no channel plays any more
    is reclaimed when the big array would otherwise have to grow.

    Positions are in samples from the start of the buffer. Channel numbers out
    of range raise ``IndexError``. Not thread-safe: the media tick owns it.
    """

    def __init__(self, channels: int) -> None:
        if channels < 0:
            raise ValueError(f"channels must be >= 0, got {channels}")
        self._channels = 0
        self._active = np.zeros(0, dtype=bool)
        self._loop = np.zeros(0, dtype=bool)
        self._barge = np.zeros(0, dtype=bool)
        self._offset = np.zeros(0, dtype=np.int64)
        self._length = np.zeros(0, dtype=np.int64)
        self._pos = np.zeros(0, dtype=np.int64)
        self._play_id = np.zeros(0, dtype=np.int64)
        self._segment = np.zeros(0, dtype=np.int64)
        self.resize(channels)
        self._big = np.zeros(1 << 16, dtype=np.int16)
        self._used = 0
        self._segments: dict[int, _Segment] = {}
        self._serial_of: dict[int, int] = {}  # id(source array) -> segment serial
        self._next_serial = 1
        self._next_play = 1
        self._finished: list[tuple[int, int]] = []
        self._ramp = np.arange(160, dtype=np.int64)

    @property
    def channels(self) -> int:
        """Number of channels."""
        return self._channels

    def play(self, channel: int, samples: np.ndarray, *, loop: bool = False,
             barge_in: bool = True, start: int = 0) -> int:
        """Start playing ``samples`` (int16, 1-D, 8 kHz) on ``channel``; return the play id.

        Replaces whatever the channel was playing (that play is not reported by
        :meth:`take_finished`: it did not end, it was replaced). ``start`` is the
        first sample to play (taken modulo the length when looping). ``barge_in``
        says whether a DTMF digit (:meth:`barge`) may cut the play short. A
        non-looping play with nothing left to play (empty buffer, ``start`` past
        the end) finishes at once and is reported by :meth:`take_finished`.
        Raises ``TypeError`` for samples that are not int16 1-D and ``ValueError``
        for a negative ``start``.
        """
        self._check(channel)
        if not isinstance(samples, np.ndarray) or samples.dtype != np.int16 or samples.ndim != 1:
            raise TypeError("PromptPlayer plays int16 1-D arrays (as load_prompt returns), got "
                            f"{type(samples).__name__} {getattr(samples, 'dtype', '')}")
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        play_id = self._next_play
        self._next_play += 1
        length = len(samples)
        if length == 0 or (not loop and start >= length):
            self._active[channel] = False
            self._finished.append((channel, play_id))
            return play_id
        serial = self._store(samples)
        seg = self._segments[serial]
        self._active[channel] = True
        self._loop[channel] = loop
        self._barge[channel] = barge_in
        self._offset[channel] = seg.offset
        self._length[channel] = length
        self._pos[channel] = start % length if loop else start
        self._play_id[channel] = play_id
        self._segment[channel] = serial
        return play_id

    def stop(self, channel: int) -> None:
        """Stop what ``channel`` plays (nothing if idle); not reported by :meth:`take_finished`."""
        self._check(channel)
        self._active[channel] = False

    def barge(self, channel: int) -> bool:
        """A DTMF digit arrived on ``channel``: stop the play if it allows barge-in.

        Returns True if a play was stopped. A play started with
        ``barge_in=False`` (a legal notice, music on hold) keeps playing.
        """
        self._check(channel)
        if self._active[channel] and self._barge[channel]:
            self._active[channel] = False
            return True
        return False

    def playing(self, channel: int) -> bool:
        """True while ``channel`` has a play that has not ended or been stopped."""
        self._check(channel)
        return bool(self._active[channel])

    def position(self, channel: int) -> int:
        """The next sample ``channel`` will play, from the start of its buffer; 0 if idle."""
        self._check(channel)
        return int(self._pos[channel]) if self._active[channel] else 0

    def play_id(self, channel: int) -> int | None:
        """The id of the play running on ``channel``, or None if idle.

        Lets an owner (e.g. :class:`MusicOnHold`) check that the channel still
        plays *its* audio before stopping it or reading its position.
        """
        self._check(channel)
        return int(self._play_id[channel]) if self._active[channel] else None

    def render(self, n: int = 160) -> tuple[np.ndarray, np.ndarray]:
        """Render the next ``n`` samples of every playing channel and advance them.

        Returns ``(channels, audio)``: int64 ``[K]`` channel numbers in ascending
        order and int16 ``[K, n]`` samples. A looping play wraps sample-exactly
        (also when its buffer is shorter than ``n``). A non-looping play that ends
        within the frame is padded with silence, stops, and is reported once by
        :meth:`take_finished`; one that ends exactly at the frame's end stops too.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        rows = np.flatnonzero(self._active)
        if rows.size == 0:
            return rows.astype(np.int64), np.zeros((0, n), dtype=np.int16)
        if len(self._ramp) < n:
            self._ramp = np.arange(n, dtype=np.int64)
        length = self._length[rows]
        loop = self._loop[rows]
        pos = self._pos[rows]
        offset = self._offset[rows]
        idx = (offset + pos)[:, None] + self._ramp[:n]
        # Only rows whose buffer ends within this frame need the modulo and the
        # silence mask; they are few, and the common case stays one add and one gather.
        edge = np.flatnonzero(pos + n > length)
        if edge.size:
            rel = pos[edge, None] + self._ramp[:n]
            idx[edge] = offset[edge, None] + rel % length[edge, None]
        audio = np.take(self._big, idx)
        if edge.size:
            silent = (rel >= length[edge, None]) & ~loop[edge, None]
            block = audio[edge]
            block[silent] = 0
            audio[edge] = block
        nxt = pos + n
        ended = ~loop & (nxt >= length)
        self._pos[rows] = np.where(loop, nxt % length, nxt)
        if ended.any():
            done = rows[ended]
            self._active[done] = False
            self._finished.extend(zip(done.tolist(), self._play_id[done].tolist(), strict=True))
        return rows.astype(np.int64), audio

    def take_finished(self) -> list[tuple[int, int]]:
        """``(channel, play id)`` of every play that ran to its end since the last call, in order."""
        out, self._finished = self._finished, []
        return out

    def resize(self, channels: int) -> None:
        """Change the number of channels; new ones are idle, plays on removed ones are dropped."""
        if channels < 0:
            raise ValueError(f"channels must be >= 0, got {channels}")
        keep = min(channels, self._channels)
        for name in ("_active", "_loop", "_barge", "_offset", "_length", "_pos", "_play_id",
                     "_segment"):
            old = getattr(self, name)
            new = np.zeros(channels, dtype=old.dtype)
            new[:keep] = old[:keep]
            setattr(self, name, new)
        self._channels = channels

    # ------------------------------------------------------------ storage

    def _check(self, channel: int) -> None:
        if not 0 <= channel < self._channels:
            raise IndexError(f"channel {channel} out of range 0..{self._channels - 1}")

    def _store(self, samples: np.ndarray) -> int:
        """Return the serial of a segment holding ``samples``, copying them in if needed."""
        shareable = not samples.flags.writeable
        if shareable:
            serial = self._serial_of.get(id(samples))
            if serial is not None and self._segments[serial].source is samples:
                return serial
        length = len(samples)
        if self._used + length > len(self._big):
            self._compact()
            if self._used + length > len(self._big):
                grown = np.zeros(max(self._used + length, 2 * len(self._big)), dtype=np.int16)
                grown[:self._used] = self._big[:self._used]
                self._big = grown
        offset = self._used
        self._big[offset:offset + length] = samples
        self._used += length
        serial = self._next_serial
        self._next_serial += 1
        self._segments[serial] = _Segment(offset, length, samples if shareable else None)
        if shareable:
            # Holding the array keeps its id() from being reused by another object.
            self._serial_of[id(samples)] = serial
        return serial

    def _compact(self) -> None:
        """Drop segments no channel plays and close the gaps, moving live channels' offsets."""
        live = np.unique(self._segment[self._active])
        live_set = set(live.tolist())
        for serial in [s for s in self._segments if s not in live_set]:
            seg = self._segments.pop(serial)
            if seg.source is not None:
                del self._serial_of[id(seg.source)]
        new_offsets = np.zeros(len(live), dtype=np.int64)
        used = 0
        for i, serial in enumerate(live.tolist()):  # segments, not channels
            seg = self._segments[serial]
            self._big[used:used + seg.length] = self._big[seg.offset:seg.offset + seg.length]
            seg.offset = used
            new_offsets[i] = used
            used += seg.length
        self._used = used
        rows = np.flatnonzero(self._active)
        if rows.size:
            self._offset[rows] = new_offsets[np.searchsorted(live, self._segment[rows])]


# ---------------------------------------------------------------- music on hold


class MusicOnHold:
    """The music a held caller hears: one looping playlist, a resume point per held call.

    ``folder``'s audio files (suffixes in :data:`AUDIO_SUFFIXES`; README and other
    files are ignored) are loaded through ``cache`` in name order by
    :meth:`preload` and joined into one buffer, :attr:`samples`, that loops. The
    constructor reads nothing: :meth:`preload` is the one place that touches the
    disk, run off the event loop before the media tick needs the music; a file
    that cannot be loaded (corrupt, or MP3 without ffmpeg) is skipped and
    reported, so one bad upload never silences hold for everyone.

    With no folder, an empty or missing one, or no loadable file, :attr:`samples`
    is a generated soft chime (two falling notes, C5 after E5, every 4 s). Why not
    silence: a caller hearing dead air thinks the call dropped and hangs up. Why
    this pattern: it cannot be mistaken for a call-progress tone (those are one
    pitch with a steady cadence, REFERENCE.md tone plans), and as pure sines below
    1.1 kHz it has no energy in the DTMF high group, so it can never fake a digit.

    A held call is identified by ``key`` (the call id): when the same call is held
    again it resumes where it left off, like a paused record, rather than
    restarting the playlist; different calls have independent positions. The same
    resume point serves :meth:`pause` and :meth:`resume`, which the media plane uses
    to play an announcement (a queue's greeting, position) alone and then go on
    with the music where it paused.
    """

    def __init__(self, folder: Path | None, cache: PromptCache) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.files: list[Path] = []
        self._cache = cache
        self.samples: np.ndarray = _read_only(_fallback_chime())
        #: True once :meth:`preload` ran (always, without a folder: nothing to read).
        self.loaded = self.folder is None
        self._resume: dict[str, int] = {}
        #: channel -> (key, play id); play id None while paused under an announcement
        self._on: dict[int, tuple[str, int | None]] = {}

    def preload(self) -> list[tuple[Path, str]]:
        """Read the folder and decode its files into :attr:`samples`; return what could not be used.

        Blocking file I/O and decoding: run it off the event loop
        (``await asyncio.to_thread(moh.preload)``) before the media tick plays
        music. Returns ``(path, reason)`` for a missing folder (``path`` is the
        folder) and for each file skipped; the music is what loaded, or the chime.
        Calling it again reads the folder again (new files join, removed ones
        leave) for the next :meth:`start`. Never raises for a bad file.
        """
        problems: list[tuple[Path, str]] = []
        files: list[Path] = []
        parts: list[np.ndarray] = []
        if self.folder is not None:
            if not self.folder.is_dir():
                what = "is not a folder" if self.folder.exists() else "does not exist"
                problems.append((self.folder, f"the music-on-hold folder {what}; callers on "
                                              "hold hear the generated chime instead"))
            else:
                for path in self._candidates():
                    try:
                        parts.append(self._cache.get(path))
                    except PromptError as exc:
                        problems.append((exc.path, exc.reason))
                        continue
                    files.append(path)
        parts = [p for p in parts if len(p)]
        if parts:
            self.samples = _read_only(parts[0] if len(parts) == 1 else np.concatenate(parts))
        else:
            self.samples = _read_only(_fallback_chime())
        self.files = files
        self.loaded = True
        return problems

    def _candidates(self) -> list[Path]:
        assert self.folder is not None
        return sorted(p for p in self.folder.iterdir()
                      if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
                      and not p.name.startswith("."))

    def start(self, player: PromptPlayer, channel: int, key: str, *,
              paused: bool = False) -> None:
        """Play the music, looping, on ``channel`` for the held call ``key``, from its resume point.

        With ``paused`` the music is on for the channel but does not play yet (an
        announcement plays there first): :meth:`resume` starts it. Reads nothing
        from disk (this runs in the media tick). DTMF does not stop it
        (``barge_in=False``): a caller pressing keys on hold still hears music.
        Raises :class:`PromptNotLoaded` if the folder was never preloaded.
        """
        if not self.loaded:
            assert self.folder is not None
            raise PromptNotLoaded(
                self.folder,
                "music on hold was not preloaded: call MusicOnHold.preload() off the event "
                "loop before the media tick starts",
            )
        if paused:
            self._on[channel] = (key, None)
            return
        play_id = player.play(channel, self.samples, loop=True, barge_in=False,
                              start=self._resume.get(key, 0))
        self._on[channel] = (key, play_id)

    def pause(self, player: PromptPlayer, channel: int) -> bool:
        """Pause the music on ``channel`` (an announcement is about to play there).

        Remembers where the held call was, like :meth:`stop`, and stops the play,
        but the music stays on for the channel: :meth:`resume` plays on from that
        point. Returns True if music is on for ``channel`` (playing or already
        paused), False if not (nothing changes then).
        """
        mine = self._on.get(channel)
        if mine is None:
            return False
        key, play_id = mine
        if play_id is not None:
            self._on[channel] = (key, None)
            if player.play_id(channel) == play_id:
                self._resume[key] = player.position(channel)
                player.stop(channel)
        return True

    def resume(self, player: PromptPlayer, channel: int) -> bool:
        """Play the paused music of ``channel`` again from where its call was.

        Returns True if it resumed; False if no music is on for ``channel`` (it was
        stopped or its call ended meanwhile) or it is not paused.
        """
        mine = self._on.get(channel)
        if mine is None or mine[1] is not None:
            return False
        self.start(player, channel, mine[0])
        return True

    def stop(self, player: PromptPlayer, channel: int, key: str) -> None:
        """Stop the music on ``channel`` and remember where ``key`` was.

        If the channel meanwhile plays something else (a queue announcement
        replaced the music), that play is left alone and the last known resume
        point is kept; so is a paused music's (:meth:`pause` noted it).
        """
        mine = self._on.get(channel)
        if mine is None or mine[0] != key:
            return
        del self._on[channel]
        if mine[1] is not None and player.play_id(channel) == mine[1]:
            self._resume[key] = player.position(channel)
            player.stop(channel)

    def forget(self, key: str) -> None:
        """The call ``key`` ended: drop its resume point."""
        self._resume.pop(key, None)
        for channel in [c for c, (k, _) in self._on.items() if k == key]:
            del self._on[channel]


def _fallback_chime(*, seconds: float = 4.0, level: float = 0.12) -> np.ndarray:
    """The music-on-hold fallback: E5 then C5, soft bell-like notes, once per ``seconds``.

    ``level`` is the peak amplitude as a share of full scale (0.12 ≈ −18 dBFS).
    Every note has died away before the pattern ends, so it loops without a click.
    """
    n = int(seconds * RATE)
    out = np.zeros(n, dtype=np.float64)
    for freq, onset in ((659.25, 0.0), (523.25, 0.6)):
        _add_note(out, freq, onset, 1.8)
    return _to_int16(out * level / np.abs(out).max())


def _add_note(out: np.ndarray, freq: float, onset: float, length: float) -> None:
    """Add a soft bell-like sine (10 ms attack, exponential decay, 100 ms fade) into ``out``."""
    start = int(onset * RATE)
    t = np.arange(min(int(length * RATE), len(out) - start)) / RATE
    env = np.minimum(t / 0.01, 1.0) * np.exp(-t / 0.45) * np.clip((t[-1] - t) / 0.1, 0.0, 1.0)
    out[start:start + len(t)] += env * np.sin(2 * np.pi * freq * t)
