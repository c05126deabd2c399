"""``switchd flows check`` and ``switchd flows draw`` through the real command line parser."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import wave
from pathlib import Path

import pytest

from switchd.__main__ import main

CLEAN = """
timezone: Asia/Shanghai
start: welcome
nodes:
  welcome: {type: play, prompt: en/welcome, next: menu}
  menu:
    type: menu
    prompt: en/menu
    choices: {"1": sales, "9": menu}
    fallback: bye
  sales: {type: transfer, to: "group:sales", on_fail: bye}
  bye: {type: hangup}
"""

BROKEN = """
timezone: Asia/Shanghai
start: welcome
nodes:
  welcome: {type: play, prompt: en/welcom, next: menu}
  menu:
    type: menu
    prompt: en/menu
    choices: {"1": sales, "1": bye}
    fallback: bye
  bye: {type: hangup}
"""


def _wav(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(160))


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A config folder: empty config.yaml (defaults), prompts/en/{welcome,menu}.wav."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("", encoding="utf-8")
    for name in ("welcome", "menu"):
        _wav(tmp_path / "prompts" / "en" / f"{name}.wav")
    return tmp_path


def test_clean_flows_exit_0_with_a_one_line_summary(site, capsys):
    _write(site / "flows" / "main.yaml", CLEAN)
    assert main(["flows", "check"]) == 0
    out, err = capsys.readouterr()
    assert out == "1 flow, 4 nodes, 2 prompts: OK\n"
    assert err == ""


def test_broken_flows_print_every_problem_and_exit_1(site, capsys):
    _write(site / "flows" / "main.yaml", CLEAN)
    _write(site / "flows" / "broken.yaml", BROKEN)
    assert main(["flows", "check", "-c", "config.yaml"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "flows/broken.yaml:4:33: nodes.welcome.prompt: prompt 'en/welcom': "
        "prompts/en/welcom.wav does not exist (nor .mp3, .ogg, .flac, .aiff); did you mean "
        "'en/welcome'?",
        "flows/broken.yaml:8:20: nodes.menu.choices.1: no node 'sales' in this flow",
        "flows/broken.yaml:8:27: nodes.menu.choices: key '1' is given twice in this menu "
        "(first at line 8); a key leads to one node only, remove one of them",
    ]
    assert err == "switchd flows check: 3 problems in 2 flows checked\n"


def test_paths_on_the_command_line_are_checked_instead_of_the_flows_folder(site, capsys):
    _write(site / "flows" / "broken.yaml", BROKEN)
    good = _write(site / "elsewhere" / "good.yaml", CLEAN)
    assert main(["flows", "check", str(good.relative_to(site))]) == 0
    assert capsys.readouterr().out == "1 flow, 4 nodes, 2 prompts: OK\n"
    assert main(["flows", "check", "elsewhere", "flows/broken.yaml"]) == 1
    assert capsys.readouterr().out.count("flows/broken.yaml:") == 3


def test_the_folders_come_from_the_config(site, capsys):
    (site / "config.yaml").write_text(
        "media: {prompts_dir: audio}\nivr: {flows_dir: ivr}\n", encoding="utf-8")
    _write(site / "ivr" / "main.yaml", CLEAN)
    assert main(["flows", "check"]) == 1  # the prompts are not in audio/
    out = capsys.readouterr().out
    assert out.startswith("ivr/main.yaml:4:33: nodes.welcome.prompt: prompt 'en/welcome': "
                          "audio/en/welcome.wav does not exist")
    assert main(["flows", "check", "--prompts-dir", "prompts"]) == 0


def test_a_config_with_problems_falls_back_to_the_folders_beside_it(site, capsys):
    (site / "config.yaml").write_text("bored: {}\n", encoding="utf-8")
    _write(site / "flows" / "main.yaml", CLEAN)
    assert main(["flows", "check"]) == 0
    out, err = capsys.readouterr()
    assert out == "1 flow, 4 nodes, 2 prompts: OK\n"
    assert "config.yaml has 1 problem(s)" in err and "beside it" in err


def test_a_missing_flows_folder_is_a_problem(site, capsys):
    assert main(["flows", "check"]) == 1
    assert capsys.readouterr().out == "flows: no such file or folder\n"


def test_flows_draw_prints_a_diagram(site, capsys):
    pytest.importorskip("switchd.ivr.draw")
    _write(site / "flows" / "main.yaml", CLEAN)
    assert main(["flows", "draw", "main"]) == 0
    assert capsys.readouterr().out.startswith("flowchart")
    assert main(["flows", "draw", "flows/main.yaml", "--format", "dot"]) == 0
    assert capsys.readouterr().out.startswith('digraph "main"')


def test_flows_draw_refuses_a_broken_flow_on_stderr(site, capsys):
    _write(site / "flows" / "broken.yaml", BROKEN)
    assert main(["flows", "draw", "broken"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    # Prompts are only looked up for a diagram: the missing en/welcom is not a problem here.
    lines = err.splitlines()
    assert lines[0] == "flows/broken.yaml:8:20: nodes.menu.choices.1: no node 'sales' in this flow"
    assert lines[1].startswith("flows/broken.yaml:8:27: nodes.menu.choices: key '1' is given twice")
    assert lines[-1] == ("switchd flows draw: flows/broken.yaml has 2 problem(s); "
                                    "`switchd flows check flows/broken.yaml` lists them too")


# --- the review's bad inputs: FILE:LINE:COL lines from every command, never a traceback ----

REVIEWED = """
timezone: Asia/Shanghai
start: 欢迎
nodes:
  欢迎: {type: play, prompt: en/welcome, next: desk}
  desk: {type: transfer, to: extension:999, on_fail: desk}
