"""Report figures from hand-built CDRs and queue_log lines, every expected number worked out by
hand in a comment. queue_log data positions follow switchd/acd/engine.py's ``_log(`` calls:
CONNECT|holdtime|bridged|ringtime, COMPLETEAGENT/COMPLETECALLER|holdtime|calltime|origpos,
ABANDON|pos|origpos|waittime, EXITWITHTIMEOUT|pos|origpos|waittime, CALLBACK|number|pos|wait,
BLINDTRANSFER|target|switchd|holdtime|calltime|origpos, RINGNOANSWER|ms, PAUSE|reason."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import pytest

from switchd.events import QueueLogEntry
from switchd.reports.figures import compute
from switchd.reports.model import CallRow, Figures, ReportSettings
from tests.report_stored import compute_stored

S = ReportSettings(sl_threshold_s=20.0, short_abandon_s=5.0)


def utc(text: str) -> float:
    """Epoch seconds of a UTC wall time "YYYY-MM-DD HH:MM[:SS]"."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def call(uid: str, start: str, *, answer_after: float | None = None, dur: float = 60.0,
         direction: str = "inbound", disposition: str | None = None, queue: str | None = None,
         agent: str | None = None, extension: int | None = None, wait_s: float = 0.0,
         ivr_path: str | None = None, blocked: str | None = None, billsec: int = 0,
         hangup_by: str | None = "caller") -> CallRow:
    t = utc(start)
    answer = None if answer_after is None else t + answer_after
    disp = disposition or ("ANSWERED" if answer is not None else "NO ANSWER")
    return CallRow(uid, t, answer, t + dur, direction, disp, queue, agent, extension, wait_s,
                   ivr_path, blocked, billsec, hangup_by)


def q(when: str, uid: str, queue: str, agent: str, event: str, *data: str) -> QueueLogEntry:
    return QueueLogEntry(utc(when), uid, queue, agent, event, tuple(data))


# ---------------------------------------------------------------- the day fixture (UTC)
# Hour 09: six inbound calls and one outbound.
CALLS = [
    # c1: sales, waited 12 s, a1 answered, talked 100 s.
    call("c1", "2026-12-07 09:05:00", answer_after=15, dur=115, queue="sales", agent="a1",
         wait_s=12, billsec=100),
    # c2: sales, waited 30 s (over T=20), a2 answered, talked 200 s.
    call("c2", "2026-12-07 09:10:00", answer_after=32, dur=232, queue="sales", agent="a2",
         wait_s=30, billsec=200),
    # c3: came through the IVR, abandoned in sales after 3 s (a short abandon).
    call("c3", "2026-12-07 09:20:00", queue="sales", wait_s=3, ivr_path="main:menu>sales"),
    # c4: abandoned in sales after 40 s.
    call("c4", "2026-12-07 09:30:00", queue="sales", wait_s=40),
    # c5: blocked at the trunk limit.
    call("c5", "2026-12-07 09:40:00", disposition="CONGESTION", blocked="trunk_limit"),
    # c6: the IVR alone (opening hours), nobody answered.
    call("c6", "2026-12-07 09:50:00", ivr_path="main:menu>hours"),
    # c7: outbound, never offered.
    call("c7", "2026-12-07 09:55:00", direction="outbound", answer_after=5, billsec=55),
    # Hour 10 — c8: one CDR for a call a1 answered in sales after 25 s (over T), blind-
    # transferred after 50 s to support where a2 answered after 8 s more; CDR wait 25 + 8 = 33 s,
    # agent the first answer's (a1), queue the last (support), billsec end − answer =
    # 10:20:15 − 10:15:27 = 288.
    call("c8", "2026-12-07 10:15:00", answer_after=27, dur=315, queue="support", agent="a1",
         wait_s=33, billsec=288),
    # Hour 11 — c10: refused FULL in sales, overflowed into support, a2 answered after 4 s.
    call("c10", "2026-12-07 11:00:00", answer_after=5, dur=65, queue="support", agent="a2",
         wait_s=4, billsec=60),
    # c11: asked for a callback after 30 s in sales; the original call is not answered.
    call("c11", "2026-12-07 11:10:00", queue="sales", wait_s=30, dur=40),
    # c12: timed out of sales after 60 s, sent on to extension 201 which answered.
    call("c12", "2026-12-07 11:20:00", answer_after=70, dur=100, queue="sales", extension=201,
         wait_s=60, billsec=30),
    # c13: refused JOINEMPTY in sales, released busy (no CDR queue: refused joins have none).
    call("c13", "2026-12-07 11:30:00", disposition="BUSY", dur=1),
]

