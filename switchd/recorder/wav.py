"""The WAV files the recorder writes: a header that is always valid, a body that only grows.

REFERENCE.md (WAV): 8 kHz, 16-bit linear PCM (format tag 1, the canonical 44-byte
header) or G.711 A-law/µ-law (tags 6/7: an 18-byte ``fmt `` chunk with ``cbSize`` 0 and
a ``fact`` chunk, as the RIFF rules for non-PCM formats ask: a 58-byte header). The
``data`` chunk is always the last one, so the file is the header followed by audio.

Crash safety (issue 16 item 3) rests on three rules this module keeps:

* :meth:`WavFile.create` writes the whole header, with zero sizes, in one ``write``
  before any audio, so a file that exists is a WAV from its first moment;
* audio is only ever appended, straight to the OS (an unbuffered file descriptor: a
  ``kill -9`` of the process loses nothing the kernel took), and the size fields are
  rewritten after the audio they count (:meth:`WavFile.patch`), so the header never
  claims more than the file holds: without repair a killed recording opens with
  audio up to the last patch;
* :func:`repair` recomputes the sizes from the file's length (REFERENCE.md: data size
  = file size − data offset rounded down to the block align, RIFF size = file size −
  8), truncating a partial trailing block, so after repair it holds every whole
  sample frame that reached the kernel.

Everything here is synchronous, blocking file I/O: the event loop never calls it; the
writer thread (:mod:`switchd.recorder.writer`) and start-up recovery
(:mod:`switchd.recorder.recovery`, in a thread) do.
"""

from __future__ import annotations

import errno
import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

from switchd.recorder.model import RecordFormat

__all__ = [
    "FileSummary",
    "RATE",
    "WavError",
    "WavFile",
    "WavInfo",
    "WavSummary",
    "block_align",
    "byte_rate",
    "data_offset",
    "read_info",
    "repair",
    "repair_dated",
    "sha256_of",
    "wav_header",
]

#: Sample rate of every recording (Hz): the media plane's rate (DESIGN.md §3).
RATE = 8000
#: The RIFF size field is 32 bits: a file may be at most 4 GiB + 8 bytes.
_RIFF_MAX = 0xFFFF_FFFF
#: Bytes of the ``fmt `` chunk's body: 16 for PCM, 18 (cbSize included) otherwise.
_FMT_BODY = {RecordFormat.PCM: 16, RecordFormat.ALAW: 18, RecordFormat.ULAW: 18}
#: The RIFF chunk's size field (file size − 8).
_RIFF_SIZE = slice(4, 8)
#: Files are hashed in blocks of this many bytes.
_HASH_BLOCK = 1 << 16


class WavError(ValueError):
    """A file is not a WAV this recorder wrote (so it will not be repaired or read)."""


