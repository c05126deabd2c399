"""Loading and checking IVR flow files (switchd.ivr.loader): every mistake at its FILE:LINE:COL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import sys
import textwrap
import types
import wave
from pathlib import Path

import pytest

from switchd.exceptions import ConfigError
from switchd.ivr.loader import (
    FlowError,
    check_paths,
    load_flow,
    load_flows,
    prompt_path,
    transfer_targets,
)
from switchd.ivr.model import (
    Branch,
    Collect,
    Cond,
    CondOp,
    CondSubject,
    DateRule,
    Goto,
    Hangup,
    Holidays,
    Menu,
    Play,
    RouteRequest,
    Say,
    SayKind,
    Schedule,
    SetVars,
    TimeRange,
    Transfer,
)

PROMPTS = ("en/welcome", "en/menu", "en/invalid", "en/enter", "en/wait", "zh/welcome")
#: The say fragments of the stand-in ``switchd.ivr.say`` (see the ``fragments`` fixture).
FRAGMENTS = {"en": [f"en/say/{d}" for d in "0123456789"] + ["en/say/dollars"],
             "zh": [f"zh/say/{d}" for d in "0123456789"] + ["zh/say/yuan"]}


def _wav(path: Path, frames: int = 80) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(2 * frames))
    return path


@pytest.fixture(autouse=True)
def fragments(monkeypatch):
    """A stand-in ``switchd.ivr.say`` with a short fragment list, so the tests do not
    depend on the real module's vocabulary (its own tests cover that)."""
    fake = types.ModuleType("switchd.ivr.say")
    fake.all_fragments = lambda language: list(FRAGMENTS[language])  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "switchd.ivr.say", fake)
    return fake


@pytest.fixture
def home(tmp_path, monkeypatch):
    """tmp_path as the current directory, with prompts/ holding every prompt the tests name."""
    monkeypatch.chdir(tmp_path)
    for name in (*PROMPTS, *FRAGMENTS["en"], *FRAGMENTS["zh"]):
        _wav(tmp_path / "prompts" / f"{name}.wav")
    return tmp_path


def write(text: str, name: str = "f.yaml") -> Path:
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems_of(text: str, name: str = "f.yaml") -> list[str]:
    path = write(text, name)
    with pytest.raises(FlowError) as info:
        load_flow(path, Path("prompts"))
    assert isinstance(info.value, ConfigError)
    return info.value.problems


# --- the table of broken flows: one row per check, the exact FILE:LINE:COL -----------------

