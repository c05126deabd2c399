"""A computed :class:`~switchd.reports.model.Report` as one self-contained HTML page.

:func:`as_html` renders ``templates/report.html.j2`` (jinja2, autoescaped) with:

- the summary figures of the whole period: offered, answered, connection rate,
  abandoned (short abandons apart), blocked, loss rate, average and max wait, ASA,
  average talk, average wrap-up, occupancy, callbacks, overflowed, refused, IVR
  self-service, SL1/SL2/SL3 and the busiest hour;
- four charts drawn by matplotlib's SVG backend and embedded as inline ``<svg>``
  (no XML prolog, no metadata, text kept as ``<text>`` so it is searchable):
  calls per interval (offered vs answered bars), service level SL1 per interval (a
  line, gaps where it has no value), abandon rate and loss rate per interval (lines;
  abandon rate = abandoned / offered, loss rate as in :mod:`switchd.reports.figures`),
  and agent occupancy (a bar per agent who logged in: (talk + wrap-up) / logged-in
  time, with its calls handled and talk time written on the bar);
- the interval table (same columns as the terminal table), the daily and monthly
  traffic tables (:data:`switchd.reports.render.TRAFFIC_COLUMNS`) and the agents table.

Labels are bilingual ("呼入 offered", "接通 answered", "服务水平 service level",
"放弃率 abandon rate"). The charts name a CJK font first when one is installed
(:func:`cjk_font`: WenQuanYi, Noto Sans CJK, Source Han Sans…); the page's CSS names
the same fonts then ``sans-serif``, so a browser without them falls back to its own
CJK font. The page loads nothing: inline CSS, inline SVG, no scripts, no links.

jinja2 and matplotlib are the optional extra ``html`` (``pip install 'switchd[html]'``);
:func:`missing` tells whether they are importable.
"""

from __future__ import annotations

import importlib.util
import io
import math
import re
import warnings
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from switchd.reports.model import Report
from switchd.reports.render import _CALL_COLUMNS, _WAIT_COLUMNS, TRAFFIC_COLUMNS, _cell

__all__ = ["INSTALL_HINT", "as_html", "cjk_font", "missing"]

#: What to run when jinja2 or matplotlib is missing.
INSTALL_HINT = "pip install 'switchd[html]'  (or: pip install 'jinja2>=3.1' 'matplotlib>=3.8')"
#: CJK-capable font families tried in this order (first installed one wins).
CJK_FONTS: tuple[str, ...] = (
    "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Noto Sans CJK SC", "Noto Sans SC",
    "Source Han Sans SC", "Source Han Sans CN", "Droid Sans Fallback", "AR PL UMing CN",
)
#: At most this many x tick labels per chart (a week by hour has 168 intervals).
MAX_TICKS = 14

_PROLOG = re.compile(r"\A.*?(?=<svg\b)", re.S)


def missing() -> list[str]:
    """The names of the optional modules (jinja2, matplotlib) that cannot be imported."""
    return [m for m in ("jinja2", "matplotlib") if importlib.util.find_spec(m) is None]


