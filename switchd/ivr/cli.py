"""``switchd flows …``: check and draw IVR flows from the command line (docs/flows.md).

:func:`add_flows_parser` registers the ``flows`` command and its sub-commands on the
main parser (``switchd.__main__``); each sub-command is a ``cmd_flows_*`` function
taking the parsed arguments and returning the exit code. Imports of the loader and
the media plane happen inside the commands, so building the parser stays cheap for
every other ``switchd`` command.

Where flows and prompts are: next to the config (``-c``, default ``config.yaml``):
``ivr.flows_dir`` (default ``flows``) and ``media.prompts_dir`` when the config
loads; ``flows/`` and ``prompts/`` beside the config file when it does not (a note on
stderr says so, when the file exists but has problems).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["add_flows_parser", "cmd_flows_check", "cmd_flows_draw", "cmd_flows_try", "flow_dirs"]


def _err(msg: str) -> None:
    sys.stderr.write(msg.rstrip("\n") + "\n")


def _shown(path: Path) -> Path:
    """``path`` relative to the current directory when it lies under it (shorter messages)."""
    try:
        rel = Path(os.path.relpath(path))
    except ValueError:  # another drive (Windows)
        return path
    return path if rel.parts[:1] == ("..",) else rel


def flow_dirs(config: str | Path, prompts_dir: str | Path | None = None) -> tuple[Path, Path]:
    """(flows folder, prompts folder) for the config file ``config``.

    From the config when it loads (``ivr.flows_dir``, ``media.prompts_dir``); else
    ``flows`` and ``prompts`` beside it. ``prompts_dir`` (``--prompts-dir``) wins.
    Never raises for a bad config: writes one note on stderr and falls back.
    """
    from switchd.config import load_config
    from switchd.exceptions import ConfigError

    config = Path(config)
    flows: Path = config.parent / "flows"
    prompts: Path = config.parent / "prompts"
    if config.exists():
        try:
            cfg: Any = load_config(config)
        except ConfigError as exc:
            _err(f"switchd: note: {config} has {len(exc.problems)} problem(s) (`switchd check -c "
                 f"{config}` shows them); looking for flows/ and prompts/ beside it")
        else:
            prompts = _shown(cfg.media.prompts_dir)
            ivr = getattr(cfg, "ivr", None)
            flows_dir = getattr(ivr, "flows_dir", None)
            flows = _shown(Path(flows_dir)) if flows_dir is not None else flows
    if prompts_dir is not None:
        prompts = Path(prompts_dir)
    return flows, prompts


def cmd_flows_check(args: argparse.Namespace) -> int:
    """Check flow files (or folders of them): every problem as ``FILE:LINE:COL: message``
    on stdout and exit 1, or a one-line summary and exit 0.

    Without paths, checks the flows folder of the config (see :func:`flow_dirs`).
    """
    from switchd.ivr.loader import check_paths

    flows_dir, prompts_dir = flow_dirs(args.config, args.prompts_dir)
    paths = [Path(p) for p in args.paths] or [flows_dir]
    problems, summary = check_paths(paths, prompts_dir)
    for problem in problems:
        print(problem)
    if problems:
        _err(f"switchd flows check: {summary}")
        return 1
    print(summary)
    return 0


def _flow_file(flow: str, flows_dir: Path) -> Path:
    """FLOW as given: a path (has a folder or ends in .yaml/.yml) or a name in ``flows_dir``."""
    if flow.endswith((".yaml", ".yml")) or os.sep in flow or "/" in flow:
        return Path(flow)
    return flows_dir / f"{flow}.yaml"


def cmd_flows_draw(args: argparse.Namespace) -> int:
    """Print the diagram of one flow (Mermaid or Graphviz dot) on stdout.

    The flow is loaded and checked as ``flows check`` does, except that prompts are
    only looked up, not required (a diagram of a flow whose recordings are not made
    yet is useful). Problems go to stderr, exit 1.
    """
    from switchd.ivr.loader import FlowError, load_flow

    flows_dir, prompts_dir = flow_dirs(args.config, args.prompts_dir)
    path = _flow_file(args.flow, flows_dir)
    try:
        flow = load_flow(path, prompts_dir, check_prompts=False)
    except FlowError as exc:
        for problem in exc.problems:
            _err(problem)
        _err(f"switchd flows draw: {path} has {len(exc.problems)} problem(s); "
             f"`switchd flows check {path}` lists them too")
        return 1
    from switchd.ivr.draw import draw

    sys.stdout.write(draw(flow, args.format))
    return 0


def cmd_flows_try(args: argparse.Namespace) -> int:
    """Run one simulated call through a flow in virtual time and print every step.

    The flow (and the flows it ``goto``-es) is loaded and checked as ``switchd run``
    would; ring groups and extensions for ``transfer`` nodes come from the config
    when it loads. Exit 1 when the flow has problems, 2 for a bad option.
    """
    import json

    from switchd.config import load_config
    from switchd.core.routing import CoreConfig
    from switchd.exceptions import ConfigError
    from switchd.ivr.loader import FlowError, load_flows
    from switchd.ivr.trial import TrialScript, parse_at, parse_route_reply, run_trial, steps_json
    from switchd.lines.prompts import PromptCache

    flows_dir, prompts_dir = flow_dirs(args.config, args.prompts_dir)
    path = _flow_file(args.flow, flows_dir)
    try:
        at = parse_at(args.at) if args.at else time.time()
        replies = [parse_route_reply(r) for r in (args.route_reply or [])]
    except ValueError as exc:
        _err(f"switchd flows try: {exc}")
        return 2
    digits = [g.strip() for g in args.digits.split(",")] if args.digits else []
    bad = [g for g in digits if not g or any(k not in "0123456789*#ABCDabcd" for k in g)]
    if bad:
        _err(f"switchd flows try: --digits {args.digits!r}: each comma-separated group must be "
             "keys 0-9 * # A-D, e.g. --digits 1,2#,12345678#")
        return 2
    cache = PromptCache(1 << 30)
    try:
        flows = load_flows(path.parent, [path.stem], prompts_dir, cache=cache)
    except FlowError as exc:
        for problem in exc.problems:
            _err(problem)
        _err(f"switchd flows try: the flow has {len(exc.problems)} problem(s); nothing was run")
        return 1
    core: CoreConfig | None = None
    groups = None
    voicemail = None
    if Path(args.config).exists():
        try:
            from switchd.app import core_config

            loaded = load_config(args.config)
            core, groups = core_config(loaded), loaded.ring_groups
            voicemail = loaded.voicemail
        except ConfigError:
            core = None  # flow_dirs has said the config has problems
    script = TrialScript(digits=[g.upper() for g in digits], replies=replies,
                         transfer=args.transfer, vip=args.vip)
    steps = run_trial(flows, path.stem, caller=args.caller, dnis=args.dnis, at=at, script=script,
                      core_config=core, groups=groups, cache=cache, voicemail=voicemail)
    if args.json:
        sys.stdout.write(steps_json(steps) + "\n")
    else:
        flow = flows.get(path.stem)
        assert flow is not None
        import datetime as dt
        from zoneinfo import ZoneInfo

        local = dt.datetime.fromtimestamp(at, ZoneInfo(flow.timezone))
        print(f"flow {flow.name} version {flow.version}; call from {args.caller} to {args.dnis} "
              f"at {local.isoformat(timespec='seconds')} ({flow.timezone})")
        for step in steps:
            print(step.text())
        left = script.digits
        if left:
            print(f"keys never pressed (the flow did not wait for them): {json.dumps(left)}")
    return 0


def add_flows_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``switchd flows check|draw`` to ``sub`` (the main parser's sub-parsers).

    Returns the ``flows`` parser; its sub-parsers are ``parser.flows_sub`` so a
    later command (``flows try``) can be added beside them.
    """
    flows = sub.add_parser("flows", help="check, draw and try IVR call flows (docs/flows.md)")
    fsub = flows.add_subparsers(dest="flows_command", required=True)
    flows.flows_sub = fsub  # type: ignore[attr-defined]

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("-c", "--config", default="config.yaml",
                       help="config file: where flows_dir and prompts_dir are (config.yaml)")
        p.add_argument("--prompts-dir", metavar="DIR",
                       help="look prompts up here (overrides media.prompts_dir)")

    chk = fsub.add_parser(
        "check", help="check flow files; every problem as FILE:LINE:COL: message",
        description="Check IVR flow files. Prints every problem as FILE:LINE:COL: message "
                    "and exits 1, or prints a one-line summary and exits 0.")
    chk.add_argument("paths", nargs="*", metavar="PATH",
                     help="flow files or folders of them (default: the config's flows folder)")
    common(chk)
    chk.set_defaults(func=cmd_flows_check)

    drw = fsub.add_parser("draw", help="print a flow's diagram (Mermaid or Graphviz dot)")
    drw.add_argument("flow", metavar="FLOW",
                     help="a flow name (looked up in the flows folder) or a flow file")
    drw.add_argument("--format", choices=("mermaid", "dot"), default="mermaid",
                     help="diagram format (mermaid)")
    common(drw)
    drw.set_defaults(func=cmd_flows_draw)

    tr = fsub.add_parser(
        "try", help="run one simulated call through a flow in virtual time, step by step",
        description="Run one simulated call through a flow with the daemon's interpreter in "
                    "virtual time (prompts last as long as their audio) and print each step: "
                    "node, prompt, keys consumed, where it went and why.")
    tr.add_argument("flow", metavar="FLOW",
                    help="a flow name (looked up in the flows folder) or a flow file")
    tr.add_argument("--caller", default="13800000000", help="the caller's number")
    tr.add_argument("--dnis", default="8000", help="the number dialled")
    tr.add_argument("--at", metavar="TIME",
                    help="when the call comes, ISO 8601 with a zone, e.g. 2026-12-07T10:00+08:00 "
                         "(default: now)")
    tr.add_argument("--digits", metavar="KEYS,KEYS,...",
                    help="key groups; each is pressed when the flow next waits for keys "
                         "(a menu or collect starts, or starts over), e.g. 3,12345678#")
    tr.add_argument("--route-reply", nargs="+", action="append", metavar="KEY=VALUE",
                    help="the CRM's answer to the next ivr.route_request: next=NODE and "
                         "variables; repeat the option for later requests (none: it times out)")
    tr.add_argument("--transfer", choices=("answer", "decline", "noanswer"), default="answer",
                    help="what the phones a transfer rings do: answer after 2 s, decline "
                         "(hang up while ringing), or ring out (answer)")
    tr.add_argument("--vip", action="store_true",
                    help="the caller is a VIP in the contacts table (the vip variable is true)")
    tr.add_argument("--json", action="store_true", help="print the steps as JSON lines")
    common(tr)
    tr.set_defaults(func=cmd_flows_try)
    return flows