BROKEN = [
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: menu
        nodes:
          menu:
            type: menu
            prompts: []
            choices:
              "1": bye
              #: bye
            fallback: bye
          bye: {type: hangup}
        """,
        "f.yaml:9:7: this line is a YAML comment, not a menu choice for the # key: quote "
        'the key ("#": bye), or write the comment as a sentence',
        id="hash-menu-key-left-unquoted-is-a-comment",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: welcome
        nodes:
          welcome: {type: hangup
        """,
        "f.yaml:5:1: YAML syntax error: expected ',' or '}', but got '<stream end>' "
        "(while parsing a flow mapping at line 4)",
        id="yaml-syntax-error",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        langauge: en
        start: welcome
        nodes:
          welcome: {type: hangup}
        """,
        "f.yaml:2:1: unknown key 'langauge' at the top level; did you mean 'language'?",
        id="unknown-top-level-key",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: welcome
        nodes:
          welcome:
            type: play
            prompt: en/welcome
            next: bye
            nxt: bye
          bye: {type: hangup}
        """,
        "f.yaml:8:5: unknown key 'nxt' in nodes.welcome; did you mean 'next'?",
        id="unknown-node-key",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: welcome
        nodes:
          welcome:
            type: meun
            prompt: en/menu
        """,
        "f.yaml:5:11: nodes.welcome.type: unknown node type 'meun'; did you mean 'menu'?",
        id="unknown-node-type",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: welcome
        nodes:
          welcome:
            type: play
            prompt: en/welcome
        """,
        "f.yaml:5:5: missing required key 'next' in nodes.welcome (the node to go to next)",
        id="missing-required-key",
    ),
    pytest.param(
        """
        start: welcome
        nodes:
          welcome: {type: hangup}
        """,
        "f.yaml:1:1: missing required key 'timezone' at the top level (the IANA time zone "
        "schedules and time conditions use, e.g. Asia/Shanghai)",
        id="missing-timezone",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: welcome
        nodes:
          welcome:
            type: play
            prompt: en/welcome
            barge_in: yes
            next: bye
          bye: {type: hangup}
        """,
        "f.yaml:7:15: nodes.welcome.barge_in: expected true or false, got the text 'yes'; "
        "only true and false are booleans in this file",
        id="only-true-false-are-booleans",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: welcome
        nodes:
          welcome:
            type: menu
            prompt: en/menu
            choices: {"1": bye}
            timeout_s: "5"
            fallback: bye
          bye: {type: hangup}
        """,
        "f.yaml:8:16: nodes.welcome.timeout_s: expected a number, got the text '5'",
        id="wrong-type",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: welcome
        nodes:
          welcome:
            type: menu
            prompt: en/menu
            choices: {"1": bye}
            fallback: byee
          bye: {type: hangup}
        """,
        "f.yaml:8:15: nodes.welcome.fallback: no node 'byee' in this flow; did you mean 'bye'?",
        id="next-points-nowhere",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: welcome
        nodes:
          welcome:
            type: menu
            prompt: en/menu
            choices: {"1": bye, "2": sales}
            fallback: bye
          bye: {type: hangup}
        """,
        "f.yaml:7:30: nodes.welcome.choices.2: no node 'sales' in this flow",
        id="menu-choice-points-nowhere",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: welcom
        nodes:
          welcome: {type: hangup}
        """,
        "f.yaml:2:8: start: no node 'welcom' in this flow; did you mean 'welcome'?",
        id="start-points-nowhere",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: welcome
        nodes:
          welcome: {type: hangup}
          orphan: {type: hangup}
        """,
        "f.yaml:5:3: nodes.orphan: unreachable: no path from start 'welcome' leads to this node",
        id="unreachable-node",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: ask
        nodes:
          ask: {type: route_request, next: bye, fallback: bye}
          special: {type: hangup}
          bye: {type: hangup}
        """,
        "f.yaml:5:3: nodes.special: unreachable: no path from start 'ask' leads to this node "
        "(a node the CRM may name must be listed in its route_request's choices)",
        id="unreachable-node-only-the-crm-could-name",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: welcome
        nodes:
          welcome:
            type: play
            prompt: en/welcome
            barge_in: false
            next: count
          count:
            type: set
            vars: {seen: "yes"}
            next: again
          again:
            type: branch
            cases:
              - when: {caller: "100"}
                next: bye
            else: welcome
          bye: {type: hangup}
        """,
        "f.yaml:4:3: nodes.welcome: loop with no exit: welcome > count > again > welcome goes "
        "round without waiting for a key or a timeout (play, say, set, branch, schedule and "
        "goto never wait), so a call could go round it for ever; put a menu, collect, "
        "route_request or transfer on the way round",
        id="loop-with-no-exit",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: welcome
        nodes:
          welcome:
            type: play
            prompts: [en/welcom]
            next: bye
          bye: {type: hangup}
        """,
        "f.yaml:6:15: nodes.welcome.prompts[0]: prompt 'en/welcom': prompts/en/welcom.wav does "
        "not exist (nor .mp3, .ogg, .flac, .aiff); did you mean 'en/welcome'?",
        id="missing-prompt",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: welcome
        nodes:
          welcome:
            type: play
            prompt: fr/welcome
            next: bye
          bye: {type: hangup}
        """,
        "f.yaml:6:13: nodes.welcome.prompt: prompt 'fr/welcome': prompts/fr/welcome.wav does not "
        "exist (nor .mp3, .ogg, .flac, .aiff): the folder prompts/fr does not exist",
        id="missing-prompt-folder",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: welcome
        nodes:
          welcome:
            type: play
            prompt: en/broken
            next: bye
          bye: {type: hangup}
        """,
        "f.yaml:6:13: nodes.welcome.prompt: prompt 'en/broken': prompts/en/broken.wav: is not a "
        "WAV (RIFF/WAVE) file (it starts with b'this is not '); re-export it as 16-bit PCM WAV",
        id="unreadable-prompt",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: welcome
        nodes:
          welcome:
            type: play
            prompt: "{lang}/welcome"
            next: bye
          bye: {type: hangup}
        """,
        "f.yaml:6:13: nodes.welcome.prompt: prompt names cannot hold templates ({var}); use a "
        "branch to choose the prompt",
        id="template-in-prompt-name",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: welcome
        nodes:
          welcome:
            type: play
            prompt: en/welcome
            prompts: [en/menu]
            next: bye
          bye: {type: hangup}
        """,
        "f.yaml:6:5: nodes.welcome.prompt: give either prompt (one prompt) or prompts (a list), "
        "not both",
        id="prompt-and-prompts",
    ),
    pytest.param(
        """
        timezone: Asia/Shangai
        start: welcome
        nodes:
          welcome: {type: hangup}
        """,
        "f.yaml:1:11: timezone: 'Asia/Shangai' is not an IANA time zone; did you mean "
        "'Asia/Shanghai'?",
        id="invalid-time-zone",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        holidays:
          dates: ["2026-12-24", "2026-02-30"]
        start: welcome
        nodes:
          welcome: {type: hangup}
        """,
        "f.yaml:3:25: holidays.dates[1]: '2026-02-30' is not a real date (day is out of range "
        "for month)",
        id="invalid-date",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        holidays:
          workdays: [2026-13-01]
        start: welcome
        nodes:
          welcome: {type: hangup}
        """,
        "f.yaml:3:14: cannot read this value: month must be in 1..12",
        id="invalid-unquoted-date",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        holidays: {country: XX}
        start: welcome
        nodes:
          welcome: {type: hangup}
        """,
        "f.yaml:2:21: holidays.country: 'XX' is not a country code the holidays library knows; "
        "use an ISO 3166 code such as CN, US or GB",
        id="unknown-holiday-country",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        holidays: {country: US, subdivision: ZZ}
        start: welcome
        nodes:
          welcome: {type: hangup}
        """,
        "f.yaml:2:38: holidays.subdivision: 'ZZ' is not a subdivision of US (known: ",
        id="unknown-holiday-subdivision",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: welcome
        nodes:
          welcome:
            type: menu
            prompt: en/menu
            choices:
              "1": bye
              "2": bye
              "1": welcome
            fallback: bye
          bye: {type: hangup}
        """,
        "f.yaml:10:7: nodes.welcome.choices: key '1' is given twice in this menu (first at line "
        "8); a key leads to one node only, remove one of them",
        id="duplicate-menu-digit",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: welcome
        nodes:
          welcome:
            type: menu
            prompt: en/menu
            choices: {1: bye, "1": welcome}
            fallback: bye
          bye: {type: hangup}
        """,
        "f.yaml:7:23: nodes.welcome.choices: key '1' is given twice in this menu (first at line "
        "7); a key leads to one node only, remove one of them",
        id="duplicate-menu-digit-int-and-text",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: welcome
        nodes:
          welcome:
            type: menu
            prompt: en/menu
            choices: {"12": bye}
            fallback: bye
          bye: {type: hangup}
        """,
        "f.yaml:7:15: nodes.welcome.choices: '12' is not one key; a menu key is one of 0-9, *, #, "
        'A-D (quote * and #, e.g. "#")',
        id="menu-key-not-one-key",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: account
        nodes:
          account:
            type: collect
            prompt: en/enter
            into: acct
            next: say
            fallback: say
          say:
            type: say
            say: digits
            value: "{acct}"
            next: bye
          bye: {type: hangup}
        """,
        "f.yaml:13:12: nodes.say.value: reads variable 'acct' before it is set on every path: "
        "account > say gets here without setting it; set it on that path too, or give it a "
        "default in vars:",
        id="read-before-set-on-fallback-path",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: lookup
        nodes:
          lookup:
            type: route_request
            sets: [balance]
            next: say
            fallback: bye
          say:
            type: say
            say: amount
            value: "{balanse}"
            next: bye
          bye: {type: hangup}
        """,
        "f.yaml:12:12: nodes.say.value: reads variable 'balanse', which nothing sets (no vars:, "
        "set, collect/menu into or route_request sets names it); did you mean 'balance'?",
        id="read-of-variable-nothing-sets",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        vars:
          greeting: "{name} hello"
          name: bob
        start: welcome
        nodes:
          welcome: {type: hangup}
        """,
        "f.yaml:3:13: vars.greeting: reads variable 'name', which is set below this one; vars: "
        "may read the builtins and the vars above them",
        id="flow-var-reads-a-later-var",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: account
        nodes:
          account:
            type: collect
            prompt: en/enter
            into: acct
            pattern: "[0-9"
            next: bye
            fallback: bye
          bye: {type: hangup}
        """,
        "f.yaml:8:14: nodes.account.pattern: not a valid regular expression: unterminated "
        "character set at position 0",
        id="invalid-regex",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: account
        nodes:
          account:
            type: collect
            prompt: en/enter
            into: acct
            min_digits: 9
            max_digits: 8
            next: bye
            fallback: bye
          bye: {type: hangup}
        """,
        "f.yaml:8:17: nodes.account: min_digits 9 is more than max_digits 8",
        id="min-digits-above-max-digits",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: account
        nodes:
          account:
            type: collect
            prompt: en/enter
            into: acct
            digits: 8
            max_digits: 8
            next: bye
            fallback: bye
          bye: {type: hangup}
        """,
        "f.yaml:8:5: nodes.account.digits: give either digits (exactly that many) or "
        "min_digits/max_digits, not both",
        id="digits-and-max-digits",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: vm
        nodes:
          vm: {type: voicemail, mailbox: "voicemail:100"}
        """,
        "f.yaml:4:34: nodes.vm.mailbox: write the box's name only, without 'voicemail:': "
        "mailbox: 100",
        id="voicemail-mailbox-as-a-target",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: vm
        nodes:
          vm: {type: voicemail, mailbox: ".."}
        """,
        "f.yaml:4:34: nodes.vm.mailbox: mailbox name '..' cannot be a folder name; give it a "
        "letter or digit",
        id="voicemail-mailbox-dots",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: other
        nodes:
          other: {type: goto, flow: billing}
        """,
        "f.yaml:4:29: nodes.other.flow: no flow 'billing': billing.yaml does not exist",
        id="goto-flow-that-does-not-exist",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: desk
        nodes:
          desk: {type: transfer, to: "extension:2o1"}
        """,
        "f.yaml:4:30: nodes.desk.to: 'extension:2o1': the extension must be a number, "
        "e.g. extension:201",
        id="transfer-target-does-not-parse",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: desk
        nodes:
          desk: {type: transfer, to: "flow:other"}
        """,
        "f.yaml:4:30: nodes.desk.to: a transfer rings extension:NUMBER, group:NAME or "
        "number:DIGITS, not 'flow:other': use type: goto to continue in another flow",
        id="transfer-to-a-flow",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: desk
        nodes:
          desk: {type: transfer, to: "number:8400-1234"}
        """,
        "f.yaml:4:30: nodes.desk.to: 'number:8400-1234': expected 1-32 digits (0-9, *, #) to "
        "dial, e.g. number:84001234",
        id="transfer-number-does-not-parse",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        vars:
          note: "LONG"
        start: bye
        nodes:
          bye: {type: hangup}
        """,
        "f.yaml:3:9: vars.note: 1100 characters is too long; values are at most 1024 characters",
        id="value-longer-than-1024",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: welcome
        nodes:
          welcome: {type: play, prompt: en/welcome, next: say hello}
          say hello: {type: hangup}
        """,
        "f.yaml:5:3: nodes: node name 'say hello' is not a valid name (' ' is not allowed); "
        "names use ASCII letters (a-z, A-Z), digits, '_', '.' and '-', starting with a letter "
        "or '_', at most 64 characters",
        id="invalid-node-name",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: hours
        nodes:
          hours:
            type: schedule
            hours: {mon-fri: "18:00-09:00"}
            open: bye
            closed: bye
          bye: {type: hangup}
        """,
        "f.yaml:6:22: nodes.hours.hours.mon-fri: bad time range '18:00-09:00': the end must be "
        "after the start; a range cannot cross midnight, so write two ranges (e.g. "
        "\"22:00-24:00\" today and \"00:00-06:00\" on the next day)",
        id="time-range-backwards",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: hours
        nodes:
          hours:
            type: schedule
            hours:
              mon-fri: "09:00-18:00"
              fri: "09:00-12:00"
            open: bye
            closed: bye
          bye: {type: hangup}
        """,
        "f.yaml:8:7: nodes.hours.hours: fri is given twice (first at line 7); give each weekday "
        "once",
        id="weekday-given-twice",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: hours
        nodes:
          hours:
            type: schedule
            hours: {tues: "09:00-18:00"}
            open: bye
            closed: bye
          bye: {type: hangup}
        """,
        "f.yaml:6:13: nodes.hours.hours: unknown weekday 'tues' in 'tues': use mon tue wed thu "
        "fri sat sun, a range like mon-fri or a list like sat,sun",
        id="unknown-weekday",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: hours
        nodes:
          hours:
            type: schedule
            hours: {mon: "09:00-18:00"}
            dates:
              - {from: "2026-11-12", to: "2026-11-11", hours: []}
            open: bye
            closed: bye
          bye: {type: hangup}
        """,
        "f.yaml:8:34: nodes.hours.dates[0].to: 2026-11-11 is before from 2026-11-12",
        id="date-rule-to-before-from",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: check
        nodes:
          check:
            type: branch
            cases:
              - when: {caler: "100"}
                next: bye
            else: bye
          bye: {type: hangup}
        """,
        "f.yaml:7:16: unknown key 'caler' in nodes.check.cases[0].when; did you mean 'caller'?",
        id="unknown-condition-key",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: check
        nodes:
          check:
            type: branch
            cases:
              - when: {caller: {prefix: 138}}
                next: bye
            else: bye
          bye: {type: hangup}
        """,
        "f.yaml:7:33: nodes.check.cases[0].when.caller.prefix: expected text, got the number "
        "138; put it in quotes, e.g. \"138\"",
        id="caller-prefix-not-quoted",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: check
        nodes:
          check:
            type: branch
            cases:
              - when: {var: caller, equals: "1", prefix: "2"}
                next: bye
            else: bye
          bye: {type: hangup}
        """,
        "f.yaml:7:21: nodes.check.cases[0].when: var caller has 2 comparisons (equals, prefix); "
        "give exactly one of equals, not_equals, in, prefix, matches, gt, ge, lt, le, set (for "
        "several, make when a list of conditions)",
        id="var-condition-with-two-comparisons",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: remember
        nodes:
          remember:
            type: set
            vars: {note: "{caller"}
            next: bye
          bye: {type: hangup}
        """,
        "f.yaml:6:18: nodes.remember.vars.note: has a '{' or '}' that is not part of a "
        "{variable}; write {{ or }} for a brace, and variable names with letters, digits, '_', "
        "'.', '-'",
        id="template-with-a-stray-brace",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: remember
        nodes:
          remember:
            type: set
            vars: {vip: "true"}
            next: bye
          bye: {type: hangup}
        """,
        "f.yaml:6:12: nodes.remember.vars.vip: 'vip' is a builtin variable (blacklisted, "
        "call_id, caller, dnis, trunk, vip) and cannot be set",
        id="set-a-builtin",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: remember
        nodes:
          remember:
            type: set
            vars: {tries: 0}
            next: bye
          bye: {type: hangup}
        """,
        "f.yaml:6:19: nodes.remember.vars.tries: expected text, got the number 0; put it in "
        "quotes, e.g. \"0\"",
        id="set-a-number-unquoted",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        language: fr
        start: bye
        nodes:
          bye: {type: hangup}
        """,
        "f.yaml:2:11: language: the text 'fr' is not allowed; use 'zh' or 'en'",
        id="unknown-language",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        language: zh
        start: say
        nodes:
          say: {type: say, say: amount, value: "12.50", next: bye}
          bye: {type: hangup}
        """,
        "f.yaml:5:3: nodes.say: say: 1 of the 11 recorded zh fragments it needs are missing "
        "from prompts: zh/say/yuan",
        id="say-fragment-missing",
    ),
    pytest.param(
        "",
        "f.yaml:1:1: the file is empty; a flow needs at least timezone, start and nodes",
        id="empty-file",
    ),
    # --- after the review of issue 14 -------------------------------------------------
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: t
        nodes:
          t: {type: transfer, to: extension:999, on_fail: t}
        """,
        "f.yaml:4:3: nodes.t: loop with no exit: t > t can go round in one instant (a transfer "
        "can fail at once: an unknown or busy target, no free trunk; set, branch, schedule and "
        "goto take no time), so a call could spin in it; put a menu, collect or route_request "
        "on the way round, or a play between the failed transfer and the next try",
        id="transfer-fails-back-to-itself",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: desk
        nodes:
          desk: {type: transfer, to: "group:sales", timeout_s: 20, on_fail: again}
          again: {type: set, vars: {tried: "yes"}, next: desk}
        """,
        "f.yaml:4:3: nodes.desk: loop with no exit: desk > again > desk can go round in one "
        "instant (a transfer can fail at once: an unknown or busy target, no free trunk; set, "
        "branch, schedule and goto take no time), so a call could spin in it; put a menu, "
        "collect or route_request on the way round, or a play between the failed transfer and "
        "the next try",
        id="transfer-fails-through-instant-nodes-and-back",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: 欢迎
        nodes:
          欢迎: {type: hangup}
        """,
        "f.yaml:4:3: nodes: node name '欢迎' is not a valid name ('欢' is not allowed); names use "
        "ASCII letters (a-z, A-Z), digits, '_', '.' and '-', starting with a letter or '_', at "
        "most 64 characters (Chinese and other non-ASCII text belongs in prompts and values, "
        "not names)",
        id="start-names-a-node-with-a-chinese-name",
    ),
    pytest.param(
        """
        timezone: Asia/Shanghai
        start: 1bad
        nodes:
          1bad: {type: play, prompt: en/welcome, next: bye}
          bye: {type: hangup}
        """,
        "f.yaml:4:3: nodes: node name '1bad' is not a valid name (it starts with '1'); names use "
        "ASCII letters (a-z, A-Z), digits, '_', '.' and '-', starting with a letter or '_', at "
        "most 64 characters",
        id="start-names-a-node-starting-with-a-digit",
    ),
    pytest.param(
        "\n".join(["timezone: UTC", "start: bye", "nodes: {bye: {type: hangup}}",
                   "a: &a [x, x, x, x, x, x, x, x, x]"]
                  + [f"{n}: &{n} [" + ", ".join([f"*{p}"] * 9) + "]"
                     for p, n in zip("abcdefgh", "bcdefghi", strict=True)]),
        'f.yaml:9:12: the document grows past 200000 values with the alias *e (a copy of 66430 '
        'values), counting what every alias repeats; the limit stops a file of nested aliases '
        '(an "alias bomb") from using all memory and time: write the values out, or use fewer '
        'aliases',
        id="yaml-alias-bomb",
    ),
    pytest.param(
        "timezone: UTC\nstart: bye\nnodes: {bye: {type: hangup}}\nx: " + "[" * 5000
        + "]" * 5000,
        "f.yaml:4:67: lists and mappings nest 65 levels deep here, more than the 64 allowed; the "
        "limit keeps a runaway or hostile file from exhausting the loader (no config or flow "
        "needs so many levels)",
        id="yaml-nested-too-deep",
    ),
    pytest.param(
        """
        timezone: UTC
        start: menu
        nodes:
          menu: {type: menu, prompt: en/menu, choices: {010: bye, "1": bye}, fallback: bye}
          bye: {type: hangup}
        """,
        "f.yaml:4:49: nodes.menu.choices: '010' is not one key; a menu key is one of 0-9, *, #, "
        'A-D (quote * and #, e.g. "#")',
        id="menu-key-octal-is-not-key-8",
    ),
    pytest.param(
        """
        timezone: UTC
        start: menu
        nodes:
          menu: {type: menu, prompt: en/menu, choices: {0x3: bye}, fallback: bye}
          bye: {type: hangup}
        """,
        "f.yaml:4:49: nodes.menu.choices: '0x3' is not one key; a menu key is one of 0-9, *, #, "
        'A-D (quote * and #, e.g. "#")',
        id="menu-key-hex-is-not-key-3",
    ),
    pytest.param(
        """
        timezone: UTC
        start: menu
        nodes:
          menu: {type: menu, prompt: en/menu, choices: {+1: bye}, fallback: bye}
          bye: {type: hangup}
        """,
        'f.yaml:4:49: nodes.menu.choices: +1 is read as the number 1; write menu keys as quoted '
        'text, e.g. "1"',
        id="menu-key-int-written-other-than-one-digit",
    ),
    pytest.param(
        """
        timezone: UTC
        start: menu
        nodes:
          menu:
            type: menu
            prompt: en/menu
            choices: {"1": bye}
            timeout_s: 1:30
            fallback: bye
          bye: {type: hangup}
        """,
        "f.yaml:8:16: nodes.menu.timeout_s: expected a number, got the text '1:30'; 1:30 is not "
        "read as hours/minutes:seconds (base 60); write the plain number, e.g. 90",
        id="timeout-in-base-60",
    ),
    pytest.param(
        """
        timezone: UTC
        start: menu
        nodes:
          menu:
            type: menu
            prompt: en/menu
            choices: {"1": bye}
            retries: 0x2
            fallback: bye
          bye: {type: hangup}
        """,
        "f.yaml:8:14: nodes.menu.retries: expected a whole number, got the text '0x2'; 0x2 is "
        "not read as a hexadecimal number; write the number in decimal, e.g. 2",
        id="retries-in-hex",
    ),
    pytest.param(
        """
        timezone: UTC
        start: ask
        nodes:
          ask: {type: route_request, sets: [Balance], fallback: bye}
          bye: {type: hangup}
        """,
        "f.yaml:4:37: nodes.ask.sets[0]: a reply cannot set 'Balance': ROUTE.REPLY's keys are "
        "lower-case (a-z first, then a-z, 0-9, '_', '.' or '-'); write 'balance'",
        id="route-request-sets-an-upper-case-name",
    ),
    pytest.param(
        """
        timezone: UTC
        start: ask
        nodes:
          ask: {type: route_request, sets: [next], fallback: bye}
          bye: {type: hangup}
        """,
        "f.yaml:4:37: nodes.ask.sets[0]: a reply cannot set 'next': call= and next= are "
        "ROUTE.REPLY's own arguments (the call and the node to go to), not variables; use "
        "another name, e.g. 'next_step'",
        id="route-request-sets-next",
    ),
    pytest.param(
        """
        timezone: UTC
        start: ask
        nodes:
          ask: {type: route_request, sets: [caller], fallback: bye}
          bye: {type: hangup}
        """,
        "f.yaml:4:37: nodes.ask.sets[0]: 'caller' is a builtin variable (blacklisted, call_id, "
        "caller, dnis, trunk, vip); ROUTE.REPLY is refused when it sets one, so no reply can "
        "set it",
        id="route-request-sets-a-builtin",
    ),
    pytest.param(
        """
        timezone: UTC
        start: desk
        nodes:
          desk: {type: transfer, to: "queue:sales"}
        """,
        "f.yaml:4:30: nodes.desk.to: a transfer rings extension:NUMBER, group:NAME or "
        "number:DIGITS, not 'queue:sales': to hand the caller to an ACD queue, use type: queue "
        "with queue: NAME",
        id="transfer-to-a-queue",
    ),
    pytest.param(
        """
        timezone: UTC
        start: desk
        nodes:
          desk: {type: transfer, to: busy}
        """,
        "f.yaml:4:30: nodes.desk.to: a transfer rings extension:NUMBER, group:NAME or "
        "number:DIGITS, not 'busy': to end the call, use type: hangup",
        id="transfer-to-busy",
    ),
    pytest.param(
        """
        timezone: UTC
        start: desk
        nodes:
          desk: {type: transfer, to: "201"}
        """,
        "f.yaml:4:30: nodes.desk.to: '201' is not a transfer target; write extension:NUMBER, "
        "group:NAME or number:DIGITS; for an extension write extension:201",
        id="transfer-to-a-bare-number",
    ),
    pytest.param(
        """
        timezone: UTC
        start: desk
        nodes:
          desk: {type: transfer, to: "extention:201"}
        """,
        "f.yaml:4:30: nodes.desk.to: 'extention:201' is not a transfer target; write "
        "extension:NUMBER, group:NAME or number:DIGITS; did you mean extension:?",
        id="transfer-kind-misspelt",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BROKEN)
def test_a_broken_flow_is_reported_at_the_exact_place(home, text, expected):
    text = textwrap.dedent(text).replace("LONG", "x" * 1100)
    (home / "prompts" / "en" / "broken.wav").write_bytes(b"this is not a wav file")
    (home / "prompts" / "zh" / "say" / "yuan.wav").unlink()
    problems = problems_of(text)
    if expected.endswith("(known: "):
        assert len(problems) == 1 and problems[0].startswith(expected)
    else:
        assert problems == [expected]


def test_every_problem_of_a_file_is_reported_at_once_in_file_order(home):
    problems = problems_of("""
        timezone: Mars/Base
        start: welcome
        nodes:
          welcome:
            type: play
            prompt: en/nope
            barge_in: no
            next: nowhere
          lost: {type: hangup}
          q: {type: voicemail, mailbox: "1", max_s: 0}
        """)
    positions = [p.split(": ", 1)[0] for p in problems]
    assert positions == ["f.yaml:1:11", "f.yaml:6:13", "f.yaml:7:15", "f.yaml:8:11",
                         "f.yaml:9:3", "f.yaml:10:3", "f.yaml:10:45"]
    assert "unreachable" in problems[4] and "unreachable" in problems[5]
    assert "nodes.q.max_s" in problems[6]


def test_a_node_with_a_mistake_still_has_its_edges_followed(home):
    # welcome's barge_in is wrong, but its `next` still reaches bye: no false "unreachable".
    problems = problems_of("""
        timezone: Asia/Shanghai
        start: welcome
        nodes:
          welcome: {type: play, prompt: en/welcome, barge_in: 1, next: bye}
          bye: {type: hangup}
        """)
    assert len(problems) == 1 and "barge_in" in problems[0]


def test_a_cycle_through_a_waiting_node_is_not_a_loop_with_no_exit(home):
    flow = load_flow(write("""
        timezone: Asia/Shanghai
        start: welcome
        nodes:
          welcome: {type: play, prompt: en/welcome, barge_in: false, next: menu}
          menu:
            type: menu
            prompt: en/menu
            choices: {"9": welcome, "1": bye}
            fallback: welcome
          bye: {type: hangup}
        """), Path("prompts"))
    assert set(flow.nodes) == {"welcome", "menu", "bye"}


def test_a_self_loop_is_a_loop_with_no_exit(home):
    problems = problems_of("""
        timezone: Asia/Shanghai
        start: again
        nodes:
          again: {type: play, prompt: en/welcome, next: again}
        """)
    assert problems == [
        "f.yaml:4:3: nodes.again: loop with no exit: again > again goes round without waiting "
        "for a key or a timeout (play, say, set, branch, schedule and goto never wait), so a "
        "call could go round it for ever; put a menu, collect, route_request or transfer on "
        "the way round"]


def test_a_branch_set_guard_makes_the_variable_known_on_that_case(home):
    load_flow(write("""
        timezone: Asia/Shanghai
        start: check
        nodes:
          check:
            type: branch
            cases:
              - when: {var: balance, set: true}
                next: say
            else: bye
          say: {type: say, say: amount, value: "{balance}", next: bye}
          bye: {type: hangup}
        """), Path("prompts"))


def test_a_menu_choice_sets_into_but_its_fallback_does_not(home):
    problems = problems_of("""
        timezone: Asia/Shanghai
        start: menu
        nodes:
          menu:
            type: menu
            prompt: en/menu
            choices: {"1": say}
            into: key
            fallback: say
          say: {type: say, say: digits, value: "{key}", next: bye}
          bye: {type: hangup}
        """)
    assert problems == [
        "f.yaml:10:40: nodes.say.value: reads variable 'key' before it is set on every path: "
        "menu > say gets here without setting it; set it on that path too, or give it a "
        "default in vars:"]


def test_a_flow_var_default_makes_a_variable_known_everywhere(home):
    load_flow(write("""
        timezone: Asia/Shanghai
        vars: {acct: ""}
        start: account
        nodes:
          account: {type: collect, prompt: en/enter, into: acct, next: say, fallback: say}
          say: {type: say, say: digits, value: "{acct}", next: bye}
          bye: {type: hangup}
        """), Path("prompts"))


# --- clean flows: the model values ----------------------------------------------------------

GOOD = """
timezone: Asia/Shanghai
language: en
holidays:
  country: CN
  dates: ["2026-12-24"]
  workdays: [2026-10-11]
