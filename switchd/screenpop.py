"""The screen pop: ``call.offered`` for each extension that rings to take a call, with
what the agent needs before answering and the customer's history from the stored CDRs
(issue 17 item 4).

An edge service, not an engine: it follows the core's events on the bus, reads the live
call from the core at the instant its phone rings (the offer's purpose says whether the
ring connects the call: a queue's offer, a direct call, a ring group, a transfer, a
consultation; not a supervisor's monitor ring, nor the ring of the agent's own
click-to-dial — but a queue callback's ring, which the ACD names with its
``queue.callback dialling``) and looks the customer's number up in SQLite off the loop.

The look-up starts when an inbound call is created, so it is usually done before any
phone rings; when it is not, the pop goes out as soon as it is, if that phone still
rings for the call (or has answered it). History comes from the CDRs: read from SQLite
once per number (the CDR writer flushed first, bounded, so a call that ended a moment ago
counts), then kept in memory and moved on with the very CDRs the writer stores as that
number's calls end; a read that may have missed one (the flush timed out, a call ended
during it) is used once and not kept. A database that fails never holds a pop back: it goes out without
history, with ``history_error``, and the failure is logged once until reads work again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import ClassVar, Protocol

import structlog

from switchd.core.call import Call, Offer, OfferPurpose
from switchd.events import (
    CallEnded,
    CallNew,
    CallOffered,
    CallRinging,
    Cdr,
    Direction,
    Event,
    QueueCallback,
)
from switchd.store.schema import caller_of, cdr_row

__all__ = ["FLUSH_WAIT_S", "HISTORY_TIMEOUT_S", "KNOWN_MAX", "History", "HistoryStore", "ScreenPop",
           "customer_number", "offered"]

log = structlog.get_logger("switchd")

#: Seconds a look-up may take in all (the writer's flush, then the query) before the pop
#: goes out without history: an agent must not wait on a slow disk for its phone's pop.
HISTORY_TIMEOUT_S = 3.0
#: Seconds the look-up waits for the CDR writer to write the calls that just ended.
FLUSH_WAIT_S = 1.0
#: Customer numbers whose history is kept in memory after a look-up (least recently
#: used dropped first): a number that calls again is popped without reading SQLite, and a
#: busy number (a switchboard, a load test) never costs a count over all its calls.
KNOWN_MAX = 10_000

#: Offer purposes whose ring is to take the call (monitor and originate rings are not).
_POPS = frozenset({OfferPurpose.CONNECT, OfferPurpose.CONSULT})


class HistoryStore(Protocol):
    """Where the customer's calls are read (``switchd.store.Store``)."""

    async def call_history(self, number: str) -> dict[str, object]:
        """``calls`` (a count) and ``last`` (the newest CDR's columns, or None)."""
        ...


