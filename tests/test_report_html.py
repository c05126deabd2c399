"""`switchd report --format html`: one self-contained page (inline CSS, inline matplotlib SVG
charts, nothing fetched), its figures and tables, the missing-extra message, and a render in
headless Chromium (screenshot and page text) where chromium is installed."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tomllib
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest

pytest.importorskip("jinja2", reason="the [html] extra is not installed: pip install -e '.[html]'")
pytest.importorskip("matplotlib", reason="the [html] extra is not installed: pip install -e '.[html]'")

from switchd.reports import html as html_mod
from switchd.reports.cli import add_report_parser, run_report
from switchd.reports.figures import compute
from switchd.reports.model import (
    AgentFigures,
    Figures,
    Interval,
    Report,
    ReportSettings,
)
from tests.test_report_cli import _write_state, json_report, report
from tests.test_report_figures import CALLS, DAY, LOG, S

ROOT = Path(__file__).resolve().parents[1]


class _Text(HTMLParser):
    """The visible text of a page (no <style>), and every attribute value."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script"):
            self._skip += 1
        self.attrs += [(tag, k, v or "") for k, v in attrs]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)

    @property
    def text(self) -> str:
        return re.sub(r"\s+", " ", " ".join(self.parts))


def parse(page: str) -> _Text:
    p = _Text()
    p.feed(page)
    return p


def key_figures(rep: Report) -> list[str]:
    """The texts the summary must show, formatted by hand (not by the code under test)."""
    t = rep.total
    out = [f"{t.offered}", f"{t.answered}", f"{t.abandoned} (短 short {t.short_abandoned})"]
    out += [f"{v * 100:.1f}%" for v in (t.connection_rate, t.loss_rate, t.sl1, t.sl2, t.sl3)
            if v is not None]
    if t.asa_s is not None:
        s = round(t.asa_s)
        out.append(f"{s // 60}:{s % 60:02d}")
    if rep.busiest_hour:
        out.append(rep.busiest_hour)
    return out


@pytest.fixture(scope="module")
def day_report() -> Report:
    return compute(CALLS, LOG, start=DAY[0], end=DAY[1], tz="UTC", by="hour", settings=S)


@pytest.fixture(scope="module")
def page(day_report: Report) -> str:
    return html_mod.as_html(day_report, now=DAY[1])


def test_the_page_fetches_nothing(page: str) -> None:
    # The only URLs are the SVG namespace names, which a browser never fetches.
    urls = re.findall(r"https?://[^\s\"'<>)]+", page)
    assert set(urls) <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls
    p = parse(page)
    for tag, key, value in p.attrs:
        assert key not in ("src", "srcset", "action"), (tag, key, value)
        if key in ("href", "xlink:href"):
            assert value.startswith("#"), (tag, key, value)  # in-page references only
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert "url(" not in page.replace("url(#", "")  # clip paths point into the page
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page
    assert page.lstrip().startswith("<!DOCTYPE html>") and page.count("<style>") == 1


def test_four_inline_svg_charts_with_axes_ticks_and_legends(page: str,
                                                            day_report: Report) -> None:
    svgs = re.findall(r"<svg\b.*?</svg>", page, re.S)
    assert [re.search(r'aria-label="(\w+)"', s).group(1) for s in svgs] == [
        "calls", "service", "abandon", "agents"]
    calls, service, abandon, agents = (parse(s).text for s in svgs)
    # Legends and axis labels, in Chinese and English, as real <text>.
    for text in ("呼入 offered", "接通 answered", "呼叫数 calls", "时段 interval (hour, UTC)"):
        assert text in calls
    assert "服务水平 service level SL1 (20 s)" in service and "100%" in service
    assert "放弃率 abandon rate" in abandon and "呼损率 loss rate" in abandon
    # x ticks are interval labels (at most MAX_TICKS of the 24 hours), y ticks numbers.
    ticks = re.findall(r"2026-12-07 \d\d:00", calls)
    assert 2 <= len(ticks) <= html_mod.MAX_TICKS and "2026-12-07 00:00" in ticks
    assert re.search(r"(?<![\d.])0 ", calls + " ")
    # Agent occupancy: one bar per agent who was logged in, as a percentage with its calls.
    staff = [a for a in day_report.agents if a.occupancy is not None]
    assert staff
    for a in staff:
        assert a.agent in agents and f"{a.calls_handled} 通 calls" in agents
    assert "坐席占用率 agent occupancy" in agents and "100%" in agents


def test_summary_and_tables_show_the_figures(page: str, day_report: Report) -> None:
    text = parse(page).text
    summary = text.split("汇总 Summary", 1)[1].split("图表 Charts", 1)[0]
    for fig in key_figures(day_report):
        assert fig in summary, fig
    for name in ("呼入 offered", "接通率 connection rate", "呼损率 loss rate",
                 "平均应答速度 ASA", "SL1", "SL2", "SL3", "最忙时段 busiest hour"):
        assert name in summary
    rows = re.findall(r"<tr><td>(2026-12-07 \d\d:00)</td>", page)
    assert len(rows) == 24 and rows[0] == "2026-12-07 00:00" and rows[-1] == "2026-12-07 23:00"
    assert "合计 total" in text
    agents = re.search(r'<table id="agents">.*?</table>', page, re.S).group(0)
    for a in day_report.agents:
        assert f"<td>{a.agent}</td><td>{a.calls_handled}</td>" in agents


