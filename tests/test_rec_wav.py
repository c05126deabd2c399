"""switchd.recorder.wav: headers, appending, patching, crash repair — real files read back.

PCM files are read with the stdlib ``wave`` module sample by sample; ``wave`` does not
read A-law/µ-law, so G.711 files are checked by parsing the header here (an independent
reading of REFERENCE.md's layout) and decoding the data with ``switchd.lines.g711``, and
with ``sox`` when it is installed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import struct
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from switchd.lines.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from switchd.recorder import wav
from switchd.recorder.model import RecordFormat
from switchd.recorder.wav import (
    WavError,
    WavFile,
    data_offset,
    read_info,
    repair,
    wav_header,
)

PCM, ALAW, ULAW = RecordFormat.PCM, RecordFormat.ALAW, RecordFormat.ULAW
SOX = shutil.which("sox")
FORMATS_AND_CHANNELS = [(f, c) for f in RecordFormat for c in (1, 2)]


# --------------------------------------------------------------------------- helpers


def tone(hz: float, n: int, start: int = 0, amplitude: int = 12000) -> np.ndarray:
    """``n`` int16 samples of a sine at ``hz`` (8 kHz), from sample ``start``."""
    t = np.arange(start, start + n) / 8000.0
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def audio(channels: int, n: int, start: int = 0) -> np.ndarray:
    """[n, channels] int16: left 440 Hz, right 1000 Hz (distinct, so a swap shows)."""
    cols = [tone(440, n, start), tone(1000, n, start, 8000)][:channels]
    return np.stack(cols, axis=1)


def encode(frames: np.ndarray, fmt: RecordFormat) -> bytes:
    """The bytes the tap hands over for ``frames`` ([n, channels] int16, interleaved)."""
    if fmt is PCM:
        return frames.astype("<i2").tobytes()
    return (alaw_encode if fmt is ALAW else ulaw_encode)(frames).tobytes()


def expected(frames: np.ndarray, fmt: RecordFormat) -> np.ndarray:
    """What reading the file back must give for ``frames``: exact for PCM, the G.711
    round trip otherwise."""
    if fmt is PCM:
        return frames
    enc, dec = (alaw_encode, alaw_decode) if fmt is ALAW else (ulaw_encode, ulaw_decode)
    return dec(enc(frames))


def parse(path: Path) -> dict[str, object]:
    """Read our WAV layout by hand: every header field, and the samples [n, channels]."""
    raw = path.read_bytes()
    riff, riff_size, wave_id, fmt_id, fmt_len = struct.unpack_from("<4sI4s4sI", raw, 0)
    tag, channels, rate, byte_rate, align, bits = struct.unpack_from("<HHIIHH", raw, 20)
    pos = 20 + fmt_len
    info: dict[str, object] = dict(riff=riff, riff_size=riff_size, wave=wave_id, fmt_id=fmt_id,
                                   fmt_len=fmt_len, tag=tag, channels=channels, rate=rate,
                                   byte_rate=byte_rate, align=align, bits=bits)
    if fmt_len == 18:
        info["cb_size"] = struct.unpack_from("<H", raw, 36)[0]
        fact_id, fact_len, fact_count = struct.unpack_from("<4sII", raw, pos)
        info.update(fact_id=fact_id, fact_len=fact_len, fact_count=fact_count)
        pos += 12
    data_id, data_len = struct.unpack_from("<4sI", raw, pos)
    body = raw[pos + 8: pos + 8 + data_len]
    info.update(data_id=data_id, data_len=data_len, offset=pos + 8, size=len(raw))
    if tag == 1:
        samples = np.frombuffer(body, dtype="<i2").astype(np.int16)
    else:
        samples = (alaw_decode if tag == 6 else ulaw_decode)(np.frombuffer(body, np.uint8))
    info["samples"] = samples.reshape(-1, channels)
    return info


def read_pcm(path: Path) -> tuple[wave._wave_params, np.ndarray]:
    """Read a PCM file with ``wave``: its params and samples [n, channels]."""
    with wave.open(str(path), "rb") as w:
        params = w.getparams()
        raw = w.readframes(params.nframes)
    return params, np.frombuffer(raw, dtype="<i2").reshape(-1, params.nchannels)


def read_back(path: Path, fmt: RecordFormat) -> np.ndarray:
    """The file's samples [n, channels]: with ``wave`` for PCM, by hand for G.711."""
    if fmt is PCM:
        return read_pcm(path)[1]
    return parse(path)["samples"]  # type: ignore[return-value]


