"""Prompts and music on hold: audio files played into calls.

Three jobs, one module:

* :func:`load_prompt` turns a file into what the media tick plays: int16, mono,
  8 kHz (DESIGN §3). WAV (PCM 8/16/24/32-bit, float, µ-law, A-law), AIFF/AIFC
  and Asterisk's headerless ``.sln``/``.ulaw``/``.alaw`` are decoded here with
  numpy; everything else (MP3, OGG, M4A, FLAC, …) goes through pydub, which
  needs ffmpeg, and without it the error says so instead of a traceback.
* :class:`PromptCache` loads each file once and keeps it in memory, bounded by bytes.
* :class:`PromptPlayer` plays those buffers to many channels at once: every
  20 ms frame is one gather from one big sample array, whatever the number of
  channels; :class:`MusicOnHold` loops a playlist on it and remembers where
  each held call was.

Why WAV and AIFF are not read through pydub: its WAV reader falls back to
ffmpeg on *any* error (a corrupt WAV then fails with "ffmpeg not found" instead
of the real reason), rejects float and G.711 WAVs, ignores the RIFF pad byte of
odd-sized chunks, and converts 24-bit audio one sample at a time in Python;
AIFF always needs ffmpeg there. Why resampling is not pydub's
``set_frame_rate``: ``audioop.ratecv`` interpolates linearly without a
low-pass filter, so 44.1 kHz music folds everything above 4 kHz back into the
telephone band as aliasing; :func:`load_prompt` uses a windowed-sinc polyphase
filter instead.

Loading reads files and may take a while for long music (about 0.3 s per minute
of 44.1 kHz audio): the shell should call it off the event loop
(``asyncio.to_thread``). The player and MOH are pure and cheap.
"""

from __future__ import annotations

import difflib
import math
import shutil
import struct
import warnings
from collections import OrderedDict
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
    "PromptPlayer",
    "load_prompt",
]

log = structlog.get_logger(__name__)

#: The media plane's sample rate (DESIGN §3).
RATE = 8000

_WAV_SUFFIXES = frozenset({".wav", ".wave"})
_AIFF_SUFFIXES = frozenset({".aif", ".aiff", ".aifc"})
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
    ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".aac", ".flac", ".wma", ".webm", ".gsm",
})
#: Every file suffix :class:`MusicOnHold` picks up from its folder (others, like a README, are ignored).
AUDIO_SUFFIXES = _WAV_SUFFIXES | _AIFF_SUFFIXES | frozenset(_RAW_SUFFIXES) | _FFMPEG_SUFFIXES

_INSTALL_FFMPEG = "install it (Debian: apt-get install ffmpeg)"

#: WAV format tags we name in errors (Microsoft's mmreg.h); the rest are shown as hex.
_WAV_TAG_NAMES = {
    0x0002: "MS ADPCM", 0x0011: "IMA ADPCM", 0x0031: "GSM 6.10", 0x0040: "G.721 ADPCM",
    0x0050: "MPEG", 0x0055: "MP3", 0x0064: "G.726 ADPCM",
}
_WAV_PCM, _WAV_FLOAT, _WAV_ALAW, _WAV_ULAW, _WAV_EXTENSIBLE = 0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE


class PromptError(SwitchdError):
    """An audio file cannot be played.

    ``path`` is the file as given, ``reason`` says what is wrong and what to do
    about it; ``str(error)`` is ``"<path>: <reason>"`` so it can be shown as is.
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


class _Undecodable(Exception):
    """Internal: a decoder's reason, turned into a :class:`PromptError` by :func:`load_prompt`."""


class _NeedsFfmpeg(Exception):
    """Internal: the file is valid but only ffmpeg can decode it (e.g. an ADPCM WAV)."""


# ---------------------------------------------------------------- loading


