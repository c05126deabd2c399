"""The `recording:` and `voicemail:` sections and the `record:` overrides of routes and queues."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchd.config import parse_config
from switchd.exceptions import ConfigError
from switchd.recorder.model import RecordFormat, RecordLayout, RecordMode

SRC = Path("/srv/switchd/c.yaml")


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config(text, SRC)
    return err.value.problems


def test_a_route_override_applies_only_to_the_calls_that_route_takes():
    cfg = parse_config("""
routes:
  - {dnis: "8000", to: busy}
  - {to: busy, record: "off"}
recording: {mode: on_agent, channels: mono, format: alaw}
queues:
  q: {record: on_answer}
""", SRC)
    rec = cfg.recording
    # 8000 is routed by the first route, which has no override: recording.mode.
    assert rec.route_mode("8000", 1) is RecordMode.ON_AGENT
    assert rec.route_mode("9999", 1) is RecordMode.OFF
    assert rec.queue_modes == {"q": RecordMode.ON_ANSWER}
    assert (rec.layout, rec.format) == (RecordLayout.MONO, RecordFormat.ALAW)


def test_folders_default_under_the_state_directory_and_a_path_is_relative_to_the_file():
    cfg = parse_config("state_dir: /var/lib/switchd\n", SRC)
    assert cfg.recording.directory == Path("/var/lib/switchd/recordings")
    assert cfg.voicemail.directory == Path("/var/lib/switchd/voicemail")
    cfg = parse_config("recording: {path: rec}\nvoicemail: {path: /data/vm}\n", SRC)
    assert cfg.recording.directory == Path("/srv/switchd/rec")
    assert cfg.voicemail.directory == Path("/data/vm")


@pytest.mark.parametrize("text, problem", [
    ("recording: {flush_s: 5}",
     "c.yaml:1:22: recording.flush_s: must be at most 1, got 5"),
    ("recording: {path: st}\nvoicemail: {path: st/vm}",
     "c.yaml:1:19: recording.path: the recordings folder /srv/switchd/st and the voicemail "
     "folder /srv/switchd/st/vm overlap; give them separate folders (recovery and retention "
     "would take voicemail messages for call recordings)"),
    ("recording: {mode: sometimes}",
     "c.yaml:1:19: recording.mode: the text 'sometimes' is not allowed; use 'on_answer', "
     "'on_agent' or 'off'"),
    ("voicemail: {boxes: {'..': {}}}",
     "c.yaml:1:21: mailbox name '..' is not valid; use 1-64 letters, digits, '.', '_', '-' or "
     "'@', with at least one letter or digit"),
    ("voicemail: {boxes: {night: {owner: 'agent:nobody'}}}",
     "c.yaml:1:36: voicemail.boxes.night.owner: 'agent:nobody' is not agent:<id> or "
     "queue:<name> of this config (agent ids: none)"),
])
def test_recording_and_voicemail_mistakes_are_named_where_they_are(text, problem):
    assert _problems(text) == [f"{SRC.parent}/{problem}"]


def test_a_missing_default_greeting_is_reported_not_dropped(tmp_path):
    (tmp_path / "prompts").mkdir()
    with pytest.raises(ConfigError) as err:
        parse_config("voicemail: {greeting: zh/nope}\n", tmp_path / "c.yaml")
    assert any("voicemail.greeting: prompt 'zh/nope'" in p for p in err.value.problems)