LOG = [
    q("2026-12-07 09:05:03", "c1", "sales", "NONE", "ENTERQUEUE", "", "5550001"),
    q("2026-12-07 09:05:15", "c1", "sales", "a1", "CONNECT", "12", "c1", "3"),
    q("2026-12-07 09:06:55", "c1", "sales", "a1", "COMPLETECALLER", "12", "100", "1"),
    q("2026-12-07 09:10:02", "c2", "sales", "NONE", "ENTERQUEUE", "", "5550002"),
    q("2026-12-07 09:10:17", "c2", "sales", "a1", "RINGNOANSWER", "15000"),
    q("2026-12-07 09:10:32", "c2", "sales", "a2", "CONNECT", "30", "c2", "10"),
    q("2026-12-07 09:13:52", "c2", "sales", "a2", "COMPLETEAGENT", "30", "200", "1"),
    q("2026-12-07 09:20:00", "c3", "sales", "NONE", "ENTERQUEUE", "", "5550003"),
    q("2026-12-07 09:20:03", "c3", "sales", "NONE", "ABANDON", "1", "1", "3"),
    q("2026-12-07 09:30:00", "c4", "sales", "NONE", "ENTERQUEUE", "", "5550004"),
    q("2026-12-07 09:30:40", "c4", "sales", "NONE", "ABANDON", "1", "1", "40"),
    q("2026-12-07 10:15:02", "c8", "sales", "NONE", "ENTERQUEUE", "", "5550008"),
    q("2026-12-07 10:15:27", "c8", "sales", "a1", "CONNECT", "25", "c8", "2"),
    q("2026-12-07 10:16:17", "c8", "sales", "a1", "BLINDTRANSFER", "queue:support", "switchd",
      "25", "50", "1"),
    q("2026-12-07 10:16:17", "c8", "support", "NONE", "ENTERQUEUE", "", "5550008"),
    q("2026-12-07 10:16:25", "c8", "support", "a2", "CONNECT", "8", "c8", "3"),
    q("2026-12-07 10:20:15", "c8", "support", "a2", "COMPLETECALLER", "8", "230", "1"),
    q("2026-12-07 11:00:00", "c10", "sales", "NONE", "ENTERQUEUE", "", "5550010"),
    q("2026-12-07 11:00:00", "c10", "sales", "NONE", "FULL"),
    q("2026-12-07 11:00:01", "c10", "support", "NONE", "ENTERQUEUE", "", "5550010"),
    q("2026-12-07 11:00:05", "c10", "support", "a2", "CONNECT", "4", "c10", "2"),
    q("2026-12-07 11:01:05", "c10", "support", "a2", "COMPLETECALLER", "4", "60", "1"),
    q("2026-12-07 11:10:02", "c11", "sales", "NONE", "ENTERQUEUE", "", "5550011"),
    q("2026-12-07 11:10:32", "c11", "sales", "NONE", "CALLBACK", "5550011", "1", "30"),
    q("2026-12-07 11:20:00", "c11", "sales", "a1", "CONNECT", "598", "cb-1", "4"),
    q("2026-12-07 11:22:00", "c11", "sales", "a1", "COMPLETEAGENT", "598", "120", "1"),
    q("2026-12-07 11:20:02", "c12", "sales", "NONE", "ENTERQUEUE", "", "5550012"),
    q("2026-12-07 11:21:02", "c12", "sales", "NONE", "EXITWITHTIMEOUT", "1", "1", "60"),
    q("2026-12-07 11:30:00", "c13", "sales", "NONE", "ENTERQUEUE", "", "5550013"),
    q("2026-12-07 11:30:00", "c13", "sales", "NONE", "JOINEMPTY"),
    # a1 pauses for lunch: the ACD writes one line per queue of the agent (sales, support).
    q("2026-12-07 12:00:00", "NONE", "sales", "a1", "PAUSE", "lunch"),
    q("2026-12-07 12:00:00", "NONE", "support", "a1", "PAUSE", "lunch"),
    q("2026-12-07 12:30:00", "NONE", "sales", "a1", "UNPAUSE", ""),
    q("2026-12-07 12:30:00", "NONE", "support", "a1", "UNPAUSE", ""),
    # a1 goes not ready (RONA) at 23:50 and is still paused at the end of the day.
    q("2026-12-07 23:50:00", "NONE", "sales", "a1", "PAUSE", "rona"),
]

