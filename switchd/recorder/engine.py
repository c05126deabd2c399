"""The recorder engine: which calls are recorded, from which lines, when — sans-IO.

:class:`Recorder` implements the engine protocol (``switchd.engine``). It follows the
call core's and the ACD's events and decides, per call, from the record mode
(REQUIREMENTS.md, Recording; issue 16 items 1, 2, 6):

* **when**: ``on_answer`` starts at ``call.switch_answered`` or ``call.answered``,
  whichever comes first (IVR included); ``on_agent`` when an agent is connected
  (``queue.connected``, or ``call.answered`` by an extension — on a call an agent
  dialled out, by the far end); ``off`` only on ``CALL.RECORD action=start``. The mode
  of an inbound call is its route's (``RecordingSettings.route_mode``), else
  ``recording.mode``; a queue with its own ``record:`` replaces it from the moment the
  caller joins (an ``off`` queue stops what a mode started, never what a command
  started); calls between extensions are recorded by mode only with
  ``recording.internal``;
* **what**: one recording per call, id = the call id, into
  ``YYYY/MM/DD/<call_id>.wav`` (:func:`~switchd.recorder.model.recording_relpath`),
  following the call's bridges (``bridge.changed``), not a channel: the customer's line
  (left: what it says; right: what it hears) and the *extras*, switch-side voices the
  customer does not hear (a whisper, the agent and the consulted party of a consult);
* **pause** for compliance: silence is written and the call's key presses are withheld
  from every event and log (the core's ``HideDigits``), then counted into
  ``recording.resumed``.

It returns the media edge's inputs (``TapOpen``/``TapSources``/``TapState``/
``TapClose``: the :mod:`~switchd.recorder.service` carries them out), the core's
(``Annotate(recording_id=…)`` for the CDR, ``HideDigits``) and the ``recording.*``
events. The edge reports back ``RecordingClosed`` (figures read from the file) or
``RecordingError`` (the disk refused it); either way one ``recording.done`` ends every
recording that was opened, with its marks for the index.

Each recording moves only through :data:`REC_TRANSITIONS` (h11 ``_state.py`` style):
a command with no row is refused (:class:`RecorderError`, nothing changed); a followed
event with no row changes nothing (the mode's moment when already recording, a second
answer, …).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from switchd.core.inputs import Annotate, HideDigits
from switchd.events import (
    AgentState,
    AgentStateChanged,
    BridgeChanged,
    BridgeMember,
    CallAnswered,
    CallEnded,
    CallNew,
    CallSwitchAnswered,
    Direction,
    QueueCallback,
    QueueConnected,
    QueueJoin,
    QueueOffered,
    RecordingDone,
    RecordingFailed,
    RecordingMark,
    RecordingMarks,
    RecordingPaused,
    RecordingResumed,
    RecordingStarted,
    RecordingStopped,
    Role,
)
from switchd.recorder.inputs import (
    RECORDER_INPUTS,
    RecordCommand,
    RecordingClosed,
    RecordingError,
    TapClose,
    TapMode,
    TapOpen,
    TapSources,
    TapState,
)
from switchd.recorder.model import (
    RecordAction,
    RecordingSettings,
    RecordMode,
    RecordStatus,
    recording_relpath,
)

__all__ = ["REC_TRANSITIONS", "RecInput", "RecState", "Recorder", "RecorderError"]


class RecorderError(Exception):
    """A ``CALL.RECORD`` the recorder cannot carry out; nothing changed.

    ``code`` is a CTI error slug: ``not_found`` (no such live call) or ``wrong_state``
    (e.g. resume a recording that is not paused); ``msg`` says what to do instead.
    """

    def __init__(self, code: str, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


class RecState(StrEnum):
    """Where one call's recording is."""

    #: The call is known and nobody answered it yet: nothing to record (a start is refused).
    RINGING = "ringing"
    #: Answered, not recorded (yet): the mode's moment or a start command opens the file.
    WAITING = "waiting"
    #: A segment the record mode started is written.
    RECORDING = "recording"
    #: That segment is paused: silence is written, the call's keys are withheld.
    PAUSED = "paused"
    #: A segment a command started is written: no mode stops it.
    RECORDING_BY_COMMAND = "recording_by_command"
    PAUSED_BY_COMMAND = "paused_by_command"
    #: A command stopped it: nothing is written (the file stays open); only a command
    #: starts the next segment.
    STOPPED = "stopped"
    #: The mode stopped it (the call joined a queue that is not recorded): the next
    #: mode's moment or a command starts the next segment.
    STOPPED_BY_MODE = "stopped_by_mode"
    #: The call ended; ``TapClose`` was sent and the file's figures are awaited.
    CLOSING = "closing"
    #: The disk refused it (``recording.failed``): the call goes on, nothing more is
    #: written for it, and ``recording.done`` (failed) follows the call's end.
    FAILED = "failed"
    #: It failed while paused: the keys stay withheld until ``resume``/``stop`` or the
    #: end of the call (the card number being keyed must not reach the log either way).
    FAILED_PAUSED = "failed_paused"
    #: Over (``recording.done`` sent, or never recorded): the engine forgets it.
    DONE = "done"


