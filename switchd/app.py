"""The composition root: builds every engine and driver from the config, wires them, runs.

Only this module knows every engine (DESIGN §2). It translates the validated config
into each engine's settings, wires the core, the board driver and the media plane to
one shell and one bus, opens the store and the CTI server, and runs one lifecycle
under an ``AsyncExitStack`` with the shutdown budget in one place. Dispatch lives in
``switchd.shell``, reload policy in ``switchd.reload``, the verbs in ``switchd.cti``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog

from switchd import __version__
from switchd.acd.engine import Acd, AcdError, AgentStatus, QueueStatus
from switchd.acd.inputs import ACD_INPUTS
from switchd.acd.model import AcdSettings
from switchd.bus import Bus
from switchd.config import Config, config_warnings, demo_secret_problem, load_config, parse_listen
from switchd.control import CallInfo, UserInfo
from switchd.core.engine import CoreError, SwitchCore
from switchd.core.ids import CallIds
from switchd.core.inputs import CORE_INPUTS, Digit, Incoming, Shutdown
from switchd.core.routing import CoreConfig
from switchd.cti.commands import Commands
from switchd.cti.server import CtiServer
from switchd.drivers.sim.audio import SimAudio, SourceKind
from switchd.drivers.sim.board import (
    AgentMode,
    BotSettings,
    OutsideSettings,
    SimSettings,
    TrafficSettings,
)
from switchd.drivers.sim.driver import SimDriver
from switchd.drivers.sip.driver import SipDriver
from switchd.engine import Input
from switchd.events import (
    AgentState,
    CallEnded,
    CallOffered,
    Event,
    IvrLeave,
    QueueLogEntry,
    VoicemailNew,
)
from switchd.exceptions import ConfigError, ProtocolError, StorageError
from switchd.ivr.inputs import RouteReply
from switchd.ivr.interpreter import Ivr, RouteReplyError, submit_reply
from switchd.ivr.model import FlowSet
from switchd.ivr.routed import flow_prompt_files, load_routed_flows
from switchd.lines.dtmf import generate_digits
from switchd.lines.media import MediaPlane
from switchd.lines.prompts import MusicOnHold, PromptCache, PromptError, load_prompt
from switchd.lines.state import LineStatus
from switchd.lines.ticker import FRAME_S, MediaTicker
from switchd.playout import Playout, run_frames
from switchd.recorder import index as rec_index
from switchd.recorder.engine import Recorder, RecorderError
from switchd.recorder.index import RecordingIndex, live_figures
from switchd.recorder.inputs import RECORDER_INPUTS, RecordCommand
from switchd.recorder.mailboxes import Mailboxes
from switchd.recorder.model import RecordAction, RecordStatus, VoicemailSettings
from switchd.recorder.recovery import recover
from switchd.recorder.retention import retention_loop
from switchd.recorder.service import RecordingService
from switchd.recorder.vm_index import MessageIndex
from switchd.recorder.vm_recovery import recover_messages
from switchd.recorder.voicemail import VoicemailService
from switchd.recorder.writer import RecordingWriter
from switchd.reload import plan_reload
from switchd.reports.model import Report, ReportSettings
from switchd.screenpop import ScreenPop
from switchd.sdnotify import SdNotifier, watchdog_interval_s
from switchd.shell import LoopClock, Shell
from switchd.store import QUEUE_LOG_NAME, CdrWriter, QueueLogWriter, Store
from switchd.store.facts_writer import FactsWriter, start_facts
from switchd.store.schema import caller_of
from switchd.timefmt import iso_utc

__all__ = ["SHUTDOWN_BUDGET_S", "App", "core_config", "sim_settings"]

#: Seconds a clean shutdown may take before switchd gives up waiting (systemd stops us at 15 s).
SHUTDOWN_BUDGET_S = 3.0

log = structlog.get_logger("switchd")

#: The interpreter's refusal codes as CTI error codes.
_IVR_CODES = {"not_found": "not_found", "not_waiting": "wrong_state", "bad_arg": "bad_arg",
              "internal": "internal"}


def core_config(cfg: Config) -> CoreConfig:
    """The call core's settings from the validated config (routes and groups are already core types)."""
    return CoreConfig(
        trunks=cfg.board.trunks, extensions=tuple(cfg.board.extension_numbers),
        extension_names=dict(cfg.board.extension_names),
        outside_prefix=cfg.dialplan.outside_prefix, ring_timeout_s=cfg.dialplan.ring_timeout_s,
        tone_timeout_s=cfg.dialplan.tone_timeout_s,
        routes=tuple(cfg.routes),
    )


def sim_settings(cfg: Config) -> SimSettings:
    """The simulated board's settings from the config's ``sim`` section."""
    s = cfg.sim
    return SimSettings(
        bots=BotSettings(AgentMode(s.bots.mode), s.bots.answer_after_s, tuple(s.bots.talk_s)),
        outside=OutsideSettings(s.outside.answer_after_s, tuple(s.outside.talk_s),
                                frozenset(s.outside.busy_numbers),
                                frozenset(s.outside.unanswered_numbers)),
        traffic=TrafficSettings(s.traffic.enabled, s.traffic.calls_per_minute, s.traffic.dnis,
                                s.traffic.seed, keys=s.traffic.keys,
                                first_key_after_s=s.traffic.first_key_after_s,
                                key_gap_s=s.traffic.key_gap_s),
        caller_hangup_after_tone_s=s.caller_hangup_after_tone_s,
        caller_talk_s=tuple(s.caller_talk_s),
        caller_patience_s=s.caller_patience_s,
    )


def queue_prompt_files(acd: AcdSettings) -> list[Path]:
    """Every prompt file the queues of ``acd`` may play (greeting, position and wait
    announcements, periodic, callback), each once, for preloading: the playout never
    reads a file on the loop."""
    seen: dict[Path, None] = {}
    for q in acd.queues.values():
        cb = q.callback
        for files in (q.greeting, q.periodic, *q.position_files, *q.wait_files,
                      *((cb.confirm, cb.done) if cb is not None else ())):
            for path in files:
                seen.setdefault(path, None)
    return list(seen)


