"""``switchctl``: the command-line client of the CTI socket (``docs/switchctl.md``).

Script mode sends one request and exits 0 on ``OK``, 1 on ``ERR`` and 2 when it
could not try (bad usage, no daemon, login refused); ``--watch`` prints events.
Without a verb on a terminal it is an interactive console (prompt_toolkit):
history, completion of verbs and of their arguments, events printed above the
prompt. Every byte goes through :class:`switchd.cti.client.CtiClient`; this
package only adds the command line around it, one job per module:

- :mod:`~switchd.switchctl.cli` — options and the choice of mode;
- :mod:`~switchd.switchctl.session` — connecting and logging in, with errors a person can act on;
- :mod:`~switchd.switchctl.command` — a request from the shell's words or a typed line;
- :mod:`~switchd.switchctl.render` — replies and events as text, tables or JSON lines;
- :mod:`~switchd.switchctl.script` — one request, ``--watch``, or lines read from stdin;
- :mod:`~switchd.switchctl.usage` — what each verb takes, read from ``HELP``;
- :mod:`~switchd.switchctl.live` — calls, agents and queues kept fresh for completion;
- :mod:`~switchd.switchctl.completion` — what Tab offers;
- :mod:`~switchd.switchctl.interactive` — the prompt, its history and the event printer.
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run ``switchctl`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    from switchd.switchctl.cli import main as _main

    return _main(argv)