DAY = (utc("2026-12-07 00:00"), utc("2026-12-08 00:00"))


@pytest.fixture(scope="module", params=["queue_log file", "stored facts"], autouse=True)
def path(request, tmp_path_factory):
    """Every figure of this module from the queue_log file's fold and again from the report
    facts the daemon stores as it writes the queue_log (switchd.reports.facts)."""
    if request.param == "queue_log file":
        yield request.param
        return
    folder = tmp_path_factory.mktemp("stored")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(globals(), "compute", partial(compute_stored, folder))
        yield request.param


@pytest.fixture(scope="module")
def by_hour(path):
    return compute(CALLS, LOG, start=DAY[0], end=DAY[1], tz="UTC", by="hour", settings=S)


def _hour(report, label: str) -> Figures:
    return dict((iv.label, f) for iv, f in report.intervals)[label]


def test_hour_09_every_figure(by_hour):
    f = _hour(by_hour, "2026-12-07 09:00")
    assert f.offered == 6            # c1..c6 inbound; c7 is outbound
    assert f.answered == 2           # c1, c2
    assert f.unanswered == 4         # 6 − 2
    assert f.connection_rate == pytest.approx(2 / 6)
    assert f.abandoned == 2          # c3, c4
    assert f.short_abandoned == 1    # c3: waittime 3 < 5
    assert f.blocked == 1            # c5
    assert f.loss_rate == pytest.approx(0.5)   # (1 blocked + 2 abandoned) / 6
    assert f.ivr_only == 1           # c6 (c3 has an ivr_path but abandoned in a queue)
    assert f.queue_calls == 4        # c1..c4
    assert f.avg_wait_s == pytest.approx(21.25)   # (12 + 30 + 3 + 40) / 4 = 85 / 4
    assert f.max_wait_s == 40
    assert f.asa_s == pytest.approx(21.0)         # (12 + 30) / 2
    assert f.avg_talk_s == pytest.approx(150.0)   # (100 + 200) / 2
    # Within T=20: c1 (CONNECT holdtime 12); c2's 30 is not. Abandoned after T: c4 (40 > 20).
    assert f.sl1 == pytest.approx(0.25)    # 1 / (2 answered + 2 abandoned)
    assert f.sl2 == pytest.approx(1 / 3)   # 1 / (2 answered + 1 abandoned after T)
    assert f.sl3 == pytest.approx(0.25)    # 1 / 4 queue calls
    assert (f.refused, f.overflowed, f.callbacks) == (0, 0, 0)


def test_transferred_call_counts_once(by_hour):
    f = _hour(by_hour, "2026-12-07 10:00")
    # c8: two CONNECTs (a1 in sales, a2 in support) but one call.
    assert (f.offered, f.answered, f.queue_calls) == (1, 1, 1)
    assert f.asa_s == 33 and f.avg_talk_s == 288
    # The service level goes by the caller's whole wait, the CDR's 33 s > 20, so 0/1 (the
    # second CONNECT's 8 s in support does not make it "within T").
    assert f.sl1 == f.sl2 == f.sl3 == 0.0


def test_transfer_legs_sharing_a_uniqueid_are_one_call():
    legs = [call("x", "2026-12-07 10:00:00", answer_after=5, dur=100, queue="sales",
                 agent="a1", wait_s=5, billsec=95),
            call("x", "2026-12-07 10:00:50", answer_after=2, dur=50, agent="a2", billsec=48)]
    r = compute(legs, [], start=DAY[0], end=DAY[1], tz="UTC", by="day", settings=S)
    t = r.total
    # One call: offered 1, answered 1, talk = the longest billsec, 95.
    assert (t.offered, t.answered, t.avg_talk_s, t.asa_s) == (1, 1, 95.0, 5.0)


