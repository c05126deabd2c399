"""`switchd check` refuses what `switchd run` refuses, with the same words, and warns alike.

Every case goes through the real command in a subprocess (``python -m switchd``), so
the argument parsing, the exit codes and the output streams are the ones an operator
gets: `check` prints to stdout, `run` prints its refusals to stderr (its log is on
stdout) and logs each warning as a ``config_warning`` event whose ``problem`` is the
line `check` prints.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import wave
from pathlib import Path

import pytest

from switchd.passwords import hash_secret

DEMO = hash_secret("demo", iterations=1000)
REAL = hash_secret("not-the-demo", iterations=1000)


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(key, None)
    return env


def write_config(tmp: Path, body: str) -> Path:
    path = tmp / "switchd.yaml"
    path.write_text(textwrap.dedent(body).lstrip("\n"), encoding="utf-8")
    return path


def check(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "switchd", "check", "-c", str(config), *extra],
                          capture_output=True, text=True, timeout=60, cwd=config.parent,
                          env=_env())


def run_refused(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`switchd run` on a config it must refuse: it exits by itself."""
    return subprocess.run(
        [sys.executable, "-m", "switchd", "run", "-c", str(config), "--state-dir",
         str(config.parent / "state"), "--log-format", "json", *extra],
        capture_output=True, text=True, timeout=60, cwd=config.parent, env=_env())


def run_warnings(config: Path, expected: int) -> tuple[list[str], str]:
    """Start `switchd run`, collect its ``config_warning`` lines, stop it with SIGTERM.

    Returns (the warnings' ``problem`` fields, stderr).
    """
    log_path = config.parent / "run.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "switchd", "run", "-c", str(config), "--state-dir",
             str(config.parent / "state"), "--cti-listen", "127.0.0.1:0", "--log-format", "json"],
            stdout=out, stderr=subprocess.PIPE, cwd=config.parent, env=_env())
    try:
        deadline = time.monotonic() + 30
        while True:
            records = [json.loads(line) for line in log_path.read_text().splitlines()
                       if line.startswith("{")]
            warnings = [r["problem"] for r in records if r.get("event") == "config_warning"]
            started = any(r.get("event") == "switchd_started" for r in records)
            if (started and len(warnings) >= expected) or proc.poll() is not None:
                break
            assert time.monotonic() < deadline, f"no start within 30 s: {records[-3:]}"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    err = proc.stderr.read().decode() if proc.stderr else ""
    return warnings, err


def _wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(1600))
    return path


# --- refusals: same lines, exit 1 -------------------------------------------------


def test_config_errors_are_the_same_lines_from_check_and_run(tmp_path):
    config = write_config(tmp_path, """
        board:
          trunkz: 8
        routes:
          - to: group:nope
        """)
    checked, ran = check(config), run_refused(config)
    assert checked.returncode == 1 and ran.returncode == 1
    lines = checked.stdout.splitlines()
    assert lines == [
        f"{config}:2:3: unknown key 'trunkz' in board; did you mean 'trunks'?",
        f"{config}:4:9: routes[0].to: no ring group 'nope' (ring groups: none are defined)",
    ]
    err = ran.stderr.splitlines()
    assert err[:-1] == lines
    assert err[-1].startswith(f"switchd: not starting: {config} has 2 problem(s)")


def test_demo_secrets_beyond_loopback_are_refused_by_both_with_one_message(tmp_path):
    config = write_config(tmp_path, f"""
        users:
          - {{name: admin, role: admin, secret: "{DEMO}"}}
          - {{name: agent1, role: agent, extension: 201, secret: "{REAL}"}}
        cti:
          listen: "0.0.0.0:0"
        """)
    checked, ran = check(config), run_refused(config)
    message = (
        f"{config}: users admin still have the demo secrets of the shipped config.yaml, and "
        "the control socket would listen on 0.0.0.0, which is not a loopback address, so "
        "anyone who can reach it could log in with them; set real secrets with `switchd "
        "passwd` or listen on 127.0.0.1"
    )
    assert (checked.returncode, checked.stdout.splitlines()) == (1, [message])
    assert ran.returncode == 1
    assert ran.stderr.splitlines() == [
        message, "switchd: not starting: demo secrets on a non-loopback address"
    ]
    logged = [json.loads(line) for line in ran.stdout.splitlines()]
    assert [(r["event"], r["problem"]) for r in logged] == [("demo_secrets_refused", message)]


