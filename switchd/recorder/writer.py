"""The recording writer: one background thread owns every open WAV file.

Issue 16 item 3: the media tick must never wait for the disk. The tap hands each
recording's audio to :meth:`RecordingWriter.write` about once a second; that call
(like :meth:`~RecordingWriter.open` and :meth:`~RecordingWriter.close`) only puts an
item on a queue and returns. One plain :class:`threading.Thread` takes the items in
order and does the blocking work with :class:`~switchd.recorder.wav.WavFile`: create
(header with zero sizes first), append, patch the size fields, close. Why a thread and
not ``asyncio.to_thread`` per write: the files stay open for the whole call, so one
owner keeps every file's writes in order without a lock per file, and a slow disk
backs up one queue whose size we bound and measure.

Crash safety: audio goes to the kernel as soon as the thread takes it, and the
thread rewrites every written-to file's sizes at least every ``flush_s`` (and at
close). A ``kill -9`` therefore leaves files whose headers are at most ``flush_s``
stale and which :func:`~switchd.recorder.wav.repair` brings up to every whole frame
that was handed over before the kill (less what the tap had not yet handed: ≤ 1 s).

Bounds and failures (issue 16 item 4): a recording whose queued audio exceeds
``buffer_s`` seconds (the disk does not keep up) fails; so does one the OS refuses
(``ENOSPC``, ``EACCES``, ``EROFS``…). A failed recording's file is patched and closed
when possible, ``on_error`` is called once with what is on disk, and later writes for it
are dropped and counted. Nothing else stops: other recordings go on, and every new
:meth:`~RecordingWriter.open` tries the disk again (space may have returned).

Every opened recording gets exactly one final report, ``on_closed`` or ``on_error``,
delivered through ``call_soon`` (the daemon passes ``loop.call_soon_threadsafe`` so
the callbacks run on the event loop).

Closing is the one slow step: a closed recording is fsynced (it survives a power cut),
and one fsync at a time was the writer's ceiling: 300-800 recordings/s on the test
machine's disk, below the calls a busy switch ends, so recordings piled up and a
shutdown could not finish them in its budget. The thread therefore patches the header
and hands the file to a few *sealing* threads (:data:`SEAL_THREADS`) that fsync, read
it back and close it: each file still gets its own fsync, but concurrent ones share the
disk's cache flushes (2 700-3 500 files/s there). Reports of different recordings may
come in another order than their closes; each recording's own audio is written, in
order, before its file is sealed.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from pathlib import Path

import structlog

from switchd.recorder.model import RecordFormat
from switchd.recorder.wav import WavError, WavFile, WavSummary, block_align, byte_rate, repair

__all__ = ["SEAL_THREADS", "CallSoon", "OnClosed", "OnError", "RecState", "RecordingWriter",
           "WriterState", "WriterStats"]

log = structlog.get_logger(__name__)

#: ``on_closed(rec_id, summary)``: the recording's file is closed; figures from the file.
OnClosed = Callable[[str, WavSummary], None]
#: ``on_error(rec_id, reason, summary or None)``: the recording failed; ``reason`` says
#: why ("No space left on device: /…/x.wav"); the summary describes what is on disk.
OnError = Callable[[str, str, WavSummary | None], None]
#: Schedules a callback (``loop.call_soon_threadsafe``); None = call it on the writer's
#: thread that has the news (the writer thread or a sealing thread).
CallSoon = Callable[[Callable[[], None]], object]
#: Threads that fsync, read back and close finished recordings at the same time (see the
#: module docstring): with 4 a recorded-call rate past 1 000/s (``switchd bench calls
#: --live --record``) left thousands unsealed at a stop; 16 kept up in every run.
SEAL_THREADS = 16
#: The longest a stop waits for a disk that keeps sealing (s): inside systemd's
#: TimeoutStopSec (15 s, contrib/systemd/switchd.service) with the other writers' time.
STOP_MOST_S = 8.0


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Figures of a :class:`RecordingWriter` since it was made.

    ``bytes_written``: audio bytes the kernel took (headers not counted);
    ``files_open``: files the thread has open now; ``max_queue_bytes``: the most audio
    bytes ever waiting for the thread at once (all recordings); ``dropped_bytes``: audio
    handed over but never written (the recording had failed, was closed or unknown, or
    its buffer overflowed); ``queue_bytes``: audio bytes waiting now; ``failures``:
    recordings reported through ``on_error``.
    """

    bytes_written: int
    files_open: int
    max_queue_bytes: int
    dropped_bytes: int
    queue_bytes: int = 0
    failures: int = 0


