"""``switchd bench report`` builds a state directory and times the report (shape, not speed),
and the report's progress bar stays off the pipes."""

from __future__ import annotations

import io
import json

from switchd.__main__ import main
from switchd.reports.progress import Stages


def test_bench_report_json(capsys, tmp_path):
    code = main(["bench", "report", "--rows", "2000", "--json", "--keep", str(tmp_path)])
    out = json.loads(capsys.readouterr().out)
    assert code == (0 if out["passed"] else 1)
    assert out["rows"] == 2000 and out["queue_log_lines"] > 2 * 0.8 * 2000
    # The generated mix: ~98 % inbound, ~80 % answered, ~10 % abandoned.
    assert 1900 <= out["offered"] <= 2000
    assert 0.7 < out["answered"] / out["offered"] < 0.9
    assert 0.05 < out["abandoned"] / out["offered"] < 0.15
    for key in ("load_s", "compute_s", "render_s", "total_s"):
        assert out[key] >= 0
    assert out["total_s"] >= out["compute_s"]
    assert (tmp_path / "switchd.db").is_file() and (tmp_path / "queue_log").is_file()
    # The month is whole quarter hours after the facts began: the stored facts are read.
    assert out["stored_facts"] is True


def test_bench_report_from_the_queue_log_file_gives_the_same_calls(capsys, tmp_path):
    assert main(["bench", "report", "--rows", "2000", "--json", "--queue-log", "--keep",
                 str(tmp_path / "f")]) in (0, 1)
    from_file = json.loads(capsys.readouterr().out)
    assert main(["bench", "report", "--rows", "2000", "--json", "--keep",
                 str(tmp_path / "s")]) in (0, 1)
    stored = json.loads(capsys.readouterr().out)
    assert (from_file["stored_facts"], stored["stored_facts"]) == (False, True)
    for key in ("offered", "answered", "abandoned"):
        assert from_file[key] == stored[key]


def test_bench_report_rejects_nonsense(capsys):
    assert main(["bench", "report", "--rows", "0", "--json"]) == 2
    assert "--rows" in capsys.readouterr().err


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal():
    pipe = io.StringIO()
    with Stages(2, stream=pipe) as st:
        st.step("one")
        st.step("two")
    assert not st.enabled and pipe.getvalue() == ""
    tty = _Tty()
    with Stages(2, stream=tty) as st:
        st.step("reading CDRs")
        st.step("computing figures")
    assert st.enabled and st.done == 2


def test_report_in_a_pipe_has_no_progress(capsys, tmp_path):
    from switchd.bench_report import make_state

    make_state(tmp_path, 50)
    assert main(["report", "--state-dir", str(tmp_path), "--from", "2026-12-01", "--to",
                 "2026-12-31", "--format", "csv"]) == 0
    err = capsys.readouterr().err
    assert "switchd report:" not in err and "\x1b[" not in err


def test_call_columns_times_agree_with_iso_parsing(tmp_path):
    """SQLite converts the stored times (fast path); they equal Python's parse of the text,
    another ISO form is read too, and text that is no time is a clear error naming it —
    from the forked reader of switchd report too."""
    import math
    import sqlite3

    import pytest

    from switchd.bench_report import make_state
    from switchd.reports.data import epoch_of_iso, load_call_columns, start_call_columns

    make_state(tmp_path, 300)
    db = tmp_path / "switchd.db"
    with sqlite3.connect(db) as conn:
        text = {r[0]: r[1:] for r in conn.execute("SELECT uniqueid, start, answer FROM cdr")}
    cols = load_call_columns(db, 0, 2e9)
    assert len(cols) == 300
    for uid, start, answer in zip(cols.uid, cols.start, cols.answer, strict=True):
        s_text, a_text = text[uid]
        assert start == epoch_of_iso(s_text)
        assert math.isnan(answer) if a_text is None else answer == epoch_of_iso(a_text)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE cdr SET answer = '2026-12-01T05:00:00+01:00' WHERE answer IS NOT NULL")
    answers = {float(x) for x in load_call_columns(db, 0, 2e9).answer if not math.isnan(x)}
    assert answers == {epoch_of_iso("2026-12-01T04:00:00Z")}
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE cdr SET answer = 'garbage' WHERE answer IS NOT NULL")
    with pytest.raises(sqlite3.DataError, match="not ISO-8601.*garbage"):
        load_call_columns(db, 0, 2e9)
    with pytest.raises(sqlite3.DataError, match="not ISO-8601.*garbage"):
        start_call_columns(db, 0, 2e9).result()
