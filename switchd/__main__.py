"""The ``switchd`` command: run | check | passwd | bench | flows | sim | recordings | report."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from pathlib import Path

from switchd import __version__

__all__ = ["main"]


def _err(msg: str) -> None:
    sys.stderr.write(msg.rstrip("\n") + "\n")


def _listen_host(args: argparse.Namespace, cfg_host: str) -> str | None:
    """The CTI host in force: ``--cti-listen`` overrides ``cti.listen``; None if it is invalid."""
    from switchd.config import parse_listen

    if args.cti_listen is None:
        return cfg_host
    try:
        return parse_listen(args.cti_listen)[0]
    except ValueError as exc:
        _err(f"switchd: --cti-listen {args.cti_listen}: {exc}")
        return None


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a config file as `switchd run` would, without starting anything.

    Exit 1 with one line per problem on stdout when `run` would refuse to start
    (config errors as FILE:LINE:COL, demo secrets on a non-loopback address);
    otherwise print each warning, then the summary line, and exit 0. Exit 2 for a
    bad ``--cti-listen``.
    """
    from switchd.config import config_summary, config_warnings, demo_secret_problem, load_config
    from switchd.exceptions import ConfigError

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        for p in exc.problems:
            print(p)
        return 1
    host = _listen_host(args, cfg.cti.host)
    if host is None:
        return 2
    refusal = demo_secret_problem(cfg, host)
    if refusal is not None:
        print(refusal)
        return 1
    from switchd.ivr.routed import load_routed_flows

    try:
        flows = load_routed_flows(cfg)
    except ConfigError as exc:
        for p in exc.problems:
            print(p)
        return 1
    for warning in config_warnings(cfg):
        print(warning)
    summary = config_summary(cfg)
    if flows.flows:
        summary += f", flows {', '.join(flows.flows)}"
    print(summary)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon in the foreground until SIGTERM/SIGINT.

    Refuses to start, exactly as `switchd check` does, with the same lines on
    stderr followed by a ``switchd: not starting: …`` line, and exit 1. The
    warnings `check` prints (:func:`switchd.config.config_warnings`) are logged by
    the app at start, off the event loop, as ``config_warning`` events.
    """
    from switchd.config import demo_secret_problem, load_config
    from switchd.exceptions import ConfigError
    from switchd.logconfig import configure_logging, get_logger

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        for p in exc.problems:
            _err(p)
        _err(f"switchd: not starting: {args.config} has {len(exc.problems)} problem(s); "
             f"`switchd check -c {args.config}` shows them")
        return 1
    host = _listen_host(args, cfg.cti.host)
    if host is None:
        return 2
    configure_logging(args.log_format or cfg.log.format, cfg.log.level)
    log = get_logger("switchd")
    refusal = demo_secret_problem(cfg, host)
    if refusal is not None:
        log.error("demo_secrets_refused", problem=refusal)
        _err(refusal)
        _err("switchd: not starting: demo secrets on a non-loopback address")
        return 1

    from switchd.ivr.routed import load_routed_flows
    from switchd.lines.prompts import PromptCache

    # The flows' prompts are decoded once, here, into the cache the switch plays from.
    cache = PromptCache(cfg.media.prompt_cache_bytes)
    try:
        flows = load_routed_flows(cfg, cache=cache)
    except ConfigError as exc:
        for p in exc.problems:
            log.error("flow_rejected", problem=p)
            _err(p)
        _err(f"switchd: not starting: the flows routed to have {len(exc.problems)} problem(s); "
             f"`switchd check -c {args.config}` shows them")
        return 1

    from switchd.app import App

    state_dir = Path(args.state_dir).absolute() if args.state_dir else None
    app = App(cfg, config_path=Path(args.config), state_dir=state_dir, cti_listen=args.cti_listen,
              flows=flows, cache=cache)
    try:
        import uvloop  # type: ignore[import-not-found]

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    return runner(app.run())


def cmd_passwd(args: argparse.Namespace) -> int:
    """Print a PBKDF2 hash of a secret for the ``secret:`` key of a user in config.yaml, or
    with ``--sip`` the digest line of a SIP extension's password."""
    from switchd.passwords import hash_secret

    if args.stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
    elif not sys.stdin.isatty():
        _err("switchd passwd: stdin is not a terminal; pipe the secret with --stdin")
        return 1
    else:
        try:
            secret = getpass.getpass("secret: ")
            again = getpass.getpass("again: ")
        except EOFError:
            _err("switchd passwd: no secret given")
            return 1
        if again != secret:
            _err("switchd passwd: the two secrets differ")
            return 1
    if not secret:
        _err("switchd passwd: the secret is empty")
        return 1
    if args.sip is not None:
        from switchd.drivers.sip.digest import ha1_line

        # SIP digest needs H(user:realm:password), not a salted hash: the line keeps
        # only that, for each algorithm phones use (RFC 8760).
        print(ha1_line(args.sip, args.realm, secret))
        return 0
    print(hash_secret(secret))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Benchmarks; see ``switchd bench calls --help``."""
    from switchd.bench import run_bench

    return run_bench(args)


def cmd_bench_media(args: argparse.Namespace) -> int:
    """The media-tick benchmark; see ``switchd bench media --help``."""
    from switchd.bench_media import run_media_bench

    return run_media_bench(args)


def cmd_bench_ivr(args: argparse.Namespace) -> int:
    """The IVR benchmark; see ``switchd bench ivr --help``."""
    from switchd.bench_ivr import run_ivr_bench

    return run_ivr_bench(args)


def cmd_bench_cti(args: argparse.Namespace) -> int:
    """The CTI fan-out benchmark; see ``switchd bench cti --help``."""
    from switchd.bench_cti import run_cti_bench

    return run_cti_bench(args)


def cmd_sim(args: argparse.Namespace) -> int:
    """A call centre in virtual time against Erlang B/C/A; see ``switchd sim --help``."""
    from switchd.simulate import run_sim

    return run_sim(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``switchd`` command."""
    p = argparse.ArgumentParser(prog="switchd", description="A call-centre telephone switch.")
    p.add_argument("--version", action="version", version=f"switchd {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the switch in the foreground")
    run.add_argument("-c", "--config", default="config.yaml", help="config file (config.yaml)")
    run.add_argument("--state-dir", help="where switchd.db lives (overrides state_dir)")
    run.add_argument("--cti-listen", metavar="HOST:PORT",
                     help="control socket address (overrides cti.listen; port 0 = any free port)")
    run.add_argument("--log-format", choices=("auto", "json", "console"),
                     help="log format (overrides log.format)")
    run.set_defaults(func=cmd_run)

    chk = sub.add_parser("check", help="validate a config file as `switchd run` would")
    chk.add_argument("-c", "--config", default="config.yaml", help="config file (config.yaml)")
    chk.add_argument("--cti-listen", metavar="HOST:PORT",
                     help="check for this control socket address, as `run --cti-listen` gives")
    chk.set_defaults(func=cmd_check)

    pw = sub.add_parser("passwd", help="print a PBKDF2 hash of a secret for config.yaml")
    pw.add_argument("--stdin", action="store_true", help="read the secret from one line of stdin")
    pw.add_argument("--sip", metavar="EXTENSION",
                    help="print the digest line for sip.extensions.EXTENSION.password instead")
    pw.add_argument("--realm", default="switchd", help="the SIP realm (sip.realm; default switchd)")
    pw.set_defaults(func=cmd_passwd)

    bench = sub.add_parser("bench", help="benchmarks")
    bsub = bench.add_subparsers(dest="bench", required=True)
    calls = bsub.add_parser("calls", help="call set-up/answer/hang-up rate with CDRs written")
    calls.add_argument("--live", action="store_true",
                       help="drive a real daemon over the socket instead of the core in virtual time")
    calls.add_argument("--json", action="store_true", help="print one JSON object")
    calls.add_argument("--calls", type=int, default=None,
                       help="number of calls (default 100000 virtual, 6000 live)")
    calls.add_argument("--rate", type=float, default=None,
                       help="live: offered calls per second (default: as fast as accepted)")
    calls.add_argument("--lines", type=int, default=None,
                       help="trunks and extensions on the board (default 200 virtual, 800 live: "
                            "enough calls in flight that the daemon, not the window, bounds the rate)")
    calls.add_argument("--record", action="store_true",
                       help="live: record every call to WAV as well (recording.mode on_answer; "
                            "default off: the call path alone)")
    calls.set_defaults(func=cmd_bench)
    media = bsub.add_parser("media", help="real-time factor of the 20 ms media tick")
    media.add_argument("--channels", type=int, default=1000, help="channels (default 1000)")
    media.add_argument("--seconds", type=float, default=10.0, help="seconds of audio (default 10)")
    media.add_argument("--record", action="store_true",
                       help="record every call through the real recording tap and writer "
                            "(stereo PCM into a temporary folder): the cost of recording")
    media.add_argument("--find-max", action="store_true",
                       help="also search the largest channel count with rtf <= 0.5 (short runs)")
    media.add_argument("--json", action="store_true", help="print one JSON object")
    media.set_defaults(func=cmd_bench_media)
    ivr = bsub.add_parser("ivr", help="interpreter cost per step, and calls in flows with media")
    ivr.add_argument("--calls", type=int, default=2000,
                     help="calls walked through the demo flow for the per-step cost (default 2000)")
    ivr.add_argument("--channels", type=int, default=500,
                     help="calls in the flow with the media plane running (default 500)")
    ivr.add_argument("--seconds", type=float, default=20.0,
                     help="seconds of audio per media run (default 20)")
    ivr.add_argument("--sweep", metavar="N,N,...",
                     help="media runs at each of these sizes instead of --channels; reports "
                          "the largest with rtf <= 0.5")
    ivr.add_argument("--no-log", action="store_true",
                     help="media runs without logging every event (the daemon logs them)")
    ivr.add_argument("--json", action="store_true", help="print one JSON object")
    ivr.set_defaults(func=cmd_bench_ivr)
    cti = bsub.add_parser("cti", help="events to N subscribed CTI clients and PING / "
                          "QUEUE.STATUS latency, with calls cycling through the queues")
    cti.add_argument("--clients", type=int, default=500,
                     help="clients subscribed to every event (default 500)")
    cti.add_argument("--seconds", type=float, default=20.0,
                     help="seconds measured, after 3 s of load (default 20)")
    cti.add_argument("--calls-per-s", type=float, default=20.0,
                     help="calls offered per second, alternately to each queue (default 20)")
    cti.add_argument("--probes", type=int, default=4,
                     help="clients among them that also time PING and QUEUE.STATUS, 40 "
                          "requests/s in all (default 4)")
    cti.add_argument("--json", action="store_true", help="print one JSON object")
    cti.set_defaults(func=cmd_bench_cti)
    from switchd.bench_dtmf import add_dtmf_bench_parser
    from switchd.bench_report import add_report_bench_parser
    from switchd.bench_sip import add_sip_bench_parser

    add_report_bench_parser(bsub)
    add_sip_bench_parser(bsub)
    add_dtmf_bench_parser(bsub)
    # The engines are imported when `sim` runs, not to build the parser: the strategy
    # and talk names are checked there (a wrong one is named with the valid ones).
    sim = sub.add_parser("sim", help="a call centre in virtual time on the production engines, "
                         "compared with Erlang B/C/A")
    sim.add_argument("--trunks", type=int, default=None,
                     help="calls in the system at once, waiting or talking; an arrival finding "
                          "all busy is blocked (default: unlimited)")
    sim.add_argument("--agents", type=int, required=True,
                     help="agents, all logged in and ready")
    load = sim.add_mutually_exclusive_group(required=True)
    load.add_argument("--erlangs", type=float, help="offered load in Erlangs (arrivals x AHT)")
    load.add_argument("--calls-per-hour", type=float, help="mean arrivals per hour")
    sim.add_argument("--aht", type=float, default=180.0, help="mean talk time, s (default 180)")
    sim.add_argument("--patience", type=float, default=None,
                     help="callers' mean patience, s, exponential (default: infinite)")
    sim.add_argument("--wrapup", type=float, default=0.0,
                     help="wrap-up after each call, s (default 0)")
    sim.add_argument("--target", type=float, default=20.0,
                     help="service-level threshold T, s (default 20)")
    sim.add_argument("--hours", type=float, default=1.0,
                     help="hours of arrivals (default 1); the run ends when every caller left")
    sim.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    sim.add_argument("--strategy", default="longest_idle", metavar="NAME",
                     help="queue strategy: ringall, longest_idle (default), round_robin, "
                          "fewest_calls, least_talk_time, linear, random, weighted_random, "
                          "skills")
    sim.add_argument("--talk", default="exponential", metavar="DIST",
                     help="talk-time distribution with mean --aht: exponential (default) or "
                          "lognormal (coefficient of variation 1)")
    sim.add_argument("--json", action="store_true", help="print one JSON object")
    sim.add_argument("--records", metavar="DIR", default=None,
                     help="write the run's CDRs and queue_log to DIR (a new or empty folder) "
                          "for switchd report --state-dir DIR")
    sim.set_defaults(func=cmd_sim)
    from switchd.ivr.cli import add_flows_parser

    add_flows_parser(sub)
    from switchd.recorder.cli import add_recordings_parser

    add_recordings_parser(sub)
    from switchd.reports.cli import add_report_parser

    add_report_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``switchd`` console script."""
    # The media tick multiplies small matrices 50 times a second; a multi-threaded
    # BLAS makes each one wait on thread hand-offs (p90 ≈ 8 ms instead of 1 ms on 2
    # cores). One thread, set before numpy is first imported; the operator may override.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