class RecInput(Enum):
    """What moves a recording (the keys of :data:`REC_TRANSITIONS`)."""

    #: ``call.switch_answered`` or the first ``call.answered``.
    ANSWER = "answer"
    #: The call's record mode says "record from now" (its moment came, or a queue's mode).
    MODE_START = "mode_start"
    #: A queue whose mode is ``off`` took the call.
    MODE_STOP = "mode_stop"
    START = "start"
    STOP = "stop"
    PAUSE = "pause"
    RESUME = "resume"
    CALL_END = "call_end"
    #: The service closed the file (``RecordingClosed``).
    CLOSED = "closed"
    #: The service could not write it (``RecordingError``).
    ERROR = "error"


class _Do(Enum):
    """What a transition does besides changing the state."""

    NOTHING = "nothing"
    OPEN = "open"            # TapOpen, Annotate(recording_id), recording.started (segment 1)
    START = "start"          # TapState running, recording.started (segment n > 1)
    PAUSE = "pause"          # HideDigits on, TapState paused, recording.paused
    RESUME = "resume"        # HideDigits off, TapState running, recording.resumed
    STOP = "stop"            # (HideDigits off,) TapState stopped, recording.stopped
    CLOSE = "close"          # TapClose
    FORGET = "forget"        # never recorded: nothing to say
    FAIL = "fail"            # recording.failed
    DONE = "done"            # recording.done (done)
    CLOSE_FAILED = "close_failed"  # recording.failed + recording.done (failed)
    END_FAILED = "end_failed"      # recording.done (failed) for a recording that failed earlier
    UNHIDE = "unhide"        # HideDigits off (a failed recording's pause ends)


_S = RecState
_I = RecInput

