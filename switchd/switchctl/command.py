"""One request as switchctl sends it: from the shell's words or from a typed line.

The shell has already split and unquoted ``switchctl CONTACT.SET number=1 name="Zhang
Wei"``, so each word is one ``key=value`` or one positional token. A line typed at
the interactive prompt is parsed with the server's own grammar
(:func:`switchd.cti.codec.parse_line`), so quoting works there exactly as on the
wire. Either way :class:`~switchd.cti.client.CtiClient` does the encoding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from switchd.cti.codec import KEY_RE, DecodeError, parse_line
from switchd.exceptions import SwitchdError

__all__ = ["Command", "CommandError"]

# The JSON shape of a request has no positionals; these verbs name theirs by key
# there (docs/protocol.md, "FORMAT json").
_POSITIONAL_KEY = {"HELP": "name", "FORMAT": "mode"}


class CommandError(SwitchdError):
    """The words or line do not make a request; the message says what to write instead."""


@dataclass(frozen=True)
class Command:
    """A verb (upper-case), its ``key=value`` arguments and its positional tokens."""

    verb: str
    args: Mapping[str, str] = field(default_factory=dict)
    positional: tuple[str, ...] = ()

    @classmethod
    def from_words(cls, words: Sequence[str]) -> Command:
        """Build a request from command-line words: ``["CALL.HOLD", "call=01M…"]``.

        A word with ``=`` is an argument (the value may be empty or hold spaces: the
        shell has unquoted it already), any other word a positional token. Raises
        CommandError for no words, a verb that is not a verb, a key the protocol
        does not allow (keys are lower-case) or a key given twice.
        """
        if not words:
            raise CommandError("no verb given; try `switchctl HELP`")
        verb, *rest = words
        if not verb or not verb[0].isalpha() or not all(c.isalnum() or c in "_.-" for c in verb):
            raise CommandError(
                f"{verb!r} is not a verb: a letter then letters, digits, '_', '.' or '-' "
                "(e.g. CALLS, AGENT.READY); `switchctl HELP` lists them"
            )
        args: dict[str, str] = {}
        positional: list[str] = []
        for word in rest:
            key, sep, value = word.partition("=")
            if not sep:
                positional.append(word)
                continue
            if KEY_RE.fullmatch(key) is None:
                raise CommandError(
                    f"bad argument {word!r}: keys are lower-case, a letter then a-z 0-9 _ . - "
                    f"(e.g. call=01M8…)"
                )
            if key in args:
                raise CommandError(f"{key}= is given twice; give each argument once")
            args[key] = value
        return cls(verb.upper(), args, tuple(positional))

    @classmethod
    def from_line(cls, line: str) -> Command:
        """Parse a line typed at the prompt, with the protocol's quoting.

        A ``#tag`` in front is dropped: the client tags every request itself.
        Raises CommandError with the parser's message (it names the column) for a
        line that breaks the grammar, or for a blank line.
        """
        parsed = parse_line(line.strip())
        if isinstance(parsed, DecodeError):
            raise CommandError(parsed.msg)
        return cls(parsed.verb, dict(parsed.args), tuple(parsed.positional))

    def for_json(self) -> Command:
        """The same request without positionals, as a connection in JSON mode needs.

        ``HELP CALLS`` becomes ``HELP name=CALLS`` and ``FORMAT text`` becomes
        ``FORMAT mode=text``. Raises CommandError for positionals of any other verb
        or more than one positional.
        """
        if not self.positional:
            return self
        key = _POSITIONAL_KEY.get(self.verb)
        if key is None or len(self.positional) > 1 or key in self.args:
            raise CommandError(
                f"{self.verb} {' '.join(self.positional)}: in JSON mode give every argument "
                "as key=value"
            )
        return Command(self.verb, {**self.args, key: self.positional[0]}, ())
