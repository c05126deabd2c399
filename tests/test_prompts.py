"""Prompt loading, the prompt cache, the multi-channel player and music on hold.

Fixtures are written into ``tmp_path`` with the stdlib ``wave`` module (or by
hand for formats it cannot write), never committed as binaries.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from switchd.lines import prompts
from switchd.lines.g711 import ulaw_encode
from switchd.lines.prompts import (
    MusicOnHold,
    PromptCache,
    PromptError,
    PromptNotLoaded,
    PromptPlayer,
    load_prompt,
)

RATE = 8000
FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(
    FFMPEG is None, reason="ffmpeg not installed (apt-get install ffmpeg): decodes AIFF/MP3/RF64"
)


@pytest.fixture
def no_ffmpeg(monkeypatch):
    """Pretend ffmpeg is not installed (switchd looks it up with shutil.which)."""
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)


def sine(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def write_wav(path: Path, frames: np.ndarray, rate: int, width: int = 2) -> Path:
    """``frames``: float in [-1, 1), shape [n] or [n, channels]."""
    frames = np.atleast_2d(frames.T).T
    with wave.open(str(path), "wb") as w:
        w.setnchannels(frames.shape[1])
        w.setsampwidth(width)
        w.setframerate(rate)
        if width == 1:
            data = np.clip(np.rint(frames * 128 + 128), 0, 255).astype(np.uint8)
        else:
            data = np.clip(np.rint(frames * 32768), -32768, 32767).astype("<i2")
        w.writeframes(data.tobytes())
    return path


def dominant_hz(x: np.ndarray, rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def pcm(n: int, seed: int = 0) -> np.ndarray:
    a = np.random.default_rng(seed).integers(-20000, 20000, size=n).astype(np.int16)
    a.flags.writeable = False
    return a


# ---------------------------------------------------------------- load_prompt


def test_8k_mono_wav_loads_sample_exact(tmp_path):
    original = pcm(4000)
    path = tmp_path / "welcome.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(original.astype("<i2").tobytes())
    out = load_prompt(path)
    assert out.dtype == np.int16 and out.ndim == 1
    np.testing.assert_array_equal(out, original)


def test_16k_stereo_wav_becomes_8k_mono_with_the_same_tone(tmp_path):
    left, right = sine(1000, 1.0, 16000, 0.5), sine(1000, 1.0, 16000, 0.3)
    path = write_wav(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 16000)
    out = load_prompt(path)
    assert out.dtype == np.int16 and out.shape == (8000,)
    assert dominant_hz(out) == pytest.approx(1000, abs=2)
    # Channels are averaged: a 0.4 full-scale 1 kHz sine, sample for sample.
    expected = sine(1000, 1.0, 8000, 0.4) * 32768
    assert np.abs(out[100:-100] - expected[100:-100]).max() < 0.002 * 32768


def test_downsampling_filters_out_what_8k_cannot_carry(tmp_path):
    # A 5 kHz tone at 44.1 kHz has no place at 8 kHz; linear interpolation
    # (audioop.ratecv) would fold it to 3 kHz, an audible whistle.
    path = write_wav(tmp_path / "high.wav", sine(5000, 0.5, 44100, 0.5), 44100)
    out = load_prompt(path).astype(np.float64)
    assert len(out) == 4000
    assert np.sqrt(np.mean(out[200:-200] ** 2)) < 0.001 * 32768


@pytest.mark.parametrize("rate", [6000, 11025, 22050, 48000])
def test_other_rates_keep_pitch_and_duration(tmp_path, rate):
    path = write_wav(tmp_path / "tone.wav", sine(700, 0.5, rate), rate)
    out = load_prompt(path)
    assert len(out) == 4000
    assert dominant_hz(out) == pytest.approx(700, abs=3)


def test_8_bit_unsigned_wav_is_centred_on_zero(tmp_path):
    path = write_wav(tmp_path / "old.wav", sine(500, 0.25, 8000), 8000, width=1)
    out = load_prompt(path)
    assert abs(int(out.astype(np.int64).sum())) / len(out) < 300
    assert 0.45 * 32768 < np.abs(out).max() < 0.55 * 32768


def _riff(fmt_tag: int, channels: int, rate: int, bits: int, data: bytes,
          extra_chunks: bytes = b"") -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra_chunks
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_ulaw_and_alaw_wav_decode_here_without_ffmpeg(tmp_path, no_ffmpeg):
    x = sine(440, 0.1, 8000, 0.5)
    i16 = np.rint(x * 32768).astype(np.int16)
    (tmp_path / "u.wav").write_bytes(_riff(7, 1, 8000, 8, ulaw_encode(i16).tobytes()))
    out = load_prompt(tmp_path / "u.wav")
    assert len(out) == len(i16) and np.abs(out.astype(np.int32) - i16).max() <= 600


def _pcm24(x: np.ndarray) -> bytes:
    v24 = np.rint(x * (1 << 23)).astype(np.int32)
    return np.stack([v24 & 0xFF, (v24 >> 8) & 0xFF, (v24 >> 16) & 0xFF], 1).astype(np.uint8).tobytes()


def test_24_bit_wav_is_read_by_pydub_without_ffmpeg(tmp_path, no_ffmpeg):
    x = sine(440, 0.1, 16000, 0.5)
    (tmp_path / "p24.wav").write_bytes(_riff(1, 1, 16000, 24, _pcm24(x)))
    out = load_prompt(tmp_path / "p24.wav")
    expected = np.rint(sine(440, 0.1, 8000, 0.5) * 32768)
    assert len(out) == 800
    assert np.abs(out[50:-50] - expected[50:-50]).max() < 0.002 * 32768


def test_own_wav_decoder_handles_only_8_and_16_bit_pcm_and_g711():
    # The hand-written AIFF, 24-bit and RF64 readers are gone: pydub and ffmpeg do those.
    assert not hasattr(prompts, "_decode_aiff") and not hasattr(prompts, "_ieee_extended")
    assert set(prompts._WAV_FAST.values()) == {"u8", "s16le", "ulaw", "alaw"}


def test_float_wav_without_ffmpeg_says_how_to_convert(tmp_path, no_ffmpeg):
    x = sine(440, 0.1, 8000, 0.5)
    (tmp_path / "f.wav").write_bytes(_riff(3, 1, 8000, 32, x.astype("<f4").tobytes()))
    with pytest.raises(PromptError) as info:
        load_prompt(tmp_path / "f.wav")
    assert info.value.reason == (
        "WAV (float, 32-bit) needs ffmpeg to decode; install it (Debian: apt-get install "
        "ffmpeg) or convert the file to 16-bit PCM WAV "
        "(sox f.wav -e signed-integer -b 16 -r 8000 -c 1 f-8k.wav)"
    )


def _extensible(tag: int, bits: int, data: bytes, rate: int = 8000) -> bytes:
    """A WAVE_FORMAT_EXTENSIBLE WAV whose SubFormat GUID starts with ``tag``."""
    block = bits // 8
    guid = struct.pack("<H", tag) + bytes.fromhex("000000001000800000AA00389B71")
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, 1, rate, rate * block, block, bits, 22, bits, 4)
    fmt += guid
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_extensible_float_wav_is_never_read_as_pcm(tmp_path, no_ffmpeg):
    x = sine(440, 0.1, 8000, 0.5)
    (tmp_path / "xf.wav").write_bytes(_extensible(3, 32, x.astype("<f4").tobytes()))
    with pytest.raises(PromptError, match=r"WAV \(float, 32-bit\) needs ffmpeg"):
        load_prompt(tmp_path / "xf.wav")


def test_extensible_pcm_wav_decodes(tmp_path, no_ffmpeg):
    samples = pcm(400)
    (tmp_path / "x16.wav").write_bytes(_extensible(1, 16, samples.astype("<i2").tobytes()))
    np.testing.assert_array_equal(load_prompt(tmp_path / "x16.wav"), samples)
    x = sine(440, 0.1, 8000, 0.5)
    (tmp_path / "x24.wav").write_bytes(_extensible(1, 24, _pcm24(x)))
    assert np.abs(load_prompt(tmp_path / "x24.wav") - np.rint(x * 32768)).max() <= 1


@needs_ffmpeg
def test_extensible_float_wav_decodes_through_ffmpeg(tmp_path):
    x = sine(440, 0.1, 8000, 0.5)
    (tmp_path / "xf.wav").write_bytes(_extensible(3, 32, x.astype("<f4").tobytes()))
    assert np.abs(load_prompt(tmp_path / "xf.wav") - np.rint(x * 32768)).max() <= 2


@needs_ffmpeg
def test_float_wav_decodes_through_ffmpeg(tmp_path):
    x = sine(440, 0.1, 8000, 0.5)
    (tmp_path / "f.wav").write_bytes(_riff(3, 1, 8000, 32, x.astype("<f4").tobytes()))
    out = load_prompt(tmp_path / "f.wav")
    assert len(out) == 800
    assert np.abs(out - np.rint(x * 32768)).max() <= 2


def _rf64(samples: np.ndarray, rate: int) -> bytes:
    """An RF64 WAV (EBU Tech 3306): sizes in a ds64 chunk, the 32-bit ones set to -1."""
    data = samples.astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    ds64 = struct.pack("<QQQI", 4 + 36 + 24 + 8 + len(data), len(data), len(samples), 0)
    body = (b"WAVE" + b"ds64" + struct.pack("<I", len(ds64)) + ds64
            + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", 0xFFFFFFFF) + data)
    return b"RF64" + struct.pack("<I", 0xFFFFFFFF) + body


@needs_ffmpeg
def test_rf64_wav_decodes_through_ffmpeg(tmp_path):
    samples = pcm(1600)
    (tmp_path / "big.wav").write_bytes(_rf64(samples, 8000))
    np.testing.assert_array_equal(load_prompt(tmp_path / "big.wav"), samples)


def test_rf64_wav_without_ffmpeg_says_so(tmp_path, no_ffmpeg):
    (tmp_path / "big.wav").write_bytes(_rf64(pcm(160), 8000))
    with pytest.raises(PromptError, match=r"^.*big.wav: RF64 WAV needs ffmpeg to decode"):
        load_prompt(tmp_path / "big.wav")


def test_odd_sized_chunk_before_data_is_skipped_with_its_pad_byte(tmp_path):
    samples = pcm(100)
    junk = b"LIST" + struct.pack("<I", 3) + b"abc" + b"\x00"
    (tmp_path / "odd.wav").write_bytes(_riff(1, 1, 8000, 16, samples.tobytes(), junk))
    np.testing.assert_array_equal(load_prompt(tmp_path / "odd.wav"), samples)


def test_unfinished_recording_with_zero_data_size_reads_to_end_of_file(tmp_path):
    samples = pcm(321)
    data = bytearray(_riff(1, 1, 8000, 16, samples.tobytes() + b"\x01"))  # half a frame at the end
    data[40:44] = b"\x00\x00\x00\x00"  # data size never rewritten (crash)
    (tmp_path / "crash.wav").write_bytes(bytes(data))
    np.testing.assert_array_equal(load_prompt(tmp_path / "crash.wav"), samples)


def _aiff(samples: np.ndarray) -> bytes:
    rate_ext = bytes.fromhex("400BFA00000000000000")  # 8000.0 as 80-bit extended
    comm = struct.pack(">hIh", 1, len(samples), 16) + rate_ext
    ssnd = struct.pack(">II", 0, 0) + samples.astype(">i2").tobytes()
    body = b"AIFF" + b"COMM" + struct.pack(">I", len(comm)) + comm
    body += b"SSND" + struct.pack(">I", len(ssnd)) + ssnd
    return b"FORM" + struct.pack(">I", len(body)) + body


@needs_ffmpeg
def test_aiff_decodes_through_ffmpeg(tmp_path):
    samples = pcm(800)
    (tmp_path / "mac.aiff").write_bytes(_aiff(samples))
    np.testing.assert_array_equal(load_prompt(tmp_path / "mac.aiff"), samples)


def test_aiff_without_ffmpeg_says_how_to_convert(tmp_path, no_ffmpeg):
    (tmp_path / "mac.aiff").write_bytes(_aiff(pcm(80)))
    with pytest.raises(PromptError, match=r"AIFF needs ffmpeg .*\(sox mac.aiff .* mac.wav\)"):
        load_prompt(tmp_path / "mac.aiff")


@needs_ffmpeg
@pytest.mark.parametrize(("suffix", "codec"), [(".mp3", "libmp3lame"), (".ogg", "libvorbis")])
def test_compressed_music_decodes_through_ffmpeg_at_the_right_pitch(tmp_path, suffix, codec):
    src = write_wav(tmp_path / "src.wav", sine(500, 1.0, 44100, 0.4), 44100)
    out = tmp_path / f"music{suffix}"
    made = subprocess.run([FFMPEG, "-v", "error", "-y", "-i", str(src), "-c:a", codec, str(out)],
                          capture_output=True, timeout=60)
    if made.returncode != 0:
        pytest.skip(f"this ffmpeg cannot encode {codec}: {made.stderr.decode()[-200:]}")
    samples = load_prompt(out)
    assert abs(len(samples) - 8000) < 800  # encoders pad a little
    assert dominant_hz(samples[800:7200]) == pytest.approx(500, abs=3)


def test_asterisk_raw_formats_decode_by_suffix(tmp_path):
    samples = pcm(160)
    (tmp_path / "p.sln").write_bytes(samples.astype("<i2").tobytes())
    np.testing.assert_array_equal(load_prompt(tmp_path / "p.sln"), samples)
    (tmp_path / "p.ulaw").write_bytes(ulaw_encode(samples).tobytes())
    out = load_prompt(tmp_path / "p.ulaw")
    assert len(out) == 160
    assert np.corrcoef(out, samples)[0, 1] > 0.999


def test_missing_file_names_it_and_the_directory_and_a_close_match(tmp_path):
    write_wav(tmp_path / "welcome.wav", sine(400, 0.1, 8000), 8000)
    with pytest.raises(PromptError) as info:
        load_prompt(tmp_path / "welcom.wav")
    err = info.value
    assert err.path == tmp_path / "welcom.wav"
    assert str(tmp_path / "welcom.wav") in str(err)
    assert str(tmp_path) in err.reason and "welcome.wav" in err.reason


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(PromptError, match="does not exist") as info:
        load_prompt(tmp_path / "nope" / "x.wav")
    assert str(tmp_path / "nope") in str(info.value)


def test_mp3_without_ffmpeg_says_to_install_it_or_convert(tmp_path, no_ffmpeg):
    path = tmp_path / "welcome.mp3"
    path.write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(200))
    with pytest.raises(PromptError) as info:
        load_prompt(path)
    assert str(info.value) == (
        f"{path}: MP3 needs ffmpeg to decode; install it (Debian: apt-get install ffmpeg) "
        "or convert the file to 16-bit PCM WAV "
        "(sox welcome.mp3 -e signed-integer -b 16 -r 8000 -c 1 welcome.wav)"
    )


def test_adpcm_wav_without_ffmpeg_says_how_to_convert(tmp_path, no_ffmpeg):
    (tmp_path / "adpcm.wav").write_bytes(_riff(0x11, 1, 8000, 4, bytes(100)))
    with pytest.raises(PromptError, match=r"WAV \(IMA ADPCM, 4-bit\) needs ffmpeg.*\(sox adpcm"):
        load_prompt(tmp_path / "adpcm.wav")


def test_with_ffmpeg_present_pydub_decodes_and_result_is_converted(tmp_path, monkeypatch):
    pydub = pytest.importorskip("pydub")
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: f"/usr/bin/{name}")
    tone = np.rint(np.stack([sine(1000, 0.5, 16000)] * 2, axis=1) * 32768).astype("<i2")
    segment = pydub.AudioSegment(data=tone.tobytes(), sample_width=2, frame_rate=16000, channels=2)
    monkeypatch.setattr(pydub.AudioSegment, "from_file", lambda f, *a, **k: segment)
    path = tmp_path / "music.ogg"
    path.write_bytes(b"OggS" + bytes(100))
    out = load_prompt(path)
    assert out.shape == (4000,) and dominant_hz(out) == pytest.approx(1000, abs=2)


def test_ffmpeg_decoder_failure_reports_its_reason(tmp_path, monkeypatch):
    pydub = pytest.importorskip("pydub")
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: f"/usr/bin/{name}")

    def fail(f, *a, **k):
        raise pydub.exceptions.CouldntDecodeError(
            "Decoding failed. ffmpeg returned error code: 1\n\nOutput:\n\nInvalid data found")

    monkeypatch.setattr(pydub.AudioSegment, "from_file", fail)
    path = tmp_path / "broken.mp3"
    path.write_bytes(bytes(10))
    with pytest.raises(PromptError, match="MP3 could not be decoded by ffmpeg: Invalid data found"):
        load_prompt(path)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"ID3\x04" + bytes(60), "is not a WAV"),
        (b"RIFF\x10\x00\x00\x00WAVEjunk\x00\x00\x00\x00", "no 'fmt ' chunk"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + struct.pack(
            "<HHIIHH", 1, 1, 8000, 16000, 2, 16), "no 'data' chunk"),
        (_riff(1, 0, 8000, 16, bytes(4)), "0 channel"),
    ],
)
def test_corrupt_wav_is_a_prompt_error_with_the_reason(tmp_path, content, reason):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(PromptError, match=reason) as info:
        load_prompt(path)
    assert str(info.value).startswith(str(path))


def test_directory_is_not_a_prompt(tmp_path):
    with pytest.raises(PromptError, match="directory"):
        load_prompt(tmp_path)


# ---------------------------------------------------------------- cache


def test_cache_loads_once_and_counts_hits_and_misses(tmp_path):
    path = write_wav(tmp_path / "a.wav", sine(400, 0.5, 8000), 8000)
    cache = PromptCache()
    first = cache.get(path)
    second = cache.get(tmp_path / "." / "a.wav")  # same file, another spelling
    assert second is first
    assert (cache.hits, cache.misses, cache.bytes_used) == (1, 1, first.nbytes)
    assert not first.flags.writeable


def test_cache_evicts_least_recently_used_by_bytes(tmp_path):
    paths = [write_wav(tmp_path / f"{i}.wav", sine(400, 0.25, 8000), 8000) for i in range(3)]
    one = 2000 * 2  # 0.25 s of int16
    cache = PromptCache(max_bytes=2 * one)
    cache.get(paths[0])
    cache.get(paths[1])
    cache.get(paths[0])  # 0 is now the most recent
    cache.get(paths[2])  # evicts 1
    assert cache.bytes_used == 2 * one and len(cache) == 2
    hits = cache.hits
    cache.get(paths[0])
    assert cache.hits == hits + 1
    misses = cache.misses
    cache.get(paths[1])
    assert cache.misses == misses + 1


def test_replaced_file_is_reloaded_and_the_old_samples_dropped(tmp_path):
    path = write_wav(tmp_path / "greeting.wav", sine(400, 0.5, 8000), 8000)
    cache = PromptCache()
    old = cache.get(path)
    write_wav(path, sine(900, 0.25, 8000), 8000)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    new = cache.get(path)
    assert len(new) == 2000 and len(old) == 4000
    assert dominant_hz(new) == pytest.approx(900, abs=5)
    assert cache.misses == 2 and cache.bytes_used == new.nbytes and len(cache) == 1


def test_failed_load_is_not_cached(tmp_path):
    path = tmp_path / "later.wav"
    cache = PromptCache()
    with pytest.raises(PromptError):
        cache.get(path)
    path.write_bytes(b"garbage")
    with pytest.raises(PromptError):
        cache.get(path)
    write_wav(path, sine(400, 0.1, 8000), 8000)
    os.utime(path, ns=(1, 10**18))
    assert len(cache.get(path)) == 800
    assert cache.misses == 3 and cache.hits == 0


def test_prompt_bigger_than_the_cache_is_returned_not_kept(tmp_path):
    path = write_wav(tmp_path / "long.wav", sine(400, 0.5, 8000), 8000)
    cache = PromptCache(max_bytes=100)
    assert len(cache.get(path)) == 4000
    assert cache.bytes_used == 0 and len(cache) == 0


def test_preload_reports_each_bad_prompt_with_its_path_and_loads_the_rest(tmp_path, no_ffmpeg):
    good = write_wav(tmp_path / "welcome.wav", sine(400, 0.25, 8000), 8000)
    (tmp_path / "menu.mp3").write_bytes(b"ID3" + bytes(40))
    cache = PromptCache()
    problems = cache.preload([good, tmp_path / "welcom2.wav", tmp_path / "menu.mp3"])
    assert [p for p, _ in problems] == [tmp_path / "welcom2.wav", tmp_path / "menu.mp3"]
    assert "did you mean welcome.wav?" in problems[0][1]
    assert problems[1][1].startswith("MP3 needs ffmpeg to decode")
    assert len(cache.lookup(good)) == 2000 and len(cache) == 1


def test_lookup_never_touches_the_disk(tmp_path, monkeypatch):
    path = write_wav(tmp_path / "greeting.wav", sine(400, 0.25, 8000), 8000)
    cache = PromptCache()
    assert cache.preload([path]) == []
    monkeypatch.chdir(tmp_path)

    def no_io(*args, **kwargs):
        raise AssertionError("the media tick must not touch the disk")

    for name in ("stat", "resolve", "read_bytes", "exists", "open"):
        monkeypatch.setattr(Path, name, no_io)
    monkeypatch.setattr(prompts, "load_prompt", no_io)
    hits = cache.hits
    assert cache.lookup(path) is cache.lookup(Path("greeting.wav"))  # relative to the cwd
    assert cache.hits == hits + 2


def test_lookup_of_a_prompt_never_preloaded_raises_a_clear_error(tmp_path):
    path = write_wav(tmp_path / "late.wav", sine(400, 0.1, 8000), 8000)
    cache = PromptCache()
    with pytest.raises(PromptNotLoaded, match="was not preloaded") as info:
        cache.lookup(path)
    assert info.value.path == path and isinstance(info.value, PromptError)
    assert len(cache) == 0  # looking up did not load it either


def test_preloaded_prompts_are_pinned_while_on_demand_ones_make_room(tmp_path):
    one = 2000 * 2  # 0.25 s of int16
    paths = [write_wav(tmp_path / f"{i}.wav", sine(400, 0.25, 8000), 8000) for i in range(4)]
    cache = PromptCache(max_bytes=2 * one)
    assert cache.preload(paths[:1]) == []
    cache.get(paths[1])
    cache.get(paths[2])  # evicts 1 (on demand), never 0 (preloaded)
    cache.get(paths[3])
    assert cache.lookup(paths[0]) is not None
    with pytest.raises(PromptNotLoaded):
        cache.lookup(paths[1])


def test_preload_that_cannot_fit_beside_the_pinned_prompts_is_a_problem(tmp_path):
    one = 2000 * 2
    paths = [write_wav(tmp_path / f"{i}.wav", sine(400, 0.25, 8000), 8000) for i in range(3)]
    cache = PromptCache(max_bytes=2 * one)
    problems = cache.preload(paths)
    assert [p for p, _ in problems] == [paths[2]]
    assert problems[0][1].startswith("does not fit in the prompt cache") and (
        "raise media.prompt_cache_mb" in problems[0][1])
    assert cache.bytes_used == 2 * one


def test_preloading_again_picks_up_a_replaced_file(tmp_path):
    path = write_wav(tmp_path / "greeting.wav", sine(400, 0.5, 8000), 8000)
    cache = PromptCache()
    cache.preload([path])
    assert cache.preload([path]) == [] and cache.misses == 1  # unchanged: not decoded again
    write_wav(path, sine(900, 0.25, 8000), 8000)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert len(cache.lookup(path)) == 4000  # lookup answers with what was loaded
    cache.preload([path])
    assert len(cache.lookup(path)) == 2000 and cache.bytes_used == 4000


def test_lookups_in_the_loop_while_a_thread_preloads_stay_consistent(tmp_path):
    paths = [write_wav(tmp_path / f"{i}.wav", sine(300 + i, 0.05, 8000), 8000) for i in range(40)]
    cache = PromptCache(max_bytes=40 * 800)
    cache.preload(paths[:1])
    worker = threading.Thread(target=cache.preload, args=(paths,))
    worker.start()
    while worker.is_alive():
        assert len(cache.lookup(paths[0])) == 400
    worker.join()
    assert all(len(cache.lookup(p)) == 400 for p in paths) and cache.bytes_used == 40 * 800


# ---------------------------------------------------------------- player


def render_all(player: PromptPlayer, frames: int, n: int = 160) -> dict[int, list[np.ndarray]]:
    out: dict[int, list[np.ndarray]] = {}
    for _ in range(frames):
        rows, audio = player.render(n)
        assert audio.shape == (len(rows), n) and audio.dtype == np.int16
        for r, a in zip(rows.tolist(), audio, strict=True):
            out.setdefault(r, []).append(a)
    return out


def test_frame_by_frame_render_is_the_buffer_sample_exact():
    buf = pcm(1600)
    player = PromptPlayer(1)
    player.play(0, buf)
    got = np.concatenate(render_all(player, 10)[0])
    np.testing.assert_array_equal(got, buf)
    assert not player.playing(0)


def test_end_mid_frame_is_zero_padded_and_reported_once():
    buf = pcm(250)
    player = PromptPlayer(2)
    pid = player.play(1, buf)
    rows, first = player.render()
    assert rows.tolist() == [1] and player.take_finished() == []
    rows, second = player.render()
    np.testing.assert_array_equal(second[0, :90], buf[160:])
    assert not second[0, 90:].any()
    assert player.take_finished() == [(1, pid)]
    assert player.take_finished() == []
    rows, _ = player.render()
    assert rows.size == 0 and not player.playing(1)


def test_loop_wraps_sample_exact_across_frames():
    buf = pcm(333)
    player = PromptPlayer(1)
    player.play(0, buf, loop=True, start=100)
    got = np.concatenate(render_all(player, 7)[0])
    np.testing.assert_array_equal(got, np.tile(buf, 5)[100:100 + 7 * 160])
    assert player.position(0) == (100 + 7 * 160) % 333
    assert player.take_finished() == []


def test_loop_shorter_than_a_frame_wraps_several_times():
    buf = pcm(7)
    player = PromptPlayer(1)
    player.play(0, buf, loop=True)
    got = np.concatenate(render_all(player, 2)[0])
    np.testing.assert_array_equal(got, np.tile(buf, 50)[:320])


def test_barge_in_stops_only_plays_that_allow_it():
    player = PromptPlayer(2)
    player.play(0, pcm(8000), barge_in=True)
    player.play(1, pcm(8000), barge_in=False)
    assert player.barge(0) is True and not player.playing(0)
    assert player.barge(1) is False and player.playing(1)
    assert player.barge(0) is False  # nothing left to stop
    assert player.take_finished() == []  # stopped, not finished


def test_many_channels_with_different_buffers_and_positions_in_one_render():
    bufs = [pcm(1000 + 37 * i, seed=i) for i in range(6)]
    player = PromptPlayer(10)
    starts = {}
    for ch, b in zip((9, 0, 4, 7, 2, 5), bufs, strict=True):
        starts[ch] = 11 * ch
        player.play(ch, b, start=starts[ch], loop=ch % 2 == 1)
    rows, audio = player.render()
    assert rows.tolist() == [0, 2, 4, 5, 7, 9]
    for ch, b in zip((9, 0, 4, 7, 2, 5), bufs, strict=True):
        row = rows.tolist().index(ch)
        np.testing.assert_array_equal(audio[row], b[starts[ch]:starts[ch] + 160])


def test_play_replaces_and_stop_silences_without_reporting():
    a, b = pcm(500, 1), pcm(500, 2)
    player = PromptPlayer(1)
    first = player.play(0, a)
    player.render()
    second = player.play(0, b)
    assert second != first and player.play_id(0) == second and player.position(0) == 0
    _, audio = player.render()
    np.testing.assert_array_equal(audio[0], b[:160])
    player.stop(0)
    assert player.render()[0].size == 0 and player.take_finished() == []


def test_empty_buffer_and_start_past_end_finish_at_once():
    player = PromptPlayer(1)
    p1 = player.play(0, np.zeros(0, dtype=np.int16))
    p2 = player.play(0, pcm(10), start=10)
    assert player.take_finished() == [(0, p1), (0, p2)] and not player.playing(0)


def test_bad_arguments_are_refused():
    player = PromptPlayer(2)
    with pytest.raises(IndexError):
        player.play(2, pcm(10))
    with pytest.raises(TypeError):
        player.play(0, np.zeros(10, dtype=np.float32))
    with pytest.raises(ValueError):
        player.play(0, pcm(10), start=-1)


def test_storage_is_reclaimed_and_live_plays_survive_compaction():
    player = PromptPlayer(3)
    keep = pcm(20000, 99)
    player.play(0, keep, loop=True, start=5)
    for i in range(40):  # 40 × 20 000 writable samples: more than the initial 64 K
        player.play(1, np.full(20000, i, dtype=np.int16))
        player.render()
    assert player._used < 200_000  # the garbage was reclaimed, not grown without bound
    rows, audio = player.render()
    np.testing.assert_array_equal(audio[0], keep[5 + 40 * 160:5 + 41 * 160])
    np.testing.assert_array_equal(audio[1], np.full(160, 39, dtype=np.int16))


def test_shared_read_only_buffer_is_stored_once():
    player = PromptPlayer(100)
    buf = pcm(5000)
    for ch in range(100):
        player.play(ch, buf, start=ch)
    assert player._used == 5000
    rows, audio = player.render()
    np.testing.assert_array_equal(audio[42], buf[42:202])


def test_resize_keeps_plays_on_kept_channels():
    player = PromptPlayer(2)
    buf = pcm(1000)
    player.play(1, buf)
    player.resize(5)
    player.play(4, buf, start=3)
    rows, audio = player.render()
    assert rows.tolist() == [1, 4]
    player.resize(2)
    rows, _ = player.render()
    assert rows.tolist() == [1] and player.channels == 2


def test_render_1000_channels_is_fast():
    player = PromptPlayer(1000)
    bufs = [pcm(8000 * (2 + i), seed=i) for i in range(10)]
    for ch in range(1000):
        player.play(ch, bufs[ch % 10], loop=ch % 3 == 0, start=ch * 7)
    for _ in range(5):
        player.render()
    t = time.perf_counter()
    for _ in range(100):
        player.render()
    per_frame = (time.perf_counter() - t) / 100
    assert per_frame < 0.010  # a 20 ms budget shared with mixing, DTMF, recording


# ---------------------------------------------------------------- music on hold


def test_held_calls_resume_at_their_own_positions(tmp_path):
    write_wav(tmp_path / "a.wav", sine(400, 1.0, 8000), 8000)
    moh = MusicOnHold(tmp_path, PromptCache())
    assert moh.preload() == []
    player = PromptPlayer(4)
    moh.start(player, 0, "call-A")
    render_all(player, 10)
    moh.start(player, 1, "call-B")
    render_all(player, 3)
    moh.stop(player, 0, "call-A")  # A held 13 frames in
    moh.stop(player, 1, "call-B")  # B 3 frames in
    assert not player.playing(0) and not player.playing(1)
    render_all(player, 5)
    moh.start(player, 2, "call-B")  # held again, on another line even
    moh.start(player, 0, "call-A")
    rows, audio = player.render()
    np.testing.assert_array_equal(audio[rows.tolist().index(0)], moh.samples[13 * 160:14 * 160])
    np.testing.assert_array_equal(audio[rows.tolist().index(2)], moh.samples[3 * 160:4 * 160])


def test_forgotten_call_starts_from_the_top(tmp_path):
    moh = MusicOnHold(None, PromptCache())
    player = PromptPlayer(1)
    moh.start(player, 0, "c1")
    render_all(player, 4)
    moh.stop(player, 0, "c1")
    moh.forget("c1")
    moh.start(player, 0, "c1")
    assert player.position(0) == 0


def test_moh_is_not_cut_by_dtmf_and_loops(tmp_path):
    moh = MusicOnHold(None, PromptCache())
    player = PromptPlayer(1)
    moh.start(player, 0, "c1")
    assert player.barge(0) is False
    render_all(player, len(moh.samples) // 160 + 3)
    assert player.playing(0)


def test_stop_leaves_a_prompt_that_replaced_the_music_alone(tmp_path):
    moh = MusicOnHold(None, PromptCache())
    player = PromptPlayer(1)
    moh.start(player, 0, "c1")
    render_all(player, 2)
    announcement = player.play(0, pcm(4000))
    moh.stop(player, 0, "c1")
    assert player.play_id(0) == announcement


def test_playlist_is_the_files_in_name_order_and_bad_files_are_skipped(tmp_path, no_ffmpeg):
    write_wav(tmp_path / "2-second.wav", sine(600, 0.1, 8000), 8000)
    write_wav(tmp_path / "1-first.wav", sine(300, 0.2, 16000), 16000)
    (tmp_path / "3-broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    (tmp_path / "4-song.mp3").write_bytes(b"ID3" + bytes(50))
    (tmp_path / "README.md").write_text("not music")
    moh = MusicOnHold(tmp_path, PromptCache())
    skipped = dict(moh.preload())
    assert [p.name for p in moh.files] == ["1-first.wav", "2-second.wav"]
    assert len(moh.samples) == 1600 + 800
    assert dominant_hz(moh.samples[:1600]) == pytest.approx(300, abs=6)
    assert set(skipped) == {tmp_path / "3-broken.wav", tmp_path / "4-song.mp3"}
    assert "ffmpeg" in skipped[tmp_path / "4-song.mp3"]


def test_music_is_read_only_at_preload_never_when_a_call_is_held(tmp_path, monkeypatch):
    write_wav(tmp_path / "a.wav", sine(400, 0.5, 8000), 8000)
    reads: list[Path] = []
    real = prompts.load_prompt
    monkeypatch.setattr(prompts, "load_prompt", lambda p: reads.append(p) or real(p))
    moh = MusicOnHold(tmp_path, PromptCache())
    assert reads == []  # building it reads nothing
    player = PromptPlayer(1)
    with pytest.raises(PromptNotLoaded, match="MusicOnHold.preload"):
        moh.start(player, 0, "c1")
    moh.preload()
    assert reads == [tmp_path / "a.wav"]
    moh.start(player, 0, "c1")
    render_all(player, 3)
    moh.stop(player, 0, "c1")
    moh.start(player, 0, "c2")
    assert reads == [tmp_path / "a.wav"] and len(moh.samples) == 4000


def test_preload_again_picks_up_new_music(tmp_path):
    write_wav(tmp_path / "a.wav", sine(400, 0.5, 8000), 8000)
    moh = MusicOnHold(tmp_path, PromptCache())
    moh.preload()
    write_wav(tmp_path / "b.wav", sine(500, 0.25, 8000), 8000)
    assert moh.preload() == [] and len(moh.samples) == 6000


@pytest.mark.parametrize("kind", ["none", "missing", "empty", "only-bad"])
def test_no_playable_music_falls_back_to_a_soft_chime(tmp_path, kind):
    folder = {"none": None, "missing": tmp_path / "nope", "empty": tmp_path,
              "only-bad": tmp_path}[kind]
    if kind == "only-bad":
        (tmp_path / "x.wav").write_bytes(b"nonsense")
    moh = MusicOnHold(folder, PromptCache())
    problems = moh.preload()
    assert [p for p, _ in problems] == {"none": [], "missing": [tmp_path / "nope"], "empty": [],
                                        "only-bad": [tmp_path / "x.wav"]}[kind]
    s = moh.samples.astype(np.float64)
    assert len(s) == 4 * 8000 and s.any()
    assert np.abs(s).max() < 0.2 * 32768  # soft
    assert s[0] == 0 and np.abs(s[-200:]).max() < 50  # loops without a click
    spectrum = np.abs(np.fft.rfft(s))
    freqs = np.fft.rfftfreq(len(s), 1 / 8000)
    # No energy in the DTMF high group (1209–1633 Hz): it can never fake a digit.
    assert spectrum[(freqs > 1150) & (freqs < 1700)].max() < 0.01 * spectrum.max()


def test_missing_music_folder_is_reported_with_what_callers_hear(tmp_path):
    ((path, reason),) = MusicOnHold(tmp_path / "moh", PromptCache()).preload()
    assert path == tmp_path / "moh"
    assert reason == ("the music-on-hold folder does not exist; callers on hold hear the "
                      "generated chime instead")


def test_demo_moh_in_the_repo_loads(tmp_path):
    demo = Path(__file__).resolve().parent.parent / "prompts" / "moh" / "demo.wav"
    if not demo.exists():
        pytest.skip("prompts/moh/demo.wav not generated (python tools/make_demo_moh.py)")
    moh = MusicOnHold(demo.parent, PromptCache())
    assert moh.preload() == []
    assert moh.files == [demo] and len(moh.samples) == 20 * 8000


def test_hold_music_never_sounds_like_a_key_press():
    dtmf = pytest.importorskip("switchd.lines.dtmf")
    demo = Path(__file__).resolve().parent.parent / "prompts" / "moh"
    for moh in (MusicOnHold(None, PromptCache()), MusicOnHold(demo, PromptCache())):
        moh.preload()
        assert dtmf.detect_digits(np.tile(moh.samples, 2)) == ""


def test_module_exports_match_the_documented_api():
    assert {"MusicOnHold", "PromptCache", "PromptError", "PromptNotLoaded", "PromptPlayer",
            "load_prompt"} <= set(prompts.__all__)


def test_unpinned_prompts_make_room_for_the_next_pinned_ones(tmp_path):
    """A reload lets the old flows' prompts go: pinning the new ones then fits."""
    import wave as _wave

    def wav(name: str) -> Path:
        p = tmp_path / name
        with _wave.open(str(p), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(b"\x01\x00" * 8000)  # 1 s: 16 000 bytes decoded
        return p

    old, new = wav("old.wav"), wav("new.wav")
    cache = PromptCache(max_bytes=20_000)
    assert cache.preload([old]) == []
    (problem,) = cache.preload([new])
    assert problem[0] == new and "does not fit" in problem[1]
    cache.unpin([old, tmp_path / "never-loaded.wav"])
    assert cache.preload([new]) == []
    assert len(cache.lookup(new)) == 8000
