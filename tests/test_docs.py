"""Checks that keep the user documentation true of the code.

README.md, docs/protocol.md and docs/operations.md are a contract (DESIGN.md §5: "every
verb has an example exchange there"). These tests fail when a verb, error code, event
or config key is added to the code without being documented, and when the README's
set-up commands drift from ``make run`` / ``make test``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from switchd import events
from switchd.cti.codec import ERROR_CODES
from switchd.cti.commands import VERBS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PROTOCOL = ROOT / "docs" / "protocol.md"
OPERATIONS = ROOT / "docs" / "operations.md"
CONFIG = ROOT / "config.yaml"

_FENCE_RE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)


def _sections(text: str) -> dict[str, str]:
    """Map each ``### heading`` of a Markdown text to the body up to the next heading."""
    out: dict[str, str] = {}
    parts = re.split(r"^(#{1,6} .*)$", text, flags=re.M)
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        if heading.startswith("### "):
            out[heading[4:].strip()] = body
    return out


def _event_names() -> list[str]:
    """The wire name of every concrete Event subclass in switchd.events."""
    names = set()
    for obj in vars(events).values():
        if isinstance(obj, type) and issubclass(obj, events.Event):
            name = obj.name
            if name not in ("event",):
                names.add(name)
    return sorted(names)


@pytest.fixture(scope="module")
def protocol() -> str:
    """The text of docs/protocol.md."""
    return PROTOCOL.read_text(encoding="utf-8")


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_has_a_section_with_an_example_exchange(protocol: str, verb: str) -> None:
    """Each verb of the VERBS table has a ``### VERB`` section with a C:/S: example."""
    sections = _sections(protocol)
    assert verb in sections, f"docs/protocol.md has no '### {verb}' section"
    blocks = _FENCE_RE.findall(sections[verb])
    assert blocks, f"'### {verb}' has no example block"
    example = "\n".join(blocks)
    assert re.search(rf"^C: (#\S+ )?{re.escape(verb)}\b", example, re.M | re.I) or (
        f'"verb":"{verb}"' in example
    ), f"the example of {verb} never sends {verb}"
    assert re.search(r"^S: ", example, re.M), f"the example of {verb} shows no server line"


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_section_states_its_usage_line(protocol: str, verb: str) -> None:
    """The usage line in the docs is the one HELP prints, so they cannot disagree."""
    body = _sections(protocol)[verb]
    flat = " ".join(body.split())
    assert VERBS[verb].usage in flat, f"'### {verb}' does not quote its usage {VERBS[verb].usage!r}"


def _error_table(protocol: str) -> set[str]:
    """The codes in the first column of the table under ``## Errors``."""
    section = protocol.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` +\|", section, re.M))


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_every_error_code_is_documented(protocol: str, code: str) -> None:
    """The closed set of error codes is listed in the Errors table, one row each."""
    assert code in _error_table(protocol), f"no row for error {code} under '## Errors'"


def test_error_table_lists_no_code_the_codec_cannot_send(protocol: str) -> None:
    """A code in the docs but not in ERROR_CODES would promise clients something false."""
    assert _error_table(protocol) <= ERROR_CODES


@pytest.mark.parametrize("name", _event_names())
def test_every_event_is_documented_with_an_example_line(protocol: str, name: str) -> None:
    """Each Event subclass's wire name has a section with an ``EVENT <name>`` example."""
    sections = _sections(protocol)
    assert name in sections, f"docs/protocol.md has no '### {name}' section"
    assert f"EVENT {name} " in sections[name], f"'### {name}' has no example EVENT line"


def test_event_list_is_not_empty() -> None:
    """Guard: the event discovery above really finds the events."""
    assert "call.new" in _event_names() and "line.state" in _event_names()


def test_readme_opens_with_make_run_and_make_test() -> None:
    """The README's first code block is exactly the two set-up commands."""
    text = README.read_text(encoding="utf-8")
    blocks = _FENCE_RE.findall(text)
    assert blocks, "README.md has no code block"
    assert blocks[0].strip().splitlines() == ["make run", "make test"]


def test_readme_first_code_block_follows_title_and_one_sentence() -> None:
    """Nothing but the title and a one-paragraph description comes before the commands."""
    text = README.read_text(encoding="utf-8")
    head = text.split("```", 1)[0].strip().split("\n\n")
    assert head[0].startswith("# ")
    assert len(head) == 2, "expected the title, one description paragraph, then the commands"