"""


def _expected(flow: str) -> list[str]:
    return [
        f"{flow}:4:3: nodes: node name '欢迎' is not a valid name ('欢' is not allowed); names "
        "use ASCII letters (a-z, A-Z), digits, '_', '.' and '-', starting with a letter or '_', "
        "at most 64 characters (Chinese and other non-ASCII text belongs in prompts and "
        "values, not names)",
        f"{flow}:5:3: nodes.desk: loop with no exit: desk > desk can go round in one instant "
        "(a transfer can fail at once: an unknown or busy target, no free trunk; set, branch, "
        "schedule and goto take no time), so a call could spin in it; put a menu, collect or "
        "route_request on the way round, or a play between the failed transfer and the next "
        "try",
    ]


def test_flows_check_reports_the_reviewed_problems(site, capsys):
    _write(site / "flows" / "main.yaml", REVIEWED)
    assert main(["flows", "check"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == _expected("flows/main.yaml")
    assert err == "switchd flows check: 2 problems in 1 flow checked\n"


def _switchd(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(key, None)
    return subprocess.run([sys.executable, "-m", "switchd", *args], capture_output=True,
                          text=True, timeout=60, cwd=site, env=env)


def test_check_and_run_refuse_a_routed_flow_with_the_same_lines(site):
    (site / "config.yaml").write_text('routes:\n  - {dnis: "8000", to: "flow:main"}\n',
                                      encoding="utf-8")
    flow = _write(site / "flows" / "main.yaml", REVIEWED).resolve()
    checked = _switchd(site, "check", "-c", "config.yaml")
    assert checked.returncode == 1 and "Traceback" not in checked.stderr
    assert checked.stdout.splitlines() == _expected(str(flow))
    ran = _switchd(site, "run", "-c", "config.yaml", "--state-dir", "state", "--log-format",
                   "json")
    assert ran.returncode == 1 and "Traceback" not in ran.stderr
    err = ran.stderr.splitlines()
    assert err[:-1] == _expected(str(flow))
    assert err[-1].startswith("switchd: not starting: the flows routed to have 2 problem(s)")


def test_check_and_run_refuse_an_alias_bomb_in_the_config_at_its_place(site):
    lines = ['routes:\n  - {dnis: "8000", to: "group:sales"}', "x-a: &a [x, x, x, x, x, x, x, x, x]"]
    lines += [f"x-{n}: &{n} [" + ", ".join([f"*{p}"] * 9) + "]"
              for p, n in zip("abcdefgh", "bcdefghi", strict=True)]
    (site / "config.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected = ('config.yaml:8:14: the document grows past 200000 values with the alias *e (a '
                'copy of 66430 values), counting what every alias repeats; the limit stops a '
                'file of nested aliases (an "alias bomb") from using all memory and time: write '
                'the values out, or use fewer aliases')
    checked = _switchd(site, "check", "-c", "config.yaml")
    assert checked.returncode == 1 and "Traceback" not in checked.stderr
    assert checked.stdout.splitlines() == [expected]
    ran = _switchd(site, "run", "-c", "config.yaml", "--state-dir", "state")
    assert ran.returncode == 1 and "Traceback" not in ran.stderr
    assert ran.stderr.splitlines()[0] == expected