def cjk_font() -> str | None:
    """The family name of the first installed font of :data:`CJK_FONTS`, or None
    (then Chinese glyphs in the charts depend on the browser's fallback fonts)."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


def _pct(value: float | None) -> float:
    return math.nan if value is None else value * 100.0


def _svg(fig: Any, name: str) -> str:
    """The figure as an inline ``<svg>`` element (no prolog, no metadata); closes it."""
    import matplotlib
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    # A distinct, fixed salt per chart: ids are reproducible and never clash on the page.
    with matplotlib.rc_context({"svg.hashsalt": f"switchd-{name}"}):
        fig.savefig(buf, format="svg", bbox_inches="tight",
                    metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    plt.close(fig)
    text = _PROLOG.sub("", buf.getvalue(), count=1)
    return text.replace("<svg ", f'<svg role="img" aria-label="{name}" class="chart" ', 1)


def _x_axis(ax: Any, labels: Sequence[str], xlabel: str) -> None:
    """Integer x positions labelled with at most MAX_TICKS interval labels."""
    n = len(labels)
    step = max(1, math.ceil(n / MAX_TICKS))
    ticks = list(range(0, n, step))
    ax.set_xticks(ticks)
    ax.set_xticklabels([labels[i] for i in ticks], rotation=35, ha="right", fontsize=8)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_xlabel(xlabel)
    ax.grid(axis="y", alpha=0.3)


def _charts(report: Report, font: str | None) -> dict[str, str]:
    """The four charts as inline SVG strings, keyed calls|service|abandon|agents."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    labels = [iv.label for iv, _ in report.intervals]
    figs = [f for _, f in report.intervals]
    xs = list(range(len(labels)))
    xlabel = f"时段 interval ({report.by}, {report.tz})"
    family = [font, "DejaVu Sans"] if font else ["DejaVu Sans"]
    out: dict[str, str] = {}
    rc = {"svg.fonttype": "none", "font.family": "sans-serif", "font.sans-serif": family,
          "axes.unicode_minus": False, "font.size": 10}
    with matplotlib.rc_context(rc):
        fig, ax = plt.subplots(figsize=(10, 3.6))
        width = 0.4
        ax.bar([x - width / 2 for x in xs], [f.offered for f in figs], width,
               label="呼入 offered", color="#4c72b0")
        ax.bar([x + width / 2 for x in xs], [f.answered for f in figs], width,
               label="接通 answered", color="#55a868")
        ax.set_title("每时段呼叫量 calls per interval")
        ax.set_ylabel("呼叫数 calls")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        _x_axis(ax, labels, xlabel)
        ax.legend(loc="upper right")
        out["calls"] = _svg(fig, "calls")

        fig, ax = plt.subplots(figsize=(10, 3.2))
        t = report.settings.sl_threshold_s
        ax.plot(xs, [_pct(f.sl1) for f in figs], marker="o", markersize=3, color="#4c72b0",
                label=f"服务水平 service level SL1 ({t:g} s)")
        ax.set_ylim(0, 105)
        ax.yaxis.set_major_formatter(PercentFormatter(100))
        ax.set_title("服务水平 service level per interval")
        ax.set_ylabel("服务水平 service level")
        _x_axis(ax, labels, xlabel)
        ax.legend(loc="lower right")
        out["service"] = _svg(fig, "service")

        fig, ax = plt.subplots(figsize=(10, 3.2))
        ax.plot(xs, [_pct(f.abandon_rate) for f in figs], marker="o",
                markersize=3, color="#c44e52", label="放弃率 abandon rate")
        ax.plot(xs, [_pct(f.loss_rate) for f in figs], marker="s", markersize=3,
                linestyle="--", color="#8172b2", label="呼损率 loss rate")
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(PercentFormatter(100))
        ax.set_title("放弃率 abandon rate per interval")
        ax.set_ylabel("占呼入 of offered")
        _x_axis(ax, labels, xlabel)
        ax.legend(loc="upper right")
        out["abandon"] = _svg(fig, "abandon")

        # Agent occupancy: agents who logged in (a ring group's phone never does).
        staff = [a for a in report.agents if a.occupancy is not None]
        fig, ax = plt.subplots(figsize=(10, max(2.4, 0.9 + 0.35 * len(staff))))
        names = [a.agent for a in staff]
        occ = [a.occupancy * 100.0 for a in staff if a.occupancy is not None]
        bars = ax.barh(names, occ, color="#dd8452", label="占用率 occupancy")
        for bar, a in zip(bars, staff, strict=True):
            ax.annotate(f"{a.calls_handled} 通 calls, {_cell('talk_s', a.talk_s)}",
                        (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                        xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
        ax.invert_yaxis()
        ax.set_title("坐席占用率 agent occupancy (通话+整理 / 登录 talk + wrap-up / logged in)")
        ax.set_xlabel("占用率 occupancy")
        ax.set_ylabel("坐席 agent")
        ax.set_xlim(0, 118)   # room for the calls labels
        ax.xaxis.set_major_formatter(PercentFormatter(100))
        ax.grid(axis="x", alpha=0.3)
        if not names:
            ax.text(0.5, 0.5, "无坐席数据 no agent data", ha="center", va="center",
                    transform=ax.transAxes)
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
        out["agents"] = _svg(fig, "agents")
    return out


def _summary(report: Report) -> list[tuple[str, str]]:
    """(bilingual name, formatted value) of the period's key figures."""
    t = report.total
    c = _cell
    return [
        ("呼入 offered", c("offered", t.offered)),
        ("接通 answered", c("answered", t.answered)),
        ("接通率 connection rate", c("connection_rate", t.connection_rate)),
        ("放弃 abandoned", f"{t.abandoned} (短 short {t.short_abandoned})"),
        ("阻塞 blocked", c("blocked", t.blocked)),
        ("呼损率 loss rate", c("loss_rate", t.loss_rate)),
        ("平均等待 avg wait", c("avg_wait_s", t.avg_wait_s)),
        ("最长等待 max wait", c("max_wait_s", t.max_wait_s)),
        ("平均应答速度 ASA", c("asa_s", t.asa_s)),
        ("平均通话 avg talk", c("avg_talk_s", t.avg_talk_s)),
        ("平均整理 avg wrap-up", c("avg_wrapup_s", t.avg_wrapup_s)),
        ("占用率 occupancy", c("occupancy", t.occupancy)),
        ("回拨 callbacks", c("callbacks", t.callbacks)),
        ("溢出 overflowed", c("overflowed", t.overflowed)),
        ("拒绝入队 refused", c("refused", t.refused)),
        ("IVR 自助 self-service", c("ivr_only", t.ivr_only)),
        ("SL1", c("sl1", t.sl1)),
        ("SL2", c("sl2", t.sl2)),
        ("SL3", c("sl3", t.sl3)),
        ("最忙时段 busiest hour", report.busiest_hour or "-"),
    ]


def as_html(report: Report, *, now: float | None = None) -> str:
    """The report as one self-contained HTML page (module docstring). ``now`` (epoch s)
    is the "generated" time shown, default the current time. Raises ImportError when
    jinja2 or matplotlib is missing (:data:`INSTALL_HINT` says what to install)."""
    import time

    import jinja2

    font = cjk_font()
    columns = [*_CALL_COLUMNS, *_WAIT_COLUMNS]
    rows = [(iv.label, [_cell(k, getattr(f, k)) for k, _ in columns])
            for iv, f in report.intervals]
    total = [_cell(k, getattr(report.total, k)) for k, _ in columns]
    traffic = [
        (name, [(iv.label, [_cell(k, getattr(f, k)) for k, _, _ in TRAFFIC_COLUMNS])
                for iv, f in table])
        for name, table in (("daily", report.daily), ("monthly", report.monthly))
    ]
    reasons = sorted({r for a in report.agents for r, _ in a.not_ready_s})
    agents = [
        {"agent": a.agent, "calls": a.calls_handled, "talk": _cell("talk_s", a.talk_s),
         "hold": _cell("hold_s", a.hold_s), "wrapup": _cell("wrapup_s", a.wrapup_s),
         "aht": _cell("aht_s", a.aht_s), "occupancy": _cell("occupancy", a.occupancy),
         "rona": a.rona,
         "not_ready": [_cell("s_s", dict(a.not_ready_s).get(r)) for r in reasons]}
        for a in report.agents
    ]
    first = report.intervals[0][0].start if report.intervals else None
    last = report.intervals[-1][0].end if report.intervals else None
    zone = ZoneInfo(report.tz)

    def local(epoch: float | None) -> str:
        if epoch is None:
            return "-"
        return datetime.fromtimestamp(epoch, zone).isoformat(sep=" ", timespec="minutes")

    env = jinja2.Environment(loader=jinja2.PackageLoader("switchd.reports", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True)
    with warnings.catch_warnings():
        # Without a CJK font matplotlib measures the Chinese labels with DejaVu Sans and
        # warns per glyph; the page's CSS lets the browser draw them (note on the page).
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")
        charts = _charts(report, font)
    page = env.get_template("report.html.j2").render(
        report=report, summary=_summary(report), charts=charts,
        columns=[h for _, h in columns], rows=rows, total=total, agents=agents,
        traffic=traffic, traffic_columns=[f"{zh} {en}" for _, en, zh in TRAFFIC_COLUMNS],
        reasons=reasons, period=(local(first), local(last)),
        generated=local(time.time() if now is None else now),
        fonts=[*([font] if font else []), *CJK_FONTS], cjk_font=font,
        settings=report.settings,
    )
    return page