def _config_keys(node: object, prefix: str = "") -> list[str]:
    """Dotted keys of config.yaml as the docs spell them.

    List entries become ``routes[].dnis``; ring-group and queue names become
    ``ring_groups.<name>.strategy``, ``queues.<name>.strategy`` and
    ``agents[].queues.<name>``; SIP extensions ``sip.extensions.<number>``, carriers
    ``sip.trunks.<name>`` and their DIDs ``sip.trunks.<name>.dids.<did>``.
    """
    keys: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            name = ("<name>" if prefix in ("ring_groups.", "queues.", "agents[].queues.",
                                           "voicemail.boxes.", "sip.trunks.")
                    else "<number>" if prefix == "sip.extensions."
                    else "<did>" if prefix == "sip.trunks.<name>.dids."
                    else str(key))
            dotted = f"{prefix}{name}"
            if dotted not in keys:
                keys.append(dotted)
            keys.extend(k for k in _config_keys(value, dotted + ".") if k not in keys)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict):
                base = prefix[:-1] + "[]."
                keys.extend(k for k in _config_keys(item, base) if k not in keys)
    return keys


def test_every_top_level_config_key_is_documented() -> None:
    """Each top-level section of config.yaml appears in docs/operations.md."""
    ops = OPERATIONS.read_text(encoding="utf-8")
    top = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    assert isinstance(top, dict) and top
    missing = [k for k in top if f"`{k}`" not in ops]
    assert not missing, f"config keys not in docs/operations.md: {missing}"


def test_every_nested_config_key_has_a_table_row() -> None:
    """Each key of config.yaml, at every depth, has a row in the config table."""
    ops = OPERATIONS.read_text(encoding="utf-8")
    top = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    rows = set(re.findall(r"^\| `([^`]+)` \|", ops, re.M))
    missing = [k for k in _config_keys(top) if k not in rows]
    assert not missing, f"config keys without a row in docs/operations.md: {missing}"


def test_docs_link_to_each_other_with_existing_files() -> None:
    """Relative links in the docs point at files that exist."""
    for doc in (README, PROTOCOL, OPERATIONS):
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


# --- docs/operations.md: hangup causes ------------------------------------------------


def _section_body(text: str, heading: str) -> str:
    """The body of the ``## heading`` section, up to the next ``## `` heading."""
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_hangup_cause_table_is_exactly_the_causes_switchd_writes():
    body = _section_body(OPERATIONS.read_text(encoding="utf-8"), "Hangup causes")
    rows = re.findall(r"^\| `([A-Z_]+)` \| (\d+) \| (.+) \|$", body, re.M)
    documented = {name: int(number) for name, number, _ in rows}
    assert documented == {str(c): c.q850 for c in events.HangupCause}
    assert len(rows) == len(documented), "a cause is listed twice"
    assert all(len(meaning.split()) >= 5 for _, _, meaning in rows), "say when each happens"


def test_hangup_causes_section_names_freeswitchs_numbers_for_causes_q850_lacks():
    body = _section_body(OPERATIONS.read_text(encoding="utf-8"), "Hangup causes")
    for cause in (events.HangupCause.ORIGINATOR_CANCEL, events.HangupCause.SYSTEM_SHUTDOWN):
        assert f"`{cause}` {cause.q850}" in body.split("|", 1)[0]


def test_cdr_table_documents_the_cause_columns():
    ops = OPERATIONS.read_text(encoding="utf-8")
    assert re.search(r"^\| `hangup_cause` \|", ops, re.M) and re.search(r"^\| `q850` \|", ops, re.M)


# --- docs/operations.md: the server install steps, followed for real --------------------

_SKIPPED_STEPS = ("git clone ", "/usr/bin/python3 -m venv ", "/opt/switchd/.venv/bin/pip install ")


def _install_steps() -> list[str]:
    body = _section_body(OPERATIONS.read_text(encoding="utf-8"), "Install")
    block = next(b for b in _FENCE_RE.findall(body) if "git clone" in b)
    return [line for line in block.splitlines() if line.strip()]