vars:
  lang: en
  greeting: "hi {caller}"
start: welcome
nodes:
  welcome:
    type: play
    prompt: en/welcome
    barge_in: false
    next: hours
  hours:
    type: schedule
    hours:
      mon-fri: ["13:00-18:00", "09:00-12:00"]
      sat,sun: "10:00-12:00"
    dates:
      - {from: "2026-11-11", hours: []}
      - {from: 2026-12-01, to: "2026-12-03", hours: "00:00-24:00"}
    workday_hours: "09:00-17:00"
    open: vip_check
    closed: bye
    holiday: bye
  vip_check:
    type: branch
    cases:
      - when: {vip: true}
        next: desk
      - when: {var: lang, equals: en, caller: {prefix: "138"}}
        next: main_menu
      - when: [{time: "12:00-13:30"}, {weekday: [sat, sun]}]
        next: main_menu
      - when: {dnis: "8000", var: menu_choice, set: true}
        next: main_menu
    else: main_menu
  main_menu:
    type: menu
    prompts: [en/menu]
    choices: {1: account, "2": desk, "#": bye, 0: remember}
    timeout_s: 4
    retries: 1
    invalid_prompts: [en/invalid]
    timeout_prompts: [en/invalid]
    into: menu_choice
    fallback: bye
  remember:
    type: set
    vars: {lang: zh, last: "{menu_choice}{lang}"}
    next: main_menu
  account:
    type: collect
    prompts: [en/enter]
    into: account
    min_digits: 6
    max_digits: 8
    terminator: null
    pattern: "[0-9]+"
    first_timeout_s: 6
    inter_digit_timeout_s: 2.5
    retries: 3
    invalid_prompts: [en/invalid]
    next: lookup
    fallback: bye
  lookup:
    type: route_request
    timeout_s: 2
    choices: [say_balance, bye]
    next: say_balance
    fallback: bye
    prompt: en/wait
    sets: [balance]
  say_balance:
    type: say
    say: amount
    value: "{balance}"
    currency: USD
    next: again
  again:
    type: goto
    flow: good
    node: main_menu
  desk:
    type: transfer
    to: extension:0201
    timeout_s: 15
    on_fail: bye
  bye:
    type: hangup
