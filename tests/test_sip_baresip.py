"""A real softphone against the daemon's SIP board: baresip (Debian's package, installed by
`make test` as root; skipped, saying so, where it is missing) registers as extension 201
with digest, answers a carrier's call, and each side hears the other's tone; its RFC 4733
keys reach the IVR as one digit each; the recording of the call holds both sides."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.baresip import BINARY, Baresip, write_wav
from tests.sip_ua import Ua, power_at, tone
from tests.test_sip_daemon import CARRIER_HOST, PASSWORD, _daemon, _sip_config, _wait_cdr

pytestmark = pytest.mark.skipif(
    BINARY is None, reason="baresip is not installed (as root `make test` installs it with "
    "apt-get install baresip-core; elsewhere: sudo apt-get install baresip-core)")


def test_baresip_registers_answers_a_carrier_call_and_both_sides_hear_each_other(
        tmp_path: Path) -> None:
    voice = tmp_path / "tone1k.wav"
    write_wav(voice, tone(1000, 60.0))
    cfg = _sip_config()
    cfg["routes"].insert(0, {"dnis": "8200", "to": "extension:201", "record": "on_answer"})
    with _daemon(tmp_path / "d", cfg) as (d, sw):
        phone = Baresip(tmp_path / "baresip",
                        f"<sip:201@{sw[0]}:{sw[1]}>;auth_pass={PASSWORD};regint=60", voice)
        phone.start()
        try:
            phone.wait_registered()

            async def carrier_call() -> np.ndarray:
                caller = await Ua("13900000000", sw, voice=tone(600, 1.0), host=CARRIER_HOST).start()
                try:
                    resp, call = await caller.dial("4930123")
                    assert resp.status == 200
                    await asyncio.sleep(2.5)
                    heard = caller.heard()
                    assert (await caller.hang_up(call)).status == 200
                    return heard
                finally:
                    caller.close()

            heard_by_caller = asyncio.run(carrier_call())
            phone.wait_event("CALL_CLOSED", 5)
        finally:
            phone.stop()
        assert power_at(heard_by_caller[-8000:], 1000) > 0.8      # baresip's file, through us
        heard_by_phone = phone.heard()
        assert power_at(heard_by_phone[-8000:], 600) > 0.8        # the carrier's tone, at baresip
        rows = asyncio.run(_wait_cdr(d))
        assert rows[0]["disposition"] == "ANSWERED"
        con = sqlite3.connect(d.db)
        [name] = con.execute("SELECT file FROM recordings").fetchone()
        con.close()
        [wav_path] = [p for p in Path(d.state_dir).rglob("*.wav") if p.name == Path(name).name]
        with wave.open(str(wav_path)) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
            channels = w.getnchannels()
        both = pcm.reshape(-1, channels)
        mixed = both.astype(np.int32).sum(axis=1)
        assert power_at(mixed[-12000:], 1000) > 0.1 and power_at(mixed[-12000:], 600) > 0.1


def test_baresip_keys_sent_as_rfc_4733_reach_the_ivr_once_each(tmp_path: Path) -> None:
    voice = tmp_path / "quiet.wav"
    write_wav(voice, np.zeros(8000 * 60, dtype=np.int16))
    with _daemon(tmp_path / "d", _sip_config()) as (d, sw):
        phone = Baresip(tmp_path / "baresip",
                        f"<sip:201@{sw[0]}:{sw[1]}>;auth_pass={PASSWORD};regint=60", voice)
        phone.start()
        try:
            phone.wait_registered()
            phone.cmd("dial", f"sip:8000@{sw[0]}:{sw[1]}")
            phone.wait_event("CALL_ESTABLISHED", 10)
            time.sleep(1.0)
            for key in "9":
                phone.cmd("sndcode", key)
                time.sleep(0.6)
            time.sleep(0.5)
            phone.cmd("hangup")
        finally:
            phone.stop()
        digits = [json.loads(ln)["digit"] for ln in d.log_lines() if '"call.dtmf"' in ln]
        assert digits == ["9"]