class FileSummary(Protocol):
    """What a report of a closed file needs (:class:`WavSummary` is one): the figures the
    index takes from the file itself."""

    @property
    def duration_s(self) -> float:
        """Seconds of audio in the file."""
        ...

    @property
    def size(self) -> int:
        """The file's bytes, header included."""
        ...

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the whole file."""
        ...


@dataclass(frozen=True, slots=True)
class WavSummary:
    """A closed or repaired recording as the file on disk says.

    ``duration_s``: seconds of audio (data bytes / byte rate); ``size``: the file's
    length in bytes (header included); ``sha256``: hex digest of the whole file;
    ``data_bytes``: bytes of audio in the ``data`` chunk.
    """

    duration_s: float
    size: int
    sha256: str
    data_bytes: int


class WavInfo(NamedTuple):
    """What a recording's header says: ``channels`` (1 or 2), ``fmt`` and ``data_bytes``
    (the ``data`` chunk's size field: bytes of audio as of the last patch)."""

    channels: int
    fmt: RecordFormat
    data_bytes: int


def data_offset(fmt: RecordFormat) -> int:
    """Bytes before the audio in a file of format ``fmt``: 44 for PCM, 58 for A-law and
    µ-law (18-byte ``fmt `` body + 12-byte ``fact`` chunk; REFERENCE.md, WAV)."""
    return 44 if fmt is RecordFormat.PCM else 58


def block_align(channels: int, fmt: RecordFormat) -> int:
    """Bytes of one sample frame (one sample of every channel): 2 or 4 for PCM mono or
    stereo, 1 or 2 for G.711."""
    return channels * fmt.sample_bytes


def byte_rate(channels: int, fmt: RecordFormat) -> int:
    """Bytes of audio per second (8000 sample frames of :func:`block_align` bytes)."""
    return RATE * block_align(channels, fmt)


def _max_data_bytes(channels: int, fmt: RecordFormat) -> int:
    """The most audio a file can hold: the RIFF size (file size − 8) must fit 32 bits,
    in whole sample frames. (About 37 h of stereo PCM.)"""
    most = _RIFF_MAX - (data_offset(fmt) - 8)
    return most - most % block_align(channels, fmt)


def _check_channels(channels: int) -> None:
    if channels not in (1, 2):
        raise ValueError(f"a recording has 1 (mono) or 2 (stereo) channels, got {channels}")


def wav_header(channels: int, fmt: RecordFormat, data_bytes: int) -> bytes:
    """The header of a ``channels``-channel, 8000 Hz recording in ``fmt`` holding
    ``data_bytes`` bytes of audio: 44 bytes for PCM, 58 for G.711 (:func:`data_offset`).

    PCM: 16 bits per sample; G.711: 8 bits, ``cbSize`` 0 and a ``fact`` chunk whose sample
    count is ``data_bytes / block_align``. The RIFF size is the file size − 8.
    Raises ``ValueError`` for ``channels`` other than 1 or 2, or a ``data_bytes`` that is
    negative, not whole sample frames, or beyond what the 32-bit sizes can hold.
    """
    _check_channels(channels)
    align = block_align(channels, fmt)
    if data_bytes < 0 or data_bytes % align or data_bytes > _max_data_bytes(channels, fmt):
        raise ValueError(f"data_bytes must be a whole number of {align}-byte sample frames "
                         f"between 0 and {_max_data_bytes(channels, fmt)}, got {data_bytes}")
    offset = data_offset(fmt)
    body = _FMT_BODY[fmt]
    head = struct.pack("<4sI4s4sIHHIIHH", b"RIFF", offset - 8 + data_bytes, b"WAVE",
                       b"fmt ", body, fmt.tag, channels, RATE, byte_rate(channels, fmt),
                       align, 8 * fmt.sample_bytes)
    if fmt is not RecordFormat.PCM:
        head += struct.pack("<H4sII", 0, b"fact", 4, data_bytes // align)
    return head + struct.pack("<4sI", b"data", data_bytes)


def _size_fields(fmt: RecordFormat) -> list[slice]:
    """Byte ranges of a header of ``fmt`` that change with the amount of audio (what
    :func:`repair` and :meth:`WavFile.patch` rewrite); every other byte of a header of
    ours is fixed by (channels, format)."""
    offset = data_offset(fmt)
    fields = [_RIFF_SIZE, slice(offset - 4, offset)]
    if fmt is not RecordFormat.PCM:
        fields.append(slice(46, 50))  # the fact chunk's sample count
    return fields


def _masked(header: bytes, fmt: RecordFormat) -> bytes:
    """``header`` with its size fields zeroed (what identifies channels and format)."""
    out = bytearray(header)
    for field in _size_fields(fmt):
        stop = min(field.stop, len(out))
        if field.start < stop:
            out[field.start:stop] = bytes(stop - field.start)
    return bytes(out)


def _identify(head: bytes, path: Path, channels: int, fmt: RecordFormat) -> tuple[int, RecordFormat]:
    """The (channels, format) of a header of ours that starts with ``head`` (the whole header
    or, for a file cut short, a prefix of it; an empty prefix matches the defaults
    ``channels``/``fmt``). Raises :class:`WavError` naming ``path`` if no header of ours
    starts like that."""
    formats = [fmt, *(f for f in RecordFormat if f is not fmt)]
    layouts = [channels, *(c for c in (1, 2) if c != channels)]
    for f in formats:
        for c in layouts:
            want = wav_header(c, f, 0)
            n = min(len(head), len(want))
            if _masked(head[:n], f) == _masked(want[:n], f):
                return c, f
    raise WavError(f"{path} is not a switchd recording (an 8 kHz mono or stereo PCM, A-law "
                   "or µ-law WAV with the canonical header); leave it alone or move it out "
                   "of the recordings directory")


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of the whole file at ``path``. Raises ``OSError`` as the OS does."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _sha256_fd(fd: int) -> tuple[str, int]:
    """The hex SHA-256 and the length of the whole file open at ``fd`` (read with
    ``pread`` from offset 0; the file position is left alone). Raises ``OSError``."""
    digest = hashlib.sha256()
    offset = 0
    while block := os.pread(fd, _HASH_BLOCK, offset):
        digest.update(block)
        offset += len(block)
        if len(block) < _HASH_BLOCK:
            break  # a regular file reads short only at its end: no extra empty read
    return digest.hexdigest(), offset


def read_info(path: Path) -> WavInfo:
    """Channels, format and the header's data size of the recording at ``path``.

    ``data_bytes`` is what the last patch wrote (for a file left open by a crash it can be
    behind the audio on disk; :func:`repair` fixes that). Raises ``WavError`` if ``path``
    is not one of our WAVs or is shorter than its header; ``OSError`` as the OS does.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(58)
    channels, fmt = _identify(head, path, 2, RecordFormat.PCM)
    offset = data_offset(fmt)
    if len(head) < offset:
        raise WavError(f"{path} is shorter than its {offset}-byte header (a recording cut "
                       "short by a crash); run repair on it first")
    (data_bytes,) = struct.unpack_from("<I", head, offset - 4)
    return WavInfo(channels, fmt, data_bytes)


def repair_dated(path: Path, *, channels: int = 2) -> tuple[WavSummary, float]:
    """:func:`repair` ``path`` (PCM, ``channels``), and say when its last audio reached it:
    its mtime from *before* the repair (epoch s), which the repair itself would move.
    Blocking. Raises as :func:`repair` and ``os.stat`` do."""
    mtime = path.stat().st_mtime
    return repair(path, channels=channels), mtime


def repair(path: Path, *, channels: int = 2, fmt: RecordFormat = RecordFormat.PCM) -> WavSummary:
    """Make the size fields of a recording left open by a crash match its bytes; return
    the summary of the repaired file (figures read from it).

    The data size becomes (file size − data offset) rounded down to the block align (a
    partial trailing sample frame is truncated away), the RIFF size file size − 8 and the
    ``fact`` count data size / block align (REFERENCE.md, WAV). A file shorter than its
    header (killed between creating it and writing the header) gets a fresh header with
    no audio; ``channels``/``fmt`` are used only where the few bytes present do not say.
    A file already right is not written to. Raises ``WavError`` naming the file if it is
    not one of our WAVs (it is then left untouched), ``ValueError`` for ``channels``
    other than 1 or 2, and ``OSError`` as the OS does (missing file, read-only disk).
    """
    path = Path(path)
    _check_channels(channels)
    with open(path, "rb", buffering=0) as f:
        head = f.read(58)
        size = os.fstat(f.fileno()).st_size
    channels, fmt = _identify(head, path, channels, fmt)
    offset = data_offset(fmt)
    data = min(max(0, size - offset), _max_data_bytes(channels, fmt))
    data -= data % block_align(channels, fmt)
    header = wav_header(channels, fmt, data)
    # Opened for writing only when something is wrong: a file already right can be
    # summarised on a read-only disk, and its mtime stays.
    if head[:offset] != header or size != offset + data:
        with open(path, "r+b", buffering=0) as f:
            # The new header counts only whole frames the file holds (at offset 0).
            if f.write(header) != len(header):
                raise OSError(errno.EIO, "short write of the WAV header", str(path))
            f.truncate(offset + data)
    return _summary(path, channels, fmt, data)


def _summary(path: Path, channels: int, fmt: RecordFormat, data_bytes: int) -> WavSummary:
    """Summarise the file at ``path`` holding ``data_bytes`` of audio (reads it whole)."""
    return WavSummary(duration_s=data_bytes / byte_rate(channels, fmt),
                      size=path.stat().st_size, sha256=sha256_of(path),
                      data_bytes=data_bytes)


class WavFile:
    """One recording being written: created with a valid header, audio appended, sizes
    patched now and then and at close. Not thread-safe: one thread owns it (the
    writer's).

    Writes go to an unbuffered file descriptor (``os.write``), so what ``append``
    returned from is in the kernel: a crash of the process loses none of it.
    """

    def __init__(self, path: Path, fd: int, channels: int, fmt: RecordFormat) -> None:
        """Wrap ``fd`` (open for writing, positioned after the header): use :meth:`create`."""
        self.path = path
        self.channels = channels
        self.fmt = fmt
        #: Bytes of one sample frame; every append is whole frames.
        self.block_align = block_align(channels, fmt)
        #: Bytes of audio per second.
        self.byte_rate = byte_rate(channels, fmt)
        self._fd: int | None = fd
        self._data_bytes = 0
        self._patched = 0  # data bytes the header on disk counts

    @classmethod
    def create(cls, path: Path, channels: int, fmt: RecordFormat) -> WavFile:
        """Create ``path`` (and its missing parent directories) holding a header with zero
        sizes, ready for :meth:`append`.

        Never replaces a file: an existing ``path`` raises ``FileExistsError`` (a
        recording is never overwritten). Raises ``ValueError`` for ``channels`` other than
        1 or 2 and ``OSError`` as the OS does (``ENOSPC``, ``EACCES``, ``EROFS``…); a
        file whose header could not be written is removed again.
        """
        path = Path(path)
        header = wav_header(channels, fmt, 0)
        # Read-write: close() reads the file back through the same descriptor. The folder
        # is made only when missing: the recording writer's thread creates every file, and
        # each system call there is a wait for the loop's GIL (a day's folder exists
        # after its first call).
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o640)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, flags, 0o640)
        try:
            _write_all(fd, header)
        except _PartialWrite as cut:
            os.close(fd)
            try:
                path.unlink()
            except OSError:
                pass  # the header error is the one to report
            raise cut.error from None
        return cls(path, fd, channels, fmt)

    @property
    def data_bytes(self) -> int:
        """Bytes of audio the kernel has taken (may end in a partial frame after a failed
        write; :meth:`patch` and :meth:`close` count whole frames only)."""
        return self._data_bytes

    @property
    def dirty(self) -> bool:
        """True when audio was appended since the header was last patched."""
        return self._data_bytes - self._data_bytes % self.block_align != self._patched

    @property
    def closed(self) -> bool:
        """True once :meth:`close` (or :meth:`abandon`) released the file descriptor."""
        return self._fd is None

    def _open_fd(self) -> int:
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        return self._fd

    def append(self, data: bytes) -> None:
        """Append ``data`` (whole sample frames, :attr:`block_align` bytes each) to the audio.

        Raises ``ValueError`` if ``data`` is not whole frames or the file is closed,
        ``OSError`` with ``EFBIG`` when the 4 GiB the WAV sizes can count would be
        exceeded, and ``OSError`` as the OS does; bytes the kernel took before an error
        stay counted in :attr:`data_bytes`.
        """
        fd = self._open_fd()
        if len(data) % self.block_align:
            raise ValueError(f"audio for {self.path} must be whole {self.block_align}-byte "
                             f"sample frames, got {len(data)} bytes")
        if self._data_bytes + len(data) > _max_data_bytes(self.channels, self.fmt):
            raise OSError(errno.EFBIG, "a WAV file holds at most 4 GiB of audio", str(self.path))
        try:
            _write_all(fd, data)
        except _PartialWrite as cut:
            self._data_bytes += cut.written
            raise cut.error from None
        self._data_bytes += len(data)

    def patch(self) -> None:
        """Rewrite the header's size fields for the whole sample frames appended so far.

        The audio is already in the kernel (unbuffered writes) and the header is written
        after it, so the header never counts bytes the file does not hold. Raises
        ``ValueError`` if the file is closed and ``OSError`` as the OS does.
        """
        fd = self._open_fd()
        whole = self._data_bytes - self._data_bytes % self.block_align
        header = wav_header(self.channels, self.fmt, whole)
        if os.pwrite(fd, header, 0) != len(header):
            raise OSError(errno.EIO, "short write of the WAV header", str(self.path))
        self._patched = whole

    def close(self, *, sync: bool = True) -> WavSummary:
        """Patch the header, cut a partial trailing frame (left by a failed write), fsync
        (``sync``: a closed recording survives a power cut too), close, and summarise
        the file as read back (sha256 of every byte).

        The file descriptor is released even when this raises. Raises ``ValueError`` if
        already closed and ``OSError`` as the OS does.
        """
        fd = self._open_fd()
        try:
            self.patch()
            end = data_offset(self.fmt) + self._patched
            if self._patched != self._data_bytes:
                os.ftruncate(fd, end)
                self._data_bytes = self._patched
            if sync:
                os.fsync(fd)
            # Read back through this descriptor: the same bytes as reopening the path,
            # three system calls fewer per recording (open, stat, close).
            digest, size = _sha256_fd(fd)
        finally:
            self._fd = None
            os.close(fd)
        return WavSummary(duration_s=self._patched / self.byte_rate, size=size,
                          sha256=digest, data_bytes=self._patched)

    def abandon(self) -> None:
        """Close the file descriptor without touching the file (after an error that makes
        writing pointless; :func:`repair` makes it consistent). Never raises."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.close(fd)
            except OSError:
                pass  # nothing more can be done with this descriptor


class _PartialWrite(Exception):
    """``_write_all`` stopped by ``error`` after the kernel took ``written`` bytes."""

    def __init__(self, written: int, error: OSError) -> None:
        super().__init__(written, error)
        self.written = written
        self.error = error


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd`` (``os.write`` may take part of it). Raises
    ``_PartialWrite`` carrying the bytes written and the ``OSError`` that stopped it."""
    view = memoryview(data)
    written = 0
    while written < len(data):
        try:
            n = os.write(fd, view[written:])
        except OSError as exc:
            raise _PartialWrite(written, exc) from exc
        if n <= 0:  # never for a regular file; do not loop forever if it happens
            raise _PartialWrite(written, OSError(errno.EIO, "the disk took no bytes"))
        written += n
