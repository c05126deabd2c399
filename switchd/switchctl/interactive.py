"""The interactive console: a prompt with history and completion, events printed above it.

One asyncio loop runs three things on one :class:`~switchd.cti.client.CtiClient`:
the prompt (``PromptSession.prompt_async``), the event printer (reads
``events()``, prints each above the prompt while the user types, keeps
:class:`~switchd.switchctl.live.LiveState` current) and, now and then, a refresh of
the lists completion reads (``CALLS``, ``QUEUE.LIST``, ``AGENT.LIST``). Requests
from all three are pipelined on the one connection; replies find their way back by
tag. readline cannot print above a prompt that is being edited; prompt_toolkit can
(LIBRARIES.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory
from prompt_toolkit.patch_stdout import patch_stdout

from switchd.cti.client import ConnectionLost, CtiClient, ReplyError
from switchd.cti.codec import FieldValue
from switchd.switchctl.command import Command, CommandError
from switchd.switchctl.completion import SwitchctlCompleter
from switchd.switchctl.live import LiveState, refresh
from switchd.switchctl.render import error_text, event_text, json_text, reply_lines
from switchd.switchctl.script import EXIT_OK, EXIT_USAGE, send
from switchd.switchctl.session import Login, SessionError
from switchd.switchctl.usage import VerbSpec, verbs_for_role

__all__ = ["Console", "history_path"]

_ERROR = "fg:ansired"
_EVENT = "fg:ansicyan"
_NOTE = "fg:ansibrightblack"
#: Seconds to gather events before asking for the lists again (one CALLS for a burst).
_REFRESH_DEBOUNCE_S = 0.2
#: A lone list row with more fields than this is printed as key/value lines (QUEUE.STATUS).
_VERTICAL_OVER = 16


def history_path(environ: Mapping[str, str]) -> Path:
    """Where the history is kept: ``$XDG_STATE_HOME/switchd/switchctl_history``.

    ``XDG_STATE_HOME`` defaults to ``~/.local/state`` (the XDG base directory spec).
    """
    base = environ.get("XDG_STATE_HOME") or str(Path(environ.get("HOME") or Path.home())
                                                 / ".local" / "state")
    return Path(base) / "switchd" / "switchctl_history"


class _History(FileHistory):
    """FileHistory that never keeps a line carrying a secret (``AUTH … secret=…``)."""

    def __init__(self, path: Path) -> None:
        # Private: the history shows what an operator did, and who they did it to.
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600))
        super().__init__(str(path))

    def append_string(self, string: str) -> None:
        """Keep ``string`` in memory and in the file, unless it is an ``AUTH`` line."""
        words = string.split()
        if words and words[0].startswith("#"):  # a #tag in front
            words = words[1:]
        if words and words[0].upper() == "AUTH":
            return
        super().append_string(string)


class Console:
    """One interactive session on a logged-in (or anonymous) connection."""

    def __init__(self, cti: CtiClient, login: Login, *, events: str, as_json: bool,
                 history: Path, where: str) -> None:
        """``events`` is the ``SUB`` pattern list (``none``: no events); ``where`` is host:port."""
        self._cti = cti
        self._login = login
        self._events = events
        self._as_json = as_json
        self._history = history
        self._where = where
        self._verbs: dict[str, VerbSpec] = {}
        self._live = LiveState(self._own_line())
        self._stale: set[str] = set()
        self._refresher: asyncio.Task[None] | None = None
        self._session: PromptSession[str] | None = None
        self._lost: str | None = None
        self._quitting = False

    # ------------------------------------------------------------ printing

    def _print(self, lines: list[str], style: str = "") -> None:
        for line in lines:
            print_formatted_text(FormattedText([(style, line)]))

    def _own_line(self) -> str | None:
        return f"ext/{self._login.extension}" if self._login.extension else None

    def _message(self) -> FormattedText:
        """The prompt: ``agent1@201 ready> ``; the state follows ``agent.state`` events."""
        who = self._login.user or "switchctl"
        if self._login.extension:
            who += f"@{self._login.extension}"
        agent = self._live.own_agent()
        parts: list[tuple[str, str]] = [("bold", who)]
        if agent is not None and agent.state:
            parts.append(("", f" {agent.state}"))
        parts.append(("", "> "))
        return FormattedText(parts)

    # ------------------------------------------------------------ setting up

    async def _load_verbs(self) -> None:
        """The verbs this user may use, from ``HELP``."""
        try:
            reply = await send(self._cti, Command("HELP"))
        except (ReplyError, CommandError):
            return
        self._verbs = verbs_for_role(reply.items or (), self._login.role)

    async def _subscribe(self) -> None:
        if self._events == "none" or "SUB" not in self._verbs:
            return
        command = Command("SUB", {"events": self._events} if self._events != "*" else {})
        try:
            await send(self._cti, command)
        except ReplyError as exc:
            self._print([error_text(exc.code, exc.msg)], _ERROR)

    async def _after_login(self) -> None:
        await self._load_verbs()
        await self._subscribe()
        await refresh(self._cti, self._live, self._verbs)

    # ------------------------------------------------------------ background work

    def _want(self, which: set[str]) -> None:
        """Ask for the lists in ``which`` again soon, once for a burst of events."""
        self._stale |= which
        if self._stale and (self._refresher is None or self._refresher.done()):
            self._refresher = asyncio.create_task(self._refresh_soon())

    async def _refresh_soon(self) -> None:
        await asyncio.sleep(_REFRESH_DEBOUNCE_S)
        which, self._stale = self._stale, set()
        with contextlib.suppress(ConnectionLost):
            await refresh(self._cti, self._live, self._verbs, which)
        self._invalidate()

    def _invalidate(self) -> None:
        if self._session is not None and self._session.app.is_running:
            self._session.app.invalidate()

    async def _print_events(self) -> None:
        """Print every event above the prompt and keep the live state current."""
        try:
            async for event in self._cti.events():
                fields: Mapping[str, FieldValue] = event.fields
                self._want(self._live.on_event(fields))
                text = json_text(fields) if self._as_json else event_text(fields, compact=True)
                self._print([text], _EVENT)
                self._invalidate()
        except ConnectionLost as exc:
            self._lost = exc.reason
        else:  # a clean end: after our QUIT, or the server closed after one
            if not self._quitting:
                self._lost = self._lost or "the server closed the connection"
        if self._session is not None and self._session.app.is_running:
            self._session.app.exit(exception=EOFError())

    # ------------------------------------------------------------ one line

    async def _run_line(self, text: str) -> bool:
        """Carry out one typed line; False when the session should end (QUIT)."""
        if text.lower() in ("exit", "quit"):
            text = "QUIT"
        try:
            command = Command.from_line(text)
            self._quitting = command.verb == "QUIT"
            reply = await send(self._cti, command)
        except CommandError as exc:
            self._print([f"switchctl: {exc}"], _ERROR)
            return True
        except ReplyError as exc:
            self._print([error_text(exc.code, exc.msg)], _ERROR)
            return True
        if command.verb == "QUIT":
            return False
        lines = reply_lines(reply, as_json=self._as_json, vertical_over=_VERTICAL_OVER)
        self._print(lines)
        if reply.items is not None and not self._as_json:
            n = len(reply.items)
            self._print([f"({n} item{'s' if n != 1 else ''})"], _NOTE)
        if command.verb == "AUTH":
            ext = reply.get("extension")
            self._login = Login(str(reply.get("user")), str(reply.get("role")),
                                None if ext is None else str(ext))
            self._live.own_line = self._own_line()
            if self._live.own_line:
                self._live.lines.add(self._live.own_line)
            await self._after_login()
        elif command.verb == "CALLS":
            self._live.load_calls(reply.items or ())
        else:
            self._want({"CALLS"})  # a command may have changed the calls
        return True

    # ------------------------------------------------------------ the loop

    async def run(self) -> int:
        """Prompt until Ctrl-D, ``QUIT`` or a lost connection; return the exit code.

        0 after Ctrl-D or ``QUIT``, 2 when the connection was lost (the reason is
        printed). Ctrl-C clears the line being typed.
        """
        await self._after_login()
        role = f"{self._login.user} ({self._login.role}" if self._login.user else "nobody"
        if self._login.extension:
            role += f", extension {self._login.extension}"
        role += ")" if self._login.user else " (AUTH user=… secret=… to log in)"
        subscribed = self._events if "SUB" in self._verbs and self._events != "none" else "none"
        self._print([f"{self._cti.server_version} at {self._where} as {role}; events: "
                     f"{subscribed}. Tab completes, Ctrl-D quits."], _NOTE)
        self._session = PromptSession(
            history=_History(self._history),
            completer=SwitchctlCompleter(lambda: self._verbs, self._live),
            complete_while_typing=True,
        )
        printer = asyncio.create_task(self._print_events())
        try:
            with patch_stdout():
                while self._lost is None:
                    try:
                        text = await self._session.prompt_async(self._message)
                    except KeyboardInterrupt:
                        continue
                    except EOFError:
                        break
                    if text.strip() and not await self._run_line(text.strip()):
                        break
        except SessionError as exc:
            self._lost = str(exc).removeprefix("connection lost: ")
        finally:
            printer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await printer
            if self._refresher is not None:
                self._refresher.cancel()
        if self._lost is not None:
            self._print([f"switchctl: connection lost: {self._lost}"], _ERROR)
            return EXIT_USAGE
        return EXIT_OK
