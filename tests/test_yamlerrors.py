"""The FILE:LINE:COL error translator works for any YAML file and model, not only config.yaml.

The models here are shaped like the IVR flow files that come next: a mapping of named
steps, each a tagged union of step kinds, with nested lists.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from switchd.exceptions import ConfigError
from switchd.yamlerrors import (
    ProblemCollector,
    describe,
    dotted,
    unknown_key_message,
    validate_located,
    validation_problems,
)
from switchd.yamlloc import compose_located, format_problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Play(_Strict):
    kind: Literal["play"]
    prompt: str
    barge_in: bool = True


class Choice(_Strict):
    digit: Annotated[str, Field(min_length=1, max_length=1)]
    goto: str


class Menu(_Strict):
    kind: Literal["menu"]
    prompt: str
    choices: list[Choice]
    timeout_s: Annotated[float, Field(gt=0)] = 5.0


def _kind(value: Any) -> str | None:
    return value.get("kind") if isinstance(value, dict) else None


Step = Annotated[
    Annotated[Play, Tag("play")] | Annotated[Menu, Tag("menu")],
    Discriminator(_kind),
]


class Flow(_Strict):
    name: str
    pin: str | None = None
    steps: dict[str, Step]


def problems(text: str, model: Any = Flow, **kw: Any) -> list[str]:
    doc = compose_located(textwrap.dedent(text).lstrip("\n"), "flows/main.yaml")
    return format_problems(doc.source, validation_problems(doc, model, doc.data, **kw))


def test_a_valid_file_gives_the_value_and_no_problems():
    doc = compose_located("name: main\nsteps:\n  hi: {kind: play, prompt: hello.wav}\n", "f")
    value, found = validate_located(doc, Flow, doc.data)
    assert found == [] and isinstance(value, Flow) and value.steps["hi"].prompt == "hello.wav"


def test_unknown_key_deep_inside_a_tagged_union_and_a_list_suggests_the_close_match():
    assert problems(
        """
        name: main
        steps:
          start:
            kind: menu
            prompt: menu.wav
            choices:
              - {digit: "1", goto: sales}
              - {digit: "2", got: support}
        """
    ) == [
        "flows/main.yaml:8:9: missing required key 'goto' in steps.start.choices[1]",
        "flows/main.yaml:8:22: unknown key 'got' in steps.start.choices[1]; did you mean 'goto'?",
    ]


def test_type_and_range_errors_point_at_the_value_and_say_what_was_found():
    assert problems(
        """
        name: main
        steps:
          start: {kind: menu, prompt: m.wav, choices: [], timeout_s: 0}
          bye: {kind: play, prompt: 7, barge_in: yes}
        """
    ) == [
        "flows/main.yaml:3:62: steps.start.timeout_s: must be greater than 0, got 0",
        "flows/main.yaml:4:29: steps.bye.prompt: expected text, got the number 7; "
        'put it in quotes, e.g. "7"',
        "flows/main.yaml:4:42: steps.bye.barge_in: expected true or false, got the text 'yes'; "
        "only true and false are booleans in this file",
    ]


def test_missing_key_hint_and_hidden_values_are_the_callers_choice():
    found = problems(
        """
        pin: 1234
        steps: {}
        """,
        hints={"name": "the flow's name, used in routes as flow:<name>"},
        hidden={"pin"},
    )
    assert found == [
        "flows/main.yaml:1:1: missing required key 'name' at the top level "
        "(the flow's name, used in routes as flow:<name>)",
        "flows/main.yaml:1:6: pin: expected text, got a value that is not shown because it may "
        "be a password",
    ]
    assert "1234" not in "".join(found)


def test_at_prefixes_the_path_when_only_part_of_the_file_is_validated():
    doc = compose_located("flows:\n  main:\n    name: 5\n    steps: {}\n", "f.yaml")
    found = validation_problems(doc, Flow, doc.data["flows"]["main"], at=("flows", "main"))
    assert format_problems("f.yaml", found) == [
        "f.yaml:3:11: flows.main.name: expected text, got the number 5; put it in quotes, "
        'e.g. "5"'
    ]


@dataclass(frozen=True)
class Holiday:
    __pydantic_config__ = ConfigDict(extra="forbid")

    country: str
    subdivision: str | None = None


def test_a_frozen_dataclass_through_type_adapter_gets_the_same_messages():
    assert problems("country: CN\nsubdivisoin: GD\n", Holiday) == [
        "flows/main.yaml:2:1: unknown key 'subdivisoin' at the top level; "
        "did you mean 'subdivision'?"
    ]


def test_collector_merges_structural_validation_and_own_problems_in_file_order():
    doc = compose_located("name: a\nname: b\nsteps:\n  x: {kind: dance}\n", "f.yaml")
    c = ProblemCollector(doc)
    assert c.validate(Flow, doc.data) is None
    c.add(("steps", "x"), "steps.x: nobody goes here", key=True)
    assert c.line_of(("steps", "x")) == 4
    with pytest.raises(ConfigError) as info:
        c.raise_if_any()
    assert info.value.problems[0] == (
        "f.yaml:2:1: duplicate key 'name' (first given at line 1); remove one of them"
    )
    assert [p.split(": ")[0] for p in info.value.problems] == ["f.yaml:2:1", "f.yaml:4:3",
                                                               "f.yaml:4:6"]
    ProblemCollector(compose_located("a: 1\n", "g")).raise_if_any()  # nothing to raise


def test_small_helpers_read_like_the_file():
    assert dotted(("users", 2, "role")) == "users[2].role"
    assert dotted(()) == ""
    assert describe(None) == "an empty value" and describe(True) == "the boolean true"
    assert describe("x" * 50).endswith("...'")
    assert unknown_key_message("colour", ("log",), ["format", "level"]) == (
        "unknown key 'colour' in log; known keys: format, level"
    )
    assert unknown_key_message("x", (), []) == "unknown key 'x' at the top level"
