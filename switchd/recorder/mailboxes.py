"""The voicemail boxes: which exist, who owns each, what a caller hears before the beep.

Pure data over :class:`~switchd.recorder.model.VoicemailSettings` (the config builds
every box: one per agent, named after its id; one per queue, named after it; and the
``voicemail.boxes`` it adds, e.g. ``afterhours``). The IVR asks :class:`Mailboxes` for
a box's greeting (``None``: no such box), the voicemail service for its owner, the
CTI verbs for the box names; a reload hands it the new settings
(:meth:`Mailboxes.reconfigure`), so the next message uses them.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path

from switchd.recorder.model import Mailbox, VoicemailSettings

__all__ = ["Mailboxes", "folder_problem", "missing_mailbox"]


def folder_problem(name: str) -> str | None:
    """Why box ``name`` cannot be a folder under the voicemail directory, or None.

    Box names follow the route-target rule (letters, digits, ``.``, ``_``, ``-``,
    ``@``), which lets ``.`` and ``..`` through: as folder names they would put
    messages beside or above the voicemail directory, so they are refused.
    """
    if not name or name.strip(".") == "":
        return f"mailbox name {name!r} cannot be a folder name; give it a letter or digit"
    if "/" in name or "\\" in name or "\x00" in name:
        return f"mailbox name {name!r} holds a path separator"
    return None


def missing_mailbox(name: str, boxes: Mapping[str, Mailbox], *,
                    source: Path | None = None) -> str | None:
    """Why ``voicemail:<name>`` names no box of ``boxes``, with a did-you-mean and the
    boxes there are; None when it exists. ``source``: the config file, named in the
    message when it is read beside another file (a flow)."""
    if name in boxes:
        return folder_problem(name)
    names = sorted(boxes)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    where = f" in {source}" if source is not None else ""
    shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    known = shown if names else "none are defined"
    return (f"no mailbox {name!r}{where}{hint} (mailboxes: one per agent id, one per queue "
            f"and those under voicemail.boxes: {known})")


class Mailboxes:
    """The boxes of the voicemail settings in force (see the module docstring)."""

    def __init__(self, settings: VoicemailSettings) -> None:
        self.settings = settings

    def reconfigure(self, settings: VoicemailSettings) -> None:
        """Use ``settings`` from now on (a reload): new boxes and greetings apply to the
        next message; a message being recorded finishes as it started."""
        self.settings = settings

    def get(self, name: str) -> Mailbox | None:
        """Box ``name``, or None when there is none (or its name cannot be a folder)."""
        box = self.settings.boxes.get(name)
        return box if box is not None and folder_problem(name) is None else None

    def names(self) -> list[str]:
        """Every box name, sorted."""
        return sorted(n for n in self.settings.boxes if folder_problem(n) is None)

    def greeting(self, name: str) -> tuple[Path, ...] | None:
        """The files a caller hears before the beep at box ``name``: its personal greeting,
        else the default greeting (``voicemail.greeting``; empty = only the beep). None
        when the box does not exist. The files must be in the prompt cache (see
        :meth:`greeting_files`): the player never reads a file during a call."""
        box = self.get(name)
        if box is None:
            return None
        return box.greeting or tuple(self.settings.greeting)

    def greeting_files(self) -> list[Path]:
        """Every greeting file any box may play (personal and default), each once: what
        the daemon preloads into the prompt cache at start and on reload."""
        seen: dict[Path, None] = dict.fromkeys(self.settings.greeting)
        for box in self.settings.boxes.values():
            for path in box.greeting:
                seen.setdefault(path, None)
        return list(seen)
