"""switchctl: script mode and the interactive console against a real daemon, plus its parts.

Script mode runs ``python -m switchd.switchctl`` as a subprocess (exit codes, stdout,
stderr as a shell script sees them); the console runs in a pseudo-terminal and is
driven by keystrokes, reading what it draws. The pure parts (usage lines,
completion, rendering, words) are tested directly.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from switchd.cti.client import Response
from switchd.switchctl.command import Command, CommandError
from switchd.switchctl.completion import suggest
from switchd.switchctl.live import LiveState
from switchd.switchctl.render import event_text, reply_lines, table_lines
from switchd.switchctl.usage import parse_usage, verbs_for_role
from tests.daemon import Daemon, make_config, running

ROOT = Path(__file__).resolve().parent.parent
CALL_ID = re.compile(r"\b01[0-9A-HJKMNP-TV-Z]{24}\b")


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with running(tmp_path_factory.mktemp("switchctl"), make_config()) as d:
        yield d


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("SWITCHD_USER", "SWITCHD_SECRET", "XDG_STATE_HOME")}
    env.update(extra)
    return env


def ctl(port: int, *args: str, secret: str | None = None, stdin: str | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run switchctl in script mode against ``port``; stdin is not a terminal."""
    env = _env(**({"SWITCHD_SECRET": secret} if secret is not None else {}))
    return subprocess.run(
        [sys.executable, "-m", "switchd.switchctl", "--port", str(port), *args],
        input=stdin if stdin is not None else "", capture_output=True, text=True,
        timeout=timeout, env=env, cwd=ROOT)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sim_call(port: int) -> str:
    """Ring extension 201 (agent1) from outside; return the call id."""
    done = ctl(port, "-u", "admin", "SIM.CALL", "caller=84001234", "dnis=8200",
               secret="demo-admin")
    assert done.returncode == 0, done.stderr
    m = CALL_ID.search(done.stdout)
    assert m, done.stdout
    return m.group(0)


# ---------------------------------------------------------------- script mode


def test_ok_reply_is_printed_and_exits_0(daemon: Daemon) -> None:
    done = ctl(daemon.port, "-u", "agent1", "AGENT.STATUS", secret="demo")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK agent=1001 "), done.stdout
    assert "line=ext/201" in done.stdout
    assert done.stderr == ""