"""


def test_a_clean_flow_loads_every_node_into_the_model(home):
    path = write(GOOD, "good.yaml")
    flow = load_flow(path, Path("prompts"))
    assert flow.name == "good" and flow.path == path and flow.start == "welcome"
    assert flow.version == hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    assert flow.timezone == "Asia/Shanghai" and flow.language == "en"
    assert flow.holidays == Holidays(country="CN", dates=frozenset({dt.date(2026, 12, 24)}),
                                     workdays=frozenset({dt.date(2026, 10, 11)}))
    assert flow.vars == (("lang", "en"), ("greeting", "hi {caller}"))
    assert list(flow.nodes) == ["welcome", "hours", "vip_check", "main_menu", "remember",
                                "account", "lookup", "say_balance", "again", "desk", "bye"]
    n = flow.nodes

    assert isinstance(n["welcome"], Play)
    assert n["welcome"].prompts == ("en/welcome",)  # `prompt:` is a one-item list
    assert n["welcome"].barge_in is False and n["welcome"].next == "hours"
    assert (n["welcome"].mark.file, n["welcome"].mark.line, n["welcome"].mark.col) == \
        ("good.yaml", 12, 3)

    hours = n["hours"]
    assert isinstance(hours, Schedule)
    week = (TimeRange(9 * 3600, 12 * 3600), TimeRange(13 * 3600, 18 * 3600))
    weekend = (TimeRange(10 * 3600, 12 * 3600),)
    assert dict(hours.hours) == {0: week, 1: week, 2: week, 3: week, 4: week,
                                 5: weekend, 6: weekend}
    assert hours.dates == (
        DateRule(dt.date(2026, 11, 11), dt.date(2026, 11, 11), ()),
        DateRule(dt.date(2026, 12, 1), dt.date(2026, 12, 3), (TimeRange(0, 86400),)),
    )
    assert hours.workday_hours == (TimeRange(9 * 3600, 17 * 3600),)
    assert (hours.open, hours.closed, hours.holiday) == ("vip_check", "bye", "bye")

    branch = n["vip_check"]
    assert isinstance(branch, Branch) and branch.otherwise == "main_menu"
    assert [c.conds for c in branch.cases] == [
        (Cond(CondSubject.VIP, CondOp.IS, True),),
        (Cond(CondSubject.VAR, CondOp.EQUALS, "en", "lang"),
         Cond(CondSubject.CALLER, CondOp.PREFIX, "138")),
        (Cond(CondSubject.TIME, CondOp.IS, TimeRange(12 * 3600, 13 * 3600 + 1800)),
         Cond(CondSubject.WEEKDAY, CondOp.IS, (5, 6))),
        (Cond(CondSubject.VAR, CondOp.SET, True, "menu_choice"),
         Cond(CondSubject.DNIS, CondOp.EQUALS, "8000")),
    ]
    assert [c.next for c in branch.cases] == ["desk", "main_menu", "main_menu", "main_menu"]

    menu = n["main_menu"]
    assert isinstance(menu, Menu)
    assert dict(menu.choices) == {"1": "account", "2": "desk", "#": "bye", "0": "remember"}
    assert (menu.prompts, menu.timeout_s, menu.retries, menu.into, menu.fallback) == \
        (("en/menu",), 4.0, 1, "menu_choice", "bye")
    assert menu.invalid_prompts == menu.timeout_prompts == ("en/invalid",)

    assert n["remember"] == SetVars(name="remember", mark=n["remember"].mark,
                                    values=(("lang", "zh"), ("last", "{menu_choice}{lang}")),
                                    next="main_menu")
    assert n["account"] == Collect(
        name="account", mark=n["account"].mark, prompts=("en/enter",), into="account",
        min_digits=6, max_digits=8, terminator=None, pattern="[0-9]+", first_timeout_s=6.0,
        inter_digit_timeout_s=2.5, retries=3, invalid_prompts=("en/invalid",), next="lookup",
        fallback="bye")
    assert n["lookup"] == RouteRequest(
        name="lookup", mark=n["lookup"].mark, timeout_s=2.0, choices=("say_balance", "bye"),
        next="say_balance", fallback="bye", prompts=("en/wait",), sets=("balance",))
    assert n["say_balance"] == Say(name="say_balance", mark=n["say_balance"].mark,
                                   kind=SayKind.AMOUNT, value="{balance}", currency="USD",
                                   next="again")
    assert n["again"] == Goto(name="again", mark=n["again"].mark, flow="good", node="main_menu")
    assert n["desk"] == Transfer(name="desk", mark=n["desk"].mark, target="extension:201",
                                 timeout_s=15.0, on_fail="bye")
    assert n["bye"] == Hangup(name="bye", mark=n["bye"].mark)

    prompts = Path("prompts")
    assert flow.prompt_files["en/welcome"] == prompts / "en" / "welcome.wav"
    assert flow.prompt_files["en/say/dollars"] == prompts / "en" / "say" / "dollars.wav"
    assert set(flow.prompt_files) == {"en/welcome", "en/menu", "en/invalid", "en/enter",
                                      "en/wait", *FRAGMENTS["en"]}


def test_defaults_of_the_node_types(home):
    flow = load_flow(write("""
        timezone: UTC
        start: welcome
        nodes:
          welcome: {type: play, prompts: [en/welcome], next: menu}
          menu: {type: menu, prompt: en/menu, choices: {"1": account}, fallback: bye}
          account: {type: collect, prompt: en/enter, into: acct, digits: 8, next: ask,
                    fallback: bye}
          ask: {type: route_request, fallback: bye, next: bye}
          bye: {type: transfer, to: "number:84001234"}
        """), Path("prompts"))
    n = flow.nodes
    assert flow.language == "en" and flow.holidays == Holidays() and flow.vars == ()
    assert n["welcome"].barge_in is True
    assert (n["menu"].timeout_s, n["menu"].retries, n["menu"].into) == (5.0, 2, None)
    c = n["account"]
    assert (c.min_digits, c.max_digits, c.terminator, c.pattern) == (8, 8, "#", None)
    assert (c.first_timeout_s, c.inter_digit_timeout_s, c.retries) == (5.0, 3.0, 2)
    assert (n["ask"].timeout_s, n["ask"].choices, n["ask"].prompts) == (3.0, (), ())
    assert (n["bye"].target, n["bye"].timeout_s, n["bye"].on_fail) == \
        ("number:84001234", None, None)


@pytest.mark.parametrize(("key", "days"), [
    ("mon-fri", (0, 1, 2, 3, 4)),
    ("sat,sun", (5, 6)),
    ("Wed", (2,)),
    ("mon-wed,fri", (0, 1, 2, 4)),
])
def test_weekday_keys_and_ranges(home, key, days):
    flow = load_flow(write(f"""
        timezone: Europe/Berlin
        start: hours
        nodes:
          hours: {{type: schedule, hours: {{"{key}": "08:00-17:30"}}, open: bye, closed: bye}}
          bye: {{type: hangup}}
        """), Path("prompts"))
    assert tuple(flow.nodes["hours"].hours) == days


@pytest.mark.parametrize(("written", "key"), [("1", "1"), ("0", "0"), ('"*"', "*"),
                                              ('"#"', "#"), ("A", "A"), ('"d"', "D")])
def test_menu_keys_may_be_ints_or_one_key_text(home, written, key):
    flow = load_flow(write(f"""
        timezone: UTC
        start: menu
        nodes:
          menu: {{type: menu, prompt: en/menu, choices: {{{written}: bye}}, fallback: bye}}
          bye: {{type: hangup}}
        """), Path("prompts"))
    assert dict(flow.nodes["menu"].choices) == {key: "bye"}


def test_a_play_needs_a_prompt_but_a_menu_may_be_silent(home):
    problems = problems_of("""
        timezone: UTC
        start: menu
        nodes:
          menu: {type: menu, prompts: [], choices: {"1": hello}, fallback: hello}
          hello: {type: play, prompts: [], next: menu}
        """)
    assert problems == ["f.yaml:5:32: nodes.hello.prompts: needs at least one prompt"]


def test_prompt_path_tries_the_suffixes_in_order(home):
    prompts = Path("prompts")
    assert prompt_path(prompts, "en/welcome") == prompts / "en" / "welcome.wav"
    (prompts / "en" / "jingle.mp3").write_bytes(b"")
    assert prompt_path(prompts, "en/jingle") == prompts / "en" / "jingle.mp3"
    assert prompt_path(prompts, "en/jingle.mp3") == prompts / "en" / "jingle.mp3"
    assert prompt_path(prompts, "en/welcome.sln") is None
    assert prompt_path(prompts, "en/nothing") is None


def test_prompts_are_only_looked_up_without_check_prompts(home):
    flow = load_flow(write("""
        timezone: UTC
        start: welcome
        nodes:
          welcome: {type: play, prompt: en/not_recorded_yet, next: bye}
          bye: {type: hangup}
        """), Path("prompts"), check_prompts=False)
    assert flow.prompt_files["en/not_recorded_yet"] == Path("prompts/en/not_recorded_yet.wav")


def test_say_fragments_come_from_the_say_module(home, fragments):
    fragments.all_fragments = lambda language: ["zh/say/ten-thousand"]
    problems = problems_of("""
        timezone: UTC
        language: zh
        start: say
        nodes:
          say: {type: say, say: number, value: "10000", next: bye}
          bye: {type: hangup}
        """)
    assert problems == [
        "f.yaml:5:3: nodes.say: say: 1 of the 1 recorded zh fragments it needs are missing "
        "from prompts: zh/say/ten-thousand"]


def test_unreadable_file_and_non_utf8(home):
    with pytest.raises(FlowError) as info:
        load_flow(Path("missing.yaml"), Path("prompts"))
    assert info.value.problems == ["missing.yaml: no such flow file"]
    Path("latin.yaml").write_bytes(b"timezone: UTC\nstart: caf\xe9\n")
    with pytest.raises(FlowError) as info:
        load_flow(Path("latin.yaml"), Path("prompts"))
    assert info.value.problems == ["latin.yaml:2:11: the file is not UTF-8 text (byte 0xe9)"]


# --- several flows: goto, load_flows, check_paths ----------------------------------------


MAIN = """
timezone: Asia/Shanghai
start: ask
nodes:
  ask: {type: collect, prompt: en/enter, into: acct, next: billing, fallback: bye}
  billing: {type: goto, flow: billing, node: read}
  bye: {type: hangup}
