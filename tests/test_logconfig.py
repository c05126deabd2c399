"""Behaviour of switchd.logconfig: JSON lines, console, levels, robustness."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator

import pytest
import structlog

from switchd.logconfig import configure_logging, get_logger


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def _lines(stream: io.BytesIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _text(stream: io.BytesIO) -> str:
    return stream.getvalue().decode("utf-8")


def test_json_line_has_utc_iso_timestamp_level_event_and_logger_first():
    out = io.BytesIO()
    configure_logging("json", "info", out)
    get_logger("switchd.core").info("call.offered", trunk=3)

    (rec,) = _lines(out)
    assert list(rec)[:3] == ["timestamp", "level", "event"]
    assert rec["level"] == "info"
    assert rec["event"] == "call.offered"
    assert rec["logger"] == "switchd.core"
    assert rec["trunk"] == 3
    ts = rec["timestamp"]
    assert isinstance(ts, str) and ts.endswith("Z") and "T" in ts
    parsed = dt.datetime.fromisoformat(ts)
    assert parsed.utcoffset() == dt.timedelta(0)
    assert abs((dt.datetime.now(dt.UTC) - parsed).total_seconds()) < 60


def test_each_event_is_exactly_one_line_even_with_newlines_in_values():
    out = io.BytesIO()
    configure_logging("json", "info", out)
    log = get_logger()
    log.info("one", note="line1\nline2")
    log.info("two")
    assert [r["event"] for r in _lines(out)] == ["one", "two"]
    assert "logger" not in _lines(out)[1]


def test_bound_contextvars_appear_in_every_line_inside_the_block_only():
    out = io.BytesIO()
    configure_logging("json", "info", out)
    log = get_logger("switchd.acd")
    with structlog.contextvars.bound_contextvars(
        call_id="01HX", line=4, agent="1001", queue="sales"
    ):
        log.info("agent.offered")
    log.info("after")

    inside, after = _lines(out)
    assert {k: inside[k] for k in ("call_id", "line", "agent", "queue")} == {
        "call_id": "01HX",
        "line": 4,
        "agent": "1001",
        "queue": "sales",
    }
    assert "call_id" not in after


def test_events_below_the_level_are_dropped():
    out = io.BytesIO()
    configure_logging("json", "warning", out)
    log = get_logger()
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    assert [(r["level"], r["event"]) for r in _lines(out)] == [("warning", "w"), ("error", "e")]


def test_exception_renders_as_a_string_field_at_error_level():
    out = io.BytesIO()
    configure_logging("json", "info", out)
    try:
        raise RuntimeError("board lost")
    except RuntimeError:
        get_logger().exception("driver.crashed")

    (rec,) = _lines(out)
    assert rec["level"] == "error"
    assert isinstance(rec["exception"], str)
    assert "RuntimeError: board lost" in rec["exception"]
    assert "Traceback" in rec["exception"]


def test_values_json_cannot_hold_are_written_as_strings():
    class Opaque:
        def __str__(self) -> str:
            return "opaque-thing"

    out = io.BytesIO()
    configure_logging("json", "info", out)
    cycle: list[object] = []
    cycle.append(cycle)
    log = get_logger()
    log.info("odd", obj=Opaque(), raw=b"\x00", nan=float("nan"), keys={(1, 2): "x"})
    log.info("cycle", value=cycle)

    log.info("huge", value=2**80)
    odd, cyc, huge = _lines(out)
    assert odd["obj"] == "opaque-thing"
    assert odd["nan"] is None  # orjson writes NaN as null, like JSON.stringify
    assert isinstance(odd["keys"], str) and "(1, 2)" in odd["keys"]
    assert odd["raw"] == str(b"\x00")
    assert cyc["event"] == "cycle" and isinstance(cyc["value"], str)
    assert huge["value"] == str(2**80)


def test_console_format_is_human_text_not_json():
    out = io.BytesIO()
    configure_logging("console", "info", out)
    get_logger().info("call.offered", trunk=3)

    text = _text(out)
    assert "call.offered" in text and "trunk" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])
    assert "\x1b[" not in text  # no colour codes on a non-TTY


def test_auto_on_a_non_tty_stream_writes_json():
    out = io.BytesIO()
    configure_logging("auto", "info", out)
    get_logger().info("hello")
    assert _lines(out)[0]["event"] == "hello"


def test_auto_on_a_tty_writes_console():
    class FakeTty(io.BytesIO):
        def isatty(self) -> bool:
            return True

    out = FakeTty()
    configure_logging("auto", "info", out)
    get_logger().info("hello")
    with pytest.raises(json.JSONDecodeError):
        json.loads(out.getvalue().splitlines()[0])
    assert "\x1b[" in _text(out)  # coloured for the person at the terminal


def test_reconfiguring_switches_stream_and_format_of_an_already_used_logger():
    first, second = io.BytesIO(), io.BytesIO()
    configure_logging("json", "info", first)
    log = get_logger("switchd.app")
    log.info("before")
    configure_logging("console", "info", second)
    log.info("after")

    assert [r["event"] for r in _lines(first)] == ["before"]
    assert "after" in _text(second)
    with pytest.raises(json.JSONDecodeError):
        json.loads(second.getvalue().splitlines()[0])


def test_raising_the_level_on_reload_reaches_an_already_used_logger():
    out = io.BytesIO()
    configure_logging("json", "info", out)
    log = get_logger()
    log.info("kept")
    configure_logging("json", "error", out)
    log.info("dropped")
    log.error("kept too")
    assert [r["event"] for r in _lines(out)] == ["kept", "kept too"]


class _ClosedPipe(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, s: bytes) -> int:  # type: ignore[override]
        self.writes += 1
        raise BrokenPipeError(32, "Broken pipe")


def test_a_broken_pipe_is_swallowed_and_not_retried():
    pipe = _ClosedPipe()
    configure_logging("json", "info", pipe)
    log = get_logger()
    log.info("lost")
    log.error("lost too")
    assert pipe.writes == 1


def test_a_closed_stream_does_not_raise():
    out = io.BytesIO()
    configure_logging("json", "info", out)
    out.close()
    get_logger().info("nowhere")


def test_each_line_is_written_with_one_write_and_flushed():
    class Recorder(io.BytesIO):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[str] = []

        def write(self, s: bytes) -> int:  # type: ignore[override]
            self.calls.append("write")
            return super().write(s)

        def flush(self) -> None:
            self.calls.append("flush")

    out = Recorder()
    configure_logging("json", "info", out)
    get_logger().info("a", x=1)
    get_logger().info("b")
    assert out.calls == ["write", "flush", "write", "flush"]
    assert out.getvalue().count(b"\n") == 2


@pytest.mark.parametrize(("fmt", "level"), [("xml", "info"), ("json", "verbose")])
def test_unknown_format_or_level_is_rejected_with_the_valid_choices(fmt: str, level: str):
    with pytest.raises(ValueError, match="use one of"):
        configure_logging(fmt, level, io.BytesIO())


def test_text_that_is_not_valid_unicode_still_gives_a_line_in_both_formats():
    out = io.BytesIO()
    configure_logging("json", "info", out)
    log = get_logger()
    log.info("odd file", name="caf\udce9.wav", **{"k\udcff": 1})
    (rec,) = _lines(out)
    assert rec["name"] == "caf\\udce9.wav" and rec["k\\udcff"] == 1
    configure_logging("console", "info", out)
    log.info("odd file", name="caf\udce9.wav")
    assert "caf\\udce9.wav" in _text(out).splitlines()[-1]


def test_a_value_whose_str_raises_does_not_lose_the_line():
    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no")

    out = io.BytesIO()
    configure_logging("json", "info", out)
    get_logger().info("x", value=Broken(), keys={Broken(): 1})
    (rec,) = _lines(out)
    assert rec["value"] == "<unprintable Broken>"


def test_the_pieces_are_structlogs_own():
    # JSON lines come from one fused processor whose output is the structlog chain's
    # (test_json_lines_are_those_of_structlogs_own_processor_chain); the console's
    # pieces are structlog's, and both write through structlog's BytesLogger.
    configure_logging("console", "info", io.BytesIO())
    cfg = structlog.get_config()
    assert isinstance(cfg["logger_factory"], structlog.BytesLoggerFactory)
    kinds = {type(p) for p in cfg["processors"]}
    assert structlog.processors.TimeStamper in kinds
    assert structlog.dev.ConsoleRenderer in kinds
    stamper = next(p for p in cfg["processors"] if isinstance(p, structlog.processors.TimeStamper))
    assert stamper.fmt == "iso" and stamper.utc
    configure_logging("json", "info", io.BytesIO())
    assert isinstance(structlog.get_config()["logger_factory"], structlog.BytesLoggerFactory)


def _structlog_reference_chain() -> list:
    """The JSON chain `_render_json` replaced, built from structlog's own processors."""
    from switchd import logconfig

    def first(logger, method_name, event_dict):
        head = {k: event_dict.pop(k) for k in ("timestamp", "level", "event") if k in event_dict}
        head.update(event_dict)
        return head

    return [logconfig._drop_below_level, structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level, logconfig._add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(), structlog.processors.format_exc_info,
            first, structlog.processors.JSONRenderer(serializer=logconfig._orjson_dumps,
                                                     default=logconfig._str_or_repr)]