def test_options_may_follow_the_verb_and_user_may_come_from_the_environment(
        daemon: Daemon) -> None:
    env = _env(SWITCHD_USER="agent1", SWITCHD_SECRET="demo")
    done = subprocess.run(
        [sys.executable, "-m", "switchd.switchctl", "AGENT.STATUS", "--port", str(daemon.port),
         "--json"], capture_output=True, text=True, timeout=30, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["agent"] == "1001"


def test_list_reply_is_a_table_or_json_lines(daemon: Daemon) -> None:
    call = _sim_call(daemon.port)
    try:
        table = ctl(daemon.port, "-u", "admin", "CALLS", secret="demo-admin")
        assert table.returncode == 0, table.stderr
        header, *rows = table.stdout.splitlines()
        assert header.split()[:2] == ["call", "state"], header
        row = next(r for r in rows if r.startswith(call))
        assert row.split()[header.split().index("caller")] == "84001234"

        as_json = ctl(daemon.port, "-u", "admin", "--json", "CALLS", secret="demo-admin")
        assert as_json.returncode == 0, as_json.stderr
        items = [json.loads(line) for line in as_json.stdout.splitlines()]
        mine = next(i for i in items if i["call"] == call)
        assert mine["caller"] == "84001234"
        assert isinstance(mine["trunk"], int)  # JSON mode keeps the server's types
    finally:
        ctl(daemon.port, "-u", "admin", "SIM.HANGUP", f"call={call}", secret="demo-admin")


def test_quoted_values_reach_the_server_as_one_argument(daemon: Daemon) -> None:
    done = ctl(daemon.port, "-u", "admin", "CONTACT.SET", "number=84009876",
               "name=Zhang Wei", "notes=say \"hi\"", secret="demo-admin")
    assert done.returncode == 0, done.stderr
    assert 'name="Zhang Wei"' in done.stdout
    assert 'notes="say \\"hi\\""' in done.stdout


def test_err_reply_exits_1_with_code_and_message_on_stderr(daemon: Daemon) -> None:
    done = ctl(daemon.port, "-u", "agent1", "CDR.QUERY", secret="demo")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("ERR forbidden CDR.QUERY is for "), done.stderr


def test_wrong_secret_exits_2_and_says_what_to_check(daemon: Daemon) -> None:
    done = ctl(daemon.port, "-u", "agent1", "AGENT.STATUS", secret="not-the-secret")
    assert done.returncode == 2
    assert "login as agent1 refused" in done.stderr
    assert "SWITCHD_SECRET" in done.stderr


def test_unreachable_port_exits_2_and_asks_whether_switchd_runs() -> None:
    port = _free_port()
    done = ctl(port, "PING")
    assert done.returncode == 2
    assert f"cannot connect to 127.0.0.1:{port}: connection refused — is switchd running?" \
        in done.stderr, done.stderr


def test_bad_words_exit_2_before_connecting() -> None:
    done = ctl(_free_port(), "CALLS", "Key=1")
    assert done.returncode == 2
    assert "keys are lower-case" in done.stderr
    assert "cannot connect" not in done.stderr


def test_no_secret_and_no_terminal_to_ask_on_exits_2(daemon: Daemon) -> None:
    done = ctl(daemon.port, "-u", "agent1", "AGENT.STATUS")
    assert done.returncode == 2
    assert "no secret for agent1" in done.stderr


def test_without_a_user_only_the_verbs_before_auth_work(daemon: Daemon) -> None:
    assert ctl(daemon.port, "PING").stdout.startswith("OK pong=true")
    done = ctl(daemon.port, "CALLS")
    assert done.returncode == 1
    assert done.stderr.startswith("ERR not_authenticated")


def test_config_option_reads_host_and_port_from_cti_listen(daemon: Daemon,
                                                           tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f'cti:\n  listen: "0.0.0.0:{daemon.port}"\n')
    done = subprocess.run([sys.executable, "-m", "switchd.switchctl", "-c", str(cfg), "PING"],
                          capture_output=True, text=True, timeout=30, env=_env(), cwd=ROOT)
    assert done.returncode == 0, done.stderr
    cfg.write_text('cti:\n  listen: "127.0.0.1:0"\n')
    done = subprocess.run([sys.executable, "-m", "switchd.switchctl", "-c", str(cfg), "PING"],
                          capture_output=True, text=True, timeout=30, env=_env(), cwd=ROOT)
    assert done.returncode == 2
    assert "port 0" in done.stderr and "--port" in done.stderr


def test_requests_read_from_stdin_exit_with_the_worst_outcome(daemon: Daemon) -> None:
    done = ctl(daemon.port, "-u", "agent1", secret="demo",
               stdin="# a comment\nPING\n\nCALLS x=1\nAGENT.STATUS\n")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0].startswith("OK pong=true")
    assert lines[1].startswith("OK agent=1001")
    assert done.stderr.startswith("ERR bad_arg CALLS takes no argument 'x'")


def test_watch_prints_events_until_count(daemon: Daemon) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "switchd.switchctl", "--port", str(daemon.port), "-u", "agent1",
         "--json", "--watch", "--count", "1", "events=call.ringing"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_env(SWITCHD_SECRET="demo"), cwd=ROOT)
    try:
        assert proc.stderr is not None
        note = proc.stderr.readline()  # written once SUB is OK: the watch is live
        assert note.startswith("switchctl: watching call.ringing"), note
        call = _sim_call(daemon.port)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        (event,) = [json.loads(x) for x in out.splitlines()]
        assert event["event"] == "call.ringing"
        assert event["call"] == call and event["line"] == "ext/201"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    ctl(daemon.port, "-u", "admin", "SIM.HANGUP", f"call={call}", secret="demo-admin")


def test_the_package_installs_a_switchctl_command() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, func = scripts["switchctl"].partition(":")
    mod = __import__(module, fromlist=[func])
    assert callable(getattr(mod, func))
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("prompt_toolkit>=3") for d in deps)


# ---------------------------------------------------------------- the console in a pty

PROMPT = r"agent1@201 \w+>"
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[=>]|\r")