def with_state_dir(cfg: Config, state_dir: Path) -> Config:
    """``cfg`` with the recordings and voicemail folders that default to the state
    directory moved under ``state_dir`` (``--state-dir``); folders the file sets
    (``recording.path``, ``voicemail.path``) stay where they are."""
    moved = {}
    for name, default in (("recording", "recordings"), ("voicemail", "voicemail")):
        section = getattr(cfg, name)
        if section.directory == cfg.state_dir / default:
            moved[name] = replace(section, directory=state_dir / default)
    return replace(cfg, **moved) if moved else cfg


def _sim_audio(cfg: Config, channels: int) -> SimAudio:
    """What simulated parties say. Reads the speech file: call off the event loop."""
    audio = cfg.sim.audio
    speech = None
    if audio.speech_file is not None:
        try:
            speech = load_prompt(audio.speech_file)
        except PromptError as exc:
            log.error("sim_speech_unusable", file=str(exc.path), reason=exc.reason,
                      fallback="test tone")
    if speech is None and "speech" in (audio.callers, audio.agents):
        log.warning("sim_speech_missing", fallback="test tone",
                    msg="sim.audio asks for speech but sim.audio.speech_file is not set or unusable")
    return SimAudio(channels, tone_hz=audio.tone_hz, tone_dbm0=audio.tone_dbm0, speech=speech)


def _compute_report(db: Path, queue_log: Path, *, start: float, end: float, tz: str, by: str,
                    settings: ReportSettings, queue: str | None, agent: str | None) -> Report:
    """What ``switchd report`` computes, for ``REPORT``: the CDRs starting in [start, end)
    from ``db`` (read-only, beside the writer) with the stored report facts, or the
    queue_log entries within ``LOG_MARGIN_S`` of it when those do not cover the range
    (none when the file does not exist yet). Blocking: run it in a worker thread. Raises
    sqlite3.Error or OSError when the data cannot be read, ValueError for a ``by`` or
    ``tz`` the figures refuse."""
    from switchd.reports.cli import LOG_MARGIN_S
    from switchd.reports.data import summarize_queue_log
    from switchd.reports.logsum import LogSummary
    from switchd.reports.run import compute_report

    def from_file() -> LogSummary:
        try:
            return summarize_queue_log(queue_log, start=start, end=end,
                                       margin_s=LOG_MARGIN_S, queue=queue, agent=agent)
        except FileNotFoundError:
            return LogSummary()

    return compute_report(db, start=start, end=end, tz=tz, by=by, now=time.time(),
                          file_summary=from_file, settings=settings, queue=queue,
                          agent=agent)