def check_consistent(path: Path, fmt: RecordFormat, channels: int, frames: int) -> None:
    """The header's every size matches the file, which holds exactly ``frames`` frames."""
    info = parse(path)
    align = channels * fmt.sample_bytes
    assert info["riff"] == b"RIFF" and info["wave"] == b"WAVE" and info["data_id"] == b"data"
    assert info["offset"] == data_offset(fmt)
    assert info["data_len"] == frames * align
    assert info["size"] == data_offset(fmt) + frames * align
    assert info["riff_size"] == info["size"] - 8
    if fmt is not PCM:
        assert info["fact_count"] == frames


def sox_info(path: Path) -> dict[str, str]:
    """``sox --i`` fields (channels, rate, samples, encoding) of ``path``."""
    out = {}
    for flag, key in (("-c", "channels"), ("-r", "rate"), ("-s", "samples"), ("-e", "encoding")):
        out[key] = subprocess.run([SOX, "--i", flag, str(path)], capture_output=True, text=True,
                                  check=True, timeout=10).stdout.strip()
    return out


class TinyDisk:
    """A file system under ``root`` with ``free`` bytes left: ``os.write`` to a file
    there takes what fits, then fails with ENOSPC (a full disk, partial writes included).
    Rewriting a header in place (``pwrite``) needs no new space, as on a real disk.
    Set ``free`` again to give the space back."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path, free: int) -> None:
        self.root = str(root)
        self.free = free
        real = os.write

        def write(fd: int, data: bytes) -> int:
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                target = ""
            if not target.startswith(self.root):
                return real(fd, data)
            if self.free <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            n = real(fd, bytes(data)[: self.free])
            self.free -= n
            return n

        monkeypatch.setattr(os, "write", write)


# --------------------------------------------------------------------------- headers


def test_header_sizes_follow_the_reference_layout():
    assert data_offset(PCM) == 44
    assert data_offset(ALAW) == data_offset(ULAW) == 58
    for fmt, channels in FORMATS_AND_CHANNELS:
        assert len(wav_header(channels, fmt, 0)) == data_offset(fmt)


@pytest.mark.parametrize(("fmt", "channels"), FORMATS_AND_CHANNELS)
def test_header_fields_describe_8khz_audio(tmp_path, fmt, channels):
    frames = 1234
    path = tmp_path / "h.wav"
    path.write_bytes(wav_header(channels, fmt, frames * channels * fmt.sample_bytes)
                     + bytes(frames * channels * fmt.sample_bytes))
    info = parse(path)
    assert (info["tag"], info["channels"], info["rate"]) == (fmt.tag, channels, 8000)
    assert info["bits"] == 8 * fmt.sample_bytes
    assert info["align"] == channels * fmt.sample_bytes
    assert info["byte_rate"] == 8000 * channels * fmt.sample_bytes
    if fmt is PCM:
        assert info["fmt_len"] == 16
    else:  # non-PCM: cbSize present (0) and a fact chunk with the sample count
        assert (info["fmt_len"], info["cb_size"]) == (18, 0)
        assert (info["fact_id"], info["fact_len"]) == (b"fact", 4)
    check_consistent(path, fmt, channels, frames)


def test_header_refuses_what_it_cannot_describe():
    with pytest.raises(ValueError, match="1 \\(mono\\) or 2 \\(stereo\\)"):
        wav_header(3, PCM, 0)
    with pytest.raises(ValueError, match="whole number of 4-byte sample frames"):
        wav_header(2, PCM, 6)
    with pytest.raises(ValueError, match="between 0 and"):
        wav_header(1, ALAW, 2**32)


# --------------------------------------------------------------------------- writing


@pytest.mark.parametrize("channels", [1, 2])
def test_pcm_recording_reads_back_with_wave_sample_by_sample(tmp_path, channels):
    path = tmp_path / "2026" / "05" / "01" / "call.wav"  # parents are created
    wf = WavFile.create(path, channels, PCM)
    sent = audio(channels, 8000 + 480)
    for start in range(0, len(sent), 800):  # the tap hands chunks
        wf.append(encode(sent[start:start + 800], PCM))
    summary = wf.close()

    params, got = read_pcm(path)
    assert (params.nchannels, params.sampwidth, params.framerate) == (channels, 2, 8000)
    assert params.nframes == len(sent)
    np.testing.assert_array_equal(got, sent)  # left stays left, right stays right
    raw = path.read_bytes()
    assert summary.size == len(raw) == 44 + len(sent) * 2 * channels
    assert summary.sha256 == hashlib.sha256(raw).hexdigest()
    assert summary.data_bytes == len(sent) * 2 * channels
    assert summary.duration_s == pytest.approx(len(sent) / 8000)


@pytest.mark.parametrize(("fmt", "channels"), [(ALAW, 1), (ALAW, 2), (ULAW, 1), (ULAW, 2)])
def test_g711_recording_holds_the_encoded_samples(tmp_path, fmt, channels):
    path = tmp_path / "g.wav"
    wf = WavFile.create(path, channels, fmt)
    sent = audio(channels, 4000)
    wf.append(encode(sent[:1600], fmt))
    wf.append(encode(sent[1600:], fmt))
    summary = wf.close()

    check_consistent(path, fmt, channels, len(sent))
    np.testing.assert_array_equal(parse(path)["samples"], expected(sent, fmt))
    assert summary.duration_s == pytest.approx(0.5)
    assert summary.size == 58 + len(sent) * channels
    assert summary.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.skipif(SOX is None, reason="sox is not installed (apt-get install sox)")
@pytest.mark.parametrize(("fmt", "channels"), FORMATS_AND_CHANNELS)
def test_sox_reads_our_files_and_decodes_the_same_samples(tmp_path, fmt, channels):
    path = tmp_path / "s.wav"
    wf = WavFile.create(path, channels, fmt)
    sent = audio(channels, 1600)
    wf.append(encode(sent, fmt))
    wf.close()

    info = sox_info(path)
    assert info["channels"] == str(channels)
    assert info["rate"] == "8000"
    assert info["samples"] == str(len(sent))
    assert info["encoding"] == {PCM: "Signed Integer PCM", ALAW: "A-law",
                                ULAW: "u-law"}[fmt]
    raw = subprocess.run([SOX, str(path), "-t", "raw", "-e", "signed", "-b", "16",
                          "-L", "-"], capture_output=True, check=True, timeout=10).stdout
    decoded = np.frombuffer(raw, "<i2").reshape(-1, channels)
    np.testing.assert_array_equal(decoded, expected(sent, fmt))


def test_create_never_overwrites_a_recording(tmp_path):
    path = tmp_path / "x.wav"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        WavFile.create(path, 2, PCM)
    assert path.read_bytes() == b"precious"


def test_append_takes_whole_sample_frames_only(tmp_path):
    wf = WavFile.create(tmp_path / "x.wav", 2, PCM)
    with pytest.raises(ValueError, match="whole 4-byte sample frames"):
        wf.append(b"\x00" * 6)
    wf.close()
    with pytest.raises(ValueError, match="is closed"):
        wf.append(b"\x00" * 4)


def test_the_header_is_valid_from_the_start_and_patch_counts_audio_while_open(tmp_path):
    path = tmp_path / "open.wav"
    wf = WavFile.create(path, 1, PCM)
    assert read_pcm(path)[0].nframes == 0  # a WAV before any audio
    sent = audio(1, 2400)
    wf.append(encode(sent[:1600], PCM))
    assert read_pcm(path)[0].nframes == 0  # the sizes trail the audio until patched
    assert wf.dirty
    wf.patch()
    assert not wf.dirty
    np.testing.assert_array_equal(read_pcm(path)[1], sent[:1600])
    wf.append(encode(sent[1600:], PCM))
    wf.patch()
    np.testing.assert_array_equal(read_pcm(path)[1], sent)
    wf.close()


def test_a_full_disk_keeps_every_whole_frame_the_kernel_took(tmp_path, monkeypatch):
    path = tmp_path / "full.wav"
    wf = WavFile.create(path, 2, PCM)
    sent = audio(2, 1000)
    wf.append(encode(sent[:500], PCM))
    TinyDisk(monkeypatch, tmp_path, free=4 * 300 + 3)  # room for 300 frames and 3 bytes
    with pytest.raises(OSError) as err:
        wf.append(encode(sent[500:], PCM))
    assert err.value.errno == errno.ENOSPC
    assert wf.data_bytes == 4 * 800 + 3  # what the kernel took, partial frame included
    summary = wf.close(sync=False)
    check_consistent(path, PCM, 2, 800)  # the partial frame is cut away
    np.testing.assert_array_equal(read_pcm(path)[1], sent[:800])
    assert summary.data_bytes == 4 * 800


def test_a_header_the_disk_refuses_leaves_no_file(tmp_path, monkeypatch):
    TinyDisk(monkeypatch, tmp_path, free=10)
    with pytest.raises(OSError) as err:
        WavFile.create(tmp_path / "h.wav", 2, PCM)
    assert err.value.errno == errno.ENOSPC
    assert not (tmp_path / "h.wav").exists()


def test_a_file_past_4_gib_is_refused_not_wrapped(tmp_path, monkeypatch):
    monkeypatch.setattr(wav, "_RIFF_MAX", 36 + 400)  # pretend the 32-bit limit is tiny
    wf = WavFile.create(tmp_path / "big.wav", 2, PCM)
    wf.append(bytes(400))
    with pytest.raises(OSError) as err:
        wf.append(bytes(4))
    assert err.value.errno == errno.EFBIG
    assert wf.close().data_bytes == 400


# --------------------------------------------------------------------------- repair


def crash_copy(wf: WavFile, dest: Path) -> Path:
    """What a ``kill -9`` would leave of ``wf`` now: its bytes, no close, no patch."""
    shutil.copyfile(wf.path, dest)
    return dest


@pytest.mark.parametrize(("fmt", "channels"), FORMATS_AND_CHANNELS)
def test_repair_after_a_crash_recovers_every_whole_frame(tmp_path, fmt, channels):
    wf = WavFile.create(tmp_path / "live.wav", channels, fmt)
    sent = audio(channels, 3000)
    wf.append(encode(sent[:1000], fmt))
    wf.patch()  # the writer's last periodic patch
    wf.append(encode(sent[1000:], fmt))  # then audio, and the process dies
    crashed = crash_copy(wf, tmp_path / "crashed.wav")
    wf.close()
    # The kill may land mid-write: a partial trailing frame (stereo or PCM have one).
    align = channels * fmt.sample_bytes
    with crashed.open("ab") as f:
        f.write(b"\x01" * (align - 1))

    assert read_info(crashed).data_bytes == 1000 * align  # stale, but never too big
    summary = repair(crashed)

    check_consistent(crashed, fmt, channels, 3000)
    np.testing.assert_array_equal(read_back(crashed, fmt), expected(sent, fmt))
    assert summary.data_bytes == 3000 * align
    assert summary.duration_s == pytest.approx(3000 / 8000)
    assert summary.size == crashed.stat().st_size
    assert summary.sha256 == hashlib.sha256(crashed.read_bytes()).hexdigest()
    assert read_info(crashed) == (channels, fmt, 3000 * align)


def test_without_repair_a_crashed_file_still_opens_with_the_patched_audio(tmp_path):
    wf = WavFile.create(tmp_path / "live.wav", 2, PCM)
    sent = audio(2, 3000)
    wf.append(encode(sent[:1000], PCM))
    wf.patch()
    wf.append(encode(sent[1000:], PCM))
    crashed = crash_copy(wf, tmp_path / "crashed.wav")
    wf.close()
    np.testing.assert_array_equal(read_pcm(crashed)[1], sent[:1000])


def test_repair_leaves_a_good_file_untouched(tmp_path):
    path = tmp_path / "good.wav"
    wf = WavFile.create(path, 2, ULAW)
    wf.append(encode(audio(2, 800), ULAW))
    closed = wf.close()
    before = path.read_bytes()
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert repair(path) == closed
    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == 1_000_000_000  # not even opened for writing


@pytest.mark.parametrize(("kept", "defaults", "want"), [
    (0, {}, (2, PCM)),                                # killed before the header
    (0, {"channels": 1, "fmt": ULAW}, (1, ULAW)),     # the index says what it was
    (30, {}, (2, ALAW)),                              # the bytes present say it
    (43, {"channels": 1, "fmt": ULAW}, (2, ALAW)),    # …and win over the defaults
])
def test_a_file_shorter_than_its_header_gets_a_fresh_empty_one(tmp_path, kept, defaults, want):
    path = tmp_path / "short.wav"
    path.write_bytes(wav_header(2, ALAW, 0)[:kept])
    summary = repair(path, **defaults)
    channels, fmt = want
    check_consistent(path, fmt, channels, 0)
    assert read_info(path) == (channels, fmt, 0)
    assert (summary.data_bytes, summary.duration_s, summary.size) == (0, 0.0, data_offset(fmt))


def test_a_repaired_empty_pcm_file_opens_with_wave(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    repair(path, channels=1)
    assert read_pcm(path)[0].nframes == 0


def _foreign_wav(path: Path, rate: int = 44100, width: int = 2) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(bytes(400))


@pytest.mark.parametrize("make", [
    lambda p: p.write_text("not audio at all, but long enough to hold a header…" * 3),
    lambda p: _foreign_wav(p),                    # a CD-rate WAV
    lambda p: _foreign_wav(p, rate=8000, width=1),  # 8-bit PCM
    lambda p: p.write_bytes(b"RIFX"),             # a short prefix of something else
])
def test_repair_refuses_files_that_are_not_ours_and_leaves_them_alone(tmp_path, make):
    path = tmp_path / "foreign.wav"
    make(path)
    before = path.read_bytes()
    with pytest.raises(WavError, match=str(path)) as err:
        repair(path)
    assert isinstance(err.value, ValueError)
    assert "move it out of the recordings directory" in str(err.value)
    assert path.read_bytes() == before
    with pytest.raises(WavError):
        read_info(path)


def test_read_info_wants_a_whole_header(tmp_path):
    path = tmp_path / "cut.wav"
    path.write_bytes(wav_header(1, PCM, 0)[:40])
    with pytest.raises(WavError, match="shorter than its 44-byte header.*repair"):
        read_info(path)


def test_repair_reports_a_missing_file_as_the_os_does(tmp_path):
    with pytest.raises(FileNotFoundError):
        repair(tmp_path / "gone.wav")