def test_json_lines_are_those_of_structlogs_own_processor_chain():
    from switchd import logconfig

    configure_logging("json", "info", io.BytesIO())

    class Named:
        name = "switchd.core"

    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        exc = sys.exc_info()
    cases = [
        ("info", {"event": "call.ended", "call_id": "01X", "duration": 2, "q850": 16,
                  "agent": None, "wait_s": 0.25, "vip": False}),
        ("warning", {"event": "line.error", "line": "trunk/1", "reason": "busy"}),
        ("warn", {"event": "w", "level": "ignored", "timestamp": "ignored"}),
        ("error", {"event": "e", "logger": "mine", "exc_info": exc}),
        ("exception", {"event": "x", "exc_info": True}),
        ("info", {"event": "odd", "obj": object.__new__(Named), 7: "int key", "big": 2**70}),
        ("info", {"note": "no event"}),
    ]
    with structlog.contextvars.bound_contextvars(call_id="ctx", queue="sales"):
        for logger in (Named(), object()):
            for method, ev in cases:
                want = dict(ev)
                for proc in _structlog_reference_chain():
                    want = proc(logger, method, want)
                got = logconfig._render_json(logger, method, dict(ev))
                w, g = json.loads(want), json.loads(got)
                assert list(g) == list(w)
                w["timestamp"] = g["timestamp"]
                assert g == w
                assert got.count(b"\n") == 0


def test_json_renderer_drops_lines_below_the_level_as_structlog_did():
    from switchd import logconfig

    configure_logging("json", "warning", io.BytesIO())
    with pytest.raises(structlog.DropEvent):
        logconfig._render_json(object(), "info", {"event": "quiet"})


@pytest.mark.parametrize("ns", [0, 1_764_000_000_000_000_000, 1_764_000_000_123_456_789,
                                1_764_000_000_999_999_999, 1_764_000_001_000_000_000,
                                1_764_000_001_000_000_999, 951_782_400_000_001_000])
def test_log_timestamps_are_datetime_isoformat_to_the_microsecond(ns):
    from switchd.logconfig import _IsoUtcNow

    stamp = _IsoUtcNow()
    want = (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ns // 1000))
    assert stamp.at(ns) == want.isoformat().replace("+00:00", "Z")
    # The cached seconds do not leak into the next second or back.
    assert stamp.at(ns + 1_000_000_000) == (want + dt.timedelta(seconds=1)).isoformat().replace(
        "+00:00", "Z")
    assert stamp.at(ns) == want.isoformat().replace("+00:00", "Z")