class App:
    """One running switchd: the engines on a shell, the store, the CTI server, signals.

    Also the implementation of the control interfaces (``switchd.control``) that the
    CTI verbs use.
    """

    def __init__(self, config: Config, *, config_path: Path,
                 state_dir: Path | None = None, cti_listen: str | None = None,
                 flows: FlowSet | None = None, cache: PromptCache | None = None) -> None:
        """``flows``: the routed flows, loaded and checked (``switchd run`` does it before
        starting, so a broken flow refuses the start); None = load them at start.
        ``cache``: the prompt cache they were checked with (their prompts are decoded
        there already); None = a new one of ``media.prompt_cache_mb``."""
        self._flows_given = flows is not None
        self._config_path = config_path
        self.state_dir = state_dir or config.state_dir
        config = self.config = with_state_dir(config, self.state_dir)
        self.cti_listen_override = cti_listen
        self.bus = Bus()
        self.contact_flags: dict[str, tuple[bool, bool]] = {}
        self.core = SwitchCore(core_config(config), id_factory=CallIds(),
                               contacts=self._contact_lookup, media_stats=self._media_stats)
        lines = list(self.core.lines)
        self.driver: SimDriver | SipDriver
        if config.board.driver == "sip" and config.sip is not None:
            # Real phones and carriers; its sockets are bound in _start.
            self.driver = SipDriver(config.sip, lines, clock=time.time)
        else:
            self.driver = SimDriver(
                sim_settings(config), tuple(config.board.extension_numbers), lines,
                caller_source=SourceKind[config.sim.audio.callers.upper()],
                agent_source=SourceKind[config.sim.audio.agents.upper()])
        self.cache = cache or PromptCache(config.media.prompt_cache_bytes)
        self.media = MediaPlane(lines, port=self.driver, tone_plan=config.board.tone_plan,
                                prompt_cache=self.cache)
        self.ticker = MediaTicker(self._on_frames, on_skip=self.media.skip)
        self.mailboxes = Mailboxes(config.voicemail)
        self.ivr = Ivr(flows if flows is not None else FlowSet(), mailboxes=self.mailboxes)
        #: caller number -> agent id of its last call (contacts' last_agent, kept current
        #: from each CDR): the ACD's sticky routing reads it without waiting on the database.
        self.last_agents: dict[str, str] = {}
        self.acd = Acd(config.acd, last_agent=self.last_agents.get)
        self.playout = Playout(self.media, self.cache)
        # The recorder asks the core how many keys it withheld during a compliance pause.
        self.recorder = Recorder(config.recording, hidden_digits=self.core.hidden_digits)
        self.rec_service: RecordingService[RecordingWriter] | None = None
        self.rec_index: RecordingIndex | None = None
        self.vm: VoicemailService | None = None
        self.vm_index: MessageIndex | None = None
        self._recorder_closed = False
        #: Set by a reload: the retention loop runs a round with the new limits at once.
        self._retention_wake = asyncio.Event()
        #: The flow prompt files pinned in the cache: the generation in force and those
        #: that calls still in a flow started on (a reload unpins the rest).
        self._flow_pins: set[Path] = set()
        self.store: Store | None = None
        self.cdr_writer: CdrWriter | None = None
        self.queue_log: QueueLogWriter | None = None
        self.facts: FactsWriter | None = None
        self.server: CtiServer | None = None
        self.screen_pop: ScreenPop | None = None
        self.shell: Shell | None = None
        self.notifier = SdNotifier()
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    def _media_stats(self, call_id: str) -> str | None:
        """A call's RTP figures for its CDR (the SIP board's; None on the simulated one)."""
        driver = getattr(self, "driver", None)
        return driver.stats_for_call(call_id) if isinstance(driver, SipDriver) else None

    # ------------------------------------------------------------ config

    def listen_address(self) -> tuple[str, int]:
        """The CTI host and port in force: ``--cti-listen`` overrides ``cti.listen``."""
        if self.cti_listen_override is not None:
            return parse_listen(self.cti_listen_override)
        return self.config.cti.host, self.config.cti.port

    # -------------------------------------------------------- lifecycle

    async def _load_media(self) -> None:
        """Decode music on hold and the simulated voices off the loop (no file I/O in the tick)."""
        cfg = self.config
        moh = MusicOnHold(cfg.media.moh_dir, self.cache)
        # What cannot be played is reported once, by config_warnings below (as `check` does).
        await asyncio.to_thread(moh.preload)
        self.media.moh = moh
        if not self._flows_given:
            # Raises FlowError (a ConfigError) naming every problem: the start is refused.
            self.ivr.set_flows(await asyncio.to_thread(load_routed_flows, cfg, cache=self.cache))
        await self._preload_prompts(self.ivr.flows, cfg.acd, cfg.voicemail)
        if isinstance(self.driver, SimDriver):
            self.driver.audio = await asyncio.to_thread(_sim_audio, cfg, len(self.media.lines))
        for warning in await asyncio.to_thread(config_warnings, cfg, cache=self.cache):
            log.warning("config_warning", problem=warning)

    async def _preload_prompts(self, flows: FlowSet, acd: AcdSettings,
                               voicemail: VoicemailSettings) -> None:
        """Decode every prompt the flows, the queues and the mailboxes may play into the
        cache (pinned), off the loop.

        The flow check decoded the flows' already; a file that broke since is logged,
        and the call that would play it hears nothing there and goes on (``ivr.error``).
        """
        files = list(dict.fromkeys([*flow_prompt_files(flows), *queue_prompt_files(acd),
                                    *Mailboxes(voicemail).greeting_files()]))
        problems = await asyncio.to_thread(self.cache.preload, files)
        for path, reason in problems:
            log.error("prompt_unusable", file=str(path), reason=reason)
        self._flow_pins = set(files) | self._live_prompt_files()
        self.playout.forget_joined()

    def _live_prompt_files(self) -> set[Path]:
        """The prompt files of every flow generation a call in a flow is on now."""
        sets = {id(s.flows): s.flows for s in self.ivr.sessions.values()}
        return {p for fs in sets.values() for p in flow_prompt_files(fs)}

    async def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT, shut down within the budget. Returns the exit code.

        Every resource is entered on one ``AsyncExitStack``, so whatever fails during
        start-up, what was opened is closed in reverse order.
        """
        loop = asyncio.get_running_loop()
        # Signals first: a SIGTERM during start-up is a stop request like any other.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload()))
        try:
            async with contextlib.AsyncExitStack() as stack:
                try:
                    port = await self._start(stack, loop)
                except (StorageError, OSError) as exc:
                    log.error("startup_failed", error=str(exc))
                    return 1
                except ConfigError as exc:
                    for p in exc.problems:
                        log.error("flow_rejected", problem=p)
                    log.error("startup_failed", error="the routed flows have problems; "
                              "`switchd flows check` shows them")
                    return 1
                b = self.config.board
                host, _ = self.listen_address()
                self.notifier.ready(f"serving {b.trunks} trunks, {len(b.extension_numbers)} "
                                    f"extensions; CTI on {host}:{port}")
                await self._stop.wait()
                t0 = time.monotonic()
                live, unwritten = await self._shutdown()
            # The stack has closed the CTI server, the ticker and the database: this is
            # the last line of the run.
            assert self.cdr_writer is not None
            log.info("switchd_stopped", calls_ended=live, cdrs_written=self.cdr_writer.written,
                     seconds=round(time.monotonic() - t0, 3))
            self.notifier.close()
            return 1 if unwritten else 0
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def _start(self, stack: contextlib.AsyncExitStack,
                     loop: asyncio.AbstractEventLoop) -> int:
        await self._load_media()
        db = self.state_dir / "switchd.db"
        self.store = await Store.open(db)
        stack.push_async_callback(self._close_store)
        self.contact_flags = await self.store.contact_flags()
        self.last_agents.update(await self.store.contact_last_agents())
        self.cdr_writer = CdrWriter(self.store)
        self.cdr_writer.start()
        stack.push_async_callback(self._close_writer)
        # The report facts: each queue_log line folded and stored beside the CDRs
        # (switchd.reports.facts), so reports need not re-read the file.
        self.facts = FactsWriter(self.store, await start_facts(
            self.store, queue_log=self.state_dir / QUEUE_LOG_NAME, now=time.time()))
        self.facts.start()
        stack.push_async_callback(self._close_facts)
        self.queue_log = QueueLogWriter(self.state_dir / QUEUE_LOG_NAME, facts=self.facts)
        self.queue_log.start()
        stack.push_async_callback(self._close_queue_log)
        # Files left open by a crash are repaired and indexed before anything records.
        try:
            await recover(self.store, self.config.recording.directory)
        except (StorageError, sqlite3.Error, OSError) as exc:
            # Nothing is lost: the files stay, and the next start tries again.
            log.error("recording_recovery_failed", error=str(exc),
                      directory=str(self.config.recording.directory))
        try:
            await recover_messages(self.store, self.config.voicemail.directory, self.mailboxes)
        except (StorageError, sqlite3.Error, OSError) as exc:
            # Nothing is lost: the files stay, and the next start tries again.
            log.error("voicemail_recovery_failed", error=str(exc),
                      directory=str(self.config.voicemail.directory))
        self.rec_index = RecordingIndex(self.store)
        self.rec_index.start()
        self.vm_index = MessageIndex(self.store, self.config.voicemail.directory, self.mailboxes)
        # Closed after the calls have ended (the stack unwinds in reverse order): their
        # recordings and messages are finished and indexed first.
        stack.push_async_callback(self._close_recordings)
        shell = self.shell = Shell(
            self.bus, LoopClock(loop), debug=self.config.log.level == "debug",
            refusals=(CoreError,), on_refused=self._refused)
        # First: the record must be kept whatever another handler does.
        self.bus.on(CallEnded.name, self._keep_cdr)
        self.bus.on(QueueLogEntry.name, self._keep_queue_log)
        for kind in RecordingIndex.FOLLOWS:
            self.bus.on(kind.name, self.rec_index.on_event)
        rec = self.config.recording
        self.rec_service = RecordingService.with_writer(
            self.media, shell.submit,
            lambda closed, failed: RecordingWriter(
                rec.directory, flush_s=rec.flush_s, buffer_s=rec.buffer_s,
                on_closed=closed, on_error=failed, call_soon=loop.call_soon_threadsafe),
            # Audio reaches the writer as often as the header is rewritten: flush_s bounds
            # what a crash loses (20 ms frames).
            hand_frames=max(1, round(rec.flush_s / FRAME_S)))
        self.rec_service.writer.start()
        vm = self.vm = VoicemailService(self.mailboxes, self.media, submit=shell.submit)
        vm.attach(writer=RecordingWriter(self.config.voicemail.directory, on_closed=vm.closed,
                                         on_error=vm.failed,
                                         call_soon=loop.call_soon_threadsafe),
                  index=self.vm_index)
        assert vm.writer is not None
        vm.writer.start()
        self.vm_index.start()
        # However the process leaves from here on (a stop request, or an error), live
        # calls are ended with their CDRs before the writer closes (the stack unwinds in
        # reverse order).
        if isinstance(self.driver, SipDriver):
            sip = self.driver
            sip.clock = shell.now
            sip.dispatch = lambda items: shell.dispatch(items, shell.now())
            sip.submit = shell.submit
            await sip.start_sockets()
            # Closed after the calls are ended below: their BYEs still go out.
            stack.callback(sip.close)
        stack.callback(self._end_calls)
        shell.add(self.core, takes=CORE_INPUTS)
        shell.add(self.driver, follows=self.driver.FOLLOWS)
        shell.add(self.ivr, takes=Ivr.TAKES, follows=Ivr.FOLLOWS)
        shell.add(self.acd, takes=ACD_INPUTS, follows=Acd.FOLLOWS)
        shell.add(self.playout, takes=Playout.TAKES)
        shell.add(vm, takes=VoicemailService.TAKES, follows=VoicemailService.FOLLOWS)
        shell.add(self.recorder, takes=RECORDER_INPUTS, follows=Recorder.FOLLOWS)
        shell.add(self.rec_service, takes=RecordingService.TAKES)
        self.bus.on_any(self.media.on_event, only=[k.name for k in MediaPlane.FOLLOWS])
        host, port = self.listen_address()
        cti = self.config.cti
        sim = self.driver if isinstance(self.driver, SimDriver) else None
        self.server = CtiServer(Commands(self, sim=sim), host=host, port=port,
                                version=__version__, max_line_bytes=cti.max_line_bytes,
                                outbound_queue=cti.outbound_queue)
        self.bus.on_any(self._to_clients)
        # After _to_clients: a pop follows the call.ringing it is about. Closed before
        # the store (the stack unwinds in reverse): no look-up outlives the database.
        server = self.server
        pop = self.screen_pop = ScreenPop(
            self.core.calls, self.store, flush=self.cdr_writer.flush, publish=server.publish,
            agent_at=self.agent_at,
            listened=lambda: server.anyone_subscribed(CallOffered.name))
        self.bus.on_any(pop.on_event, only=[k.name for k in ScreenPop.FOLLOWS])
        stack.push_async_callback(pop.close)
        port = await self.server.start()
        stack.push_async_callback(self.server.close)
        log.info("cti_listening", host=host, port=port)
        self.driver.start(shell.now())
        shell.start()
        stack.callback(shell.stop)
        # Asterisk writes QUEUESTART when its queues load; report tools look for it.
        now = shell.now()
        self.queue_log.submit(QueueLogEntry(now, "NONE", "NONE", "NONE", "QUEUESTART", ("",)))
        # The agents configured with `login: true` (the simulated bots) log in, ready.
        shell.dispatch(self.acd.start(now), now)
        self.ticker.start()
        stack.push_async_callback(self.ticker.stop)
        b = self.config.board
        log.info("switchd_started", version=__version__, config=str(self._config_path),
                 state_dir=str(self.state_dir), database=str(db), trunks=b.trunks,
                 extensions=len(b.extension_numbers), tone_plan=b.tone_plan,
                 demo_traffic=self.config.sim.traffic.enabled)
        wd = watchdog_interval_s()
        if wd:
            self._spawn(self._watchdog(wd))
        self._spawn(retention_loop(self.store, rec.directory,
                                   lambda: self.config.recording.retention, self.now,
                                   wake=self._retention_wake))
        return port

    def request_stop(self, why: str = "request") -> None:
        """Ask the main loop to shut down (signal handler, tests)."""
        if not self._stop.is_set():
            log.info("switchd_stopping", reason=why)
        self._stop.set()

    async def _shutdown(self) -> tuple[int, int]:
        """End live calls with their CDRs and write them within the budget.

        Returns (calls ended, CDRs left unwritten). The rest (server, ticker, store)
        is closed by the exit stack after this.
        """
        self.notifier.stopping()
        live = len(self.core.calls)
        assert self.shell is not None and self.cdr_writer is not None
        self._end_calls()
        self.shell.stop()
        for t in list(self._tasks):
            t.cancel()
        # Every writer drains at once, so the CDRs, the queue_log and the recordings share
        # one budget.
        unwritten, lines_left, files_left, _ = await asyncio.gather(
            self.cdr_writer.close(timeout_s=SHUTDOWN_BUDGET_S), self._close_queue_log(),
            self._close_recordings(), self._close_facts())
        if unwritten:
            log.error("cdrs_not_written", count=unwritten,
                      database=str(self.store.path if self.store else ""))
        # A queue_log line that never reached the file is lost data too (logged by the writer).
        return live, unwritten + lines_left + files_left

    def _end_calls(self) -> None:
        """Take no new calls and end the live ones with their CDRs (once: it runs on the
        stop path and again as the exit stack unwinds)."""
        if self.shell is not None and self.core.accepting:
            self.acd.stop()   # nobody is offered a caller whose call is about to end
            self.shell.submit(Shutdown())

    async def _close_writer(self) -> None:
        if self.cdr_writer is not None:
            await self.cdr_writer.close(timeout_s=SHUTDOWN_BUDGET_S)

    async def _close_facts(self) -> int:
        # Facts not written are logged by the writer; the queue_log file still has them
        # (a report of their period then reads the file: see switchd.reports.stored).
        if self.facts is None:
            return 0
        return await self.facts.close(timeout_s=SHUTDOWN_BUDGET_S)

    async def _close_queue_log(self) -> int:
        if self.queue_log is None:
            return 0
        return await self.queue_log.close(timeout_s=SHUTDOWN_BUDGET_S)

    async def _close_recordings(self) -> int:
        """Finish the recordings and messages of the calls that ended: stop the writers
        (each file closed and reported), let their last reports through the engines, then
        drain both indexes. Returns files and index rows left unfinished (0: all done);
        runs once (the stop path, then the exit stack)."""
        if self._recorder_closed:
            return 0
        self._recorder_closed = True
        left = sum(await asyncio.gather(self._close_call_recordings(), self._close_voicemail()))
        if left:
            log.error("recordings_not_finished", count=left,
                      msg="files or index rows could not be finished in time; the next start "
                      "repairs and indexes the files")
        return left

    async def _close_call_recordings(self) -> int:
        left = 0
        if self.rec_service is not None:
            self.rec_service.flush()
            left += await self.rec_service.writer.stop(SHUTDOWN_BUDGET_S)
            # The writer's last reports come through call_soon: let them reach the engine.
            for _ in range(3):
                await asyncio.sleep(0)
        if self.rec_index is not None:
            left += await self.rec_index.close(timeout_s=SHUTDOWN_BUDGET_S)
        return left

    async def _close_voicemail(self) -> int:
        return await self.vm.close(SHUTDOWN_BUDGET_S) if self.vm is not None else 0

    async def _close_store(self) -> None:
        # A write stuck in SQLite's thread must not hold the process past the budget.
        if self.store is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.store.close(), SHUTDOWN_BUDGET_S)

    async def reload(self) -> list[str]:
        """Re-read the config file and the flows it routes to. Returns the problems (empty
        when the new config and flows are in force).

        A broken config or flow leaves everything running untouched (the old flows
        stay live). Live calls are never touched: new routes, groups, timeouts and
        flow versions apply to the next call; a call in a flow finishes on the
        version it started with. Settings that need a restart are reported
        (``switchd.reload``). Whatever happens, systemd is told READY again.
        """
        async with self._reload_lock:
            self.notifier.reloading()
            try:
                problems = await self._reload()
            except Exception as exc:  # a bug must not leave systemd in RELOADING
                log.exception("reload_failed")
                problems = [f"{self._config_path}: reload failed: {exc!r}"]
            self.notifier.ready("reloaded" if not problems
                                else "reload rejected; old config and flows in force")
            return problems

    async def _reload(self) -> list[str]:
        try:
            new = await asyncio.to_thread(load_config, self._config_path)
        except ConfigError as exc:
            for p in exc.problems:
                log.error("config_rejected", problem=p)
            return exc.problems
        host, _ = self.listen_address()
        problem = await asyncio.to_thread(demo_secret_problem, new, host)
        if problem is not None:
            log.error("config_rejected", problem=problem)
            return [problem]
        plan = plan_reload(self.config, with_state_dir(new, self.state_dir))
        # The prompts of the generation in force may be dropped to make room for the new
        # one's (they stay pinned while a live call is on them); reloads never pile up.
        self.cache.unpin(self._flow_pins - self._live_prompt_files())
        try:
            # Against the config that will be in force: a changed media.prompts_dir
            # waits for a restart like the rest of `media`.
            flows = await asyncio.to_thread(load_routed_flows, plan.config, cache=self.cache,
                                            generation=self.ivr.flows.generation + 1)
        except ConfigError as exc:
            for p in exc.problems:
                log.error("flow_rejected", problem=p)
            # The old flows stay in force: pin their prompts again (reloading any dropped).
            await asyncio.to_thread(self.cache.preload, sorted(self._flow_pins))
            return exc.problems
        for warning in await asyncio.to_thread(config_warnings, new, cache=self.cache):
            log.warning("config_warning", problem=warning)
        if plan.restart:
            log.warning("config_needs_restart", sections=list(plan.restart),
                        msg="these sections keep their running values until restart")
        # New greetings are decoded before any call can be sent to them.
        await self._preload_prompts(flows, plan.config.acd, plan.config.voicemail)
        self.mailboxes.reconfigure(plan.config.voicemail)
        self.config = plan.config
        # The next calls record with the new modes and formats; live ones keep theirs.
        self.recorder.reconfigure(plan.config.recording)
        self._retention_wake.set()
        if self.vm is not None:
            self.vm.reconfigure()
        # New calls start on the new flows; calls in a flow keep the generation they started on.
        self.ivr.set_flows(flows)
        self.core.reconfigure(core_config(plan.config))
        # New queue settings and agents for the next joins and offers; waiting callers
        # keep their place.
        self.acd.reconfigure(plan.config.acd)
        if self.shell is not None:
            # Agents the reload added with `login: true` log in now.
            self.shell.dispatch(self.acd.login_configured(self.shell.now()))
        if isinstance(self.driver, SimDriver):
            self.driver.reconfigure(sim_settings(plan.config),
                                    tuple(plan.config.board.extension_numbers))
        if self.shell is not None:
            self.driver.start(self.shell.now())
            self.shell.rearm()
        log.info("config_reloaded", config=str(self._config_path),
                 live_calls=len(self.core.calls),
                 flows={f.name: f.version for f in flows.flows.values()})
        return []

    # ---------------------------------------------------- the control interface

    @property
    def config_path(self) -> Path:
        """The config file the switch was started with."""
        return self._config_path

    @property
    def trunks(self) -> int:
        """How many trunks the board has."""
        return self.core.config.trunks

    @property
    def ring_timeout_s(self) -> float:
        """The dial plan's ring time, seconds."""
        return self.core.config.ring_timeout_s

    def now(self) -> float:
        """Epoch seconds on the shell's clock (wall time before start)."""
        return self.shell.now() if self.shell is not None else time.time()

    def user(self, name: str) -> UserInfo | None:
        """The configured CTI user ``name``, or None."""
        u = next((u for u in self.config.users if u.name == name), None)
        return None if u is None else UserInfo(u.name, u.role, u.secret, u.extension, u.queues)

    def submit(self, item: Input) -> list[Event]:
        """Feed a core input now and dispatch what follows. Raises CoreError when refused."""
        assert self.shell is not None, "the switch is not started"
        return self.shell.submit(item)

    def call_info(self, call_id: str) -> CallInfo:
        """A live call. Raises CoreError(not_found)."""
        call = self.core.get_call(call_id)
        return CallInfo(call.call_id, call.state.value, call.anchor, tuple(call.lines()),
                        call.answer_time is not None, call.switch_answer_time is not None,
                        call.queue, tuple(sorted(call.former_legs)))

    def lines(self) -> list[dict[str, Any]]:
        """Every line now (the wallboard's line view), trunks then extensions."""
        # The agent at each phone: the one logged in there before one merely configured there.
        agents = {a.line: a for a in sorted(
            self.acd.agents.values(), key=lambda a: a.state is not AgentState.LOGGED_OUT)
            if a.line is not None}
        out = []
        for ln in self.core.lines.values():
            agent = agents.get(ln.name)
            out.append({
                "line": ln.name, "kind": ln.kind.value, "number": ln.number,
                "state": ln.status.value,
                "since": iso_utc(ln.since) if ln.since is not None else None,
                "call": ln.call_id, "tone": ln.tone, "label": ln.label,
                "agent": agent.agent_id if agent is not None else None,
                "agent_state": agent.state.value if agent is not None else None,
            })
        driver = self.driver
        if isinstance(driver, SipDriver):
            # The SIP board: whether each phone is registered, and each line's RTP so far.
            regs = driver.engine.registrations(self.shell.now() if self.shell else time.time())
            for item in out:
                if item["kind"] == "ext":
                    binds = regs.get(item["line"], [])
                    item["registered"] = len(binds)
                    item["contact"] = binds[0].contact if binds else None
                item["media"] = driver.line_media(item["line"])
        return out

    def sip_status(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        """The SIP board's registrations (one entry per bound contact) and carriers;
        None on the simulated board."""
        driver = self.driver
        if not isinstance(driver, SipDriver):
            return None
        now = self.shell.now() if self.shell else time.time()
        regs = [{"line": line, "contact": b.contact, "source": f"{b.source[0]}:{b.source[1]}",
                 "transport": b.transport, "expires_s": max(0, round(b.expires_at - now))}
                for line, binds in sorted(driver.engine.registrations(now).items())
                for b in binds]
        trunks = []
        status = driver.engine.trunk_status()
        for t in driver.settings.trunks:
            st = status.get(t.name, {})
            trunks.append({"trunk": t.name, "host": f"{t.host}:{t.port}",
                           "lines": f"{t.lines[0]}-{t.lines[-1].split('/')[1]}",
                           "reachable": st.get("reachable"), "register": t.register,
                           "registered": st.get("registered") if t.register else None,
                           "reason": st.get("reason") or None})
        return regs, trunks

    def send_keys(self, line: str, digits: str) -> list[str]:
        """``line`` sends ``digits`` as DTMF (each key 80 ms of tone, 80 ms apart: twice
        ITU-T Q.24's 40 ms minimum, so a far-end detector takes each once) to whoever hears
        it. Raises ProtocolError: bad_arg, wrong_state."""
        try:
            samples = generate_digits(digits, on_ms=80, off_ms=80)
        except ValueError as exc:
            raise ProtocolError("bad_arg", f"digits={digits!r}: {exc}") from None
        ln = self.core.line(line)
        call = self.core.call_of_line(line)
        if ln.status is not LineStatus.CONNECTED or call is None:
            raise ProtocolError("wrong_state", f"{line} is {ln.status.value}; keys are sent "
                                "in a conversation")
        # Keys are for the parties; a supervisor monitoring the call is nobody's addressee
        # (and naming its phone in the reply would tell the agent who listens).
        hearers = [h for h in self.media.hearers(line) if h not in call.monitors]
        if not hearers:
            raise ProtocolError("wrong_state", f"nobody hears {line} now (the other party "
                                "is on hold, or it only listens); no keys sent")
        rest = hearers
        if isinstance(self.driver, SipDriver):
            # A SIP peer that took telephone-event gets RFC 4733 events, not tones.
            took = self.driver.send_keys(hearers, digits)
            rest = [h for h in hearers if h not in took]
        if rest:
            self.media.send_keys(line, samples, rest)
        return hearers

    def calls(self) -> list[dict[str, Any]]:
        """Active calls as CTI ``ITEM`` fields, oldest first."""
        out = []
        for call in self.core.calls.values():
            out.append({
                "call": call.call_id, "state": call.state.value,
                "direction": call.direction.value, "caller": call.caller,
                "callee": call.callee, "dnis": call.dnis, "trunk": call.trunk,
                "extension": call.extension, "start": iso_utc(call.start),
                "answer": iso_utc(call.answer_time) if call.answer_time is not None else None,
                "lines": ",".join(call.lines()), "vip": call.vip or None,
                "media": (self.driver.call_media(call.call_id)
                          if isinstance(self.driver, SipDriver) else None),
            })
        return out

    async def query_cdrs(self, **filters: Any) -> list[dict[str, Any]]:
        """CDRs matching ``filters``, including calls that just ended (waits ≤ 2 s for the
        writer, never on a failing database). Raises ValueError for a bad filter."""
        assert self.store is not None and self.cdr_writer is not None
        with contextlib.suppress(TimeoutError, StorageError):
            await asyncio.wait_for(self.cdr_writer.flush(), 2.0)
        return await self.store.query_cdrs(**filters)

    async def report(self, *, start: float, end: float, tz: str, by: str,
                     settings: ReportSettings, queue: str | None,
                     agent: str | None) -> Report:
        """``switchd report``'s figures for the CTI ``REPORT`` (Control.report): flushes the
        CDR, queue_log and report facts writers (≤ 2 s, never waiting on a failing disk),
        then reads the
        database read-only and the queue_log in a worker thread and computes there."""
        assert self.store is not None and self.cdr_writer is not None
        writers = [w for w in (self.cdr_writer, self.queue_log, self.facts) if w is not None]

        async def drain(writer: Any) -> None:
            with contextlib.suppress(TimeoutError, StorageError, RuntimeError):
                await asyncio.wait_for(writer.flush(), 2.0)

        await asyncio.gather(*(drain(w) for w in writers))
        try:
            return await asyncio.to_thread(
                _compute_report, self.store.path, self.state_dir / QUEUE_LOG_NAME,
                start=start, end=end, tz=tz, by=by, settings=settings, queue=queue, agent=agent)
        except (sqlite3.Error, OSError) as exc:
            raise ProtocolError("busy", f"cannot read the call records now ({exc}); "
                                "try again in a moment") from None
        except MemoryError:
            raise ProtocolError("busy", "the records of this period do not fit in memory; "
                                "ask for a shorter period") from None
        except ValueError as exc:
            raise ProtocolError("bad_arg", str(exc)) from None

    async def get_contact(self, number: str) -> Mapping[str, Any] | None:
        """The contact ``number``, or None."""
        assert self.store is not None
        return await self.store.get_contact(number)

    async def set_contact(self, number: str, **fields: Any) -> Mapping[str, Any]:
        """Create or update a contact; the routing flags (VIP, blacklist) follow at once."""
        assert self.store is not None
        row = await self.store.set_contact(number, **fields)
        vip, blacklisted = bool(row["vip"]), bool(row["blacklisted"])
        if vip or blacklisted:
            self.contact_flags[number] = (vip, blacklisted)
        else:
            self.contact_flags.pop(number, None)
        return row

    def route_reply(self, call_id: str, next_node: str | None,
                    variables: tuple[tuple[str, str], ...]) -> str:
        """Hand the CRM's ``ROUTE.REPLY`` to the call's flow; returns the node it goes to.

        Raises ProtocolError: not_found, wrong_state (the call does not wait for a
        reply, or the reply came when the CRM's time had run out), bad_arg (the flow
        cannot use the reply; the call went to its fallback), internal (the interpreter
        failed on it; the call was released).
        """
        assert self.shell is not None, "the switch is not started"
        try:
            events = submit_reply(self.ivr, self.shell.submit,
                                  RouteReply(call_id, next_node, variables))
        except RouteReplyError as exc:
            raise ProtocolError(_IVR_CODES.get(exc.code, "bad_arg"), exc.msg) from None
        left = next((e for e in events if isinstance(e, IvrLeave)), None)
        return left.next or "" if left is not None else ""

    def queue_names(self) -> list[str]:
        """Every ACD queue, in config order."""
        return self.acd.queue_names()

    def flow_names(self) -> list[str]:
        """Every loaded IVR flow, sorted."""
        return sorted(self.ivr.flows.flows)

    def mailbox_names(self) -> list[str]:
        """Every voicemail box, sorted."""
        return sorted(self.mailboxes.names())

    def queue_status(self, name: str) -> QueueStatus:
        """A snapshot of queue ``name`` now. Raises ProtocolError(not_found)."""
        try:
            return self.acd.queue_status(name, self.now())
        except AcdError as exc:
            raise ProtocolError(exc.code, exc.msg) from None

    def agent_at(self, line: str) -> str | None:
        """The ACD agent logged in at phone ``line``, or None (read from the ACD, no
        snapshot of every agent's figures)."""
        return next((a.agent_id for a in self.acd.agents.values()
                     if a.line == line and a.state is not AgentState.LOGGED_OUT), None)

    def agent_status(self) -> list[AgentStatus]:
        """Every ACD agent now."""
        return self.acd.agent_status(self.now())

    # ------------------------------------------------------------ recordings

    def record(self, call_id: str, action: str, user: str | None) -> str:
        """``CALL.RECORD``: start, stop, pause or resume the recording of a live call;
        returns the recording id (the call id). Raises ProtocolError: bad_arg (unknown
        action), not_found (no such call), wrong_state (the recording cannot do that now)."""
        assert self.shell is not None, "the switch is not started"
        try:
            what = RecordAction(action.lower())
        except ValueError:
            raise ProtocolError("bad_arg", f"action={action!r}: use start, stop, pause or "
                                "resume") from None
        try:
            self.shell.submit(RecordCommand(call_id, what, user))
        except RecorderError as exc:
            raise ProtocolError(exc.code, exc.msg) from None
        return call_id

    async def query_recordings(self, **filters: Any) -> list[dict[str, Any]]:
        """Index rows matching ``filters``, newest first, ``file`` absolute; waits ≤ 2 s
        for the index writer so a recording that just started or ended is there. Raises
        ValueError for a bad filter."""
        assert self.store is not None and self.rec_index is not None
        with contextlib.suppress(TimeoutError, StorageError):
            await asyncio.wait_for(self.rec_index.flush(), 2.0)
        rows = await rec_index.query(self.store, directory=self.config.recording.directory,
                                     **filters)
        if any(r.get("status") == RecordStatus.RECORDING.value for r in rows):
            rows = await asyncio.to_thread(live_figures, rows)
        return rows

    async def keep_recording(self, recording_id: str, keep: bool) -> dict[str, Any]:
        """Mark a recording kept (never purged) or not; its row. Raises ProtocolError(not_found)."""
        assert self.store is not None and self.rec_index is not None
        with contextlib.suppress(TimeoutError, StorageError):
            await asyncio.wait_for(self.rec_index.flush(), 2.0)
        row = await rec_index.set_keep(self.store, recording_id, keep,
                                       directory=self.config.recording.directory)
        if row is None:
            raise ProtocolError("not_found", f"no recording {recording_id!r}; REC.QUERY "
                                "shows the recordings there are")
        return row

    async def voicemail_list(self, mailbox: str | None, *, limit: int = 100
                             ) -> list[dict[str, Any]]:
        """Messages of ``mailbox`` (None: every box), newest first."""
        assert self.vm_index is not None
        return await self.vm_index.list(mailbox, limit=limit)

    async def voicemail_get(self, message_id: str) -> dict[str, Any]:
        """One message, unchanged."""
        assert self.vm_index is not None
        return await self.vm_index.get(message_id)

    async def voicemail_fetch(self, message_id: str) -> dict[str, Any]:
        """One message with its absolute file path; marks it heard."""
        assert self.vm_index is not None
        return await self.vm_index.fetch(message_id)

    async def voicemail_delete(self, message_id: str) -> dict[str, Any]:
        """Delete a message (file and row); the row it had."""
        assert self.vm_index is not None
        return await self.vm_index.delete(message_id)

    # ------------------------------------------------------------ notes (CALL.NOTE)

    async def stored_cdr(self, call_id: str) -> dict[str, Any] | None:
        """The ended call's CDR, or None; waits ≤ 2 s for the writer so a call that just
        ended is there. Raises ProtocolError(busy) when the database cannot say now."""
        assert self.store is not None and self.cdr_writer is not None
        with contextlib.suppress(TimeoutError, StorageError):
            await asyncio.wait_for(self.cdr_writer.flush(), 2.0)
        try:
            row = await self.store.get_cdr(call_id)
        except (StorageError, sqlite3.Error) as exc:
            raise ProtocolError("busy", f"the call records cannot be read now ({exc}); "
                                "try again") from None
        if row is None and self.cdr_writer.pending:
            raise ProtocolError("busy", f"{self.cdr_writer.pending} call records still wait "
                                "to be written (the database is slow); try again")
        return row

    async def set_stored_note(self, call_id: str, text: str) -> bool:
        """Replace the note of the ended call's stored CDR; False when there is none.
        Raises ProtocolError(busy) when the database refuses the write now."""
        assert self.store is not None
        try:
            stored = await self.store.set_cdr_note(call_id, text)
        except (StorageError, sqlite3.Error) as exc:
            raise ProtocolError("busy", f"the note could not be stored now ({exc}); "
                                "try again") from None
        if stored and self.screen_pop is not None:
            self.screen_pop.note_changed(call_id)   # the next pop shows the new note
        return stored

    # ------------------------------------------------------------ internals

    def _contact_lookup(self, number: str) -> tuple[bool, bool]:
        return self.contact_flags.get(number, (False, False))

    def _keep_cdr(self, ev: Event) -> None:
        assert isinstance(ev, CallEnded) and self.cdr_writer is not None
        self.cdr_writer.submit(ev.cdr)
        # As the contacts row's last_agent will say once the CDR is written (sticky routing).
        number = caller_of(ev.cdr)
        if ev.cdr.agent and number is not None:
            self.last_agents[number] = ev.cdr.agent

    def _to_clients(self, ev: Event) -> None:
        # queue.log entries are the queue_log file's lines: clients get the same facts as
        # queue.* events (docs/protocol.md, queue.log), so they are not sent twice.
        if self.server is None or isinstance(ev, QueueLogEntry):
            return
        if isinstance(ev, VoicemailNew) and ev.owner and ev.owner.startswith("agent:"):
            # Message waiting reaches the owner's softphone: name the phone it sits at now.
            agent = self.acd.agents.get(ev.owner.partition(":")[2])
            if agent is not None and agent.line is not None:
                ev = replace(ev, line=agent.line)
        self.server.publish(ev)

    def _keep_queue_log(self, ev: Event) -> None:
        assert isinstance(ev, QueueLogEntry) and self.queue_log is not None
        self.queue_log.submit(ev)

    def _refused(self, item: Any, exc: Exception) -> None:
        reason = getattr(exc, "msg", str(exc))
        if isinstance(item, Incoming) and getattr(exc, "code", "") == "busy":
            # Every trunk busy: the simulated caller is blocked, as a real one would hear
            # the network's busy tone. Normal at peak traffic, not a fault of the switch.
            log.info("sim_caller_blocked", reason=reason)
            return
        log.warning("sim_action_refused", action=type(item).__name__, reason=reason)

    def _on_frames(self, frames: int) -> None:
        assert self.shell is not None
        submit = self.shell.submit
        driver = getattr(self, "driver", None)
        if isinstance(driver, SipDriver):
            # A key the phone sent as an RFC 4733 event and also in-band is one key.
            def submit(item: Any, _submit: Any = self.shell.submit) -> object:
                if type(item) is Digit and driver.claims_digit(item.line, item.digit,
                                                                item.time or 0.0):
                    return None
                return _submit(item)
        run_frames(self.media, self.playout, submit, frames, self.shell.now())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watchdog(self, interval: float) -> None:
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)
