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

    List entries become ``routes[].dnis``; ring-group names become
    ``ring_groups.<name>.strategy``.
    """
    keys: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            name = "<name>" if prefix == "ring_groups." else str(key)
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