@dataclass(frozen=True, slots=True)
class History:
    """A customer number's stored calls as the pop shows them; ``error`` (the rest
    unset) when they could not be read."""

    calls: int = 0
    last_time: str | None = None
    last_agent: str | None = None
    last_extension: int | None = None
    last_recording: str | None = None
    last_note: str | None = None
    error: str | None = None
    #: The newest call's id (not shown: a later note on that call makes this stale).
    last_call: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> History:
        """From ``HistoryStore.call_history``'s answer."""
        last, counted = row.get("last"), row.get("calls")
        calls = counted if isinstance(counted, int) else 0
        if not isinstance(last, Mapping):
            return cls(calls)
        ext = last.get("extension")   # an INTEGER column
        return cls(calls, _text(last.get("start")), _text(last.get("agent")),
                   ext if isinstance(ext, int) else None,
                   _text(last.get("recording_id")), _text(last.get("note")),
                   last_call=_text(last.get("uniqueid")))

    def after(self, cdr: Cdr) -> History:
        """This history with ``cdr`` (a call of the same number that just ended) added:
        what the stored CDRs say once the writer has written it. The newest call is the
        one with the latest start (then uniqueid), as ``SQL_CALL_HISTORY_LAST`` orders
        them, not the one that ended last."""
        row = cdr_row(cdr)
        start = _text(row.get("start"))
        if self.calls and self.last_time is not None and (start or "", cdr.uniqueid) < (
                self.last_time, self.last_call or ""):
            return replace(self, calls=self.calls + 1)
        return History.from_row({"calls": self.calls + 1, "last": row})

    def apply(self, pop: CallOffered) -> CallOffered:
        """``pop`` with these facts: ``new``/``previous_calls`` and the last call's, or
        ``history_error``."""
        if self.error is not None:
            return replace(pop, history_error=self.error)
        return replace(pop, new=int(self.calls == 0), previous_calls=self.calls,
                       last_time=self.last_time, last_agent=self.last_agent,
                       last_extension=self.last_extension, last_recording=self.last_recording,
                       last_note=self.last_note)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def customer_number(call: Call) -> str | None:
    """The number whose history a pop shows: the caller of an inbound call, the number
    an outbound call dialled (as the CDR's ``caller_of`` keys contacts); None for an
    internal call or an empty number."""
    if call.direction is Direction.INBOUND:
        number = call.caller
    elif call.direction is Direction.OUTBOUND:
        number = call.callee
    else:
        return None
    return number or None


def offered(call: Call, offer: Offer, now: float, agent: str | None) -> CallOffered:
    """The pop for ``offer`` ringing now, without history. ``wait_s``: the caller's
    queue wait so far when it queued (every queue, the current wait included), else
    seconds since the call started; ``queue`` only while the caller waits in one."""
    if call.queue_wait_s is not None or call.queue_since is not None:
        waited = (call.queue_wait_s or 0.0) + (
            now - call.queue_since if call.queue_since is not None else 0.0)
    else:
        waited = now - call.start
    return CallOffered(
        call.call_id, now, offer.line, agent, call.caller, call.callee, call.dnis,
        call.trunk, call.direction, call.queue if call.queue_since is not None else None,
        round(max(waited, 0.0), 3), call.ivr_path, call.ivr_vars, call.vip)


