"""The narrow interface the CTI verbs drive the switch through.

``cti/commands.py`` and ``cti/sim_verbs.py`` depend on these protocols, never on the
composition root: a verb can only do what is listed here, and tests can hand the
verbs a fake switch. ``switchd.app`` implements them over the shell, the core, the
store and the board driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from switchd.acd.engine import AgentStatus, QueueStatus
from switchd.engine import Input
from switchd.events import Event
from switchd.reports.model import Report, ReportSettings

__all__ = ["CallInfo", "Control", "SimControl", "UserInfo"]


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A CTI user as the verbs need it: ``secret`` is the stored PBKDF2 hash (or demo text)."""

    name: str
    role: str
    secret: str
    extension: int | None
    #: A supervisor's scope (``users[].queues``): the queues whose calls it may monitor
    #: and pick up; None = every call.
    queues: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What a verb may know of a live call: its state, its anchor (the caller's side), every
    line it holds, and whether a person answered."""

    call_id: str
    state: str
    anchor: str
    lines: tuple[str, ...]
    answered: bool
    #: The switch answered the caller itself (an IVR flow or a queue holds it).
    switch_answered: bool = False
    #: The queue the call is in or was last in (the ACD's ``Annotate``); None: it never
    #: reached a queue (a ring group, a direct line, an IVR flow so far).
    queue: str | None = None
    #: Lines that were parties of the call and left it (an agent who transferred it).
    former_lines: tuple[str, ...] = ()


class Control(Protocol):
    """What every CTI verb may ask of the running switch."""

    @property
    def config_path(self) -> Path:
        """The config file the switch was started with."""
        ...

    @property
    def trunks(self) -> int:
        """How many trunks the board has (trunk/1..trunk/N)."""
        ...

    @property
    def ring_timeout_s(self) -> float:
        """The dial plan's ring time (``dialplan.ring_timeout_s``), seconds."""
        ...

    def now(self) -> float:
        """Epoch seconds on the switch's clock."""
        ...

    def user(self, name: str) -> UserInfo | None:
        """The configured user ``name``, or None."""
        ...

    def submit(self, item: Input) -> list[Event]:
        """Feed a core input now; returns its events. Raises CoreError when refused."""
        ...

    def call_info(self, call_id: str) -> CallInfo:
        """A live call. Raises CoreError(not_found)."""
        ...

    def lines(self) -> list[dict[str, Any]]:
        """Every line of the board now, trunks then extensions, as CTI ``ITEM`` fields:
        ``line kind number state since call tone label agent agent_state``."""
        ...

    def send_keys(self, line: str, digits: str) -> list[str]:
        """``line`` sends ``digits`` as DTMF tones to whoever hears it now (``CALL.DTMF``);
        returns those lines. Raises ProtocolError: bad_arg (not DTMF digits),
        wrong_state (``line`` is in no conversation, or nobody hears it)."""
        ...

    def calls(self) -> list[dict[str, Any]]:
        """Live calls as CTI ``ITEM`` fields, oldest first."""
        ...

    def sip_status(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        """The SIP board's registrations and carriers (``SIP.REGS``); None on another board."""
        ...

    async def query_cdrs(self, **filters: Any) -> list[dict[str, Any]]:
        """CDRs matching ``filters`` (caller, callee, since, until, disposition, limit),
        including the calls that just ended. Raises ValueError for a bad filter."""
        ...

    async def get_contact(self, number: str) -> Mapping[str, Any] | None:
        """The contact ``number``, or None."""
        ...

    async def set_contact(self, number: str, **fields: Any) -> Mapping[str, Any]:
        """Create or update a contact; routing (VIP, blacklist) follows at once."""
        ...

    async def reload(self) -> list[str]:
        """Re-read the config; the problems, empty when the new config is in force."""
        ...

    def route_reply(self, call_id: str, next_node: str | None,
                    variables: tuple[tuple[str, str], ...]) -> str:
        """Answer the CRM look-up a call in a flow waits for; returns the node it goes to.

        Raises ProtocolError: not_found (no call in a flow), wrong_state (not waiting
        for a reply), bad_arg (a node or variable the flow cannot take: the call has
        gone on to the node's fallback).
        """
        ...

    def queue_names(self) -> list[str]:
        """Every ACD queue, in config order."""
        ...

    def flow_names(self) -> list[str]:
        """Every loaded IVR flow, sorted."""
        ...

    def mailbox_names(self) -> list[str]:
        """Every voicemail box a call can be sent to, sorted."""
        ...

    def queue_status(self, name: str) -> QueueStatus:
        """A snapshot of queue ``name`` now: its callers, members and statistics.
        Raises ProtocolError(not_found) naming the queues there are."""
        ...

    def agent_at(self, line: str) -> str | None:
        """The id of the ACD agent logged in at phone ``line`` now, or None."""
        ...

    def agent_status(self) -> list[AgentStatus]:
        """Every ACD agent now, in config order (then those who logged in by CTI)."""
        ...

    # ------------------------------------------------------------ recordings

    def record(self, call_id: str, action: str, user: str | None) -> str:
        """``CALL.RECORD``: start, stop, pause or resume the recording of a live call;
        returns the recording id. Raises ProtocolError: not_found (no such call),
        wrong_state (e.g. resume when not paused), bad_arg (unknown action)."""
        ...

    async def query_recordings(self, **filters: Any) -> list[dict[str, Any]]:
        """Index rows matching ``filters`` (call, caller, callee, agent, queue, since,
        until, status, limit), newest first, each with ``file`` as an absolute path.
        Raises ValueError for a bad filter."""
        ...

    async def keep_recording(self, recording_id: str, keep: bool) -> dict[str, Any]:
        """Mark a recording kept (retention never purges it) or not; returns its row.
        Raises ProtocolError(not_found)."""
        ...

    # ------------------------------------------------------------ voicemail

    async def voicemail_list(self, mailbox: str | None, *, limit: int = 100) -> list[dict[str, Any]]:
        """Messages of ``mailbox`` (None: every box), newest first. Raises
        ProtocolError(not_found) for a mailbox that does not exist."""
        ...

    async def voicemail_get(self, message_id: str) -> dict[str, Any]:
        """One message's metadata, unchanged (not marked heard). Raises
        ProtocolError(not_found)."""
        ...

    async def voicemail_fetch(self, message_id: str) -> dict[str, Any]:
        """One message's metadata with ``file`` as an absolute path; marks it heard.
        Raises ProtocolError(not_found)."""
        ...

    async def voicemail_delete(self, message_id: str) -> dict[str, Any]:
        """Delete a message (its file and its row); returns the row it had. Raises
        ProtocolError(not_found)."""
        ...

    # ------------------------------------------------------------ notes (CALL.NOTE)

    async def stored_cdr(self, call_id: str) -> dict[str, Any] | None:
        """The CDR of an ended call as ``CDR.QUERY`` rows show it, or None when there is
        none; a call that just ended is included (waits ≤ 2 s for the CDR writer).
        Raises ProtocolError(busy) when the database cannot say now (it is failing, or
        records still wait to be written)."""
        ...

    async def set_stored_note(self, call_id: str, text: str) -> bool:
        """Store ``text`` as the note of the ended call's CDR, replacing its note; False
        when there is no such CDR. Raises ProtocolError(busy) when the database refuses
        the write now."""
        ...

    # ------------------------------------------------------------ reports (REPORT)

    async def report(self, *, start: float, end: float, tz: str, by: str,
                     settings: ReportSettings, queue: str | None,
                     agent: str | None) -> Report:
        """The report ``switchd report`` computes for [start, end) (epoch s) in zone ``tz``
        by ``by``, from the stored CDRs (calls that just ended included: waits ≤ 2 s for
        the writers) and the queue_log; read and computed in a worker thread. Raises
        ProtocolError(busy) when the database cannot be read now, bad_arg for a ``by``
        or ``tz`` the figures refuse."""
        ...


class SimControl(Protocol):
    """What the ``SIM.*`` verbs may ask of the simulated board."""

    def press(self, line: str, digits: str, *, on_ms: float = 50.0, off_ms: float = 50.0) -> None:
        """The simulated party on ``line`` presses ``digits`` (sent as DTMF audio), each key
        ``on_ms`` of tone then ``off_ms`` of pause."""
        ...

    def set_agent(self, ext: int, *, mode: Any, answer_after_s: float | None,
                  talk_s: tuple[float, float] | None) -> Any:
        """Change how a simulated agent phone behaves. Raises KeyError for an unknown one."""
        ...