def test_server_install_steps_give_a_copy_that_check_and_run_accept_without_warning(tmp_path):
    """Follow the documented steps with /opt/switchd = this checkout and /etc in tmp_path."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    steps = _install_steps()
    skipped = [s for s in steps if s.startswith(_SKIPPED_STEPS)]
    assert len(skipped) == 3, "update the test: the clone/venv/pip steps changed"
    etc = tmp_path / "etc" / "switchd"
    switchd = f"{sys.executable} -m switchd"
    script = "\n".join(
        s.replace("/opt/switchd/.venv/bin/switchd", switchd)
        .replace("/opt/switchd", str(ROOT))
        .replace("/etc/switchd", str(etc))
        for s in steps if s not in skipped
    )
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(key, None)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    config = etc / "config.yaml"
    assert done.stdout.splitlines() == [
        f"{config}: ok — 8 trunks, 8 extensions (201-208), 5 routes, 2 ring groups, 2 queues, "
        "8 agents, 10 users, cti 127.0.0.1:7070, flows main"
    ]
    assert (etc / "prompts" / "moh" / "demo.wav").is_file() and (etc / "flows").is_dir()
    installed = yaml.safe_load(config.read_text(encoding="utf-8"))
    assert installed["sim"]["traffic"]["enabled"] is False

    # As the systemd unit runs it (its own state directory), on a free port.
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "switchd", "run", "-c", str(config), "--state-dir",
             str(tmp_path / "state"), "--cti-listen", "127.0.0.1:0", "--log-format", "json"],
            stdout=out, stderr=subprocess.PIPE, cwd=tmp_path, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            records = [json.loads(x) for x in log_path.read_text().splitlines() if x.startswith("{")]
            if any(r["event"] == "switchd_started" for r in records) or proc.poll() is not None:
                break
            assert time.monotonic() < deadline, records[-3:]
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(15)
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert code == 0, err
    records = [json.loads(x) for x in log_path.read_text().splitlines() if x.startswith("{")]
    assert [r for r in records if r["level"] in ("warning", "error")] == [], err
    started = next(r for r in records if r["event"] == "switchd_started")
    assert started["demo_traffic"] is False


# --- words that promise what does not exist ------------------------------------------------




def test_config_recording_comments_name_only_verbs_that_exist():
    """The recording and voicemail sections of config.yaml point at verbs users can send."""
    text = CONFIG.read_text(encoding="utf-8")
    section = text.split("# --- Call recording", 1)[1].split("\nsim:", 1)[0]
    named = set(re.findall(r"\b([A-Z]{2,}\.[A-Z]+)\b", section))
    assert {"CALL.RECORD", "REC.QUERY", "REC.KEEP"} <= named
    for verb in named:
        assert verb in VERBS, f"config.yaml names {verb}, which is no verb"


def test_config_role_comments_name_only_verbs_that_exist():
    text = CONFIG.read_text(encoding="utf-8")
    roles = text.split("# What each role may do", 1)[1].split("\nusers:", 1)[0]
    named = set(re.findall(r"\b([A-Z]{3,}(?:\.[A-Z]+)?)\b", roles)) - {"CTI"}
    families = {v.split(".")[0] for v in VERBS}
    assert named, "the role comments name no verb"
    for verb in named:
        assert verb in VERBS or verb in families, f"config.yaml names {verb}, which is no verb"
    for verb in ("SUPER.MONITOR", "SUPER.PICKUP", "CALL.TRANSFER", "CALL.DIAL"):
        assert verb in roles, f"the role comments do not say who may use {verb}"


def test_readme_says_what_agents_supervisors_and_ivr_designers_can_do_today():
    text = README.read_text(encoding="utf-8")
    for who in ("**Agents**", "**Supervisors**", "**CRM systems**", "**IVR designers**"):
        assert who in text
    for verb in ("SUPER.MONITOR", "SUPER.PICKUP", "CALL.TRANSFER", "CALL.CONSULT", "CALL.DIAL"):
        assert verb in text, f"the README does not say who may use {verb}"
    # What IVR designers and CRMs have today, and what waits for later issues.
    assert "docs/flows.md" in text and "switchd flows check" in text and "ROUTE.REPLY" in text
    assert "later issue" in text and "voicemail" in text and "ACD" in text


def test_check_warning_example_is_what_check_prints_for_a_copy_without_its_music(tmp_path):
    """The sample in "switchd check" is real output: same lines, same positions."""
    import subprocess
    import sys

    body = _sections(OPERATIONS.read_text(encoding="utf-8"))["switchd check"]
    block = next(b for b in _FENCE_RE.findall(body) if ": warning: " in b)
    lines = block.splitlines()
    assert lines[0] == "$ switchd check -c /etc/switchd/config.yaml"
    import shutil

    etc = tmp_path / "etc" / "switchd"
    etc.mkdir(parents=True)
    (etc / "config.yaml").write_text(CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    # The flows and their prompts came along; the music on hold did not.
    shutil.copytree(ROOT / "flows", etc / "flows")
    shutil.copytree(ROOT / "prompts", etc / "prompts", ignore=shutil.ignore_patterns("moh"))
    done = subprocess.run([sys.executable, "-m", "switchd", "check", "-c", str(etc / "config.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.splitlines() == [x.replace("/etc/switchd", str(etc)) for x in lines[1:]]
