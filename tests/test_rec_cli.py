"""``switchd recordings find|export|keep|purge`` on a real database and real WAV files:
in-process through ``switchd.__main__.main`` (logging left alone), and once as the real
command in a subprocess."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import subprocess
import sys
import wave
from pathlib import Path

import pytest
import yaml

from switchd.__main__ import main
from switchd.recorder.model import recording_relpath
from switchd.store import Store
from switchd.timefmt import iso_utc
from tests.daemon import ROOT, make_config
from tests.test_rec_index import insert_row, write_wav

DAY = 86_400.0
T0 = 1796010523.0  # 2026-11-30T03:48:43Z
NOW_ISH = T0


@pytest.fixture(autouse=True)
def _quiet_logging(monkeypatch):
    """The command points structlog at stderr for the process; keep the test process's."""
    import switchd.logconfig

    monkeypatch.setattr(switchd.logconfig, "configure_logging", lambda *a, **k: None)


def seed(state: Path, specs: list[tuple[str, float, str]], *, bad_sha: str = "",
         missing: str = "") -> dict[str, Path]:
    """Rows and files: (id, start, status); each file a real WAV whose sha256 is indexed
    (``bad_sha``: that row's sha256 is wrong; ``missing``: that row has no file)."""
    directory = state / "recordings"
    files: dict[str, Path] = {}

    async def go() -> None:
        store = await Store.open(state / "switchd.db")
        for i, (rec_id, start, status) in enumerate(specs):
            path = directory / recording_relpath(rec_id, start)
            if rec_id != missing:
                write_wav(path, 800 * (i + 1), seed=i)
                files[rec_id] = path
            sha = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "00"
            await insert_row(store, rec_id, start, status=status,
                             end=None if status == "recording" else start + 60,
                             size=path.stat().st_size if path.exists() else 4444,
                             caller=f"13800000{i:03d}", agent=f"a{i % 2}",
                             sha256="ff" * 32 if rec_id == bad_sha else sha)
        await store.close()

    asyncio.run(go())
    return files


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()  # drop what seeding printed (the store's migration log lines)
    code = main(["recordings", *argv])
    out, err = capsys.readouterr()
    return code, out, err


SPECS = [("R0", T0, "done"), ("R1", T0 + 3600, "recovered"), ("R2", T0 + 2 * DAY, "done"),
         ("R3", T0 + 3 * DAY, "recording")]


def test_find_prints_a_table_newest_first(tmp_path, capsys):
    state = tmp_path / "state"
    seed(state, SPECS)
    code, out, _ = run(capsys, "find", "--state-dir", str(state), "-c", str(tmp_path / "none"))
    assert code == 0
    lines = out.splitlines()
    assert "4 recording(s), newest first; times UTC" in out
    order = [next(i for i, line in enumerate(lines) if f" {r} " in line) for r in
             ("R3", "R2", "R1", "R0")]
    assert order == sorted(order)
    assert "2026-11-30 03:48:43" in out and "recovered" in out and "0:01" in out


def test_find_json_gives_every_column_with_absolute_files_and_filters(tmp_path, capsys):
    state = tmp_path / "state"
    files = seed(state, SPECS)
    code, out, _ = run(capsys, "find", "--state-dir", str(state), "-c", "nope.yaml", "--json",
                       "--agent", "a0", "--since", "2026-11-30", "--until", "2026-12-02")
    assert code == 0
    got = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in got] == ["R0"]
    assert got[0]["file"] == str(files["R0"]) and got[0]["keep"] is False
    assert got[0]["start"] == iso_utc(T0) and got[0]["status"] == "done"
    code, out, _ = run(capsys, "find", "--state-dir", str(state), "-c", "nope.yaml", "--json",
                       "--status", "recording")
    assert [json.loads(line)["id"] for line in out.splitlines()] == ["R3"]