class Terminal:
    """A pseudo-terminal running one process; ``expect`` reads until a pattern shows."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        # Wide enough that no reply line wraps; the console lays itself out from this.
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 250, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     cwd=ROOT, start_new_session=True)
        os.close(slave)
        self.fd = master
        self.raw = b""
        self.pos = 0  # expect() looks for a pattern after what earlier calls matched

    @property
    def text(self) -> str:
        """Everything shown so far, without escape sequences."""
        return _ANSI.sub("", self.raw.decode("utf-8", "replace"))

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the process closed the terminal
            return False
        self.raw += data
        return bool(data)

    def expect(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        """Wait until ``pattern`` (a regex) shows after the last match; return the match."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            m = regex.search(self.text, self.pos)
            if m:
                self.pos = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.2)) and self.proc.poll() is not None:
                raise AssertionError(f"{pattern!r} did not show within {timeout} s; the "
                                     f"screen after the last match:\n{self.text[self.pos:]}")

    def send(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def wait(self, timeout: float = 15.0) -> int:
        """Wait for the process to end, reading what it still shows; its exit code."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        return self.proc.wait(max(0.1, deadline - time.monotonic()))

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        os.close(self.fd)


def test_console_completes_prints_replies_and_events_and_keeps_history(
        daemon: Daemon, tmp_path: Path) -> None:
    env = _env(SWITCHD_SECRET="demo", XDG_STATE_HOME=str(tmp_path / "state"), TERM="xterm",
               PROMPT_TOOLKIT_NO_CPR="1")  # no cursor-position query for the test to answer
    term = Terminal([sys.executable, "-m", "switchd.switchctl", "--port", str(daemon.port),
                     "-u", "agent1", "-e", "call.*,agent.state"], env)
    try:
        term.expect(r"as agent1 \(agent, extension 201\); events: call\.\*,agent\.state")
        term.expect(r"agent1@201 ready>")

        # A verb typed in full: its reply is printed.
        term.send("QUEUE.LIST\r")
        term.expect(r"queue\s+strategy\s+waiting")
        term.expect(r"\(4 items\)")

        # Tab completes a verb prefix (only AGENT.STATUS starts so for an agent).
        term.send("AGENT.STA")
        term.expect(r"AGENT\.STATUS")  # the completion menu shows while typing
        term.send("\t\r")
        term.expect(r"> AGENT\.STATUS\s")  # the line as accepted, redrawn in full
        term.expect(r"OK agent=1001 name=\S+ line=ext/201 ")

        # An event arrives while the prompt waits: it is printed above the prompt.
        term.expect(PROMPT)
        call = _sim_call(daemon.port)
        term.expect(rf"\d\d:\d\d:\d\d call\.ringing call={call} line=ext/201 caller=84001234")
        # The console learnt the live call: Tab offers its id after call=.
        term.send("CALL.HANGUP call=")
        term.expect(rf"{call}\s+84001234→8200")  # the menu: the id, and what the call is
        term.send("\t\r")
        term.expect(rf"> CALL\.HANGUP call={call}")
        term.expect(rf"OK call={call} line=ext/201")
        term.expect(rf"call\.ended call={call}")

        # An error in red, and a secret typed at the prompt stays out of the history.
        # (Keys go to the prompt once it is back: typed while a request is in flight,
        # the terminal is not in raw mode and would swallow a Ctrl-D.)
        term.expect(PROMPT)
        term.send("AUTH user=agent1 secret=typed-secret\r")
        term.expect(r"ERR wrong_state already authenticated")
        assert "\x1b[0;31mERR wrong_state" in term.raw.decode("utf-8", "replace")

        term.expect(PROMPT)
        term.send("\x04")  # Ctrl-D
        assert term.wait() == 0
    finally:
        term.close()
    history = (tmp_path / "state" / "switchd" / "switchctl_history").read_text()
    entries = [x[1:] for x in history.splitlines() if x.startswith("+")]
    assert entries == ["QUEUE.LIST", "AGENT.STATUS", f"CALL.HANGUP call={call}"]
    assert "typed-secret" not in history
    assert oct((tmp_path / "state" / "switchd" / "switchctl_history").stat().st_mode & 0o777) \
        == "0o600"


# ---------------------------------------------------------------- the parts

HELP_ITEMS = [
    {"verb": "AUTH", "usage": "AUTH user=<name> secret=<secret>", "roles": "any"},
    {"verb": "HELP", "usage": "HELP [verb]", "roles": "any"},
    {"verb": "FORMAT", "usage": "FORMAT json|text", "roles": "admin,agent,crm,supervisor"},
    {"verb": "SUB", "usage": "SUB [events=<pattern>,...]", "roles": "admin,agent,crm,supervisor"},
    {"verb": "CALLS", "usage": "CALLS", "roles": "admin,agent,crm,supervisor"},
    {"verb": "CALL.HOLD", "usage": "CALL.HOLD [call=<id>]", "roles": "admin,agent,crm,supervisor"},
    {"verb": "CALL.TRANSFER", "roles": "admin,agent,crm,supervisor",
     "usage": "CALL.TRANSFER to=<extension>|number:<digits>|queue:<name>|flow:<name>|"
              "voicemail:<box> [call=<id>]"},
    {"verb": "QUEUE.STATUS", "usage": "QUEUE.STATUS queue=<name> [period=total|interval|previous]",
     "roles": "admin,crm,supervisor"},
    {"verb": "AGENT.LOGIN", "roles": "admin,agent,crm,supervisor",
     "usage": "AGENT.LOGIN [agent=<id>] [queues=<queue>[:<penalty>],...] [ready=true|false]"},
    {"verb": "SUPER.MONITOR", "roles": "admin,supervisor",
     "usage": "SUPER.MONITOR call=<id> [mode=listen|whisper|barge] [agent=<extension>]"},
]


def _live() -> LiveState:
    live = LiveState("ext/201")
    live.load_calls([{"call": "01M8N9KNQE7FF29D3101JVWM68", "state": "ringing",
                      "caller": "84001234", "callee": "8200", "lines": "trunk/2,ext/201"}])
    live.load_agents([{"agent": "1001", "name": "Alice", "line": "ext/201", "state": "ready"},
                      {"agent": "1002", "name": "Bob", "line": "ext/202", "state": "on_call"}])
    live.load_queues([{"queue": "sales", "waiting": "2"}, {"queue": "group:sales", "waiting": 0}])
    return live


def _texts(text: str, role: str = "supervisor") -> list[str]:
    return [s.text for s in suggest(text, verbs_for_role(HELP_ITEMS, role), _live())]


def test_usage_lines_give_required_optional_and_literal_values() -> None:
    spec = parse_usage("SUPER.MONITOR", HELP_ITEMS[-1]["usage"], HELP_ITEMS[-1]["roles"])
    assert spec.roles == {"admin", "supervisor"}
    call, mode, agent = spec.args
    assert (call.key, call.required) == ("call", True)
    assert (mode.key, mode.required, mode.choices) == ("mode", False,
                                                       ("listen", "whisper", "barge"))
    assert (agent.value, agent.required) == ("<extension>", False)
    login = parse_usage("AGENT.LOGIN", HELP_ITEMS[-2]["usage"])
    assert login.arg("queues").value == "<queue>[:<penalty>],..." and login.arg("queues").is_list
    assert parse_usage("FORMAT", "FORMAT json|text").positional == ("json", "text")
    assert parse_usage("HELP", "HELP [verb]").takes_verb


def test_verbs_complete_case_insensitively_and_only_for_the_users_role() -> None:
    assert _texts("call.") == ["CALL.HOLD", "CALL.TRANSFER"]
    assert "SUPER.MONITOR" in _texts("su", "supervisor")
    assert "SUPER.MONITOR" not in _texts("su", "agent")
    assert _texts("", None) == ["AUTH", "HELP"]  # before AUTH


def test_arguments_complete_to_keys_not_given_yet_then_to_live_values() -> None:
    assert _texts("SUPER.MONITOR ") == ["call=", "mode=", "agent="]
    assert _texts("SUPER.MONITOR call=01M8N9KNQE7FF29D3101JVWM68 ") == ["mode=", "agent="]
    assert _texts("SUPER.MONITOR call=") == ["01M8N9KNQE7FF29D3101JVWM68"]
    assert _texts("super.monitor mode=w") == ["whisper"]
    assert _texts("SUPER.MONITOR agent=") == ["201", "202"]
    assert _texts("QUEUE.STATUS queue=s") == ["sales"]
    assert _texts("CALL.TRANSFER to=") == ["201", "202", "number:", "queue:sales", "flow:",
                                           "voicemail:1001", "voicemail:1002",
                                           "voicemail:sales"]
    assert _texts("AGENT.LOGIN agent=") == ["1001", "1002"]
    assert _texts("FORMAT ") == ["json", "text"]
    assert "CALLS" in _texts("HELP C")


def test_list_arguments_complete_after_the_last_comma() -> None:
    texts = _texts("SUB events=call.*,ag")
    assert texts == ["call.*,agent.*"]
    (s,) = suggest("SUB events=call.*,ag", verbs_for_role(HELP_ITEMS, "agent"), _live())
    assert s.start == -len("call.*,ag")


def test_nothing_is_offered_inside_a_quote_or_for_an_unknown_verb() -> None:
    assert _texts('CALL.HOLD call="01') == []
    assert _texts("NOPE ") == []


def test_live_state_follows_call_and_agent_events() -> None:
    live = _live()
    stale = live.on_event({"event": "call.new", "call": "01M9882SBA4X3CHVME34DZXHE5",
                           "caller": "13800000001", "callee": "8000"})
    assert stale == {"CALLS"}
    assert "01M9882SBA4X3CHVME34DZXHE5" in live.call_choices()
    live.on_event({"event": "call.ended", "call": "01M9882SBA4X3CHVME34DZXHE5"})
    assert "01M9882SBA4X3CHVME34DZXHE5" not in live.call_choices()
    live.on_event({"event": "agent.state", "agent": "1001", "state": "not_ready",
                   "line": "ext/201"})
    assert live.own_agent().state == "not_ready"
    assert live.on_event({"event": "queue.join", "call": "x", "queue": "sales"}) == {"QUEUE.LIST"}


def test_tables_split_by_kind_and_json_keeps_types() -> None:
    items = ({"kind": "queue", "queue": "sales", "waiting": 1},
             {"kind": "agent", "agent": "1001", "state": "ready"},
             {"kind": "agent", "agent": "1002", "name": "Bob Li"})
    lines = table_lines(items)
    assert lines[0].split() == ["kind", "queue", "waiting"]
    assert lines[2] == ""
    assert lines[3].split() == ["kind", "agent", "state", "name"]
    assert lines[5].split() == ["agent", "1002", "-", '"Bob', 'Li"']
    reply = Response("CALLS", {"count": 1}, ({"call": "x", "trunk": 2},))
    assert reply_lines(reply, as_json=True) == ['{"call":"x","trunk":2}']
    assert reply_lines(Response("UNSUB", {}), as_json=False) == ["OK"]
    assert table_lines(items[:1], vertical_over=2) == ["kind     queue", "queue    sales",
                                                        "waiting  1"]


def test_events_print_compactly_with_a_local_clock_or_in_full() -> None:
    fields = {"event": "call.held", "call": "c1", "time": "2026-12-07T10:50:04.875Z",
              "line": "ext/201", "held_line": "trunk/1"}
    assert re.fullmatch(r"\d\d:\d\d:\d\d call\.held call=c1 line=ext/201 held_line=trunk/1",
                        event_text(fields, compact=True))
    assert event_text(fields, compact=False) == (
        "call.held call=c1 time=2026-12-07T10:50:04.875Z line=ext/201 held_line=trunk/1")


def test_words_become_arguments_and_bad_words_are_refused() -> None:
    cmd = Command.from_words(["contact.set", "number=1", "name=Zhang Wei", "extra"])
    assert cmd == Command("CONTACT.SET", {"number": "1", "name": "Zhang Wei"}, ("extra",))
    for words, message in ((["CALLS", "Key=1"], "lower-case"), (["CALLS", "a=1", "a=2"], "twice"),
                           (["1CALLS"], "not a verb"), ([], "no verb")):
        with pytest.raises(CommandError, match=message):
            Command.from_words(words)
    assert Command.from_line('#t1 CONTACT.SET name="Zhang Wei"').args == {"name": "Zhang Wei"}
    with pytest.raises(CommandError, match="unterminated quote"):
        Command.from_line('CONTACT.SET name="Zhang')
    assert Command("HELP", {}, ("CALLS",)).for_json() == Command("HELP", {"name": "CALLS"})
    with pytest.raises(CommandError, match="JSON mode"):
        Command("CALLS", {}, ("x",)).for_json()
