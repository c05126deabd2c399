"""The small, curated exception hierarchy of switchd.

Engines never raise for a peer's mistake (they return error events); these are for
the edges: a config file that cannot be used, a protocol line that cannot be parsed,
a storage failure the shell must report.
"""

from __future__ import annotations

__all__ = ["ConfigError", "ProtocolError", "StorageError", "SwitchdError"]


class SwitchdError(Exception):
    """Base of every error switchd raises on purpose."""


class ConfigError(SwitchdError):
    """A config file cannot be used.

    ``problems`` holds one ``FILE:LINE:COL: message`` string per problem, in file
    order, so the CLI can print them all at once rather than one per run.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class ProtocolError(SwitchdError):
    """A CTI request that cannot be carried out.

    ``code`` is one of the closed set in ``docs/protocol.md`` (``bad_syntax``,
    ``unknown_verb``, ``missing_arg``, ``bad_arg``, ``not_authenticated``,
    ``forbidden``, ``not_found``, ``wrong_state``, ``busy``, ``line_too_long``,
    ``overloaded``, ``internal``); ``msg`` tells the client what to fix.
    """

    def __init__(self, code: str, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg


class StorageError(SwitchdError):
    """SQLite could not be opened, migrated or written."""