@pytest.mark.parametrize("argv, message", [
    (["--since", "yesterday"], "bad since 'yesterday': expected a date"),
    (["--limit", "0"], "bad limit 0: expected an integer from 1 to 10000"),
])
def test_find_refuses_a_bad_filter_with_exit_2(tmp_path, capsys, argv, message):
    state = tmp_path / "state"
    seed(state, SPECS[:1])
    code, _, err = run(capsys, "find", "--state-dir", str(state), "-c", "nope.yaml", *argv)
    assert code == 2 and message in err


def test_without_a_database_the_command_says_where_it_looked(tmp_path, capsys):
    code, _, err = run(capsys, "find", "--state-dir", str(tmp_path / "empty"), "-c", "nope.yaml")
    assert code == 1 and f"no database {tmp_path / 'empty' / 'switchd.db'}" in err
    code, _, err = run(capsys, "find", "-c", str(tmp_path / "nope.yaml"))
    assert code == 1 and "no config file" in err


def test_the_recordings_directory_comes_from_the_config(tmp_path, capsys):
    cfg = make_config()
    cfg["state_dir"] = "st"
    cfg["recording"]["path"] = "archive"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    seed(tmp_path / "st", SPECS[:1])
    code, out, err = run(capsys, "find", "-c", str(config), "--json")
    assert code == 0, err
    assert json.loads(out)["file"] == str(tmp_path / "archive" / recording_relpath("R0", T0))
    # --dir wins over the config.
    code, out, _ = run(capsys, "find", "-c", str(config), "--json", "--dir", str(tmp_path / "x"))
    assert json.loads(out)["file"] == str(tmp_path / "x" / recording_relpath("R0", T0))


def test_the_default_directory_follows_state_dir(tmp_path, capsys):
    cfg = make_config()
    cfg["state_dir"] = "st"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    seed(tmp_path / "other", SPECS[:1])
    code, out, err = run(capsys, "find", "-c", str(config), "--json",
                         "--state-dir", str(tmp_path / "other"))
    assert code == 0, err
    assert json.loads(out)["file"] == str(tmp_path / "other" / "recordings" /
                                          recording_relpath("R0", T0))


def test_export_copies_the_layout_verifies_each_copy_and_writes_a_manifest(tmp_path, capsys):
    state = tmp_path / "state"
    files = seed(state, SPECS)
    to = tmp_path / "out"
    code, out, err = run(capsys, "export", "--state-dir", str(state), "-c", "nope.yaml",
                         "--since", "2026-11-30", "--to", str(to))
    assert code == 0, err
    for rec_id in ("R0", "R1", "R2"):
        rel = recording_relpath(rec_id, dict((s[0], s[1]) for s in SPECS)[rec_id])
        copy = to / rel
        assert copy.read_bytes() == files[rec_id].read_bytes()
        with wave.open(str(copy), "rb") as w:
            assert w.getnchannels() == 2 and w.getframerate() == 8000
    assert not (to / recording_relpath("R3", T0 + 3 * DAY)).exists()  # still recording
    with open(to / "index.csv", newline="") as f:
        manifest = list(csv.DictReader(f))
    assert [(m["id"], m["verified"], m["file"]) for m in manifest] == [
        (r, "ok", recording_relpath(r, s).as_posix()) for r, s, _ in SPECS[:3]]
    assert manifest[0]["caller"] == "13800000000" and manifest[0]["keep"] == "false"
    listed = json.loads((to / "index.json").read_text())
    assert [m["id"] for m in listed] == ["R0", "R1", "R2"] and "marks" in listed[0]
    assert "exported 3 recording(s)" in out and "sha256: 3 ok" in out
    assert "skipped 1 recording(s) still being written (R3)" in out