class RecState(StrEnum):
    """Where one recording is in the writer (loop and thread both read it, under the lock)."""

    OPENING = "opening"        #: open() queued; the thread has not created the file yet
    OPEN = "open"              #: the file exists; writes are accepted
    CLOSING = "closing"        #: close() called: queued audio is still written, new dropped
    OVERFLOWED = "overflowed"  #: too much audio waited; the thread will close and report it
    DONE = "done"              #: closed; on_closed reported
    FAILED = "failed"          #: on_error reported; the file (if any) is closed


class _Ev(StrEnum):
    """What happens to a recording (the inputs of its state table)."""

    CREATED = "created"    # thread: the file exists with its header
    CLOSE = "close"        # loop: close() (or stop() closing what is left open)
    OVERFLOW = "overflow"  # loop: the queued audio passed buffer_s
    ERROR = "error"        # thread: the failure was reported (OS error, overflow)
    CLOSED = "closed"      # thread: closed normally and reported


_S = RecState
#: Every legal move; anything else is a bug in this module and raises. DONE and FAILED
#: are final: the recording leaves the writer's table and later calls for it are ignored.
_TRANSITIONS: dict[tuple[RecState, _Ev], RecState] = {
    (_S.OPENING, _Ev.CREATED): _S.OPEN,
    (_S.OPENING, _Ev.CLOSE): _S.CLOSING,
    (_S.OPENING, _Ev.OVERFLOW): _S.OVERFLOWED,
    (_S.OPENING, _Ev.ERROR): _S.FAILED,
    (_S.OPEN, _Ev.CLOSE): _S.CLOSING,
    (_S.OPEN, _Ev.OVERFLOW): _S.OVERFLOWED,
    (_S.OPEN, _Ev.ERROR): _S.FAILED,
    (_S.CLOSING, _Ev.CREATED): _S.CLOSING,  # closed before the thread opened it: 0 s file
    (_S.CLOSING, _Ev.ERROR): _S.FAILED,
    (_S.CLOSING, _Ev.CLOSED): _S.DONE,
    (_S.OVERFLOWED, _Ev.CLOSE): _S.OVERFLOWED,  # the failure report is the final one
    (_S.OVERFLOWED, _Ev.CREATED): _S.OVERFLOWED,  # overflowed while the disk hung in create
    (_S.OVERFLOWED, _Ev.ERROR): _S.FAILED,
}
#: States in which write() queues audio.
_ACCEPTING = frozenset({_S.OPENING, _S.OPEN})
#: States in which the thread appends queued audio.
_WRITING = frozenset({_S.OPEN, _S.CLOSING})


class WriterState(StrEnum):
    """The writer's own lifecycle."""

    NEW = "new"            #: made; open/write/close queue items for the thread
    RUNNING = "running"    #: start() ran: the thread works
    STOPPING = "stopping"  #: stop() ran: open() is refused, the thread finishes the queue
    STOPPED = "stopped"    #: the thread has ended


#: The writer's lifecycle moves: (state, what happened) -> state.
_LIFE: dict[tuple[WriterState, str], WriterState] = {
    (WriterState.NEW, "start"): WriterState.RUNNING,
    (WriterState.NEW, "stop"): WriterState.STOPPING,  # stop() starts the thread to drain
    (WriterState.RUNNING, "stop"): WriterState.STOPPING,
    (WriterState.STOPPING, "ended"): WriterState.STOPPED,
}


@dataclass(eq=False, slots=True)
class _Rec:
    """One recording. ``state``/``queued``/``reason`` are shared (under the writer's lock);
    ``file`` belongs to the thread."""

    rec_id: str
    path: Path
    channels: int
    fmt: RecordFormat
    limit: int  # most audio bytes that may wait for the thread (buffer_s of audio)
    state: RecState = RecState.OPENING
    queued: int = 0
    reason: str = ""
    file: WavFile | None = field(default=None, repr=False)