def test_cti_listen_override_is_checked_as_run_would_use_it(tmp_path):
    config = write_config(tmp_path, f"""
        users:
          - {{name: admin, role: admin, secret: "{DEMO}"}}
        media: {{moh_dir: null}}
        """)
    (tmp_path / "prompts").mkdir()
    assert check(config).returncode == 0
    beyond = check(config, "--cti-listen", "[::]:7070")
    ran = run_refused(config, "--cti-listen", "[::]:0")
    assert beyond.returncode == ran.returncode == 1
    assert "would listen on [::], which is not a loopback address" in beyond.stdout
    assert ran.stderr.splitlines()[0] == beyond.stdout.strip()
    bad = check(config, "--cti-listen", "nowhere")
    assert bad.returncode == 2 and "--cti-listen nowhere: expected HOST:PORT" in bad.stderr


def test_a_speech_file_that_cannot_be_played_is_refused_by_both_at_its_key(tmp_path):
    (tmp_path / "speech.wav").write_bytes(b"RIFF\x04\x00\x00\x00WAVE")
    config = write_config(tmp_path, """
        sim:
          audio:
            callers: speech
            speech_file: speech.wav
        """)
    checked, ran = check(config), run_refused(config)
    expected = [
        f"{config}:4:18: sim.audio.speech_file: {tmp_path / 'speech.wav'}: corrupt WAV: no "
        "'fmt ' chunk; re-export it as 16-bit PCM WAV"
    ]
    assert (checked.returncode, checked.stdout.splitlines()) == (1, expected)
    assert ran.returncode == 1 and ran.stderr.splitlines()[:-1] == expected


# --- warnings: check prints them, run logs the same lines and starts ---------------


def test_warnings_are_the_same_lines_from_check_and_run(tmp_path):
    moh = tmp_path / "music"
    moh.mkdir()
    _wav(moh / "1-ok.wav")
    (moh / "2-bad.wav").write_bytes(b"this is not audio")
    config = write_config(tmp_path, f"""
        users:
          - {{name: sup, role: supervisor, secret: "{REAL}"}}
          - {{name: bob, role: agent, secret: "{REAL}"}}
        media:
          prompts_dir: voice
          moh_dir: music
        """)
    checked = check(config)
    assert checked.returncode == 0
    *warnings, summary = checked.stdout.splitlines()
    assert summary.startswith(f"{config}: ok — ")
    assert warnings == [
        f"{config}:3:5: warning: users[1]: agent 'bob' has no extension, so no call can be "
        "offered to them and they can answer none; set users[1].extension to the number of "
        "their phone",
        f"{config}:5:16: warning: media.prompts_dir: the folder {tmp_path / 'voice'} does not "
        "exist, so no prompt can be found there; copy the prompts folder next to the config "
        "file or set media.prompts_dir to where it is",
        f"{config}:6:12: warning: media.moh_dir: {moh / '2-bad.wav'}: is not a WAV (RIFF/WAVE) "
        "file (it starts with b'this is not '); re-export it as 16-bit PCM WAV; the file is "
        "skipped",
    ]
    logged, err = run_warnings(config, expected=len(warnings))
    assert sorted(logged) == sorted(warnings), err


def test_a_missing_music_folder_is_the_same_warning_in_both(tmp_path):
    (tmp_path / "prompts").mkdir()
    config = write_config(tmp_path, "media:\n  moh_dir: hold-music\n")
    checked = check(config)
    assert checked.returncode == 0
    warnings = checked.stdout.splitlines()[:-1]
    assert warnings == [
        f"{config}:2:12: warning: media.moh_dir: {tmp_path / 'hold-music'}: the music-on-hold "
        "folder does not exist; callers on hold hear the generated chime instead"
    ]
    logged, err = run_warnings(config, expected=1)
    assert logged == warnings, err


@pytest.mark.parametrize("fmt", ["json"])
def test_a_clean_config_has_no_warning_in_either(tmp_path, fmt):
    (tmp_path / "prompts" / "moh").mkdir(parents=True)
    config = write_config(tmp_path, f"""
        users:
          - {{name: ann, role: agent, extension: 201, secret: "{REAL}"}}
        """)
    checked = check(config)
    assert checked.returncode == 0 and len(checked.stdout.splitlines()) == 1
    logged, err = run_warnings(config, expected=0)
    assert logged == [], err