"""
BILLING = """
timezone: Asia/Shanghai
vars: {acct: ""}
start: welcome
nodes:
  welcome: {type: play, prompt: en/welcome, next: read}
  read: {type: say, say: digits, value: "{acct}", next: bye}
  bye: {type: hangup}
"""


def test_load_flows_loads_goto_targets_into_one_generation(home):
    write(MAIN, "flows/main.yaml")
    write(BILLING, "flows/billing.yaml")
    flows = load_flows(Path("flows"), ["main"], Path("prompts"), generation=7)
    assert flows.generation == 7
    assert sorted(flows.flows) == ["billing", "main"]
    assert flows.get("billing").nodes["read"].value == "{acct}"


def test_load_flows_checks_the_goto_node_in_the_other_flow(home):
    write(MAIN.replace("node: read", "node: raed"), "flows/main.yaml")
    write(BILLING, "flows/billing.yaml")
    with pytest.raises(FlowError) as info:
        load_flows(Path("flows"), ["main"], Path("prompts"))
    assert info.value.problems == [
        "flows/main.yaml:5:46: nodes.billing.node: flow 'billing' has no node 'raed'; did you "
        "mean 'read'?"]


def test_load_flows_blames_a_missing_flow_where_it_was_named(home):
    write(MAIN, "flows/main.yaml")
    with pytest.raises(FlowError) as info:
        load_flows(Path("flows"), ["main", "sales"], Path("prompts"),
                   places={"sales": "config.yaml:40:9"})
    assert info.value.problems == [
        "config.yaml:40:9: no flow 'sales': flows/sales.yaml does not exist",
        "flows/main.yaml:5:31: nodes.billing.flow: no flow 'billing': flows/billing.yaml does "
        "not exist",
    ]


def test_load_flows_reports_every_problem_of_every_file(home):
    write(MAIN.replace("bye: {type: hangup}", "bye: {type: hangup, why: x}"), "flows/main.yaml")
    write(BILLING.replace("en/welcome", "en/welcom"), "flows/billing.yaml")
    with pytest.raises(FlowError) as info:
        load_flows(Path("flows"), ["main"], Path("prompts"))
    assert [p.split(": ", 1)[0] for p in info.value.problems] == [
        "flows/main.yaml:6:23", "flows/billing.yaml:5:33"]


def test_a_loop_through_goto_across_flows_is_found(home):
    write("""
        timezone: UTC
        start: a
        nodes:
          a: {type: goto, flow: two}
        """, "flows/one.yaml")
    write("""
        timezone: UTC
        start: b
        nodes:
          b: {type: play, prompt: en/welcome, next: c}
          c: {type: goto, flow: one}
        """, "flows/two.yaml")
    with pytest.raises(FlowError) as info:
        load_flows(Path("flows"), ["one"], Path("prompts"))
    assert info.value.problems == [
        "flows/one.yaml:4:3: nodes.a: loop with no exit: a > two:b > two:c > a goes round "
        "without waiting for a key or a timeout (play, say, set, branch, schedule and goto "
        "never wait), so a call could go round it for ever; put a menu, collect, "
        "route_request or transfer on the way round"]


def test_check_paths_summarises_clean_flows(home):
    write(MAIN, "flows/main.yaml")
    write(BILLING, "flows/billing.yaml")
    problems, summary = check_paths([Path("flows")], Path("prompts"))
    assert problems == []
    assert summary == "2 flows, 6 nodes, 13 prompts: OK"  # 2 prompts + 11 en say fragments


def test_check_paths_reports_missing_paths_and_empty_folders(home):
    Path("empty").mkdir()
    problems, summary = check_paths([Path("nope.yaml"), Path("empty")], Path("prompts"))
    assert problems == ["nope.yaml: no such file or folder",
                        "empty: no flow files (*.yaml) in this folder"]
    assert summary == "2 problems in 0 flows checked"


def test_a_duplicate_top_level_key_is_reported_once(home):
    problems = problems_of("""
        timezone: UTC
        start: bye
        start: bye
        nodes:
          bye: {type: hangup}
        """)
    assert problems == ["f.yaml:3:1: duplicate key 'start' (first given at line 2); remove one "
                        "of them"]


# --- after the review of issue 14: files in the way, references, the API for `switchd check` ---


def test_a_prompt_that_is_a_directory_is_called_one(home):
    (home / "prompts" / "en" / "hall.wav").mkdir()
    problems = problems_of("""
        timezone: UTC
        start: welcome
        nodes:
          welcome: {type: play, prompt: en/hall, next: bye}
          bye: {type: hangup}
        """)
    assert problems == ["f.yaml:4:33: nodes.welcome.prompt: prompt 'en/hall': "
                        "prompts/en/hall.wav is a directory, not a file"]


def test_a_prompt_behind_a_looping_or_dangling_symbolic_link_says_so(home):
    loop = home / "prompts" / "en" / "loop.wav"
    loop.symlink_to(loop.name)  # a link to itself
    (home / "prompts" / "en" / "gone.wav").symlink_to("recorded/gone.wav")
    problems = problems_of("""
        timezone: UTC
        start: welcome
        nodes:
          welcome: {type: play, prompts: [en/loop, en/gone], next: bye}
          bye: {type: hangup}
        """)
    assert problems == [
        "f.yaml:4:35: nodes.welcome.prompts[0]: prompt 'en/loop': prompts/en/loop.wav is a "
        "symbolic link that loops (it leads back to itself)",
        "f.yaml:4:44: nodes.welcome.prompts[1]: prompt 'en/gone': prompts/en/gone.wav is a "
        "symbolic link to recorded/gone.wav, which does not exist",
    ]


def test_a_flow_file_behind_a_looping_symbolic_link_says_so(home):
    Path("flows").mkdir()
    Path("flows/loop.yaml").symlink_to("loop.yaml")
    problems, _ = check_paths([Path("flows/loop.yaml")], Path("prompts"))
    assert problems == ["flows/loop.yaml: is a symbolic link that loops (it leads back to "
                        "itself)"]
    with pytest.raises(FlowError) as info:
        load_flow(Path("flows/loop.yaml"), Path("prompts"))
    assert info.value.problems == ["flows/loop.yaml: is a symbolic link that loops (it leads "
                                   "back to itself)"]
    write(MAIN.replace("flow: billing, node: read", "flow: loop"), "flows/main.yaml")
    with pytest.raises(FlowError) as info:
        load_flows(Path("flows"), ["main"], Path("prompts"))
    assert info.value.problems == [
        "flows/main.yaml:5:31: nodes.billing.flow: flow 'loop': flows/loop.yaml is a symbolic "
        "link that loops (it leads back to itself)"]
    with pytest.raises(FlowError) as info:
        load_flows(Path("flows"), ["loop"], Path("prompts"), places={"loop": "config.yaml:9:9"})
    assert info.value.problems == [
        "config.yaml:9:9: flow 'loop': flows/loop.yaml is a symbolic link that loops (it leads "
        "back to itself)"]


def test_an_invalid_start_node_name_is_reported_once_not_at_every_reference(home):
    problems = problems_of("""
        timezone: UTC
        start: 欢迎
        nodes:
          欢迎: {type: play, prompt: en/welcome, next: menu}
          menu: {type: menu, prompt: en/menu, choices: {"9": 欢迎}, fallback: bye}
          bye: {type: hangup}
        """)
    assert len(problems) == 1
    assert problems[0].startswith("f.yaml:4:3: nodes: node name '欢迎' is not a valid name")


def test_a_goto_to_a_node_with_an_invalid_name_is_blamed_on_the_name_only(home):
    write(MAIN, "flows/main.yaml")
    write(BILLING.replace("read", "读"), "flows/billing.yaml")
    write(MAIN.replace("node: read", "node: 读"), "flows/main.yaml")
    with pytest.raises(FlowError) as info:
        load_flows(Path("flows"), ["main"], Path("prompts"))
    assert [p.split(": ", 1)[0] for p in info.value.problems] == [
        "flows/billing.yaml:6:3"]  # the name; not main's goto, not billing's `next: 读`


def test_numbers_with_a_leading_zero_stay_text(home):
    flow = load_flow(write("""
        timezone: UTC
        vars: {area: 0571}
        start: check
        nodes:
          check:
            type: branch
            cases:
              - when: {caller: {prefix: 0571}}
                next: bye
            else: bye
          bye: {type: hangup}
        """), Path("prompts"))
    assert flow.vars == (("area", "0571"),)
    assert flow.nodes["check"].cases[0].conds[0].value == "0571"  # not 377 (YAML 1.1 octal)


def test_route_request_sets_takes_lower_case_reply_keys(home):
    flow = load_flow(write("""
        timezone: UTC
        start: ask
        nodes:
          ask: {type: route_request, sets: [balance, acct.no, due-date], next: say, fallback: bye}
          say: {type: say, say: digits, value: "{balance}{acct.no}{due-date}", next: bye}
          bye: {type: hangup}
        """), Path("prompts"))
    assert flow.nodes["ask"].sets == ("balance", "acct.no", "due-date")


def test_the_reply_key_rule_is_the_cti_codecs():
    from switchd.cti import codec
    from switchd.ivr import loader

    assert loader._REPLY_KEY_RE.pattern == codec.KEY_RE.pattern


def test_collect_counts_given_as_null_take_the_defaults(home):
    flow = load_flow(write("""
        timezone: UTC
        start: ask
        nodes:
          ask: {type: collect, prompt: en/enter, into: acct, max_digits: null, next: bye,
                fallback: bye}
          bye: {type: hangup}
        """), Path("prompts"))
    assert (flow.nodes["ask"].min_digits, flow.nodes["ask"].max_digits) == (1, 20)


def test_route_request_choices_of_the_wrong_shape_are_a_type_error(home):
    problems = problems_of("""
        timezone: UTC
        start: ask
        nodes:
          ask: {type: route_request, choices: [{a: 1}, bye, bye], fallback: bye}
          bye: {type: hangup}
        """)
    assert problems == [
        "f.yaml:4:39: nodes.ask.choices: a node is listed twice",
        "f.yaml:4:40: nodes.ask.choices[0]: expected text, got a mapping",
    ]


def test_transfer_targets_give_each_transfer_with_the_place_of_its_to(home):
    flow = load_flow(write("""
        timezone: UTC
        start: menu
        nodes:
          menu:
            type: menu
            prompt: en/menu
            choices: {"1": sales, "2": desk, "3": out}
            fallback: desk
          sales: {type: transfer, to: "group:sales", on_fail: desk}
          desk:
            type: transfer
            to: extension:0201
          out: {type: transfer, to: "number:84001234"}
        """), Path("prompts"))
    got = [(node.name, target, str(mark)) for node, target, mark in transfer_targets(flow)]
    assert got == [("sales", "group:sales", "f.yaml:9:31"),
                   ("desk", "extension:201", "f.yaml:12:9"),
                   ("out", "number:84001234", "f.yaml:13:29")]
    assert str(flow.marks[("menu", "fallback")]) == "f.yaml:8:15"
    # A flow built by hand has no marks: the node's own is used.
    bare = dataclasses.replace(flow, marks={})
    assert [str(m) for _, _, m in transfer_targets(bare)] == ["f.yaml:9:3", "f.yaml:10:3",
                                                             "f.yaml:13:3"]


def test_load_flows_refuses_an_alias_bomb_at_once(home):
    write("timezone: UTC\nstart: bye\nnodes: {bye: {type: hangup}}\n"
          "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
          + "".join(f"{n}: &{n} [" + ", ".join([f"*{p}"] * 10) + "]\n"
                    for p, n in zip("abcdefghi", "bcdefghij", strict=True)),
          "flows/main.yaml")
    with pytest.raises(FlowError) as info:
        load_flows(Path("flows"), ["main"], Path("prompts"))
    (problem,) = info.value.problems
    assert problem.startswith("flows/main.yaml:9:8: the document grows past 200000 values "
                              "with the alias *e (a copy of 111111 values)")


def test_a_transfer_that_plays_a_prompt_and_tries_again_is_no_loop_without_exit(home):
    """Busy -> "please hold" -> ring again: the ring time is a timeout on the way round,
    and the prompt makes time pass when the target is busy at once."""
    path = home / "hold.yaml"
    path.write_text(textwrap.dedent("""\
        timezone: Asia/Shanghai
        start: desk
        nodes:
          desk: {type: transfer, to: "group:sales", timeout_s: 20, on_fail: sorry}
          sorry: {type: play, prompt: en/welcome, next: desk}
        """), encoding="utf-8")
    flow = load_flow(path, home / "prompts")
    assert set(flow.nodes) == {"desk", "sorry"}


def test_an_ordinary_comment_that_starts_with_hash_colon_is_left_alone(home):
    path = home / "note.yaml"
    path.write_text(textwrap.dedent("""\
        #: TODO record the prompts
        timezone: Asia/Shanghai
        start: a
        nodes:
          a: {type: hangup}
        """), encoding="utf-8")
    assert set(load_flow(path, home / "prompts").nodes) == {"a"}
