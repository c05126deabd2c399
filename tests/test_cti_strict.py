"""Strict arguments and helpful errors, over a real socket against the real daemon.

A verb that silently ignores an argument it does not take does something other than
what the client asked; a JSON-mode connection that only says "not valid JSON" leaves
a human typing text stuck; a "did you mean" that names a verb the client may not use
leaks the admin verbs to an agent. Each case is checked on the wire.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from switchd.cti.codec import JSON_BACK_TO_TEXT
from switchd.cti.commands import VERBS
from tests.daemon import Client, Daemon, fields, running


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with running(Path(tmp_path_factory.mktemp("strict"))) as d:
        yield d
    if d.proc.stderr is not None:
        d.proc.stderr.close()


async def _err(c: Client, text: str) -> dict[str, str]:
    """Send ``text``; it must be refused; return the ERR line's fields."""
    lines = await c.cmd(text)
    assert lines[-1].startswith("ERR "), f"{text!r} -> {lines}"
    return fields(lines[-1])


async def _login(port: int, user: str, secret: str) -> Client:
    c = await Client.connect(port)
    await c.ok(f"AUTH user={user} secret={secret}")
    return c


# --- strict arguments --------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "msg"),
    [
        ("CALLS x=1", "CALLS takes no argument 'x'; usage: CALLS"),
        ("CALLS mine", "CALLS takes no argument 'mine'; usage: CALLS"),
        ("HELP CALLS SUB",
         "HELP takes at most 1 positional argument, got 2 (CALLS SUB); usage: HELP [verb]"),
        ("HELP foo=bar", "HELP takes no argument 'foo'; usage: HELP [verb]"),
        ("HELP CALLS verb=SUB", "HELP got both 'CALLS' and verb='SUB'; give one; usage: HELP [verb]"),
        ("FORMAT json text",
         "FORMAT takes at most 1 positional argument, got 2 (json text); usage: FORMAT json|text"),
        ("FORMAT json x=1", "FORMAT takes no argument 'x'; usage: FORMAT json|text"),
        ("FORMAT", "FORMAT needs a format: use json or text; usage: FORMAT json|text"),
        ("FORMAT xml", "format 'xml': use json or text; usage: FORMAT json|text"),
        ("PING x=1", "PING takes no argument 'x'; usage: PING"),
    ],
)
async def test_an_argument_a_verb_does_not_take_is_bad_arg_naming_what_it_takes(
    daemon: Daemon, line: str, msg: str
) -> None:
    c = await _login(daemon.port, "agent1", "demo")
    assert await _err(c, line) == {"code": "bad_arg", "msg": msg}
    assert (await c.ok("PING"))["pong"] == "true"  # the connection survives
    await c.close()


async def test_help_still_takes_one_verb_either_way(daemon: Daemon) -> None:
    c = await Client.connect(daemon.port)
    assert (await c.ok("HELP calls"))["usage"] == "CALLS"
    assert (await c.ok("HELP verb=CALLS"))["usage"] == "CALLS"
    listing = await c.cmd("HELP")
    assert listing[-1] == f"END count={len(VERBS)}"
    assert (await c.ok("HELP name=CALLS"))["usage"] == "CALLS"
    assert (await _err(c, "HELP CALLS name=PING"))["code"] == "bad_arg"
    await c.close()


async def test_help_about_one_verb_works_in_json_mode_with_name(daemon: Daemon) -> None:
    c = await _login(daemon.port, "agent1", "demo")
    assert (await c.cmd("FORMAT json"))[-1] == "OK format=json"
    await c.send_raw(b'{"verb":"HELP","name":"CALLS","tag":"h"}\n')
    reply = json.loads(await c.line())
    assert reply["type"] == "OK" and reply["verb"] == "CALLS" and reply["tag"] == "h"
    await c.close()


async def test_strict_help_is_checked_before_auth_too(daemon: Daemon) -> None:
    c = await Client.connect(daemon.port)
    assert (await _err(c, "HELP foo=bar"))["code"] == "bad_arg"
    # A verb that needs AUTH says so first: its arguments are not looked at yet.
    assert (await _err(c, "CALLS x=1"))["code"] == "not_authenticated"
    await c.close()


# --- JSON mode tells a human how to get out ----------------------------------------


async def test_a_text_line_in_json_mode_says_how_to_get_back_to_text(daemon: Daemon) -> None:
    c = await _login(daemon.port, "agent1", "demo")
    assert (await c.cmd("FORMAT json"))[-1] == "OK format=json"
    await c.send_raw(b"FORMAT text\n")
    err = json.loads(await c.line())
    assert err["type"] == "ERR" and err["code"] == "bad_syntax"
    assert err["msg"] == (
        "not valid JSON: Expecting value at column 1; this connection is in JSON mode: "
        'send {"verb":"FORMAT","mode":"text"} to go back to text'
    )
    # Following the hint literally works.
    assert JSON_BACK_TO_TEXT in err["msg"]
    await c.send_raw(JSON_BACK_TO_TEXT.encode() + b"\n")
    assert json.loads(await c.line()) == {"type": "OK", "format": "text"}
    assert (await c.ok("PING"))["pong"] == "true"
    await c.close()