#: (state, input) -> (next state, what it does). Anything not listed is refused (a
#: command) or changes nothing (a followed event).
REC_TRANSITIONS: dict[tuple[RecState, RecInput], tuple[RecState, _Do]] = {
    (_S.RINGING, _I.ANSWER): (_S.WAITING, _Do.NOTHING),
    (_S.RINGING, _I.CALL_END): (_S.DONE, _Do.FORGET),
    (_S.WAITING, _I.MODE_START): (_S.RECORDING, _Do.OPEN),
    (_S.WAITING, _I.START): (_S.RECORDING_BY_COMMAND, _Do.OPEN),
    (_S.WAITING, _I.CALL_END): (_S.DONE, _Do.FORGET),
    (_S.RECORDING, _I.PAUSE): (_S.PAUSED, _Do.PAUSE),
    (_S.RECORDING, _I.STOP): (_S.STOPPED, _Do.STOP),
    (_S.RECORDING, _I.MODE_STOP): (_S.STOPPED_BY_MODE, _Do.STOP),
    (_S.RECORDING, _I.CALL_END): (_S.CLOSING, _Do.CLOSE),
    (_S.RECORDING, _I.ERROR): (_S.FAILED, _Do.FAIL),
    (_S.PAUSED, _I.RESUME): (_S.RECORDING, _Do.RESUME),
    (_S.PAUSED, _I.STOP): (_S.STOPPED, _Do.STOP),
    (_S.PAUSED, _I.MODE_STOP): (_S.STOPPED_BY_MODE, _Do.STOP),
    (_S.PAUSED, _I.CALL_END): (_S.CLOSING, _Do.CLOSE),
    (_S.PAUSED, _I.ERROR): (_S.FAILED_PAUSED, _Do.FAIL),
    (_S.RECORDING_BY_COMMAND, _I.PAUSE): (_S.PAUSED_BY_COMMAND, _Do.PAUSE),
    (_S.RECORDING_BY_COMMAND, _I.STOP): (_S.STOPPED, _Do.STOP),
    (_S.RECORDING_BY_COMMAND, _I.CALL_END): (_S.CLOSING, _Do.CLOSE),
    (_S.RECORDING_BY_COMMAND, _I.ERROR): (_S.FAILED, _Do.FAIL),
    (_S.PAUSED_BY_COMMAND, _I.RESUME): (_S.RECORDING_BY_COMMAND, _Do.RESUME),
    (_S.PAUSED_BY_COMMAND, _I.STOP): (_S.STOPPED, _Do.STOP),
    (_S.PAUSED_BY_COMMAND, _I.CALL_END): (_S.CLOSING, _Do.CLOSE),
    (_S.PAUSED_BY_COMMAND, _I.ERROR): (_S.FAILED_PAUSED, _Do.FAIL),
    (_S.STOPPED, _I.START): (_S.RECORDING_BY_COMMAND, _Do.START),
    (_S.STOPPED, _I.CALL_END): (_S.CLOSING, _Do.CLOSE),
    (_S.STOPPED, _I.ERROR): (_S.FAILED, _Do.FAIL),
    (_S.STOPPED_BY_MODE, _I.START): (_S.RECORDING_BY_COMMAND, _Do.START),
    (_S.STOPPED_BY_MODE, _I.MODE_START): (_S.RECORDING, _Do.START),
    (_S.STOPPED_BY_MODE, _I.CALL_END): (_S.CLOSING, _Do.CLOSE),
    (_S.STOPPED_BY_MODE, _I.ERROR): (_S.FAILED, _Do.FAIL),
    (_S.CLOSING, _I.CLOSED): (_S.DONE, _Do.DONE),
    (_S.CLOSING, _I.ERROR): (_S.DONE, _Do.CLOSE_FAILED),
    (_S.FAILED, _I.CALL_END): (_S.DONE, _Do.END_FAILED),
    (_S.FAILED_PAUSED, _I.RESUME): (_S.FAILED, _Do.UNHIDE),
    (_S.FAILED_PAUSED, _I.STOP): (_S.FAILED, _Do.UNHIDE),
    (_S.FAILED_PAUSED, _I.CALL_END): (_S.DONE, _Do.END_FAILED),
}

#: States with an open file whose sources the tap follows.
_TAPPED = frozenset({_S.RECORDING, _S.PAUSED, _S.RECORDING_BY_COMMAND, _S.PAUSED_BY_COMMAND,
                     _S.STOPPED, _S.STOPPED_BY_MODE})
#: States in which the file's clock runs (audio or pause silence is written).
_RUNNING = frozenset({_S.RECORDING, _S.PAUSED, _S.RECORDING_BY_COMMAND, _S.PAUSED_BY_COMMAND})
_PAUSED = frozenset({_S.PAUSED, _S.PAUSED_BY_COMMAND})
_ACTION_INPUT = {RecordAction.START: _I.START, RecordAction.STOP: _I.STOP,
                 RecordAction.PAUSE: _I.PAUSE, RecordAction.RESUME: _I.RESUME}
#: Roles whose voice is in the conversation (bridge_weights: ``party`` and ``barge`` talk).
_TALKERS = (Role.PARTY, Role.BARGE)
#: Roles whose voice may go into a recording: a listener is never recorded (issue 16
#: item 2); a held member is heard by nobody.
_RECORDED = (Role.PARTY, Role.BARGE, Role.WHISPER)


def _is_trunk(line: str) -> bool:
    return line.startswith("trunk/")