def test_hour_11_refused_overflow_callback(by_hour):
    f = _hour(by_hour, "2026-12-07 11:00")
    assert f.offered == 4                          # c10..c13
    assert f.answered == 2                         # c10 (agent), c12 (extension 201)
    assert f.connection_rate == pytest.approx(0.5)
    assert f.blocked == 1                          # c13 BUSY
    assert f.loss_rate == pytest.approx(0.25)      # (1 + 0) / 4
    assert f.refused == 2                          # c10 FULL, c13 JOINEMPTY
    # c10: ENTERQUEUE support after FULL in sales; c12: answered after EXITWITHTIMEOUT;
    # c13 was refused and released: not overflowed.
    assert f.overflowed == 2
    assert f.callbacks == 1                        # c11
    assert f.queue_calls == 4                      # all four have an ENTERQUEUE
    assert f.avg_wait_s == pytest.approx(94 / 3)   # c10 4 + c11 30 + c12 60 (c13 no queue)
    assert f.max_wait_s == 60
    assert f.asa_s == pytest.approx(32.0)          # (4 + 60) / 2
    assert f.avg_talk_s == pytest.approx(45.0)     # (60 + 30) / 2
    # Within T: c10 (CDR wait 4); c12 waited 60. 2 answered, 0 abandoned.
    assert f.sl1 == pytest.approx(0.5) and f.sl2 == pytest.approx(0.5)   # 1 / 2
    assert f.sl3 == pytest.approx(0.25)            # 1 / 4


def test_zero_traffic_hours_are_zeros_with_no_rates(by_hour):
    assert len(by_hour.intervals) == 24
    f = _hour(by_hour, "2026-12-07 03:00")
    d = f.as_dict()
    assert list(d)[:4] == ["offered", "answered", "unanswered", "connection_rate"]
    assert d["offered"] == d["answered"] == d["abandoned"] == 0
    for k in ("connection_rate", "loss_rate", "avg_wait_s", "max_wait_s", "asa_s",
              "avg_talk_s", "sl1", "sl2", "sl3"):
        assert d[k] is None, k


def test_total_and_busiest_hour(by_hour):
    t = by_hour.total
    assert t.offered == 11                         # 6 + 1 + 4
    assert t.answered == 5                         # 2 + 1 + 2
    assert t.abandoned == 2 and t.blocked == 2
    assert t.loss_rate == pytest.approx(4 / 11)    # (2 + 2) / 11
    # Within T: c1, c10 = 2; queue answered: c1, c2, c8, c10, c12 = 5; abandoned 2,
    # after T 1; queue calls c1..c4, c8, c10..c13 = 9.
    assert t.sl1 == pytest.approx(2 / 7)
    assert t.sl2 == pytest.approx(2 / 6)
    assert t.sl3 == pytest.approx(2 / 9)
    assert by_hour.busiest_hour == "2026-12-07 09:00"   # 6 calls
    daily = compute(CALLS, LOG, start=DAY[0], end=DAY[1], tz="UTC", by="day", settings=S)
    assert [iv.label for iv, _ in daily.intervals] == ["2026-12-07"]
    assert daily.total == t
    assert daily.busiest_hour == "09:00"


def test_agents(by_hour):
    a1, a2 = by_hour.agents
    # a1: CONNECT c1, c8, c11 = 3 calls; talk 100 (c1) + 50 (c8 transfer) + 120 (c11) = 270.
    assert (a1.agent, a1.calls_handled, a1.talk_s, a1.rona) == ("a1", 3, 270.0, 1)
    assert a1.aht_s == pytest.approx(90.0)    # 270 / 3
    # lunch 12:00–12:30 = 1800 s (written twice, once per queue: counted once);
    # rona 23:50 to the end of the day = 600 s.
    assert a1.not_ready_s == (("lunch", 1800.0), ("rona", 600.0))
    # a2: CONNECT c2, c8, c10 = 3; talk 200 + 230 + 60 = 490; aht 490 / 3.
    assert (a2.agent, a2.calls_handled, a2.talk_s, a2.rona) == ("a2", 3, 490.0, 0)
    assert a2.aht_s == pytest.approx(490 / 3)
    only = compute(CALLS, LOG, start=DAY[0], end=DAY[1], tz="UTC", by="day", settings=S,
                   agent="a2")
    assert [a.agent for a in only.agents] == ["a2"]
    assert only.total.offered == 2            # CDR agent a2: c2, c10


