"""The composition root: builds every engine from the config, wires them, runs, shuts down.

Only this module knows every engine (DESIGN §2). It owns the one clock, arms one
timer for the earliest deadline of the core and the simulated board, publishes
every event on the bus, hands CDRs to the writer, and handles the process-level
signals: SIGTERM/SIGINT stop cleanly, SIGHUP reloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog

from switchd import __version__
from switchd.bus import Bus
from switchd.config import Config, load_config, parse_listen
from switchd.core.engine import CoreError, SwitchCore
from switchd.core.ids import CallIds
from switchd.core.routing import CoreConfig, RingGroup, RingStrategy, Route, Target, TargetKind
from switchd.cti.commands import Commands
from switchd.cti.server import CtiServer
from switchd.events import (
    CallEnded,
    CallEvent,
    DtmfReceived,
    Event,
    LineError,
    LineState,
    ToneStarted,
    ToneStopped,
)
from switchd.exceptions import ConfigError, StorageError
from switchd.lines.dtmf import generate_digits
from switchd.lines.media import MediaPlane
from switchd.lines.prompts import PromptCache, PromptError, load_prompt
from switchd.lines.ticker import MediaTicker
from switchd.passwords import uses_demo_secret
from switchd.sdnotify import SdNotifier, watchdog_interval_s
from switchd.sim.audio import SimAudio, SourceKind
from switchd.sim.board import (
    AgentMode,
    BotSettings,
    OutsideSettings,
    SimBoard,
    SimSettings,
    TrafficSettings,
)
from switchd.sim.driver import apply_action
from switchd.store import CdrWriter, Store
from switchd.timefmt import iso_utc

__all__ = ["App", "core_config", "is_loopback", "sim_settings"]

#: Seconds a clean shutdown may take before switchd gives up waiting (systemd stops us at 15 s).
SHUTDOWN_BUDGET_S = 3.0


def core_config(cfg: Config) -> CoreConfig:
    """Translate the validated config into the call core's settings."""
    groups = {
        name: RingGroup(name, RingStrategy(g.strategy), tuple(g.members), g.ring_timeout_s)
        for name, g in cfg.ring_groups.items()
    }
    routes = tuple(
        Route(Target(TargetKind(r.to.kind), r.to.value), r.dnis, r.trunk) for r in cfg.routes
    )
    return CoreConfig(
        trunks=cfg.board.trunks, extensions=tuple(cfg.board.extension_numbers),
        extension_names=dict(cfg.board.extension_names),
        outside_prefix=cfg.dialplan.outside_prefix, ring_timeout_s=cfg.dialplan.ring_timeout_s,
        tone_timeout_s=cfg.dialplan.tone_timeout_s, ring_groups=groups, routes=routes,
    )


def sim_settings(cfg: Config) -> SimSettings:
    """Translate the config's ``sim`` section into the simulated board's settings."""
    s = cfg.sim
    return SimSettings(
        bots=BotSettings(AgentMode(s.bots.mode), s.bots.answer_after_s, tuple(s.bots.talk_s)),
        outside=OutsideSettings(s.outside.answer_after_s, tuple(s.outside.talk_s),
                                frozenset(s.outside.busy_numbers),
                                frozenset(s.outside.unanswered_numbers)),
        traffic=TrafficSettings(s.traffic.enabled, s.traffic.calls_per_minute, s.traffic.dnis,
                                s.traffic.seed),
        caller_hangup_after_tone_s=s.caller_hangup_after_tone_s,
    )


def build_media(cfg: Config, lines: list[str]) -> MediaPlane:
    """The media plane for ``lines`` (channel order), with the configured tones, MOH and sim audio.

    A speech file that cannot be loaded is logged with the reason and the simulated
    parties fall back to the test tone; switchd still starts.
    """
    audio = cfg.sim.audio
    speech = None
    if audio.speech_file is not None:
        try:
            speech = load_prompt(audio.speech_file)
        except PromptError as exc:
            structlog.get_logger("switchd.media").error(
                "sim_speech_unusable", file=str(exc.path), reason=exc.reason,
                fallback="test tone")
    if speech is None and "speech" in (audio.callers, audio.agents):
        structlog.get_logger("switchd.media").warning(
            "sim_speech_missing", fallback="test tone",
            msg="sim.audio asks for speech but sim.audio.speech_file is not set or unusable")
    sim = SimAudio(len(lines), tone_hz=audio.tone_hz, tone_dbm0=audio.tone_dbm0, speech=speech)
    return MediaPlane(
        lines, tone_plan=cfg.board.tone_plan, moh_dir=cfg.media.moh_dir,
        prompt_cache=PromptCache(cfg.media.prompt_cache_mb * 1024 * 1024), sim_audio=sim,
        caller_source=SourceKind[audio.callers.upper()],
        agent_source=SourceKind[audio.agents.upper()])