def test_no_traffic_and_no_agents_still_renders() -> None:
    iv = (Interval(0.0, 3600.0, "1970-01-01 00:00"), Figures())
    rep = Report(ReportSettings(), "UTC", "hour", (iv,), Figures(), (), None)
    page = html_mod.as_html(rep, now=0.0)
    text = parse(page).text
    assert page.count("<svg") == 4 and "无坐席数据 no agent data" in text
    assert "最忙时段 busiest hour -" in text


def test_a_hand_made_report_shows_its_numbers() -> None:
    f = Figures(offered=40, answered=36, unanswered=4, connection_rate=0.9, abandoned=3,
                short_abandoned=1, blocked=1, loss_rate=0.1, queue_calls=39, asa_s=12.4,
                avg_wait_s=14.0, max_wait_s=95.0, avg_talk_s=181.0, sl1=0.8, sl2=0.85,
                sl3=0.7692)
    rep = Report(ReportSettings(), "Asia/Shanghai", "day",
                 ((Interval(1796572800.0, 1796659200.0, "2026-12-07"), f),), f,
                 (AgentFigures("a1", 36, 6516.0, (("lunch", 1800.0),), 2, 190.0, hold_s=95.0,
                               wrapup_s=324.0, occupancy=0.625),),
                 "10:00")
    text = parse(html_mod.as_html(rep, now=1796659200.0)).text
    for want in ("呼入 offered 40", "接通 answered 36", "接通率 connection rate 90.0%",
                 "放弃 abandoned 3 (短 short 1)", "呼损率 loss rate 10.0%",
                 "平均应答速度 ASA 0:12", "SL1 80.0%", "SL2 85.0%", "SL3 76.9%",
                 "最忙时段 busiest hour 10:00", "not ready: lunch",
                 "a1 36 1:48:36 1:35 5:24 3:10 62.5% 2 30:00",
                 "2026-12-07 00:00+08:00"):
        assert want in text, want


def test_the_template_ships_as_package_data() -> None:
    assert (resources.files("switchd.reports") / "templates" / "report.html.j2").is_file()
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "templates/*.j2" in cfg["tool"]["setuptools"]["package-data"]["switchd.reports"]
    extras = cfg["project"]["optional-dependencies"]
    for extra in ("html", "dev"):
        names = {re.split(r"[<>=]", d)[0] for d in extras[extra]}
        assert {"jinja2", "matplotlib"} <= names, extra


def test_without_the_extra_it_exits_2_saying_what_to_install(monkeypatch, capsys,
                                                             tmp_path: Path) -> None:
    monkeypatch.setattr(html_mod, "missing", lambda: ["matplotlib"])
    parser = argparse.ArgumentParser()
    add_report_parser(parser.add_subparsers())
    args = parser.parse_args(["report", "--state-dir", str(tmp_path), "--format", "html"])
    assert run_report(args) == 2
    err = capsys.readouterr().err
    assert "--format html needs matplotlib" in err and "pip install 'switchd[html]'" in err


@pytest.fixture(scope="module")
def cli_page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """`switchd report --format html --out FILE` over a state directory; and its JSON."""
    state = _write_state(tmp_path_factory.mktemp("state"))
    out = tmp_path_factory.mktemp("html") / "report.html"
    args = ("--state-dir", str(state), "--from", "2026-12-06", "--to", "2026-12-09",
            "--tz", "Europe/Berlin", "--by", "day")
    proc = report(*args, "--format", "html", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    return out, json_report(*args)


def test_the_cli_writes_the_page_with_the_json_figures(cli_page: tuple[Path, dict]) -> None:
    out, data = cli_page
    text = parse(out.read_text(encoding="utf-8")).text
    total = data["total"]
    assert f"呼入 offered {total['offered']}" in text
    assert f"接通 answered {total['answered']}" in text
    assert f"接通率 connection rate {total['connection_rate'] * 100:.1f}%" in text
    for iv in data["intervals"]:
        assert iv["interval"] in text


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_chromium_renders_the_page(cli_page: tuple[Path, dict], tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not installed: `make chromium` installs it (apt-get, as root)")
    out, data = cli_page
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
              f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2000"]
    shot = tmp_path / "report.png"
    subprocess.run([*common, f"--screenshot={shot}", out.as_uri()], capture_output=True,
                   timeout=120, check=False)
    dom = subprocess.run([*common, "--dump-dom", out.as_uri()], capture_output=True, text=True,
                         timeout=120, check=False)
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = parse(dom.stdout).text
    total = data["total"]
    for want in (f"呼入 offered {total['offered']}", f"接通 answered {total['answered']}",
                 f"呼损率 loss rate {total['loss_rate'] * 100:.1f}%", "服务水平 service level",
                 "放弃率 abandon rate", "合计 total"):
        assert want in text, want
    assert dom.stdout.count("<svg") == 4
    # The screenshot: a PNG of the window size with real drawing on it, not a blank page.
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20]) == 1280
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))[..., :3]
    inked = (pixels.mean(axis=2) < 0.9).mean()
    colours = len({tuple(p) for p in (pixels[::8, ::8].reshape(-1, 3) * 255).astype(int)})
    assert inked > 0.02 and colours > 20, (inked, colours)


def test_daily_and_monthly_traffic_tables(page: str, day_report: Report) -> None:
    for name, title in (("daily", "每日话务 Daily traffic"), ("monthly", "每月话务 Monthly traffic")):
        table = re.search(rf'<table id="{name}">.*?</table>', page, re.S)
        assert table is not None and title in page, name
        text = parse(table.group(0)).text
        assert "接通率 conn. rate" in text and "放弃率 abandon rate" in text
    [(day, f)] = day_report.daily
    daily = parse(re.search(r'<table id="daily">.*?</table>', page, re.S).group(0)).text
    assert f"{day.label} {f.offered} {f.answered}" in daily
