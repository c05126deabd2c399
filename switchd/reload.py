"""Reload policy: which parts of a new config take effect without a restart.

Pure: given the running config and a freshly validated one, :func:`plan_reload` says
what will be in force and which sections wait for a restart. Live calls are never
touched by a reload: new routes, groups and timeouts apply to the next call.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from switchd.config import Config

__all__ = ["RESTART_SECTIONS", "ReloadPlan", "plan_reload"]

#: Sections that keep their running values until restart, and why: the board's
#: lines and the media plane's channels are fixed at start; the CTI address and the
#: state directory are open sockets and files; the log level is built into cached
#: loggers; the music on hold and the simulated voices are loaded once; the recordings'
#: and the voicemail's directories hold open files, and the recording writer keeps the
#: flush and buffer settings it started with (the rest of both sections reloads: new
#: modes, formats, retention and boxes apply to the next call); the SIP board's sockets,
#: phones' credentials and carriers are set up once (``sip``).
RESTART_SECTIONS = ("board", "cti", "state_dir", "log", "media", "sim.audio", "recording.path",
                    "recording.flush_s", "recording.buffer_s", "voicemail.path", "sip")


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """``config``: what will be in force; ``restart``: sections whose change waits for a restart."""

    config: Config
    restart: tuple[str, ...]


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """Keep ``old``'s restart-only sections inside ``new``; report which of them changed."""
    pairs = {
        "board": (old.board, new.board), "cti": (old.cti, new.cti),
        "state_dir": (old.state_dir, new.state_dir), "log": (old.log, new.log),
        "media": (old.media, new.media), "sim.audio": (old.sim.audio, new.sim.audio),
        "recording.path": (old.recording.directory, new.recording.directory),
        "recording.flush_s": (old.recording.flush_s, new.recording.flush_s),
        "recording.buffer_s": (old.recording.buffer_s, new.recording.buffer_s),
        "voicemail.path": (old.voicemail.directory, new.voicemail.directory),
        "sip": (old.sip, new.sip),
    }
    restart = tuple(name for name in RESTART_SECTIONS if pairs[name][0] != pairs[name][1])
    if restart:
        new = replace(new, board=old.board, cti=old.cti, state_dir=old.state_dir, log=old.log,
                      media=old.media, sim=replace(new.sim, audio=old.sim.audio),
                      recording=replace(new.recording, directory=old.recording.directory,
                                        flush_s=old.recording.flush_s,
                                        buffer_s=old.recording.buffer_s),
                      voicemail=replace(new.voicemail, directory=old.voicemail.directory),
                      sip=old.sip)
    return ReloadPlan(new, restart)