# --- "did you mean" only names verbs the session may use ---------------------------


def _usable(role: str | None) -> set[str]:
    return {name for name, v in VERBS.items()
            if v.roles is None or (role is not None and role in v.roles)}


@pytest.mark.parametrize(
    ("user", "secret", "typo", "hint"),
    [
        (None, None, "PIGN", "did you mean PING?"),
        (None, None, "CALS", "HELP lists the verbs"),  # CALLS needs AUTH first
        (None, None, "RELAOD", "HELP lists the verbs"),
        ("agent1", "demo", "RELAOD", "HELP lists the verbs"),
        ("agent1", "demo", "SIM.CAL", "HELP lists the verbs"),
        ("agent1", "demo", "CALS", "did you mean CALLS?"),
        ("admin", "demo-admin", "RELAOD", "did you mean RELOAD?"),
        ("admin", "demo-admin", "SIM.CAL", "did you mean SIM.CALL?"),
    ],
)
async def test_did_you_mean_suggests_only_verbs_the_session_may_use(
    daemon: Daemon, user: str | None, secret: str | None, typo: str, hint: str
) -> None:
    c = await (_login(daemon.port, user, secret) if user else Client.connect(daemon.port))
    err = await _err(c, typo)
    assert err == {"code": "unknown_verb", "msg": f"unknown verb {typo}; {hint}"}
    await c.close()


@pytest.mark.parametrize(("user", "secret", "role"),
                         [(None, None, None), ("agent1", "demo", "agent")])
async def test_no_typo_of_any_verb_leaks_a_verb_outside_the_role(
    daemon: Daemon, user: str | None, secret: str | None, role: str | None
) -> None:
    c = await (_login(daemon.port, user, secret) if user else Client.connect(daemon.port))
    usable = _usable(role)
    for name in VERBS:
        for typo in (name[:-1], name + "X", name[1:] if len(name) > 3 else name + "Y"):
            if typo.upper() in VERBS or not typo[:1].isalpha():
                continue
            msg = (await _err(c, typo))["msg"]
            if "did you mean " in msg:
                suggested = msg.rsplit("did you mean ", 1)[1].rstrip("?")
                assert suggested in usable, f"{role}: {typo} -> {msg}"
    await c.close()


# --- the last line before EOF ------------------------------------------------------


async def test_a_last_line_without_newline_is_answered_after_a_half_close(
    daemon: Daemon,
) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", daemon.port)
    assert (await asyncio.wait_for(r.readline(), 5)).startswith(b"HELLO switchd/")
    w.write(b"#a AUTH user=agent1 secret=demo\n#b CALLS")  # like nc, then Ctrl-D
    w.write_eof()
    got = (await asyncio.wait_for(r.read(), 10)).decode().splitlines()
    w.close()
    assert got == ["#a OK user=agent1 role=agent extension=201", "#b END count=0"]


# --- values the switch could not store or act on are refused, not crashed on -----------


@pytest.mark.parametrize("line", [
    'CONTACT.SET number=2 name="\\ud800"',
    'CONTACT.SET number=2 notes="x\\udfff"',
    'CONTACT.GET number="\\ud800"',
    'CDR.QUERY caller="\\ud800"',
])
async def test_a_lone_surrogate_is_bad_arg_not_internal(daemon: Daemon, line: str) -> None:
    c = await _login(daemon.port, "admin", "demo-admin")
    err = await _err(c, line)
    assert err["code"] == "bad_arg" and "lone surrogate" in err["msg"], err
    assert (await c.ok("PING"))["pong"] == "true"
    await c.close()


async def test_a_talk_range_without_its_maximum_is_bad_arg(daemon: Daemon) -> None:
    c = await _login(daemon.port, "admin", "demo-admin")
    assert (await _err(c, "SIM.AGENT ext=201 mode=auto talk=5-"))["code"] == "bad_arg"
    await c.close()


@pytest.mark.parametrize("pattern", ["[", "call.[", "call.]", "[[a]]"])
async def test_an_unbalanced_glob_is_refused_rather_than_never_matching(
        daemon: Daemon, pattern: str) -> None:
    c = await _login(daemon.port, "agent1", "demo")
    assert (await _err(c, f"SUB events={pattern}"))["code"] == "bad_arg"
    assert (await c.ok("SUB events=call.[ae]*"))["events"] == "call.[ae]*"
    await c.close()
