"""``switchctl``'s command line: options, where to connect, who to be, and which mode.

::

    switchctl [--host H] [--port P | --config FILE] [--user U] [--secret S] [--json] VERB [ARG…]
    switchctl … --watch [--count N] [events=PATTERN,…]
    switchctl … (no verb: the interactive console on a terminal, else requests from stdin)

Exit codes: 0 OK, 1 the server answered ERR, 2 switchctl could not send the request
(usage, connection, login), 130 interrupted. See ``docs/switchctl.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from switchd import __version__
from switchd.cti.client import CtiError
from switchd.switchctl.command import Command, CommandError
from switchd.switchctl.session import (
    SECRET_ENV,
    USER_ENV,
    Login,
    SessionError,
    connect,
    log_in,
    resolve_secret,
)

__all__ = ["Options", "main", "parse_options"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7070
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Options:
    """The parsed command line. ``words`` is ``VERB ARG…`` (empty: console or stdin)."""

    host: str
    port: int
    user: str | None
    secret: str | None
    as_json: bool
    watch: bool
    count: int | None
    events: str
    timeout: float
    words: tuple[str, ...]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="switchctl",
        description="Send CTI requests to switchd, watch its events, or open an interactive "
                    "console (no VERB, on a terminal). Exit 0 on OK, 1 on ERR, 2 when the "
                    "request could not be sent.",
        epilog="Examples: switchctl -u agent1 AGENT.READY;  switchctl -u admin --json CALLS;  "
               "switchctl -u super1 --watch events=queue.*;  switchctl -u agent1  (console). "
               f"The secret comes from --secret, ${SECRET_ENV}, or a prompt. "
               "docs/switchctl.md has more.")
    p.add_argument("-H", "--host", help=f"CTI host (default: the config's cti.listen, else "
                                        f"{DEFAULT_HOST})")
    p.add_argument("-p", "--port", type=int, help=f"CTI port (default: the config's cti.listen, "
                                                  f"else {DEFAULT_PORT})")
    p.add_argument("-c", "--config", type=Path,
                   help="read host and port from this config file's cti.listen")
    p.add_argument("-u", "--user", help=f"log in as this user (default: ${USER_ENV})")
    p.add_argument("--secret", help=f"the user's secret (prefer ${SECRET_ENV}: other users "
                                    "can see command lines)")
    p.add_argument("--json", action="store_true",
                   help="print replies and events as JSON lines (one object per item)")
    p.add_argument("-w", "--watch", action="store_true",
                   help="subscribe (the ARGs are SUB's: events=call.*,agent.state) and print "
                        "events until Ctrl-C")
    p.add_argument("-n", "--count", type=int, metavar="N",
                   help="with --watch: stop after N events")
    p.add_argument("-e", "--events", default="*", metavar="PATTERNS",
                   help="the console's subscription: event patterns, comma-separated, or "
                        "'none' (default: *)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="seconds to wait for the connection and greeting (default: 10)")
    p.add_argument("--version", action="version", version=f"switchctl (switchd {__version__})")
    p.add_argument("words", nargs="*", metavar="VERB [ARG]",
                   help="a verb and its key=value arguments, e.g. CALL.HOLD call=01M8…")
    return p


def _listen_from_config(path: Path) -> tuple[str, int]:
    """The address to reach the daemon of config ``path`` on, from its ``cti.listen``.

    A wildcard listen address (``0.0.0.0``, ``::``) is reached on loopback. Raises
    SessionError when the file cannot be read or its ``cti.listen`` cannot be used.
    """
    import yaml

    from switchd.config import parse_listen

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as exc:
        raise SessionError(f"cannot read {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise SessionError(f"{path} is not valid YAML ({exc}); `switchd check -c {path}` "
                           "says more") from None
    cti = data.get("cti") if isinstance(data, dict) else None
    listen = cti.get("listen") if isinstance(cti, dict) else None
    try:
        host, port = parse_listen(str(listen or f"{DEFAULT_HOST}:{DEFAULT_PORT}"))
    except ValueError as exc:
        raise SessionError(f"{path}: cti.listen: {exc}") from None
    if port == 0:
        raise SessionError(f"{path}: cti.listen has port 0 (any free port, chosen at start); "
                           "give the port switchd logged (cti_listening) with --port")
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host), port


def parse_options(argv: Sequence[str], environ: Mapping[str, str]) -> Options:
    """Parse ``argv`` (without the program name). Options may come after the verb too.

    Exits 2 with argparse's message for bad options; raises SessionError when
    ``--config`` cannot be used.
    """
    parser = _parser()
    args = parser.parse_intermixed_args(list(argv))
    if args.count is not None and (not args.watch or args.count < 1):
        parser.error("--count N needs --watch and N >= 1")
    if args.port is not None and not 0 < args.port < 65536:
        parser.error(f"--port {args.port}: expected 1..65535")
    host, port = DEFAULT_HOST, DEFAULT_PORT
    if args.config is not None:
        host, port = _listen_from_config(args.config)
    return Options(
        host=args.host or host,
        port=args.port or port,
        user=args.user or environ.get(USER_ENV) or None,
        secret=args.secret,
        as_json=args.json,
        watch=args.watch,
        count=args.count,
        events=args.events.strip() or "none",
        timeout=args.timeout,
        words=tuple(args.words),
    )


async def _session(opts: Options, secret: str | None, *, interactive: bool) -> int:
    """Connect, log in, and run the chosen mode; return its exit code. Raises SessionError."""
    from switchd.cti.client import ReplyError
    from switchd.switchctl import script

    cti = await connect(opts.host, opts.port, timeout=opts.timeout)
    async with cti:
        login = Login(None, None)
        if opts.user is not None and secret is not None:
            login = await log_in(cti, opts.user, secret)
        if opts.as_json and login.role is not None:
            try:
                await cti.format_json()
            except ReplyError:
                pass  # values stay text, still printed as JSON
        if interactive:
            from switchd.switchctl.interactive import Console, history_path

            console = Console(cti, login, events=opts.events, as_json=opts.as_json,
                              history=history_path(os.environ),
                              where=f"{opts.host}:{opts.port}")
            return await console.run()
        if opts.watch:
            command = Command.from_words(["SUB", *opts.words])
            if "events" not in command.args and opts.events not in ("*", "none"):
                command = Command("SUB", {**command.args, "events": opts.events},
                                  command.positional)
            return await script.watch(cti, command, as_json=opts.as_json, count=opts.count,
                                      out=sys.stdout, err=sys.stderr)
        if opts.words:
            return await script.run_once(cti, Command.from_words(opts.words),
                                         as_json=opts.as_json, out=sys.stdout, err=sys.stderr)
        return await script.run_lines(cti, sys.stdin.readline, as_json=opts.as_json,
                                      out=sys.stdout, err=sys.stderr)


def _ask_user() -> str | None:
    """Ask for a user name on the terminal; None (no login) for an empty answer."""
    answer = input("user (empty: do not log in): ").strip()
    return answer or None


def main(argv: Sequence[str] | None = None) -> int:
    """Run switchctl; return the exit code (0 OK, 1 ERR, 2 could not send, 130 interrupted)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        opts = parse_options(argv, os.environ)
    except SessionError as exc:
        sys.stderr.write(f"switchctl: {exc}\n")
        return 2
    interactive = not opts.words and not opts.watch and sys.stdin.isatty()
    try:
        if opts.words and not opts.watch:
            Command.from_words(opts.words)  # bad words fail before any connection
        if interactive and opts.user is None:
            opts = replace(opts, user=_ask_user())
        secret = None
        if opts.user is not None:
            secret = resolve_secret(opts.user, opts.secret, os.environ,
                                    can_ask=sys.stdin.isatty(), ask=getpass.getpass)
        return asyncio.run(_session(opts, secret, interactive=interactive))
    except (SessionError, CommandError) as exc:
        sys.stderr.write(f"switchctl: {exc}\n")
        return 2
    except CtiError as exc:  # the connection went away somewhere not already reported
        sys.stderr.write(f"switchctl: connection lost: {exc}\n")
        return 2
    except (KeyboardInterrupt, EOFError):
        if opts.watch:
            return 0  # Ctrl-C is how a watch ends
        sys.stderr.write("\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `switchctl CALLS | head`: the reader left; nothing more to say to it.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