def test_queue_filter(by_hour):
    r = compute(CALLS, LOG, start=DAY[0], end=DAY[1], tz="UTC", by="hour", settings=S,
                queue="sales")
    f = _hour(r, "2026-12-07 09:00")
    # c1..c4 are sales calls; c5, c6 never reached a queue.
    assert (f.offered, f.answered, f.abandoned, f.blocked) == (4, 2, 2, 0)
    assert f.loss_rate == pytest.approx(0.5)   # 2 / 4
    # The total: c1..c4 and c11, c12 (CDR queue sales) and c8, c10, c13 (joined sales) = 9.
    assert r.total.offered == 9


def test_call_across_midnight_counts_on_the_day_it_started():
    calls = [call("m", "2026-12-07 23:59:50", dur=60, queue="sales", wait_s=40)]
    log = [q("2026-12-07 23:59:52", "m", "sales", "NONE", "ENTERQUEUE", "", "1"),
           q("2026-12-08 00:00:32", "m", "sales", "NONE", "ABANDON", "1", "1", "40")]
    r = compute(calls, log, start=DAY[0], end=utc("2026-12-09 00:00"), tz="UTC", by="day",
                settings=S)
    (d7, f7), (d8, f8) = r.intervals
    assert (d7.label, f7.offered, f7.abandoned) == ("2026-12-07", 1, 1)
    assert (d8.label, f8.offered, f8.abandoned) == ("2026-12-08", 0, 0)


def test_month_end_in_local_time():
    # 2026-12-01 03:00Z is 2026-11-30 22:00 in New York (EST, UTC−5): November there.
    # 2026-12-01 05:00Z is 2026-12-01 00:00 EST: December.
    calls = [call("n1", "2026-12-01 03:00:00"), call("n2", "2026-12-01 05:00:00"),
             call("n3", "2026-11-30 23:59:59")]
    r = compute(calls, [], start=utc("2026-11-01 04:00"), end=utc("2027-01-01 05:00"),
                tz="America/New_York", by="month", settings=S)
    assert [(iv.label, f.offered) for iv, f in r.intervals] == [("2026-11", 2), ("2026-12", 1)]
    u = compute(calls, [], start=utc("2026-11-01 00:00"), end=utc("2027-01-01 00:00"),
                tz="UTC", by="month", settings=S)
    # In UTC n3 (23:59:59 on the 30th) is November, n1 and n2 December.
    assert [(iv.label, f.offered) for iv, f in u.intervals] == [("2026-11", 1), ("2026-12", 2)]


def test_dst_days_and_the_repeated_hour():
    ny = "America/New_York"
    # Spring forward 2026-03-08 (05:00Z .. 04:00Z next day, 23 hours): a call at 07:30Z is
    # 03:30 EDT.
    spring = compute([call("s", "2026-03-08 07:30:00")], [], start=utc("2026-03-08 05:00"),
                     end=utc("2026-03-09 04:00"), tz=ny, by="hour", settings=S)
    assert len(spring.intervals) == 23
    assert spring.busiest_hour == "2026-03-08 03:00"
    # Fall back 2026-11-01 (25 hours): 05:30Z is 01:30 EDT, 06:30Z is 01:30 EST.
    fall = compute([call("f1", "2026-11-01 05:30:00"), call("f2", "2026-11-01 06:30:00"),
                    call("f3", "2026-11-01 06:40:00")], [],
                   start=utc("2026-11-01 04:00"), end=utc("2026-11-02 05:00"), tz=ny,
                   by="hour", settings=S)
    assert len(fall.intervals) == 25
    per = {iv.label: f.offered for iv, f in fall.intervals}
    assert per["2026-11-01 01:00-04:00"] == 1 and per["2026-11-01 01:00-05:00"] == 2
    assert fall.busiest_hour == "2026-11-01 01:00-05:00"
    day = compute([call("f1", "2026-11-01 05:30:00")], [], start=utc("2026-11-01 04:00"),
                  end=utc("2026-11-02 05:00"), tz=ny, by="day", settings=S)
    assert day.busiest_hour == "01:00"


def test_abandon_without_a_readable_waittime_is_not_short():
    calls = [call("w", "2026-12-07 08:00:00", queue="sales", wait_s=2)]
    log = [q("2026-12-07 08:00:00", "w", "sales", "NONE", "ENTERQUEUE", "", "1"),
           q("2026-12-07 08:00:02", "w", "sales", "NONE", "ABANDON", "1", "1")]
    t = compute(calls, log, start=DAY[0], end=DAY[1], tz="UTC", by="day", settings=S).total
    # Abandoned 1, not short (no waittime), counted "after T": SL2 = 0 / (0 + 1) = 0.
    assert (t.abandoned, t.short_abandoned, t.sl2) == (1, 0, 0.0)