@dataclass(slots=True, eq=False)
class _Rec:
    """One call as the recorder knows it. Times are epoch seconds."""

    call_id: str
    direction: Direction
    caller: str
    callee: str
    #: The line that placed (inbound: received) the call: ``trunk/N`` or ``ext/N``.
    origin: str
    #: The settings when the call began (a reload applies to the next calls).
    settings: RecordingSettings
    #: The call's record mode now (a queue's ``record:`` replaces it as the caller joins).
    mode: RecordMode
    queue_modes: Mapping[str, RecordMode]
    #: The mode of the route (or ``recording.mode``): back in force when the caller joins
    #: a queue without a ``record:`` of its own.
    base_mode: RecordMode = RecordMode.OFF
    state: RecState = RecState.RINGING
    #: bridge id -> members, as the last ``bridge.changed`` said (empty ones dropped).
    bridges: dict[str, tuple[BridgeMember, ...]] = field(default_factory=dict)
    #: line -> the agent sitting there (``queue.offered``, ``queue.connected``), for the
    #: members marks.
    agents: dict[str, str] = field(default_factory=dict)
    #: The file, relative to the recordings directory; None until the first segment.
    relpath: Path | None = None
    #: Segments started so far (``recording.started segment=``).
    segment: int = 0
    #: (customer, extras) as last sent to the tap.
    sources: tuple[str, tuple[str, ...]] | None = None
    #: Seconds of audio in the file before ``running_since`` (running and paused time;
    #: stopped time writes nothing).
    written_s: float = 0.0
    running_since: float | None = None
    marks: list[RecordingMark] = field(default_factory=list)
    #: The last members mark's detail (a mark is added only when it changes).
    members: str = ""
    #: What the service reported when the disk refused the file (FAILED states).
    error: RecordingError | None = None

    def offset(self, now: float) -> float:
        """Seconds into the file at ``now``."""
        run = now - self.running_since if self.running_since is not None else 0.0
        return round(self.written_s + max(run, 0.0), 3)

    def mark(self, now: float, kind: str, detail: str = "") -> None:
        """Add a mark for the index at ``now``."""
        self.marks.append(RecordingMark(now, self.offset(now), kind, detail))

    def halt_clock(self, now: float) -> None:
        """Nothing more is written from ``now`` (a stop, the end, a failure)."""
        if self.running_since is not None:
            self.written_s += max(now - self.running_since, 0.0)
            self.running_since = None


def _details(*parts: str | None) -> str:
    return " ".join(p for p in parts if p)