def load_prompt(path: Path) -> np.ndarray:
    """Load an audio file as the media plane plays it: int16, mono, 8 kHz, 1-D.

    The format is recognised by content (RIFF/WAVE, FORM/AIFF) first, then by
    suffix (``.sln``/``.raw``/``.pcm``: signed 16-bit little-endian 8 kHz mono,
    ``.sln16`` the same at 16 kHz, ``.ulaw``/``.alaw``: G.711 at 8 kHz — Asterisk's
    conventions). Anything else is handed to pydub/ffmpeg. Channels are averaged,
    other rates are resampled with a windowed-sinc low-pass (cutoff 3.6 kHz when
    downsampling), samples are rounded and saturated to int16. A WAV whose data
    size is 0 or runs past the end (an unfinished recording) is read to the end
    of the file, rounded down to whole frames (REFERENCE.md, WAV crash safety).

    Raises :class:`PromptError` for a missing or unreadable file (naming the
    directory searched and any close match), a format that needs ffmpeg when
    ffmpeg is not installed (naming the command to install it and the sox
    command that converts the file), and a corrupt file (the decoder's reason).
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
        if data[:4] in (b"RIFF", b"RF64") and data[8:12] == b"WAVE":
            signal, rate = _decode_wav(data)
        elif data[:4] == b"FORM" and data[8:12] in (b"AIFF", b"AIFC"):
            signal, rate = _decode_aiff(data)
        elif suffix in _WAV_SUFFIXES or suffix in _AIFF_SUFFIXES:
            kind = "WAV (RIFF/WAVE)" if suffix in _WAV_SUFFIXES else "AIFF (FORM/AIFF)"
            if not data:
                raise _Undecodable("the file is empty")
            raise _Undecodable(
                f"is not a {kind} file (it starts with {data[:12]!r}); "
                "re-export it as 16-bit PCM WAV"
            )
        elif suffix in _RAW_SUFFIXES:
            encoding, rate = _RAW_SUFFIXES[suffix]
            signal = _decode_samples(data, encoding, channels=1)
        else:
            raise _NeedsFfmpeg
    except _Undecodable as exc:
        raise PromptError(path, str(exc)) from None
    except _NeedsFfmpeg as exc:
        signal, rate = _decode_with_ffmpeg(path, str(exc))
    return _to_int16(_resample(signal, rate))


def _not_found_reason(path: Path) -> str:
    folder = path.parent.absolute()
    if not folder.is_dir():
        return f"no such file: the directory {folder} does not exist"
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    close = difflib.get_close_matches(path.name, names, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"no such file in {folder} ({len(names)} file(s) there){hint}"


def _decode_with_ffmpeg(path: Path, what: str) -> tuple[np.ndarray, int]:
    """Decode ``path`` through pydub/ffmpeg; ``what`` names the format for the error."""
    fmt = what or (path.suffix[1:].upper() or "A file without a known audio suffix")
    if _find_ffmpeg() is None:
        wav = path.with_suffix(".wav").name
        raise PromptError(
            path,
            f"{fmt} needs ffmpeg to decode; {_INSTALL_FFMPEG} or convert the file to WAV "
            f"(sox {path.name} -r 8000 -c 1 {wav})",
        )
    with warnings.catch_warnings():
        # pydub warns at import when ffmpeg is missing; we have just checked it is not.
        warnings.simplefilter("ignore", RuntimeWarning)
        from pydub import AudioSegment
    try:
        segment = AudioSegment.from_file(str(path))
    except Exception as exc:  # pydub raises bare Exception subclasses and OSErrors alike
        detail = [line for line in str(exc).strip().splitlines() if line.strip()]
        reason = detail[-1] if detail else type(exc).__name__
        raise PromptError(path, f"{fmt} could not be decoded by ffmpeg: {reason}") from None
    width = int(segment.sample_width)
    encoding = {1: "s8", 2: "s16le", 4: "s32le"}.get(width)
    if encoding is None:
        raise PromptError(path, f"{fmt}: ffmpeg returned {width}-byte samples; convert it to WAV")
    # pydub hands out signed samples (it re-biases 8-bit WAV and widens 24-bit to
    # 32-bit by adding a low byte), so the integer scale follows from the width.
    return _decode_samples(segment.raw_data, encoding, int(segment.channels)), int(segment.frame_rate)


def _find_ffmpeg() -> str | None:
    """Return the ffmpeg (or libav's avconv) executable pydub would run, or None."""
    return shutil.which("ffmpeg") or shutil.which("avconv")


def _riff_chunks(data: bytes, start: int, fmt: str) -> list[tuple[bytes, int, int]]:
    """Walk RIFF/IFF chunks from ``start``: ``(id, body offset, body size)``.

    A size that is 0 or runs past the end of the file is clipped to the end (the
    chunk is the last one; an unfinished recording looks like this); chunks are
    padded to even sizes (RIFF and IFF both).
    """
    chunks = []
    pos = start
    while pos + 8 <= len(data):
        cid = data[pos:pos + 4]
        (size,) = struct.unpack(fmt, data[pos + 4:pos + 8])
        body = pos + 8
        if (size == 0 and cid in (b"data", b"SSND")) or body + size > len(data):
            chunks.append((cid, body, len(data) - body))
            break
        chunks.append((cid, body, size))
        pos = body + size + (size & 1)
    return chunks


def _decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    chunks = {cid: (off, size) for cid, off, size in reversed(_riff_chunks(data, 12, "<I"))}
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
    encoding = {
        (_WAV_PCM, 8): "u8", (_WAV_PCM, 16): "s16le", (_WAV_PCM, 24): "s24le",
        (_WAV_PCM, 32): "s32le", (_WAV_FLOAT, 32): "f32le", (_WAV_FLOAT, 64): "f64le",
        (_WAV_ULAW, 8): "ulaw", (_WAV_ALAW, 8): "alaw",
    }.get((tag, bits))
    if encoding is None:
        name = _WAV_TAG_NAMES.get(tag, {1: "PCM", 3: "float"}.get(tag, "unknown"))
        if _find_ffmpeg() is not None:
            raise _NeedsFfmpeg(f"WAV ({name}, {bits}-bit)")
        raise _Undecodable(
            f"WAV format 0x{tag:04X} ({name}, {bits}-bit) is not supported without ffmpeg; "
            f"convert it to 16-bit PCM (sox in.wav -e signed-integer -b 16 -r 8000 -c 1 out.wav) "
            f"or {_INSTALL_FFMPEG}"
        )
    off, size = chunks[b"data"]
    return _decode_samples(data[off:off + size], encoding, channels), rate


def _decode_aiff(data: bytes) -> tuple[np.ndarray, int]:
    chunks = {cid: (off, size) for cid, off, size in reversed(_riff_chunks(data, 12, ">I"))}
    if b"COMM" not in chunks or chunks[b"COMM"][1] < 18:
        raise _Undecodable("corrupt AIFF: no COMM chunk; re-export it as 16-bit PCM WAV")
    if b"SSND" not in chunks:
        raise _Undecodable("corrupt AIFF: no SSND chunk (truncated file?)")
    off, size = chunks[b"COMM"]
    channels, frames, bits = struct.unpack(">hIh", data[off:off + 8])
    rate = _ieee_extended(data[off + 8:off + 18])
    compression = data[off + 18:off + 22] if data[8:12] == b"AIFC" and size >= 22 else b"NONE"
    signed_be = {8: "s8", 16: "s16be", 24: "s24be", 32: "s32be"}.get(bits)
    encoding = {
        b"NONE": signed_be, b"twos": signed_be, b"sowt": {16: "s16le", 24: "s24le", 32: "s32le"}.get(bits),
        b"fl32": "f32be", b"FL32": "f32be", b"fl64": "f64be", b"FL64": "f64be",
        b"ulaw": "ulaw", b"ULAW": "ulaw", b"alaw": "alaw", b"ALAW": "alaw",
    }.get(compression)
    if encoding is None or channels < 1 or not 1 <= rate <= 1_000_000:
        raise _Undecodable(
            f"AIFF with {bits}-bit {compression.decode('latin-1')!r} samples, {channels} "
            f"channel(s) at {rate} Hz is not supported; convert it to 16-bit PCM WAV "
            "(sox in.aiff -e signed-integer -b 16 -r 8000 -c 1 out.wav)"
        )
    off, size = chunks[b"SSND"]
    (skip,) = struct.unpack(">I", data[off:off + 4])
    signal = _decode_samples(data[off + 8 + skip:off + size], encoding, channels)
    return signal[:frames], rate


def _ieee_extended(b: bytes) -> int:
    """The 80-bit IEEE 754 extended float of AIFF's sample rate, as a whole number of Hz."""
    exponent = int.from_bytes(b[:2], "big") & 0x7FFF
    mantissa = int.from_bytes(b[2:10], "big")
    if exponent == 0 or mantissa == 0:
        return 0
    return round(mantissa * 2.0 ** (exponent - 16383 - 63))


def _decode_samples(raw: bytes, encoding: str, channels: int) -> np.ndarray:
    """Interleaved samples → float32 mono in [-1, 1); a trailing partial frame is dropped."""
    width = {"u8": 1, "s8": 1, "ulaw": 1, "alaw": 1, "s16le": 2, "s16be": 2, "s24le": 3,
             "s24be": 3, "s32le": 4, "s32be": 4, "f32le": 4, "f32be": 4, "f64le": 8,
             "f64be": 8}[encoding]
    usable = len(raw) - len(raw) % (width * channels)
    buf = np.frombuffer(raw, dtype=np.uint8, count=usable)
    if encoding == "u8":
        x = (buf.astype(np.float32) - 128.0) / 128.0
    elif encoding == "s8":
        x = buf.view(np.int8).astype(np.float32) / 128.0
    elif encoding in ("ulaw", "alaw"):
        decode = ulaw_decode if encoding == "ulaw" else alaw_decode
        x = decode(buf).astype(np.float32) / 32768.0
    elif encoding in ("s24le", "s24be"):
        b = buf.reshape(-1, 3).astype(np.int32)
        if encoding == "s24be":
            b = b[:, ::-1]
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = (v - ((v & 0x800000) << 1)).astype(np.float32) / float(1 << 23)
    else:
        kind, bits, endian = encoding[0], int(encoding[1:3]), encoding[3:]
        dtype = np.dtype(f"{'<' if endian == 'le' else '>'}{'i' if kind == 's' else 'f'}{bits // 8}")
        v = buf.view(dtype)
        x = v.astype(np.float32) / float(1 << (bits - 1)) if kind == "s" else v.astype(np.float32)
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
    """Loads each prompt once and keeps it in memory, least recently used first out.

    Bounded by the total size of the samples held (``max_bytes``, default 64 MiB ≈
    70 minutes of 8 kHz audio). A cached entry is keyed by the file's resolved
    path, modification time and size, so a file replaced on disk (a new
    recording of the greeting) is loaded again on the next :meth:`get` without a
    restart, and its old samples are dropped. Returned arrays are read-only:
    they are shared by every call that plays them.

    ``hits``/``misses`` count :meth:`get` calls answered from memory / from disk;
    ``bytes_used`` is the size of the samples held.
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self.bytes_used = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[Path, int, int], np.ndarray] = OrderedDict()
        self._key_of: dict[Path, tuple[Path, int, int]] = {}

    def get(self, path: Path) -> np.ndarray:
        """Return the samples of ``path`` (int16, 8 kHz mono, read-only), loading it if needed.

        Raises :class:`PromptError` as :func:`load_prompt` does; a failed load
        leaves nothing in the cache, so the next call tries the file again. A
        prompt larger than ``max_bytes`` is returned but not kept.
        """
        path = Path(path)
        try:
            st = path.stat()
            resolved = path.resolve()
        except OSError:
            self.misses += 1
            return _read_only(load_prompt(path))  # raises the explanatory PromptError
        key = (resolved, st.st_mtime_ns, st.st_size)
        cached = self._entries.get(key)
        if cached is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            return cached
        self.misses += 1
        samples = _read_only(load_prompt(path))
        stale = self._key_of.pop(resolved, None)
        if stale is not None:
            self.bytes_used -= self._entries.pop(stale).nbytes
        if samples.nbytes > self.max_bytes:
            log.warning("prompt_too_big_to_cache", file=str(path), bytes=samples.nbytes,
                        max_bytes=self.max_bytes)
            return samples
        self._entries[key] = samples
        self._key_of[resolved] = key
        self.bytes_used += samples.nbytes
        while self.bytes_used > self.max_bytes:
            old_key, old = self._entries.popitem(last=False)
            del self._key_of[old_key[0]]
            self.bytes_used -= old.nbytes
        return samples

    def __len__(self) -> int:
        """Number of prompts held."""
        return len(self._entries)


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
    files are ignored) are loaded through ``cache`` in name order and joined into
    one buffer, :attr:`samples`, that loops. A file that cannot be loaded (corrupt,
    or MP3 without ffmpeg) is skipped with a warning naming it and the reason,
    so one bad upload never silences hold for everyone.

    With no folder, an empty or missing one, or no loadable file, :attr:`samples`
    is a generated soft chime (two falling notes, C5 after E5, every 4 s). Why not
    silence: a caller hearing dead air thinks the call dropped and hangs up. Why
    this pattern: it cannot be mistaken for a call-progress tone (those are one
    pitch with a steady cadence, REFERENCE.md tone plans), and as pure sines below
    1.1 kHz it has no energy in the DTMF high group, so it can never fake a digit.

    A held call is identified by ``key`` (the call id): when the same call is held
    again it resumes where it left off, like a paused record, rather than
    restarting the playlist; different calls have independent positions.
    """

    def __init__(self, folder: Path | None, cache: PromptCache) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.files: list[Path] = []
        parts: list[np.ndarray] = []
        for path in self._candidates():
            try:
                parts.append(cache.get(path))
            except PromptError as exc:
                log.warning("moh_file_skipped", file=str(path), reason=exc.reason)
                continue
            self.files.append(path)
        parts = [p for p in parts if len(p)]
        if parts:
            samples = parts[0] if len(parts) == 1 else np.concatenate(parts)
        else:
            log.info("moh_fallback_tone", folder=str(self.folder) if self.folder else None,
                     reason="no playable audio file")
            samples = _fallback_chime()
        self.samples: np.ndarray = _read_only(samples)
        self._resume: dict[str, int] = {}
        self._on: dict[int, tuple[str, int]] = {}  # channel -> (key, play id)

    def _candidates(self) -> list[Path]:
        if self.folder is None:
            return []
        if not self.folder.is_dir():
            log.warning("moh_folder_missing", folder=str(self.folder))
            return []
        return sorted(p for p in self.folder.iterdir()
                      if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
                      and not p.name.startswith("."))

    def start(self, player: PromptPlayer, channel: int, key: str) -> None:
        """Play the music, looping, on ``channel`` for the held call ``key``, from its resume point.

        DTMF does not stop it (``barge_in=False``): a caller pressing keys on hold
        still hears music.
        """
        play_id = player.play(channel, self.samples, loop=True, barge_in=False,
                              start=self._resume.get(key, 0))
        self._on[channel] = (key, play_id)

    def stop(self, player: PromptPlayer, channel: int, key: str) -> None:
        """Stop the music on ``channel`` and remember where ``key`` was.

        If the channel meanwhile plays something else (a queue announcement
        replaced the music), that play is left alone and the last known resume
        point is kept.
        """
        mine = self._on.get(channel)
        if mine is None or mine[0] != key:
            return
        del self._on[channel]
        if player.play_id(channel) == mine[1]:
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