def test_queue_log_call_without_a_cdr_yet_counts_at_its_join():
    log = [q("2026-12-07 16:00:00", "live", "sales", "NONE", "ENTERQUEUE", "", "1"),
           q("2026-12-07 16:00:09", "live", "sales", "NONE", "ABANDON", "1", "1", "9")]
    r = compute([], log, start=DAY[0], end=DAY[1], tz="UTC", by="hour", settings=S)
    f = _hour(r, "2026-12-07 16:00")
    assert (f.offered, f.abandoned, f.queue_calls, f.loss_rate) == (1, 1, 1, 1.0)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="hour, day, week, month"):
        compute([], [], start=0.0, end=1.0, tz="UTC", by="year")
    with pytest.raises(ValueError, match="time zone"):
        compute([], [], start=0.0, end=1.0, tz="Nowhere/Here", by="day")


# ------------------------------------------------ hold, wrap-up and occupancy (agent b1)
# b1 logs in to sales and support at 08:00 (one ADDMEMBER per queue) and out at 12:00:
# logged in 4 h = 14 400 s. d1: answered 09:00:10, on hold 09:01:00–09:01:30, talk 180 s
# (09:00:10–09:03:10), wrap-up 30 s (to 09:03:40). d2: talk 300 s 10:30:00–10:35:00,
# wrap-up 20 s. A break 11:00–11:15. A ring group's phone (ext/205) is no agent: its talk
# is not in anyone's occupancy.
OCC_CALLS = [
    call("d1", "2026-12-07 09:00:00", answer_after=10, dur=190, queue="sales", agent="b1",
         wait_s=10, billsec=180),
    call("d2", "2026-12-07 10:30:00", answer_after=0.5, dur=300, queue="support", agent="b1",
         wait_s=0.5, billsec=300),
    call("g1", "2026-12-07 10:00:00", answer_after=3, dur=103, extension=205, billsec=100),
]
OCC_LOG = [
    q("2026-12-07 08:00:00", "NONE", "sales", "b1", "ADDMEMBER"),
    q("2026-12-07 08:00:00", "NONE", "support", "b1", "ADDMEMBER"),
    q("2026-12-07 09:00:00", "d1", "sales", "NONE", "ENTERQUEUE", "", "5550001"),
    q("2026-12-07 09:00:10", "d1", "sales", "b1", "CONNECT", "10", "d1", "2"),
    q("2026-12-07 09:01:00", "d1", "sales", "b1", "HOLD", "trunk/1"),
    q("2026-12-07 09:01:30", "d1", "sales", "b1", "UNHOLD", "30"),
    q("2026-12-07 09:03:10", "d1", "sales", "b1", "COMPLETEAGENT", "10", "180", "1"),
    q("2026-12-07 09:03:40", "d1", "sales", "b1", "WRAPUPEND", "30"),
    q("2026-12-07 10:00:03", "g1", "group:all", "ext/205", "CONNECT", "3", "g1", "0"),
    q("2026-12-07 10:01:43", "g1", "group:all", "ext/205", "COMPLETECALLER", "3", "100", "1"),
    q("2026-12-07 10:30:00", "d2", "support", "NONE", "ENTERQUEUE", "", "5550002"),
    q("2026-12-07 10:30:00", "d2", "support", "b1", "CONNECT", "0", "d2", "1"),
    q("2026-12-07 10:35:00", "d2", "support", "b1", "COMPLETECALLER", "0", "300", "1"),
    q("2026-12-07 10:35:20", "d2", "support", "b1", "WRAPUPEND", "20"),
    q("2026-12-07 11:00:00", "NONE", "sales", "b1", "PAUSE", "break"),
    q("2026-12-07 11:00:00", "NONE", "support", "b1", "PAUSE", "break"),
    q("2026-12-07 11:15:00", "NONE", "sales", "b1", "UNPAUSE", ""),
    q("2026-12-07 11:15:00", "NONE", "support", "b1", "UNPAUSE", ""),
    q("2026-12-07 12:00:00", "NONE", "sales", "b1", "REMOVEMEMBER"),
    q("2026-12-07 12:00:00", "NONE", "support", "b1", "REMOVEMEMBER"),
]


