"""Script mode: one request, ``--watch``, or requests read line by line from stdin.

Exit codes are the contract scripts rely on (``docs/switchctl.md``): 0 when every
request got ``OK`` (or a list), 1 when the server answered ``ERR`` (printed on
stderr as ``ERR <code> <msg>``), 2 when a request could not be sent at all (bad
words, connection lost: :class:`~switchd.switchctl.session.SessionError`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TextIO

from switchd.cti.client import ConnectionLost, CtiClient, ReplyError, Response
from switchd.switchctl.command import Command, CommandError
from switchd.switchctl.render import error_text, event_text, json_text, reply_lines
from switchd.switchctl.session import SessionError

__all__ = ["EXIT_ERR", "EXIT_OK", "EXIT_USAGE", "run_lines", "run_once", "send", "watch"]

EXIT_OK = 0
#: The server answered ERR.
EXIT_ERR = 1
#: switchctl could not send the request: bad usage, no connection, login refused.
EXIT_USAGE = 2


def _emit(out: TextIO, lines: list[str]) -> None:
    for line in lines:
        out.write(line + "\n")
    out.flush()


async def send(cti: CtiClient, command: Command) -> Response:
    """Send ``command`` on ``cti`` (in the connection's current format) and await its reply.

    Raises ReplyError for ``ERR``, CommandError for a request the wire cannot carry
    (positionals in JSON mode, a bad key), SessionError when the connection is lost.
    """
    if cti.json_mode:
        command = command.for_json()
    try:
        return await cti.request(command.verb, *command.positional, **command.args)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    except ConnectionLost as exc:
        raise SessionError(f"connection lost: {exc.reason}") from None


async def _try(cti: CtiClient, command: Command, err: TextIO) -> Response | int:
    """The reply to ``command``, or the exit code after printing why there is none."""
    try:
        return await send(cti, command)
    except CommandError as exc:
        _emit(err, [f"switchctl: {exc}"])
        return EXIT_USAGE
    except ReplyError as exc:
        _emit(err, [error_text(exc.code, exc.msg)])
        return EXIT_ERR


async def run_once(cti: CtiClient, command: Command, *, as_json: bool,
                   out: TextIO, err: TextIO) -> int:
    """Send one request, print its reply, and return the exit code (0, 1 or 2).

    Raises SessionError when the connection is lost before the reply.
    """
    reply = await _try(cti, command, err)
    if isinstance(reply, int):
        return reply
    _emit(out, reply_lines(reply, as_json=as_json))
    return EXIT_OK


async def watch(cti: CtiClient, command: Command, *, as_json: bool, count: int | None,
                out: TextIO, err: TextIO) -> int:
    """``SUB`` with ``command``'s arguments, then print events until ``count`` or Ctrl-C.

    Once subscribed it says so on stderr (``switchctl: watching call.*; Ctrl-C
    stops``). Returns 0 after ``count`` events (or when the server closes after
    ``QUIT``), 1 when ``SUB`` is refused, 2 for bad arguments. Raises SessionError when the
    connection is lost while watching.
    """
    subscribed = await _try(cti, command, err)
    if isinstance(subscribed, int):
        return subscribed
    # On stderr, so stdout stays events only; it also tells a script the watch is live.
    _emit(err, [f"switchctl: watching {subscribed.get('events', '*')}; Ctrl-C stops"])
    seen = 0
    try:
        async for event in cti.events():
            fields = event.fields
            _emit(out, [json_text(fields) if as_json else event_text(fields, compact=False)])
            seen += 1
            if count is not None and seen >= count:
                break
    except ConnectionLost as exc:
        raise SessionError(f"connection lost: {exc.reason}") from None
    return EXIT_OK


async def run_lines(cti: CtiClient, read_line: Callable[[], str], *, as_json: bool,
                    out: TextIO, err: TextIO) -> int:
    """Send each line ``read_line`` returns (until it returns ``""``) as a request.

    For stdin that is not a terminal: ``printf 'AGENT.READY\\nCALLS\\n' | switchctl``.
    Blank lines and lines starting with ``# `` are skipped; events (after a ``SUB``
    line) are printed as they come. Returns the worst exit code of all the lines.
    Raises SessionError when the connection is lost.
    """
    printer = asyncio.create_task(_print_events(cti, as_json=as_json, out=out))
    worst = EXIT_OK
    try:
        number = 0
        while line := await asyncio.to_thread(read_line):
            number += 1
            text = line.strip()
            if not text or text.startswith("# "):
                continue
            try:
                command = Command.from_line(text)
            except CommandError as exc:
                _emit(err, [f"switchctl: line {number}: {exc}"])
                worst = max(worst, EXIT_USAGE)
                continue
            worst = max(worst, await run_once(cti, command, as_json=as_json, out=out, err=err))
            if command.verb == "QUIT":
                break
    finally:
        printer.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionLost):
            await printer
    return worst


async def _print_events(cti: CtiClient, *, as_json: bool, out: TextIO) -> None:
    async for event in cti.events():
        fields = event.fields
        _emit(out, [json_text(fields) if as_json else event_text(fields, compact=False)])