def test_export_fails_when_a_copy_does_not_match_or_a_file_is_missing(tmp_path, capsys):
    state = tmp_path / "state"
    seed(state, SPECS[:3], bad_sha="R1", missing="R2")
    to = tmp_path / "out"
    code, out, err = run(capsys, "export", "--state-dir", str(state), "-c", "nope.yaml",
                         "--since", str(T0 - 1), "--to", str(to))
    assert code == 1
    with open(to / "index.csv", newline="") as f:
        verdicts = {m["id"]: m["verified"] for m in csv.DictReader(f)}
    assert verdicts == {"R0": "ok", "R1": "mismatch", "R2": "missing"}
    assert "R1: the copy's sha256 differs from the index" in err
    assert "R2: file missing" in err


def test_export_needs_since_and_refuses_a_folder_inside_the_recordings(tmp_path, capsys):
    state = tmp_path / "state"
    seed(state, SPECS[:1])
    with pytest.raises(SystemExit) as exc:
        main(["recordings", "export", "--to", str(tmp_path / "o")])
    assert exc.value.code == 2
    assert "--since" in capsys.readouterr().err
    code, _, err = run(capsys, "export", "--state-dir", str(state), "-c", "nope.yaml",
                       "--since", "2026-11-30", "--to", str(state / "recordings" / "x"))
    assert code == 2 and "inside the recordings directory" in err


def test_keep_marks_and_unmarks_and_names_an_unknown_id(tmp_path, capsys):
    state = tmp_path / "state"
    seed(state, SPECS[:1])
    code, out, _ = run(capsys, "keep", "R0", "--state-dir", str(state), "-c", "nope.yaml")
    assert code == 0 and "R0 kept: retention never deletes it" in out
    code, out, _ = run(capsys, "find", "--state-dir", str(state), "-c", "nope.yaml", "--json")
    assert json.loads(out)["keep"] is True
    code, out, _ = run(capsys, "keep", "R0", "--off", "--state-dir", str(state), "-c", "x.yaml")
    assert code == 0 and "no longer kept" in out
    code, _, err = run(capsys, "keep", "NOPE", "--state-dir", str(state), "-c", "nope.yaml")
    assert code == 1 and "no recording NOPE" in err


def test_purge_dry_run_shows_and_purge_deletes(tmp_path, capsys):
    state = tmp_path / "state"
    old = T0 - 100 * DAY
    files = seed(state, [("OLD", old, "done"), ("NEW", T0 + 400 * DAY, "done")])
    common = ["--state-dir", str(state), "-c", "nope.yaml"]
    code, out, _ = run(capsys, "purge", *common)
    assert code == 0 and "no retention limit" in out
    code, out, _ = run(capsys, "purge", "--dry-run", "--days", "30", *common)
    assert code == 0 and "would purge 1 recording(s)" in out and "OLD" in out
    assert files["OLD"].exists()
    code, out, _ = run(capsys, "purge", "--days", "30", *common)
    assert code == 0 and "purged 1 recording(s)" in out
    assert not files["OLD"].exists() and files["NEW"].exists()
    code, out, _ = run(capsys, "find", *common, "--json")
    assert [json.loads(line)["id"] for line in out.splitlines()] == ["NEW"]


def test_the_real_command_finds_recordings_and_logs_to_stderr(tmp_path):
    state = tmp_path / "state"
    seed(state, SPECS[:2])
    common = ["--state-dir", str(state), "-c", str(tmp_path / "nope.yaml")]
    proc = subprocess.run([sys.executable, "-m", "switchd", "recordings", "find", "--json",
                           *common], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["id"] for line in proc.stdout.splitlines()] == ["R1", "R0"]
    proc = subprocess.run([sys.executable, "-m", "switchd", "recordings", "purge", "--days",
                           "0.0001", *common], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("purged 2 recording(s)")
    logged = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert sorted(e["recording_id"] for e in logged if e["event"] == "recording_purged") == [
        "R0", "R1"]


def test_bench_media_takes_record():
    from switchd.__main__ import build_parser

    args = build_parser().parse_args(["bench", "media", "--record", "--channels", "4"])
    assert args.record is True and args.channels == 4
    assert build_parser().parse_args(["bench", "media"]).record is False