def test_hold_wrapup_and_occupancy_of_an_agent_and_per_hour():
    r = compute(OCC_CALLS, OCC_LOG, start=DAY[0], end=DAY[1], tz="UTC", by="hour", settings=S)
    [b1] = [a for a in r.agents if a.agent == "b1"]
    assert (b1.calls_handled, b1.talk_s, b1.hold_s, b1.wrapup_s) == (2, 480.0, 30.0, 50.0)
    assert b1.aht_s == pytest.approx(265.0)           # (480 talk + 50 wrap-up) / 2
    assert b1.not_ready_s == (("break", 900.0),)
    assert b1.occupancy == pytest.approx(530 / 14400)  # (480 + 50) busy / 4 h logged in
    occ = {iv.label[-5:]: f.occupancy for iv, f in r.intervals}
    assert occ["08:00"] == 0.0                         # logged in, idle
    assert occ["09:00"] == pytest.approx(210 / 3600)   # d1: 180 talk + 30 wrap-up
    assert occ["10:00"] == pytest.approx(320 / 3600)   # d2: 300 + 20 (not ext/205's 100)
    assert occ["11:00"] == 0.0
    assert occ["07:00"] is None and occ["12:00"] is None   # nobody logged in
    assert r.total.occupancy == pytest.approx(530 / 14400)
    wrap = {iv.label[-5:]: f.avg_wrapup_s for iv, f in r.intervals}
    assert (wrap["09:00"], wrap["10:00"], wrap["08:00"]) == (30.0, 20.0, None)
    assert r.total.avg_wrapup_s == pytest.approx(25.0)
    [ring] = [a for a in r.agents if a.agent == "ext/205"]
    assert ring.occupancy is None and ring.talk_s == 100.0


def test_an_agent_logged_in_before_the_log_counts_from_the_start_of_the_report():
    # b2's first line is a call: it logged in before the log read starts. Logged in from
    # the report's start (00:00) to its REMOVEMEMBER at 10:00 = 36 000 s; busy 600 s.
    log = [q("2026-12-07 09:10:00", "e1", "sales", "b2", "COMPLETEAGENT", "5", "600", "1"),
           q("2026-12-07 10:00:00", "NONE", "sales", "b2", "REMOVEMEMBER")]
    r = compute([], log, start=DAY[0], end=DAY[1], tz="UTC", by="day", settings=S)
    [b2] = r.agents
    assert b2.occupancy == pytest.approx(600 / 36000)
    # An occupancy over a part of the period: 09:00–09:30 holds 09:00–09:10 of the call.
    part = compute([], log, start=utc("2026-12-07 09:00"), end=utc("2026-12-07 09:30"),
                   tz="UTC", by="hour", settings=S)
    assert part.total.occupancy == pytest.approx(600 / 1800)


def test_daily_and_monthly_traffic_tables_whatever_the_interval():
    # Hourly report over 30 Nov – 1 Dec (New York): the traffic tables are per local day and
    # month. n3 (30 Nov 23:59:59Z = 18:59:59 EST) and n1 (1 Dec 03:00Z = 30 Nov 22:00 EST)
    # are 30 November there; n2 (1 Dec 05:00Z = 00:00 EST) is 1 December.
    calls = [call("n1", "2026-12-01 03:00:00", answer_after=5, billsec=55),
             call("n2", "2026-12-01 05:00:00"), call("n3", "2026-11-30 23:59:59")]
    r = compute(calls, [], start=utc("2026-11-30 05:00"), end=utc("2026-12-02 05:00"),
                tz="America/New_York", by="hour", settings=S)
    assert len(r.intervals) == 48
    assert [(iv.label, f.offered, f.answered) for iv, f in r.daily] == [
        ("2026-11-30", 2, 1), ("2026-12-01", 1, 0)]
    assert r.daily[0][1].connection_rate == 0.5 and r.daily[0][1].avg_talk_s == 55
    assert [(iv.label, f.offered) for iv, f in r.monthly] == [("2026-11", 2), ("2026-12", 1)]
    by_day = compute(calls, [], start=utc("2026-11-30 05:00"), end=utc("2026-12-02 05:00"),
                     tz="America/New_York", by="day", settings=S)
    assert by_day.daily == by_day.intervals and by_day.daily == r.daily


def test_abandon_rate(by_hour):
    f = _hour(by_hour, "2026-12-07 09:00")
    assert f.abandon_rate == pytest.approx(2 / 6)   # c3, c4 of six offered