class Recorder:
    """Call recordings for one switch (see the module docstring)."""

    FOLLOWS: tuple[type, ...] = (CallNew, CallSwitchAnswered, CallAnswered, QueueJoin,
                                 QueueOffered, QueueConnected, AgentStateChanged,
                                 QueueCallback, BridgeChanged, CallEnded)
    TAKES: tuple[type, ...] = RECORDER_INPUTS

    def __init__(self, settings: RecordingSettings, *,
                 hidden_digits: Callable[[str], int] | None = None) -> None:
        """``hidden_digits(call_id)``: how many key presses the core withheld from the call
        since the pause began (``SwitchCore.hidden_digits``), read as a pause ends for
        ``recording.resumed``'s ``digits_hidden``; None reports 0 (no core to ask)."""
        self.settings = settings
        self._hidden_digits = hidden_digits
        #: Live calls and their recordings (closing ones until recording.done), by call id
        #: (which is also the recording id).
        self.calls: dict[str, _Rec] = {}
        #: dial call id -> record mode of a queue's callback call not yet announced.
        self._callback_modes: dict[str, RecordMode] = {}
        self._out: list[Any] = []
        self._handlers: dict[type, Callable[[float, Any], None]] = {
            CallNew: self._on_new, CallSwitchAnswered: self._on_switch_answered,
            CallAnswered: self._on_answered, QueueJoin: self._on_queue_join,
            QueueOffered: self._on_queue_offered, QueueConnected: self._on_queue_connected,
            AgentStateChanged: self._on_agent_state, QueueCallback: self._on_callback,
            BridgeChanged: self._on_bridge,
            CallEnded: self._on_ended, RecordCommand: self._command,
            RecordingClosed: self._on_closed, RecordingError: self._on_error,
        }

    def reconfigure(self, settings: RecordingSettings) -> None:
        """Take new settings (a reload): calls that begin from now on use them; live calls
        keep the mode, layout, format and queue modes they began with."""
        self.settings = settings

    # ------------------------------------------------------- engine protocol

    def handle(self, now: float, item: Any) -> list[Any]:
        """Take a followed event or a recorder input (``RECORDER_INPUTS``) at ``now`` (epoch
        s); return the tap inputs, core inputs and ``recording.*`` events it causes, in order.

        Raises RecorderError (``not_found``, ``wrong_state``; nothing changed) for a
        ``RecordCommand`` it cannot carry out, TypeError for anything else it does not take.
        """
        handler = self._handlers.get(type(item))
        if handler is None:
            raise TypeError(f"the recorder takes RecordCommand/RecordingClosed/RecordingError "
                            f"and follows call events, not {item!r}")
        try:
            handler(now, item)
        except RecorderError:
            self._out.clear()
            raise
        return self._drain()

    def next_deadline(self) -> float | None:
        """None: the recorder keeps no timers (the writer flushes on its own clock)."""
        return None

    def handle_timer(self, now: float) -> list[Any]:
        """Nothing is ever due (see :meth:`next_deadline`)."""
        return []

    # ---------------------------------------------------------------- queries

    def recording_of(self, call_id: str) -> str | None:
        """The id of live call ``call_id``'s recording once a file was opened for it (until
        its ``recording.done``), else None."""
        rec = self.calls.get(call_id)
        return rec.call_id if rec is not None and rec.relpath is not None else None

    def state_of(self, call_id: str) -> RecState | None:
        """Where ``call_id``'s recording is, or None for a call the recorder does not track."""
        rec = self.calls.get(call_id)
        return rec.state if rec is not None else None

    # ----------------------------------------------------------- call events

    def _on_new(self, now: float, ev: CallNew) -> None:
        s = self.settings
        queue_modes: Mapping[str, RecordMode] = s.queue_modes
        if ev.direction is Direction.INBOUND:
            mode = s.route_mode(ev.callee, ev.trunk)
            origin = f"trunk/{ev.trunk}"
        else:
            mode = s.mode
            origin = f"ext/{ev.extension}"
            if ev.direction is Direction.INTERNAL and not s.internal:
                # Colleagues calling each other are not recorded by any mode (a queue's
                # neither); CALL.RECORD still records them.
                mode, queue_modes = RecordMode.OFF, MappingProxyType({})
        # A queue's callback call takes that queue's mode (its QueueCallback came first).
        mode = self._callback_modes.pop(ev.call_id, mode)
        self.calls[ev.call_id] = _Rec(ev.call_id, ev.direction, ev.caller, ev.callee, origin,
                                      s, mode, queue_modes, base_mode=mode)

    def _on_switch_answered(self, now: float, ev: CallSwitchAnswered) -> None:
        rec = self.calls.get(ev.call_id)
        if rec is None:
            return
        self._step(now, rec, _I.ANSWER)
        if rec.mode is RecordMode.ON_ANSWER:
            self._step(now, rec, _I.MODE_START, why="answer")

    def _on_answered(self, now: float, ev: CallAnswered) -> None:
        rec = self.calls.get(ev.call_id)
        if rec is None:
            return
        self._step(now, rec, _I.ANSWER)
        # The first answer connects the answering line with the caller in a bridge the
        # next bridge.changed announces: the tap's sources count it in already.
        if rec.mode is RecordMode.ON_ANSWER:
            self._step(now, rec, _I.MODE_START, why="answer", joining=ev.line)
        elif rec.mode is RecordMode.ON_AGENT and self._agent_line(rec, ev.line):
            self._step(now, rec, _I.MODE_START, why="agent", joining=ev.line)

    @staticmethod
    def _agent_line(rec: _Rec, line: str) -> bool:
        """Is ``line`` answering the moment an agent is connected? An extension; on a
        call an agent placed (outbound), the far end's trunk: the agent is already there."""
        return line.startswith("ext/") or (rec.direction is Direction.OUTBOUND
                                           and _is_trunk(line))

    def _on_queue_join(self, now: float, ev: QueueJoin) -> None:
        rec = self.calls.get(ev.call_id)
        if rec is None:
            return
        # A queue's own record: mode, else the route's again (a caller leaving a queue that
        # does not record for one that has no override is recorded as its route says).
        mode = rec.queue_modes.get(ev.queue, rec.base_mode)
        if mode is rec.mode:
            return
        rec.mode = mode
        if rec.mode is RecordMode.OFF:
            self._step(now, rec, _I.MODE_STOP, why="mode")
        elif rec.mode is RecordMode.ON_ANSWER:
            # A queued caller is answered (by the switch) already: its moment has come.
            self._step(now, rec, _I.MODE_START, why="answer")

    def _on_callback(self, now: float, ev: QueueCallback) -> None:
        # The call the ACD places to call a customer back is the queue's call: its record
        # mode is the queue's (there is no queue.join for it).
        if ev.outcome != "dialling" or ev.dial_call_id is None:
            return
        mode = self.settings.queue_modes.get(ev.queue)
        if mode is None:
            return
        rec = self.calls.get(ev.dial_call_id)
        if rec is None:
            self._callback_modes[ev.dial_call_id] = mode
            while len(self._callback_modes) > 1024:  # never left behind for long
                del self._callback_modes[next(iter(self._callback_modes))]
        elif rec.state in (RecState.RINGING, RecState.WAITING):
            rec.mode = rec.base_mode = mode

    def _on_queue_offered(self, now: float, ev: QueueOffered) -> None:
        # Known before the answer, so the members mark at the answer names the agent. A
        # ring group's offer names the phone, not an agent (agent == line): nobody to name.
        rec = self.calls.get(ev.call_id)
        if rec is not None and ev.agent != ev.line:
            rec.agents[ev.line] = ev.agent

    def _on_agent_state(self, now: float, ev: AgentStateChanged) -> None:
        # An agent in the call by any way (a queue's offer, a consult or a transfer to its
        # extension, a direct call): the members marks name it, so the index finds the
        # recording by every agent who was in the call.
        if ev.call_id is None or ev.line is None or ev.state not in (AgentState.RESERVED,
                                                                      AgentState.ON_CALL):
            return
        rec = self.calls.get(ev.call_id)
        if rec is not None and rec.agents.get(ev.line) != ev.agent:
            rec.agents[ev.line] = ev.agent
            self._note_members(now, rec)

    def _on_queue_connected(self, now: float, ev: QueueConnected) -> None:
        rec = self.calls.get(ev.call_id)
        if rec is None:
            return
        if ev.agent is not None:
            rec.agents[ev.line] = ev.agent
        if rec.mode is RecordMode.ON_AGENT:
            self._step(now, rec, _I.MODE_START, why="agent", joining=ev.line)
        self._note_members(now, rec)

    def _on_bridge(self, now: float, ev: BridgeChanged) -> None:
        rec = self.calls.get(ev.call_id)
        if rec is None:
            return
        if ev.members:
            rec.bridges[ev.bridge] = ev.members
        else:
            rec.bridges.pop(ev.bridge, None)
        if rec.state in _TAPPED:
            self._send_sources(rec)
            self._note_members(now, rec)

    def _on_ended(self, now: float, ev: CallEnded) -> None:
        rec = self.calls.get(ev.call_id)
        if rec is not None:
            self._step(now, rec, _I.CALL_END, why="call_end")

    # ------------------------------------------------------ the service's reports

    def _on_closed(self, now: float, inp: RecordingClosed) -> None:
        rec = self.calls.get(inp.recording_id)
        if rec is not None:  # a late report of a recording already done: nothing to add
            self._step(now, rec, _I.CLOSED, closed=inp)

    def _on_error(self, now: float, inp: RecordingError) -> None:
        rec = self.calls.get(inp.recording_id)
        if rec is not None:
            self._step(now, rec, _I.ERROR, error=inp)

    # --------------------------------------------------------------- commands

    def _command(self, now: float, cmd: RecordCommand) -> None:
        rec = self.calls.get(cmd.call_id)
        if rec is None or rec.state in (_S.CLOSING, _S.DONE):
            raise RecorderError("not_found", f"no call {cmd.call_id} in progress; CALL.RECORD "
                                "works on live calls (CALLS lists them)")
        what = _ACTION_INPUT[cmd.action]
        if (rec.state, what) not in REC_TRANSITIONS:
            raise RecorderError("wrong_state", _refusal(rec, cmd.action))
        self._step(now, rec, what, why="command", user=cmd.user)

    # ----------------------------------------------------------- the machine

    def _step(self, now: float, rec: _Rec, what: RecInput, *, why: str = "",
              user: str | None = None, joining: str | None = None,
              closed: RecordingClosed | None = None, error: RecordingError | None = None) -> None:
        """Move ``rec`` by ``what`` through :data:`REC_TRANSITIONS` and do what the row says;
        nothing when there is no row (commands were checked before)."""
        row = REC_TRANSITIONS.get((rec.state, what))
        if row is None:
            return
        prev = rec.state
        rec.state, do = row
        if do is _Do.NOTHING:
            return
        if do is _Do.OPEN:
            self._open(now, rec, why, user, joining)
        elif do is _Do.START:
            self._start_segment(now, rec, why, user)
        elif do is _Do.PAUSE:
            self._emit(HideDigits(rec.call_id, True))
            self._emit(TapState(rec.call_id, TapMode.PAUSED))
            self._emit(RecordingPaused(rec.call_id, now, rec.call_id, user))
            rec.mark(now, "pause", _details(f"user={user}" if user else None))
        elif do is _Do.RESUME:
            hidden = self._end_pause(rec)
            self._emit(TapState(rec.call_id, TapMode.RUNNING))
            self._emit(RecordingResumed(rec.call_id, now, rec.call_id, user, hidden))
            rec.mark(now, "resume", _details(f"user={user}" if user else None,
                                             f"digits_hidden={hidden}"))
        elif do is _Do.STOP:
            hidden = self._end_pause(rec) if prev in _PAUSED else None
            self._emit(TapState(rec.call_id, TapMode.STOPPED))
            self._emit(RecordingStopped(rec.call_id, now, rec.call_id, why, user, hidden))
            rec.mark(now, "stop", _details(why, f"user={user}" if user else None,
                                           None if hidden is None else f"digits_hidden={hidden}"))
            rec.halt_clock(now)
        elif do is _Do.CLOSE:
            if prev in _RUNNING:
                rec.mark(now, "stop", why)
            rec.halt_clock(now)
            self._emit(TapClose(rec.call_id))
        elif do is _Do.FAIL:
            assert error is not None
            rec.error = error
            rec.mark(now, "stop", _details("failed:", error.reason))
            rec.halt_clock(now)
            self._emit(RecordingFailed(rec.call_id, now, rec.call_id, str(rec.relpath),
                                       error.reason))
        elif do is _Do.UNHIDE:
            self._emit(HideDigits(rec.call_id, False))
        elif do is _Do.DONE:
            assert closed is not None
            self._done(now, rec, RecordStatus.DONE, closed.duration_s, closed.size,
                       closed.sha256)
        elif do is _Do.CLOSE_FAILED:
            assert error is not None
            rec.error = error
            self._emit(RecordingFailed(rec.call_id, now, rec.call_id, str(rec.relpath),
                                       error.reason))
            self._done(now, rec, RecordStatus.FAILED, error.duration_s, error.size, None)
        elif do is _Do.END_FAILED:
            assert rec.error is not None
            self._done(now, rec, RecordStatus.FAILED, rec.error.duration_s, rec.error.size,
                       None)
        if rec.state is _S.DONE:
            del self.calls[rec.call_id]

    def _open(self, now: float, rec: _Rec, why: str, user: str | None,
              joining: str | None) -> None:
        """The first segment: the file (``TapOpen``), the CDR's recording id, the event."""
        s = rec.settings
        rec.relpath = recording_relpath(rec.call_id, now)
        rec.segment = 1
        rec.running_since = now
        rec.sources = self._sources(rec, joining)
        customer, extras = rec.sources
        self._emit(TapOpen(rec.call_id, rec.call_id, rec.relpath, now, s.layout, s.format,
                           customer, extras))
        self._emit(Annotate(rec.call_id, recording_id=rec.call_id))
        self._started(now, rec, why, user)
        self._note_members(now, rec, joining)

    def _start_segment(self, now: float, rec: _Rec, why: str, user: str | None) -> None:
        rec.segment += 1
        rec.running_since = now
        self._emit(TapState(rec.call_id, TapMode.RUNNING))
        self._started(now, rec, why, user)

    def _started(self, now: float, rec: _Rec, why: str, user: str | None) -> None:
        s = rec.settings
        self._emit(RecordingStarted(
            rec.call_id, now, rec.call_id, str(rec.relpath), rec.mode.value, s.layout.value,
            s.format.value, why, rec.direction.value, rec.caller, rec.callee, rec.segment))
        rec.mark(now, "start", _details(why, f"user={user}" if user else None))

    def _end_pause(self, rec: _Rec) -> int:
        """Give the call's keys back to the events; returns how many were withheld."""
        hidden = self._hidden_digits(rec.call_id) if self._hidden_digits is not None else 0
        self._emit(HideDigits(rec.call_id, False))
        return hidden

    def _done(self, now: float, rec: _Rec, status: RecordStatus, duration_s: float, size: int,
              sha256: str | None) -> None:
        self._emit(RecordingDone(rec.call_id, now, rec.call_id, str(rec.relpath), status.value,
                                 duration_s, size, sha256, RecordingMarks(tuple(rec.marks))))

    # ------------------------------------------------------------ the sources

    def _sources(self, rec: _Rec, joining: str | None = None) -> tuple[str, tuple[str, ...]]:
        """(customer, extras) from the call's bridges (issue 16 item 2).

        The customer (left channel) is the line that placed the call when it is a trunk,
        else the first trunk in the call's bridges (an agent's outbound call: the far
        end), else (between extensions) the line that placed it, or the first talker
        when that one left. Extras are the recorded voices (``party``, ``barge``,
        ``whisper``) the customer does not hear, so the tap adds them to the right
        channel, which otherwise is what the customer hears: a whisper, the agent and the
        consulted party while the customer is held. ``listen`` and ``held`` never.
        ``joining``: a line answering now, before the bridge it joins is announced (the
        core's first answer puts it and the caller's line in a new bridge).
        """
        bridges = list(rec.bridges.values())
        if not bridges and joining is not None:
            bridges = [(BridgeMember(rec.origin, Role.PARTY), BridgeMember(joining, Role.PARTY))]
        members = [m for b in bridges for m in b]
        lines = [m.line for m in members]
        if _is_trunk(rec.origin) and (rec.origin in lines or not lines):
            customer = rec.origin
        else:
            trunks = [ln for ln in lines if _is_trunk(ln)]
            talkers = [m.line for m in members if m.role in _TALKERS]
            customer = (trunks[0] if trunks else rec.origin if rec.origin in lines or not lines
                        else talkers[0] if talkers else rec.origin)
        hears: set[str] = set()
        for b in bridges:
            if any(m.line == customer and m.role in _TALKERS for m in b):
                hears.update(m.line for m in b if m.role in _TALKERS)
        extras: list[str] = []
        for m in members:
            if m.role in _RECORDED and m.line != customer and m.line not in hears \
                    and m.line not in extras:
                extras.append(m.line)
        return customer, tuple(extras)

    def _send_sources(self, rec: _Rec) -> None:
        sources = self._sources(rec)
        if sources != rec.sources:
            rec.sources = sources
            self._emit(TapSources(rec.call_id, sources[0], sources[1]))

    def _note_members(self, now: float, rec: _Rec, joining: str | None = None) -> None:
        """A ``members`` mark when who is in the call changed (``line:role`` pairs, bridge
        by bridge, each agent's line followed by ``agent=<id>``)."""
        if rec.state not in _TAPPED:
            return
        bridges = list(rec.bridges.values())
        if not bridges and joining is not None:
            bridges = [(BridgeMember(rec.origin, Role.PARTY), BridgeMember(joining, Role.PARTY))]
        parts: list[str] = []
        for b in bridges:
            for m in b:
                parts.append(str(m))
                agent = rec.agents.get(m.line)
                if agent is not None:
                    parts.append(f"agent={agent}")
        detail = ",".join(parts)
        if not detail or detail == rec.members:
            return
        rec.members = detail
        last = rec.marks[-1] if rec.marks else None
        if last is not None and last.kind == "members" and last.at == now:
            # One instant, one word on who is there: a consult moves two bridges, an
            # answer announces the bridge then the agent.
            rec.marks.pop()
        rec.mark(now, "members", detail)

    # ---------------------------------------------------------------- output

    def _emit(self, item: Any) -> None:
        self._out.append(item)

    def _drain(self) -> list[Any]:
        out, self._out = self._out, []
        return out


def _refusal(rec: _Rec, action: RecordAction) -> str:
    """Why ``action`` cannot be done in ``rec``'s state, and what to do instead."""
    call = f"call {rec.call_id}"
    state = rec.state
    if state is _S.RINGING:
        return (f"{call} is not answered yet; start recording it once somebody (or the "
                "switch) answers")
    if state in (_S.FAILED, _S.FAILED_PAUSED):
        reason = rec.error.reason if rec.error is not None else "the disk refused it"
        return (f"the recording of {call} failed ({reason}); it is not recorded again "
                "(new calls are, once the disk has room)")
    if state is _S.WAITING:
        return f"{call} is not being recorded; action=start records it"
    if state in (_S.STOPPED, _S.STOPPED_BY_MODE):
        return f"the recording of {call} is stopped; action=start records it again"
    if state in _PAUSED:
        if action is RecordAction.PAUSE:
            return f"the recording of {call} is paused already; action=resume goes on"
        return f"the recording of {call} is paused; action=resume goes on, action=stop stops it"
    if action is RecordAction.START:
        return f"{call} is being recorded already; action=stop or action=pause"
    return f"the recording of {call} is running, not paused; action=pause pauses it"