class ScreenPop:
    """Publishes ``call.offered`` for rings that connect a call (see the module doc).

    ``calls``: the core's live calls (``SwitchCore.calls``), read when a phone rings;
    ``store``: where history is read; ``flush``: waits until the CDRs of ended calls are
    written; ``publish``: hands a pop to the CTI server; ``agent_at``: the ACD agent
    logged in at a phone, or None; ``listened``: whether a client listens for pops now
    (when none does, a new call's history is not read ahead: the ring that pops reads
    it). Feed it every bus event (:meth:`on_event`), or those in :attr:`FOLLOWS`: it
    ignores the others.
    """

    #: The events :meth:`on_event` acts on.
    FOLLOWS: ClassVar[tuple[type[Event], ...]] = (CallRinging, QueueCallback, CallNew, CallEnded)

    def __init__(self, calls: Mapping[str, Call], store: HistoryStore, *,
                 flush: Callable[[], Awaitable[None]], publish: Callable[[Event], None],
                 agent_at: Callable[[str], str | None],
                 timeout_s: float = HISTORY_TIMEOUT_S, flush_s: float = FLUSH_WAIT_S,
                 listened: Callable[[], bool] = lambda: True) -> None:
        self._calls = calls
        self._store = store
        self._flush = flush
        self._publish = publish
        self._agent_at = agent_at
        self._listened = listened
        self._timeout_s = timeout_s
        self._flush_s = min(flush_s, timeout_s)
        #: call id -> (customer number, its look-up), for the call's life.
        self._lookups: dict[str, tuple[str, asyncio.Future[History]]] = {}
        #: call id -> line -> the pop waiting for that call's look-up (the newest ring).
        self._waiting: dict[str, dict[str, CallOffered]] = {}
        #: Look-ups failed in a row: the first is logged, the recovery says how many.
        self._failures = 0
        #: number -> its history, kept current from the CDRs of calls that end (LRU).
        self._known: OrderedDict[str, History] = OrderedDict()
        #: number -> [look-ups in flight, a call of it ended meanwhile]: such a look-up
        #: may have missed that call, so its answer is used once and not kept.
        self._inflight: dict[str, list[int]] = {}

    def on_event(self, ev: Event) -> None:
        """Follow the core: a new inbound call starts its look-up, a ring pops, an ended
        call is forgotten. Other events are ignored."""
        if isinstance(ev, CallRinging):
            self._ringing(ev)
        elif isinstance(ev, QueueCallback) and ev.outcome == "dialling":
            self._callback(ev)
        elif isinstance(ev, CallNew):
            # Read the caller's history early, so the pop is ready when a phone rings —
            # unless no client listens for pops now (its ring reads it then, if one does).
            if ev.direction is Direction.INBOUND and ev.caller and self._listened():
                self._look_up(ev.call_id, ev.caller)
        elif isinstance(ev, CallEnded):
            self._forget(ev.call_id)
            self._ended(ev.cdr)

    def note_changed(self, call_id: str) -> None:
        """A note was stored on ended call ``call_id``: forget the history whose newest
        call it is (the next pop reads it again, note included)."""
        for number in [n for n, h in self._known.items() if h.last_call == call_id]:
            del self._known[number]

    async def close(self) -> None:
        """Cancel the look-ups still running (shutdown: before the store closes)."""
        tasks = [task for _, task in self._lookups.values() if not task.done()]
        self._lookups.clear()
        self._waiting.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ------------------------------------------------------------ internals

    def _ringing(self, ev: CallRinging) -> None:
        if not ev.line.startswith("ext/"):
            return
        call = self._calls.get(ev.call_id)
        offer = call.offers.get(ev.line) if call is not None else None
        if call is None or offer is None or offer.purpose not in _POPS:
            return
        # The ACD's offers (a queue, a ring group) are not the core's routed ones.
        agent = self._agent_at(offer.line) if not offer.routed else None
        self._pop(call, offer, offered(call, offer, ev.time, agent))

    def _callback(self, ev: QueueCallback) -> None:
        """A queue callback rings its agent's phone first (an ``Originate``, which pops
        nothing by itself): the agent sees whom it is about to call back, for which queue,
        and that customer's history."""
        call = self._calls.get(ev.dial_call_id or "")
        offer = next((o for o in call.offers.values()
                      if o.purpose is OfferPurpose.ORIGINATE), None) if call is not None else None
        if call is None or offer is None:
            return
        pop = replace(offered(call, offer, ev.time, ev.agent), queue=ev.queue)
        self._pop(call, offer, pop)

    def _pop(self, call: Call, offer: Offer, pop: CallOffered) -> None:
        """Send ``pop`` with the customer's history: at once when it is known, else as
        soon as the look-up ends."""
        number = customer_number(call)
        if number is None:
            self._send(pop)
            return
        task = self._look_up(call.call_id, number)
        if task.done():
            self._send(task.result().apply(pop))
        else:
            # A second ring of the same phone (offered again) replaces the first.
            self._waiting.setdefault(call.call_id, {})[offer.line] = pop

    def _look_up(self, call_id: str, number: str) -> asyncio.Future[History]:
        known = self._lookups.get(call_id)
        if known is not None and known[0] == number:
            return known[1]
        loop = asyncio.get_running_loop()
        history = self._known.get(number)
        task: asyncio.Future[History]
        if history is not None:
            # Known: the pop goes out in the same dispatch as its ring.
            self._known.move_to_end(number)
            task = loop.create_future()
            task.set_result(history)
        else:
            task = loop.create_task(self._history(number))
            task.add_done_callback(lambda t: self._looked_up(call_id, t))
        self._lookups[call_id] = (number, task)
        return task

    def _ended(self, cdr: Cdr) -> None:
        """Keep the known history of ``cdr``'s number current (the count and the newest
        call, from the same record the CDR writer stores)."""
        number = caller_of(cdr)
        if number is None:
            return
        flight = self._inflight.get(number)
        if flight is not None:
            flight[1] += 1
        known = self._known.get(number)
        if known is not None:
            self._known[number] = known.after(cdr)
            self._known.move_to_end(number)

    def _remember(self, number: str, history: History) -> None:
        self._known[number] = history
        self._known.move_to_end(number)
        while len(self._known) > KNOWN_MAX:
            self._known.popitem(last=False)

    async def _history(self, number: str) -> History:
        """The calls of ``number``: known already, else read from the store (and kept when
        no call of that number ended during the read). Never raises but for
        cancellation."""
        known = self._known.get(number)
        if known is not None:
            self._known.move_to_end(number)
            return known
        flight = self._inflight.setdefault(number, [0, 0])
        flight[0] += 1
        ended_before = flight[1]
        try:
            history, flushed = await self._read(number)
        finally:
            flight[0] -= 1
            missed = flight[1] != ended_before
            if not flight[0]:
                del self._inflight[number]
        if history.error is None and flushed and not missed:
            self._remember(number, history)
        return history

    async def _read(self, number: str) -> tuple[History, bool]:
        """The stored calls of ``number`` and whether the CDR writer was flushed first
        (else calls that ended before may be missing); never raises but for
        cancellation."""
        flushed = False
        try:
            async with asyncio.timeout(self._timeout_s):
                # The writer batches: what ended a moment ago is written first, but a
                # failing writer only costs flush_s.
                with contextlib.suppress(TimeoutError, Exception):
                    await asyncio.wait_for(self._flush(), self._flush_s)
                    flushed = True
                row = await self._store.call_history(number)
        except TimeoutError:
            return self._failed(f"the call history took longer than {self._timeout_s:g} s",
                                None), flushed
        except Exception as exc:  # whatever the database says, the pop goes out
            return self._failed("the call history could not be read (the log says why: "
                                "call_history_failed)", exc), flushed
        if self._failures:
            log.info("call_history_recovered", failed=self._failures)
            self._failures = 0
        return History.from_row(row), flushed

    def _failed(self, why: str, exc: Exception | None) -> History:
        self._failures += 1
        if self._failures == 1:
            log.error("call_history_failed", reason=why,
                      error=f"{type(exc).__name__}: {exc}" if exc is not None else None,
                      msg="screen pops go out without the caller's history until the "
                      "database answers again")
        return History(error=why)

    def _looked_up(self, call_id: str, task: asyncio.Future[History]) -> None:
        known = self._lookups.get(call_id)
        if known is None or known[1] is not task or task.cancelled():
            return  # the call ended (or looks up another number now)
        waiting = self._waiting.pop(call_id, None)
        call = self._calls.get(call_id)
        if not waiting or call is None:
            return
        history = task.result()
        for line, pop in waiting.items():
            # Only a phone that still rings to take the call, or that has answered it:
            # one that stopped ringing (another took the call, it rang out) gets no pop.
            offer = call.offers.get(line)
            if (offer is not None and offer.purpose is not OfferPurpose.MONITOR) \
                    or line in call.legs:
                self._send(history.apply(pop))

    def _forget(self, call_id: str) -> None:
        self._waiting.pop(call_id, None)
        known = self._lookups.pop(call_id, None)
        if known is not None and not known[1].done():
            known[1].cancel()

    def _send(self, pop: CallOffered) -> None:
        # The note and the IVR variables stay out of the log: they are the CDR's to keep.
        facts = {"line": pop.line, "agent": pop.agent, "queue": pop.queue,
                 "wait_s": pop.wait_s, "new": pop.new, "previous_calls": pop.previous_calls,
                 "history_error": pop.history_error}
        log.info(pop.name, call_id=pop.call_id,
                 **{k: v for k, v in facts.items() if v is not None})
        self._publish(pop)