def test_a_queue_report_has_that_queues_agent_figures():
    r = compute(OCC_CALLS, OCC_LOG, start=DAY[0], end=DAY[1], tz="UTC", by="day", settings=S,
                queue="support")
    [b1] = r.agents
    # support only: d2 (talk 300 s, wrap-up 20 s); b1 was a member 08:00-12:00 too.
    assert (b1.calls_handled, b1.talk_s, b1.wrapup_s, b1.hold_s) == (1, 300.0, 20.0, 0.0)
    assert b1.occupancy == pytest.approx(320 / 14400)
    assert b1.not_ready_s == (("break", 900.0),)
    none = compute(OCC_CALLS, OCC_LOG, start=DAY[0], end=DAY[1], tz="UTC", by="day",
                   settings=S, queue="nosuch")
    assert none.agents == () and none.total.occupancy is None


def test_a_restart_ends_logins_and_pauses_and_idle_agents_are_listed():
    # Found in review. The daemon writes no REMOVEMEMBER as it stops, and QUEUESTART as
    # it starts: whoever was logged in or paused then is not any more. An agent logged in
    # all day without a call is in the table (0 %), not left out.
    log = [q("2026-12-07 08:00:00", "NONE", "sales", "b3", "ADDMEMBER"),
           q("2026-12-07 08:00:00", "NONE", "sales", "b4", "ADDMEMBER"),
           q("2026-12-07 08:30:00", "NONE", "sales", "b4", "PAUSE", "lunch"),
           q("2026-12-07 10:00:00", "x1", "sales", "b3", "COMPLETEAGENT", "0", "3600", "1"),
           q("2026-12-07 10:00:00", "NONE", "NONE", "NONE", "QUEUESTART", ""),
           q("2026-12-07 17:00:00", "NONE", "sales", "b3", "ADDMEMBER"),
           q("2026-12-07 17:30:00", "NONE", "sales", "b3", "REMOVEMEMBER"),
           q("2026-12-07 11:00:00", "NONE", "sales", "b5", "ADDMEMBER"),
           q("2026-12-07 14:00:00", "NONE", "sales", "b5", "REMOVEMEMBER")]
    r = compute([], log, start=utc("2026-12-07 08:00"), end=utc("2026-12-07 18:00"),
                tz="UTC", by="day", settings=S)
    by = {a.agent: a for a in r.agents}
    # b3: logged in 08:00-10:00 and 17:00-17:30 = 9000 s, busy 3600 s.
    assert by["b3"].occupancy == pytest.approx(3600 / 9000)
    # b4: paused 08:30 until the restart at 10:00, then logged out.
    assert by["b4"].not_ready_s == (("lunch", 5400.0),) and by["b4"].occupancy == 0.0
    # b5: logged in 11:00-14:00 without a call or a pause: listed, 0 %.
    assert (by["b5"].calls_handled, by["b5"].occupancy) == (0, 0.0)
    assert r.total.occupancy == pytest.approx(3600 / (9000 + 7200 + 10800))
    queue_only = compute([], log, start=utc("2026-12-07 08:00"), end=utc("2026-12-07 18:00"),
                         tz="UTC", by="day", settings=S, queue="sales")
    assert {a.agent: a.occupancy for a in queue_only.agents}["b3"] == pytest.approx(0.4)


def test_a_caller_answered_after_leaving_the_queue_is_not_within_the_service_level():
    # Found in review: left sales by a key after 8 s, then extension 201 answered it. No
    # queue agent took it (no CONNECT): answered, but not "within T" (as switchd.acd.stats).
    calls = [call("k", "2026-12-07 10:00:00", answer_after=12, dur=72, queue="sales",
                  extension=201, wait_s=8, billsec=60)]
    log = [q("2026-12-07 10:00:00", "k", "sales", "NONE", "ENTERQUEUE", "", "1"),
           q("2026-12-07 10:00:08", "k", "sales", "NONE", "EXITWITHKEY", "0", "1", "1", "8")]
    for queue in (None, "sales"):
        t = compute(calls, log, start=DAY[0], end=DAY[1], tz="UTC", by="day", settings=S,
                    queue=queue).total
        assert (t.answered, t.overflowed, t.sl1, t.sl3) == (1, 1, 0.0, 0.0), queue
