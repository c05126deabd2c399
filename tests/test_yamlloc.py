"""switchd.yamlloc: which scalars are numbers, and the limits on nesting and alias expansion.

Both config.yaml and the IVR flow files are read through it, so each rule here holds
for both (the config end is checked through ``load_config`` below).
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

from switchd import yamlloc
from switchd.config import load_config
from switchd.exceptions import ConfigError
from switchd.yamlloc import MAX_DEPTH, MAX_NODES, compose_located, number_hint


def _data(text: str) -> object:
    doc = compose_located(text, "t.yaml")
    assert doc.problems == ()
    return doc.data


def _refused(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        compose_located(text, "t.yaml")
    (problem,) = info.value.problems
    return problem


def _bomb(levels: int, fan: int) -> str:
    """``levels`` lists of ``fan`` aliases each, the first of ``fan`` scalars."""
    names = "abcdefghijklmnop"[:levels]
    lines = [f"a: &a [{', '.join(['x'] * fan)}]"]
    for prev, name in zip(names, names[1:], strict=False):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * fan)}]")
    return "\n".join(lines) + "\n"


# --- numbers: decimal only ----------------------------------------------------------


@pytest.mark.parametrize(("written", "value"), [
    ("10", 10), ("-3", -3), ("+7", 7), ("0", 0), ("1_000", 1000),
    ("2.5", 2.5), ("-0.5", -0.5), ("1.5e+3", 1500.0), ("1.", 1.0), (".5", 0.5),
])
def test_decimal_numbers_are_numbers(written, value):
    got = _data(f"v: {written}\n")["v"]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("written", [
    "1:30",      # YAML 1.1 base 60: 90
    "1:30.5",    # base 60 float: 90.5
    "0x1F",      # hexadecimal: 31
    "010",       # octal: 8
    "0571",      # a phone prefix, octal 377 in YAML 1.1
    "0b101",     # binary: 5
    "08",        # not octal, not decimal
    "09:05",     # a time of day, 545 in YAML 1.1
])
def test_yaml11_number_forms_stay_text(written):
    assert _data(f"v: {written}\n") == {"v": written}


def test_infinity_and_nan_are_still_floats_and_explicit_tags_still_work():
    data = _data("i: .inf\nn: .nan\nh: !!int 0x10\nb: !!bool yes\n")
    assert data["i"] == float("inf") and data["n"] != data["n"]
    assert data["h"] == 16 and data["b"] is True


def test_dates_are_still_dates():
    assert _data("d: 2026-12-24\n") == {"d": dt.date(2026, 12, 24)}


@pytest.mark.parametrize(("text", "hint"), [
    ("1:30", "1:30 is not read as hours/minutes:seconds (base 60); write the plain number, "
             "e.g. 90"),
    ("-1:30", "-1:30 is not read as hours/minutes:seconds (base 60); write the plain number, "
              "e.g. -90"),
    ("0x1F", "0x1F is not read as a hexadecimal number; write the number in decimal, e.g. 31"),
    ("0o17", "0o17 is not read as an octal number; write the number in decimal, e.g. 15"),
    ("0b101", "0b101 is not read as a binary number; write the number in decimal, e.g. 5"),
    ("010", "010 is not read as a number (YAML 1.1 read a leading 0 as octal); write 10, or "
            "quote it as text"),
    ("12", None), ("abc", None), ("0x", None), ("12:00-13:00", None),
])
def test_number_hint_says_why_a_yaml11_number_is_text(text, hint):
    assert number_hint(text) == hint


def test_keys_read_as_something_other_than_text_keep_their_written_form():
    doc = compose_located('m: {1: a, +2: b, 1_0: c, "3": d, x: e, null: f}\n', "t.yaml")
    assert doc.key_texts == {("m", 1): "1", ("m", 2): "+2", ("m", 10): "1_0", ("m", None): "null"}


# --- limits: depth and alias expansion --------------------------------------------------


def test_nesting_up_to_the_limit_loads():
    text = "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n"
    assert _data(text) is not None


def test_nesting_past_the_limit_is_refused_at_the_first_bracket_too_deep():
    # The root mapping is level 1, so the 64th bracket is level 65.
    problem = _refused("x: " + "[" * 5000 + "]" * 5000 + "\n")
    assert problem == (
        "t.yaml:1:67: lists and mappings nest 65 levels deep here, more than the 64 allowed; "
        "the limit keeps a runaway or hostile file from exhausting the loader (no config or "
        "flow needs so many levels)")


def test_nesting_past_the_limit_through_an_alias_is_refused_at_the_alias():
    text = "a: &deep " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*deep" + "]" * 30 + "\n"
    assert _refused(text) == (
        "t.yaml:2:34: the alias *deep nests what it refers to 71 levels deep here, more than "
        "the 64 allowed; the limit keeps a runaway or hostile file from exhausting the loader "
        "(no config or flow needs so many levels)")


def test_aliases_nesting_each_other_are_measured_all_the_way_down():
    # Each anchor nests the previous one 20 levels deeper: no single line is deep.
    lines = ["a0: &a0 " + "[" * 20 + "]" * 20]
    lines += [f"a{i}: &a{i} " + "[" * 20 + f"*a{i - 1}" + "]" * 20 for i in range(1, 5)]
    problem = _refused("\n".join(lines) + "\n")
    assert problem.startswith("t.yaml:4:29: the alias *a2 nests what it refers to 81 levels")


def test_an_alias_bomb_is_refused_at_once_where_it_goes_past_the_limit():
    text = _bomb(9, 9)
    assert len(text.encode()) < 400
    started = time.monotonic()
    problem = _refused(text)
    assert time.monotonic() - started < 5  # refused before expanding (it hung before)
    assert problem == (
        't.yaml:6:12: the document grows past 200000 values with the alias *e (a copy of 66430 '
        'values), counting what every alias repeats; the limit stops a file of nested aliases '
        '(an "alias bomb") from using all memory and time: write the values out, or use fewer '
        'aliases')


def test_a_few_aliases_load():
    data = _data(_bomb(3, 3))
    assert data["c"] == [[["x"] * 3] * 3] * 3


def test_plain_values_count_towards_the_limit_too(monkeypatch):
    monkeypatch.setattr(yamlloc, "MAX_NODES", 10)
    # the root mapping, then key+value pairs: the 11th value is the key `e`
    problem = _refused("a: 1\nb: 2\nc: 3\nd: 4\ne: 5\nf: 6\n")
    assert problem.startswith("t.yaml:5:4: the document grows past 10 values here")


def test_an_alias_cycle_is_still_a_problem_not_a_limit():
    doc = compose_located("a: &a [1, *a]\n", "t.yaml")
    assert [p.message for p in doc.problems] == ["an alias refers to its own parent (cycle)"]


def test_a_mapping_merged_into_itself_has_no_duplicate_keys():
    doc = compose_located("a: &a {<<: *a, x: 1}\n", "t.yaml")
    assert doc.problems == () and doc.data == {"a": {"x": 1}}


def test_the_limits_are_generous_for_real_files():
    assert MAX_DEPTH == 64 and MAX_NODES == 200_000


# --- config.yaml gets the same -----------------------------------------------------------


def test_config_yaml_refuses_an_alias_bomb_with_its_position(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("board: {trunks: 8}\n" + _bomb(9, 9), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}:7:12: the document grows past {MAX_NODES} values")


def test_config_yaml_refuses_base_60_and_hex_numbers_as_type_errors(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("board:\n  trunks: 0x8\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}:2:11: board.trunks: expected a whole number, got the "
                              "text '0x8'")


@pytest.mark.parametrize(("text", "where", "hint"), [
    ("a:\n\tb: 1\n", "f.yaml:2:1:", "indent with spaces: YAML does not allow tabs"),
    ("choices:\n  *: b\n", "f.yaml:2:4:", 'a key or value starting with * or & must be quoted'),
])
def test_common_yaml_mistakes_get_a_hint(text, where, hint):
    with pytest.raises(ConfigError) as info:
        compose_located(text, "f.yaml")
    (problem,) = info.value.problems
    assert problem.startswith(f"{where} YAML syntax error: ") and hint in problem