def is_loopback(host: str) -> bool:
    """True when ``host`` is a loopback address (127.0.0.0/8, ::1) or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class App:
    """One running switchd: config, engines, store, CTI server, signals."""

    def __init__(self, config: Config, *, config_path: Path,
                 state_dir: Path | None = None, cti_listen: str | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.state_dir = state_dir or config.state_dir
        self.cti_listen_override = cti_listen
        self.log = structlog.get_logger("switchd")
        self.bus = Bus()
        self.core = SwitchCore(core_config(config), id_factory=CallIds())
        self.board = SimBoard(sim_settings(config), tuple(config.board.extension_numbers))
        self.media = build_media(config, list(self.core.lines))
        self.ticker = MediaTicker(self._on_frames)
        self.contact_flags: dict[str, tuple[bool, bool]] = {}
        self.store: Store = None  # type: ignore[assignment]  # set in start()
        self.cdr_writer: CdrWriter = None  # type: ignore[assignment]
        self.server: CtiServer | None = None
        self.notifier = SdNotifier()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._epoch0 = 0.0
        self._loop0 = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._stop = asyncio.Event()
        self._stopping = False
        self._reload_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Line and tone events are logged only at debug level; skip building them otherwise.
        self._debug = config.log.level == "debug"
        self.bus.on_any(self._log_event)
        # The engines that follow the core hear its events through the bus, whose guard
        # logs a failing handler and still delivers to the others.
        self.bus.on_any(lambda ev: self.board.on_event(ev, self.now()))
        self.bus.on_any(self.media.on_event)

    # ------------------------------------------------------------------ clock

    def now(self) -> float:
        """Epoch seconds, advancing with the loop's monotonic clock (immune to wall-clock steps)."""
        assert self._loop is not None
        return self._epoch0 + (self._loop.time() - self._loop0)

    # -------------------------------------------------------------- lifecycle

    def listen_address(self) -> tuple[str, int]:
        """The CTI host and port in force: ``--cti-listen`` overrides ``cti.listen``."""
        if self.cti_listen_override is not None:
            return parse_listen(self.cti_listen_override)
        return self.config.cti.host, self.config.cti.port

    def check_demo_secrets(self) -> list[str]:
        """Users still on demo secrets while listening beyond loopback (must be empty to start)."""
        host, _ = self.listen_address()
        if is_loopback(host):
            return []
        return [u.name for u in self.config.users if uses_demo_secret(u.secret)]

    async def start(self) -> int:
        """Open the store, start the CTI server and the simulated board. Returns the CTI port."""
        self._loop = asyncio.get_running_loop()
        self._epoch0, self._loop0 = time.time(), self._loop.time()
        db = self.state_dir / "switchd.db"
        self.store = await Store.open(db)
        self.contact_flags = await self.store.contact_flags()
        self.cdr_writer = CdrWriter(self.store)
        self.cdr_writer.start()
        host, port = self.listen_address()
        cti = self.config.cti
        self.server = CtiServer(Commands(self), host=host, port=port, version=__version__,
                                max_line_bytes=cti.max_line_bytes,
                                outbound_queue=cti.outbound_queue)
        self.bus.on_any(self.server.publish)
        port = await self.server.start()
        self.log.info("cti_listening", host=host, port=port)
        self.board.start(self.now())
        self._rearm()
        self.ticker.start()
        b = self.config.board
        self.log.info("switchd_started", version=__version__, config=str(self.config_path),
                      state_dir=str(self.state_dir), database=str(db), trunks=b.trunks,
                      extensions=len(b.extension_numbers), tone_plan=b.tone_plan,
                      demo_traffic=self.config.sim.traffic.enabled)
        self.notifier.ready(f"serving {b.trunks} trunks, {len(b.extension_numbers)} extensions; "
                            f"CTI on {host}:{port}")
        wd = watchdog_interval_s()
        if wd:
            self._spawn(self._watchdog(wd))
        return port

    async def run(self) -> int:
        """Start, serve until asked to stop, shut down cleanly. Returns the exit code."""
        try:
            await self.start()
        except (StorageError, OSError) as exc:
            self.log.error("startup_failed", error=str(exc))
            await self._close_partial()
            return 1
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload()))
        try:
            await self._stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        return await self.shutdown()

    def request_stop(self, why: str = "request") -> None:
        """Ask the main loop to shut down (signal handler, tests)."""
        if not self._stop.is_set():
            self.log.info("switchd_stopping", reason=why)
        self._stop.set()

    async def shutdown(self) -> int:
        """Stop taking calls, end live calls with their CDRs, flush, close. Returns 0 when nothing was lost."""
        self._stopping = True
        self.notifier.stopping()
        t0 = time.monotonic()
        live = len(self.core.calls)
        self.dispatch(self.core.shutdown(self.now()))
        await self.ticker.stop()
        if self._timer is not None:
            self._timer.cancel()
        for t in list(self._tasks):
            t.cancel()
        if self.server is not None:
            await self.server.close()
        unwritten = await self.cdr_writer.close(timeout_s=SHUTDOWN_BUDGET_S)
        await self.store.close()
        self.notifier.close()
        if unwritten:
            self.log.error("cdrs_not_written", count=unwritten, database=str(self.store.path))
        self.log.info("switchd_stopped", calls_ended=live, cdrs_written=self.cdr_writer.written,
                      seconds=round(time.monotonic() - t0, 3))
        return 1 if unwritten else 0

    async def _close_partial(self) -> None:
        with contextlib.suppress(Exception):
            if self.server is not None:
                await self.server.close()
        with contextlib.suppress(Exception):
            if self.cdr_writer is not None:
                await self.cdr_writer.close(timeout_s=1.0)
        with contextlib.suppress(Exception):
            if self.store is not None:
                await self.store.close()

    async def reload(self) -> list[str]:
        """Re-read the config file. Returns the problems (empty when the new config is in force).

        A broken file leaves the running config untouched. Live calls are never
        touched: new routes, groups and timeouts apply to the next call. Settings that
        need a restart (board size, CTI address, state directory) are reported.
        """
        async with self._reload_lock:
            self.notifier.reloading()
            try:
                new = await asyncio.to_thread(load_config, self.config_path)
            except ConfigError as exc:
                for p in exc.problems:
                    self.log.error("config_rejected", problem=p)
                self.notifier.ready("reload rejected; old config in force")
                return exc.problems
            old = self.config
            host, _ = self.listen_address()
            if not is_loopback(host):
                demo = await asyncio.to_thread(
                    lambda: [u.name for u in new.users if uses_demo_secret(u.secret)])
                if demo:
                    problem = (f"{self.config_path}: users {', '.join(demo)} have the demo "
                               f"secrets and the control socket listens on {host}, which is not "
                               "loopback; set real secrets with `switchd passwd`")
                    self.log.error("config_rejected", problem=problem)
                    self.notifier.ready("reload rejected; old config in force")
                    return [problem]
            restart = [name for name, a, b in (
                ("board", old.board, new.board), ("cti", old.cti, new.cti),
                ("state_dir", old.state_dir, new.state_dir), ("log", old.log, new.log),
                ("media", old.media, new.media), ("sim.audio", old.sim.audio, new.sim.audio))
                if a != b]
            if restart:
                # The log level is built into cached loggers, and the media plane loads
                # its music and sources once, so these are restart settings rather than
                # half-applied ones.
                self.log.warning("config_needs_restart", sections=restart,
                                 msg="these sections keep their running values until restart")
                new = replace(new, board=old.board, cti=old.cti, state_dir=old.state_dir,
                              log=old.log, media=old.media,
                              sim=replace(new.sim, audio=old.sim.audio))
            self.config = new
            self.core.reconfigure(core_config(new))
            self.board.reconfigure(sim_settings(new), tuple(new.board.extension_numbers))
            self.board.start(self.now())
            self._rearm()
            self.log.info("config_reloaded", config=str(self.config_path),
                          live_calls=len(self.core.calls))
            self.notifier.ready("reloaded")
            return []

    # ------------------------------------------------------------- dispatching

    def dispatch(self, events: list[Event]) -> None:
        """Publish the core's events, let the board react, hand CDRs to the writer, re-arm the timer."""
        for ev in events:
            if isinstance(ev, CallEnded):
                # First: the record must be kept whatever a bus handler does.
                self.cdr_writer.submit(ev.cdr)
            self.bus.publish(ev)
        self._rearm()

    def sim_incoming(self, caller: str, dnis: str, trunk: int | None) -> tuple[str, int]:
        """A simulated caller dials in (SIM.CALL). Raises CoreError when refused."""
        vip, blacklisted = self._contact_lookup(caller)
        call_id, events = self.core.incoming(
            self.now(), caller, dnis, trunk=trunk,
            blocked_reason="blacklist" if blacklisted else None, vip=vip)
        # A refused caller still holds its trunk (busy tone), so the call is live here.
        trunk_no = self.core.calls[call_id].trunk or 0
        self.dispatch(events)
        return call_id, trunk_no

    def contact_changed(self, number: str, vip: bool, blacklisted: bool) -> None:
        """Keep the in-memory routing flags in step with the contacts table."""
        if vip or blacklisted:
            self.contact_flags[number] = (vip, blacklisted)
        else:
            self.contact_flags.pop(number, None)

    def calls_snapshot(self) -> list[dict[str, Any]]:
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
            })
        return out

    def inject_dtmf(self, line: str, digits: str) -> None:
        """The simulated party on ``line`` presses ``digits``: real two-tone audio on its line.

        The digits reach the bus only as the media plane detects them in the audio
        (``call.dtmf`` events), exactly as on an analog board.
        """
        self.media.inject(line, generate_digits(digits))

    def _on_frames(self, frames: int) -> None:
        hits = self.media.process(frames, self.now())
        # Nothing waits for prompt completion until the IVR issue; keep the list bounded.
        self.media.take_finished_plays()
        if not hits:
            return
        events: list[Event] = []
        for hit in hits:
            call = self.core.call_of_line(hit.line)
            if call is not None:
                events.append(DtmfReceived(call.call_id, hit.time, hit.line, hit.digit))
        self.dispatch(events)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        now = self.now()
        try:
            self.dispatch(self.core.handle_timer(now))
            # One action at a time, its events dispatched before the next is taken, so an
            # answer made moot by another phone answering first is cancelled, not delivered.
            while (action := self.board.pop_due(now)) is not None:
                self.dispatch(self._apply(action, now))
        finally:
            # Whatever happened above, the next deadline stays armed.
            self._rearm()

    def _apply(self, action: Any, now: float) -> list[Event]:
        try:
            return apply_action(self.core, action, now, self._contact_lookup)
        except CoreError as exc:
            self.log.warning("sim_action_refused", action=type(action).__name__, reason=exc.msg)
            return []

    def _contact_lookup(self, number: str) -> tuple[bool, bool]:
        return self.contact_flags.get(number, (False, False))

    def _rearm(self) -> None:
        if self._loop is None or self._stopping:
            return
        ds = [d for d in (self.core.next_deadline(), self.board.next_deadline()) if d is not None]
        at = min(ds) if ds else None
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            self._timer = self._loop.call_at(self._loop0 + (at - self._epoch0), self._on_timer)

    # ---------------------------------------------------------------- logging

    def _log_event(self, ev: Event) -> None:
        if isinstance(ev, LineState | ToneStarted | ToneStopped):
            if self._debug:
                self.log.debug(ev.name, **ev.fields())
            return
        fields = ev.fields()
        fields.pop("time", None)
        if isinstance(ev, CallEvent):
            call_id = fields.pop("call_id")
            if isinstance(ev, CallEnded):
                cdr = ev.cdr
                fields.update(src=cdr.src, dst=cdr.dst, trunk=cdr.trunk, extension=cdr.extension,
                              wait_s=cdr.wait_s, blocked_reason=cdr.blocked_reason)
            self.log.info(ev.name, call_id=call_id, **fields)
        elif isinstance(ev, LineError):
            self.log.warning(ev.name, **fields)
        else:
            self.log.info(ev.name, **fields)

    # ------------------------------------------------------------------ misc

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watchdog(self, interval: float) -> None:
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