class _Do(StrEnum):
    """What a queue item asks of the thread."""

    OPEN = "open"    # create the recording's file
    WRITE = "write"  # append audio
    CLOSE = "close"  # patch and close
    WAKE = "wake"    # nothing: look at the overflow reports now
    STOP = "stop"    # end the thread (after everything queued before)


@dataclass(frozen=True, slots=True)
class _Item:
    """One piece of work for the thread, in the order the loop asked for it."""

    do: _Do
    rec: _Rec | None = None
    data: bytes = b""


_WAKE = _Item(_Do.WAKE)
_STOP = _Item(_Do.STOP)


class RecordingWriter:
    """Writes every open recording from one background thread (see the module docstring).

    ``directory``: recordings are created at ``directory / relpath``. ``flush_s``: the
    size fields of a file with new audio are rewritten at least this often (s).
    ``buffer_s``: seconds of a recording's audio (at its byte rate) that may wait for the
    thread before the recording fails; keep it well above the tap's hand-off interval
    (1 s). ``on_closed``/``on_error``: final reports (see :data:`OnClosed`,
    :data:`OnError`), run through ``call_soon`` (``loop.call_soon_threadsafe``) or, with
    None, on a writer thread (an exception there is logged, not raised).
    """

    def __init__(self, directory: Path, *, flush_s: float = 1.0, buffer_s: float = 30.0,
                 on_closed: OnClosed, on_error: OnError,
                 call_soon: CallSoon | None = None) -> None:
        """Prepare the writer; no thread runs until :meth:`start`.

        Raises ``ValueError`` unless ``flush_s`` > 0 and ``buffer_s`` > 0 (seconds).
        """
        if not flush_s > 0 or not buffer_s > 0:
            raise ValueError(f"flush_s and buffer_s must be positive seconds, got {flush_s} "
                             f"and {buffer_s}")
        self.directory = Path(directory)
        self.flush_s = flush_s
        self.buffer_s = buffer_s
        self._on_closed = on_closed
        self._on_error = on_error
        self._call_soon = call_soon
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._lock = threading.Lock()
        # Shared under _lock:
        self._state = WriterState.NEW
        self._active: dict[str, _Rec] = {}  # not yet DONE/FAILED, by id
        self._overflowed: list[_Rec] = []  # OVERFLOWED, not yet reported by the thread
        self._queued = 0
        self._max_queued = 0
        self._dropped = 0
        self._failures = 0
        # Written by the thread only (read by stats(): ints, so a stale read is harmless):
        self._written = 0
        self._files_open = 0  # under _lock: the sealing threads close files too
        self._dirty: set[_Rec] = set()  # files with audio their header does not count yet
        self._next_patch = 0.0
        self._thread = threading.Thread(target=self._run, name="recording-writer",
                                        daemon=True)
        # Threads start on first use; the writer thread waits for them before it ends.
        self._sealers = _Sealers(SEAL_THREADS)

    # ------------------------------------------------------------- loop side

    @property
    def state(self) -> WriterState:
        """The writer's lifecycle state."""
        return self._state

    def start(self) -> None:
        """Start the writer thread. Raises ``RuntimeError`` if called twice or after stop()."""
        with self._lock:
            if (self._state, "start") not in _LIFE:
                raise RuntimeError(f"RecordingWriter.start() called when {self._state.value}")
            self._state = _LIFE[(self._state, "start")]
        self._thread.start()

    def open(self, rec_id: str, relpath: Path, channels: int, fmt: RecordFormat) -> None:
        """Queue the creation of ``directory / relpath`` (parents made; an absolute
        ``relpath`` is used as is) for recording ``rec_id``: ``channels`` (1 or 2) of
        8 kHz ``fmt`` audio. Never blocks.

        Failures come later through ``on_error`` (the file exists, the disk is full or
        read-only…); after :meth:`stop` it is refused the same way ("the recording
        writer is stopped"). Raises ``ValueError`` for ``channels`` other than 1 or 2 or a
        ``rec_id`` already open (a bug in the caller).
        """
        if channels not in (1, 2):
            raise ValueError(f"a recording has 1 (mono) or 2 (stereo) channels, got {channels}")
        path = self.directory / relpath
        rate = byte_rate(channels, fmt)
        rec = _Rec(rec_id, path, channels, fmt,
                   limit=max(block_align(channels, fmt), int(self.buffer_s * rate)))
        with self._lock:
            if rec_id in self._active:
                raise ValueError(f"recording {rec_id} is already open in the writer; close it "
                                 "first (one recording per call)")
            stopped = self._state in (WriterState.STOPPING, WriterState.STOPPED)
            if stopped:
                self._failures += 1
            else:
                self._active[rec_id] = rec
        if stopped:
            self._deliver(self._on_error, rec_id, f"the recording writer is stopped: {path}",
                          None)
            return
        self._queue.put(_Item(_Do.OPEN, rec))

    def write(self, rec_id: str, data: bytes) -> None:
        """Queue ``data`` (whole sample frames of the recording's format, interleaved
        L,R for stereo) to be appended to ``rec_id``'s file. Never blocks.

        Dropped and counted (``stats().dropped_bytes``) when ``rec_id`` is not open (never
        opened, closed, failed). If the recording's queued audio would exceed
        ``buffer_s`` seconds, the recording fails ("the disk does not keep up: …") and this
        and later writes for it are dropped. Raises ``ValueError`` if ``data`` is not
        whole sample frames (a bug in the caller).
        """
        n = len(data)
        if not n:
            return
        overflow = False
        with self._lock:
            rec = self._active.get(rec_id)
            if rec is None or rec.state not in _ACCEPTING:
                self._dropped += n
                return
            align = block_align(rec.channels, rec.fmt)
            if n % align:
                raise ValueError(f"audio for recording {rec_id} must be whole {align}-byte "
                                 f"sample frames, got {n} bytes")
            if rec.queued + n > rec.limit:
                rec.state = _move(rec.state, _Ev.OVERFLOW)
                rec.reason = (f"the disk does not keep up: more than {self.buffer_s:g} s of "
                              f"audio ({rec.limit} bytes) waited to be written: {rec.path}")
                self._overflowed.append(rec)
                self._dropped += n
                overflow = True
            else:
                rec.queued += n
                self._queued += n
                self._max_queued = max(self._max_queued, self._queued)
        self._queue.put(_WAKE if overflow else _Item(_Do.WRITE, rec, data))

    def close(self, rec_id: str) -> None:
        """Queue the closing of ``rec_id``: audio already queued is written, the header
        patched, the file closed and ``on_closed`` called (or ``on_error``). Never blocks.
        Ignored for a recording that is not open (already closed or failed)."""
        with self._lock:
            rec = self._active.get(rec_id)
            if rec is None or rec.state not in _ACCEPTING:
                return
            rec.state = _move(rec.state, _Ev.CLOSE)
        self._queue.put(_Item(_Do.CLOSE, rec))

    async def stop(self, timeout_s: float = 5.0, *, most_s: float = STOP_MOST_S) -> int:
        """Close every open recording (each reported through ``on_closed``) after the audio
        queued for it, end the thread, and return how many recordings were not closed
        (0: all done). It waits ``timeout_s`` seconds at a time, for as long as each wait
        finished some (a busy disk sealing a backlog of thousands), up to ``most_s`` in
        all; a wait that finished none ends it (a disk that hangs).

        Those left stay open in the thread, which is a daemon: their files are repaired
        at the next start. Safe to call twice. Runs on the event loop (the wait is in a
        worker thread).
        """
        with self._lock:
            first = (self._state, "stop") in _LIFE
            new = self._state is WriterState.NEW
            left_open: list[str] = []
            if first:
                # In the same locked step as the snapshot: no open() can slip in between.
                self._state = _LIFE[(self._state, "stop")]
                left_open = [rec.rec_id for rec in self._active.values()
                             if rec.state in _ACCEPTING]
        if new:
            self._thread.start()
        if first:
            for rec_id in left_open:
                self.close(rec_id)
            self._queue.put(_STOP)
        until = time.monotonic() + max(timeout_s, most_s)
        with self._lock:
            before = len(self._active)
        while True:
            await asyncio.to_thread(self._thread.join, min(timeout_s, until - time.monotonic()))
            with self._lock:
                left = len(self._active)
            if not self._thread.is_alive() or left >= before or time.monotonic() >= until:
                return left
            before = left

    def stats(self) -> WriterStats:
        """The writer's figures now (see :class:`WriterStats`)."""
        with self._lock:
            return WriterStats(bytes_written=self._written, files_open=self._files_open,
                               max_queue_bytes=self._max_queued, dropped_bytes=self._dropped,
                               queue_bytes=self._queued, failures=self._failures)

    # ----------------------------------------------------------- thread side

    def _run(self) -> None:
        """The thread: take items in order, patch dirty files on time, until _STOP."""
        while True:
            timeout = None
            if self._dirty:
                timeout = max(0.0, self._next_patch - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = _WAKE
            self._report_overflows()
            if item is _STOP:
                break
            try:
                self._handle(item)
            except Exception as exc:  # a bug must not silence every recording
                log.exception("recording_writer_bug", item=item.do.value)
                if item.rec is not None:
                    try:
                        self._fail(item.rec, f"internal error in the recording writer: {exc!r}")
                    except Exception:
                        log.exception("recording_writer_bug", item="fail")
            if self._dirty and time.monotonic() >= self._next_patch:
                self._patch_dirty()
        self._report_overflows()
        self._patch_dirty()
        # Every close was handed over before _STOP: the files are sealed when this returns.
        self._sealers.join()
        with self._lock:
            self._state = _LIFE[(self._state, "ended")]

    def _handle(self, item: _Item) -> None:
        rec = item.rec
        if rec is None:
            return  # WAKE: the overflow reports were just made
        if item.do is _Do.WRITE:
            self._append(rec, item.data)
        elif item.do is _Do.OPEN:
            self._create(rec)
        elif item.do is _Do.CLOSE:
            self._finish(rec)

    def _create(self, rec: _Rec) -> None:
        with self._lock:
            if rec.state not in (_S.OPENING, _S.CLOSING):
                return  # overflowed before the file existed: already reported
        try:
            rec.file = WavFile.create(rec.path, rec.channels, rec.fmt)
        except OSError as exc:
            self._fail(rec, _reason(exc, rec.path))
            return
        with self._lock:
            self._files_open += 1
            rec.state = _move(rec.state, _Ev.CREATED)

    def _append(self, rec: _Rec, data: bytes) -> None:
        n = len(data)
        with self._lock:
            rec.queued -= n
            self._queued -= n
            writing = rec.state in _WRITING and rec.file is not None
            if not writing:
                self._dropped += n
        if not writing or rec.file is None:
            return
        before = rec.file.data_bytes
        try:
            rec.file.append(data)
        except OSError as exc:
            self._written += rec.file.data_bytes - before
            self._fail(rec, _reason(exc, rec.path))
            return
        self._written += n
        if not self._dirty:
            self._next_patch = time.monotonic() + self.flush_s
        self._dirty.add(rec)

    def _finish(self, rec: _Rec) -> None:
        with self._lock:
            if rec.state is not _S.CLOSING:
                return  # failed meanwhile: on_error was (or will be) the final report
        f = rec.file
        if f is None:  # cannot happen: CLOSING after create failed is FAILED
            raise RuntimeError(f"recording {rec.rec_id} is closing without a file")
        self._dirty.discard(rec)
        # The file is the sealing thread's from here: nothing else queued can touch it
        # (CLOSING takes no more audio; the header patch comes with the close).
        rec.file = None
        self._sealers.submit(partial(self._seal, rec, f))

    def _seal(self, rec: _Rec, f: WavFile) -> None:
        """A sealing thread: patch, fsync, read back and close ``f``, then report."""
        try:
            try:
                summary = f.close()
            except OSError as exc:  # f is closed now; _fail summarises what is on disk
                self._fail(rec, _reason(exc, rec.path), f)
                return
            with self._lock:
                self._files_open -= 1
                rec.state = _move(rec.state, _Ev.CLOSED)
                self._active.pop(rec.rec_id, None)
            self._deliver(self._on_closed, rec.rec_id, summary)
        except Exception as exc:  # a bug must not leave the recording without a report
            log.exception("recording_writer_bug", item="seal")
            try:
                self._fail(rec, f"internal error in the recording writer: {exc!r}", f)
            except Exception:
                log.exception("recording_writer_bug", item="fail")

    def _report_overflows(self) -> None:
        with self._lock:
            recs, self._overflowed = self._overflowed, []
        for rec in recs:
            self._fail(rec, rec.reason)

    def _patch_dirty(self) -> None:
        """Rewrite the sizes of every file with unpatched audio (the ``flush_s`` rule)."""
        dirty, self._dirty = self._dirty, set()
        for rec in dirty:
            if rec.file is None or rec.file.closed or not rec.file.dirty:
                continue
            try:
                rec.file.patch()
            except OSError as exc:
                self._fail(rec, _reason(exc, rec.path))

    def _fail(self, rec: _Rec, reason: str, file: WavFile | None = None) -> None:
        """Close ``rec``'s file (``file``, the one a sealing thread holds, else the
        recording's) as well as the disk allows, mark it FAILED and report ``on_error``
        with a summary of what is on disk (None if there is no file or it cannot be
        read)."""
        with self._lock:
            if rec.state in (_S.DONE, _S.FAILED):
                return
        summary: WavSummary | None = None
        f, rec.file = file or rec.file, None
        self._dirty.discard(rec)
        if f is not None:
            with self._lock:
                self._files_open -= 1
            if not f.closed:
                try:
                    summary = f.close(sync=False)
                except (OSError, ValueError):
                    f.abandon()
            if summary is None:
                try:  # the header may be stale or the file cut mid-frame: fix what we can
                    summary = repair(f.path, channels=f.channels, fmt=f.fmt)
                except (OSError, WavError):
                    summary = None
        with self._lock:
            rec.state = _move(rec.state, _Ev.ERROR)
            self._active.pop(rec.rec_id, None)
            self._failures += 1
        log.error("recording_write_failed", recording=rec.rec_id, reason=reason,
                  path=str(rec.path), kept_s=summary.duration_s if summary else 0.0,
                  action="the call goes on unrecorded; new recordings will try the disk again")
        self._deliver(self._on_error, rec.rec_id, reason, summary)

    def _deliver(self, fn: Callable[..., None], *args: object) -> None:
        """Run a report callback through ``call_soon`` (or here); never raises."""
        cb = partial(fn, *args)
        if self._call_soon is None:
            try:
                cb()
            except Exception:
                log.exception("recording_writer_callback_failed",
                              callback=getattr(fn, "__name__", repr(fn)), recording=args[0])
            return
        try:
            self._call_soon(cb)
        except RuntimeError:  # the loop is closed: nobody is left to tell
            log.error("recording_report_lost", recording=args[0],
                      reason="the event loop is closed")


class _Sealers:
    """``count`` daemon threads running the jobs handed to :meth:`submit` (each job
    handles its own errors). Daemon threads, like the writer's: a disk that hangs in an
    fsync must not keep the process from exiting (the next start repairs the file),
    which a ``ThreadPoolExecutor``'s threads would. Used by the writer thread only."""

    def __init__(self, count: int) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"recording-seal-{i}",
                                          daemon=True) for i in range(count)]
        self._started = False

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` on one of the threads (started on the first job)."""
        if not self._started:
            self._started = True
            for t in self._threads:
                t.start()
        self._jobs.put(job)

    def join(self) -> None:
        """Let the threads finish every job submitted, then end them."""
        if not self._started:
            return
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()


def _move(state: RecState, event: _Ev) -> RecState:
    """The state after ``event`` (the caller holds the lock). Raises ``RuntimeError`` for
    a move the table does not allow (a bug in this module)."""
    try:
        return _TRANSITIONS[(state, event)]
    except KeyError:
        raise RuntimeError(f"recording writer: {event.value} in state {state.value}") from None


def _reason(exc: OSError, path: Path) -> str:
    """``"<what the OS said>: <path>"``, e.g. ``"No space left on device: /rec/x.wav"``."""
    return f"{exc.strerror or exc}: {path}"
