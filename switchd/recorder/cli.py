"""``switchd recordings …``: find, export, keep and purge call recordings from a shell.

Each sub-command opens the database the daemon writes (``<state_dir>/switchd.db`` of
the config, ``-c``; ``--state-dir`` overrides it as for ``switchd run``) and the
recordings directory (the config's ``recording.directory``, else
``<state_dir>/recordings``; ``--dir`` overrides). SQLite in WAL mode lets them run
beside a live daemon. :func:`add_recordings_parser` registers the command on the main
parser (``switchd.__main__``); imports of the store happen inside the commands, so
building the parser stays cheap for every other ``switchd`` command.

Exit codes: 0 done; 1 something the user must look at (no such recording, a copy
whose sha256 does not match the index, a config or database that cannot be used);
2 a bad option.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["add_recordings_parser", "cmd_export", "cmd_find", "cmd_keep", "cmd_purge"]

_COPY_BLOCK = 1 << 20
#: The columns of an export's ``index.csv`` (``file`` relative to the export folder).
MANIFEST_COLUMNS: tuple[str, ...] = (
    "id", "call_id", "file", "start", "end", "duration_s", "size", "caller", "callee",
    "agent", "agents", "queue", "direction", "mode", "channels", "format", "status", "keep",
    "sha256", "verified",
)


def _err(msg: str) -> None:
    sys.stderr.write(msg.rstrip("\n") + "\n")


class _Fail(Exception):
    """A command cannot go on: ``msg`` for stderr, ``code`` the exit code."""

    def __init__(self, msg: str, code: int = 1) -> None:
        super().__init__(msg)
        self.msg = msg
        self.code = code


@dataclass(frozen=True, slots=True)
class _Where:
    """Where the command's data is: the database file, the recordings directory, and the
    retention settings of the config (None without a ``recording:`` section)."""

    db: Path
    directory: Path
    retention: Any


def _where(args: argparse.Namespace) -> _Where:
    """The database and recordings directory for ``args`` (module docstring). Raises
    _Fail when the config cannot be used or the database does not exist."""
    from switchd.config import load_config
    from switchd.exceptions import ConfigError

    config = Path(args.config)
    cfg: Any = None
    if config.exists():
        try:
            cfg = load_config(config)
        except ConfigError as exc:
            for p in exc.problems:
                _err(p)
            raise _Fail(f"switchd recordings: {config} has {len(exc.problems)} problem(s); "
                        f"`switchd check -c {config}` shows them") from None
    elif args.state_dir is None:
        raise _Fail(f"switchd recordings: no config file {config}; give -c CONFIG (or "
                    "--state-dir DIR: where switchd.db is)")
    state_dir = Path(args.state_dir).absolute() if args.state_dir else cfg.state_dir
    recording = getattr(cfg, "recording", None)
    if args.dir:
        directory = Path(args.dir).absolute()
    elif recording is not None and Path(recording.directory) != cfg.state_dir / "recordings":
        directory = Path(recording.directory)  # recording.path set explicitly in the config
    else:
        # The default, recordings/ under the state directory: --state-dir moves it too.
        directory = state_dir / "recordings"
    db = state_dir / "switchd.db"
    if not db.exists():
        raise _Fail(f"switchd recordings: no database {db}: has switchd run with this config? "
                    "(give --state-dir DIR for another state directory)")
    return _Where(db, directory, getattr(recording, "retention", None))


def _run(args: argparse.Namespace, body: Callable[[Any, _Where], Coroutine[Any, Any, int]],
         *, log_level: str = "warning") -> int:
    """Open the store named by ``args`` and run ``body(store, where)``; map failures to
    exit codes. Log lines (``recording_purged``, warnings) go to stderr, so stdout
    carries only the command's output."""
    from switchd.exceptions import StorageError
    from switchd.logconfig import configure_logging
    from switchd.store.sqlite import Store

    configure_logging("auto", log_level, stream=sys.stderr.buffer)

    async def main() -> int:
        where = _where(args)
        store = await Store.open(where.db)
        try:
            return await body(store, where)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except _Fail as exc:
        _err(exc.msg)
        return exc.code
    except StorageError as exc:
        _err(f"switchd recordings: {exc}")
        return 1


def _filters(args: argparse.Namespace) -> dict[str, str | None]:
    return {k: getattr(args, k) for k in ("call", "caller", "callee", "agent", "queue",
                                          "since", "until", "status")}


def _num(value: object) -> float:
    """A stored number as float (0 for NULL)."""
    return float(value) if isinstance(value, int | float) else 0.0


def _duration(seconds: object) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour) of a duration in seconds."""
    s = int(round(_num(seconds)))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _size(n: object) -> str:
    """Bytes as text in KiB/MiB/GiB (one decimal)."""
    value = _num(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover - the loop returns


def _when(iso: object) -> str:
    """A stored time (``2026-11-30T03:48:43.123Z``) shown to the second, or ``-``."""
    return str(iso)[:19].replace("T", " ") if iso else "-"


def _json_line(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


# ------------------------------------------------------------------ find


def cmd_find(args: argparse.Namespace) -> int:
    """Print the recordings matching the filters, newest first: a table (times UTC), or
    one JSON object per line with ``--json`` (every column, ``file`` absolute, ``marks``
    a list). Exit 2 for a bad filter."""

    async def body(store: Any, where: _Where) -> int:
        from switchd.recorder import index

        try:
            rows = await index.query(store, **_filters(args), limit=args.limit,
                                     directory=where.directory)
        except ValueError as exc:
            raise _Fail(f"switchd recordings find: {exc}", 2) from None
        rows = index.live_figures(rows)   # a live recording: its file as it is now
        if args.json:
            for row in rows:
                sys.stdout.write(_json_line(row) + "\n")
            return 0
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{len(rows)} recording(s), newest first; times UTC",
                      caption=f"files under {where.directory}", show_lines=False)
        for name, just in (("start", "left"), ("id", "left"), ("status", "left"),
                           ("length", "right"), ("caller", "left"), ("callee", "left"),
                           ("agent", "left"), ("queue", "left"), ("size", "right"),
                           ("keep", "center")):
            table.add_column(name, justify=just, no_wrap=name in ("start", "id"))  # type: ignore[arg-type]
        for r in rows:
            table.add_row(_when(r["start"]), str(r["id"]), str(r["status"]),
                          _duration(r["duration_s"]), r["caller"] or "", r["callee"] or "",
                          r["agent"] or "", r["queue"] or "", _size(r["size"]),
                          "yes" if r["keep"] else "")
        Console(width=max(140, Console().width)).print(table)
        return 0

    return _run(args, body)


# ------------------------------------------------------------------ keep


def cmd_keep(args: argparse.Namespace) -> int:
    """Mark recording ``ID`` kept (retention never deletes it), or not with ``--off``.
    Exit 1 when there is no such recording."""

    async def body(store: Any, where: _Where) -> int:
        from switchd.recorder import index

        row = await index.set_keep(store, args.id, not args.off, directory=where.directory)
        if row is None:
            raise _Fail(f"switchd recordings keep: no recording {args.id} (`switchd recordings "
                        "find` lists them)")
        state = "kept: retention never deletes it" if row["keep"] else \
            "no longer kept: retention may delete it"
        print(f"{row['id']} {state} ({row['file']})")
        return 0

    return _run(args, body)


# ------------------------------------------------------------------ purge


def cmd_purge(args: argparse.Namespace) -> int:
    """Apply retention now (the config's ``recording.retention``, or ``--days`` /
    ``--max-mb``). ``--dry-run`` prints what would be deleted and deletes nothing;
    otherwise each deletion is logged on stderr (``recording_purged``) and a summary
    printed."""

    async def body(store: Any, where: _Where) -> int:
        from switchd.recorder.model import RetentionSettings
        from switchd.recorder.retention import purge

        base = where.retention if where.retention is not None else RetentionSettings()
        days = args.days if args.days is not None else base.days
        max_mb = args.max_mb if args.max_mb is not None else base.max_mb
        if days is None and max_mb is None:
            print("no retention limit: set recording.retention.days or max_mb in the config "
                  "(or give --days / --max-mb); nothing purged")
            return 0
        settings = RetentionSettings(days=days, max_mb=max_mb,
                                     check_every_s=base.check_every_s)
        done = await purge(store, where.directory, settings, time.time(), dry_run=args.dry_run)
        total = sum(p.size for p in done)
        if args.dry_run:
            from rich.console import Console
            from rich.table import Table

            table = Table(title=f"would purge {len(done)} recording(s), {_size(total)}")
            for name in ("id", "file", "age (days)", "size", "why"):
                table.add_column(name)
            for p in done:
                table.add_row(p.id, p.file, f"{p.age_s / 86400:.1f}", _size(p.size), p.why.value)
            Console(width=max(120, Console().width)).print(table)
        else:
            print(f"purged {len(done)} recording(s), {_size(total)}, from {where.directory}")
        return 0

    return _run(args, body, log_level="info")


# ------------------------------------------------------------------ export


@dataclass(frozen=True, slots=True)
class _Copied:
    """One recording after export: ``verified`` ok | mismatch | missing | no sha256."""

    row: dict[str, Any]
    rel: str
    verified: str


def _copy_and_hash(src: Path, dst: Path, advance: Callable[[int], None]) -> str:
    """Copy ``src`` to ``dst`` (creating folders; mtime kept), then read ``dst`` back and
    return its hex sha256: the copy itself is what is verified. Blocking."""
    import os
    import shutil

    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while block := fin.read(_COPY_BLOCK):
            fout.write(block)
            advance(len(block))
        fout.flush()
        os.fsync(fout.fileno())
    shutil.copystat(src, dst)
    digest = hashlib.sha256()
    with open(dst, "rb") as f:
        while block := f.read(_COPY_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _safe_rel(rel: str) -> Path | None:
    """``rel`` as a relative path inside the directory, or None for ``..``/absolute."""
    path = Path(rel)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        return None
    return path


def _csv_value(value: object) -> object:
    """A manifest cell: NULL empty, booleans ``true``/``false`` (as on the CTI wire)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _write_manifest(to: Path, copied: list[_Copied]) -> None:
    """``index.csv`` (the columns of :data:`MANIFEST_COLUMNS`) and ``index.json`` (the
    same rows with ``marks``) in ``to``; ``file`` relative to ``to``."""
    rows = []
    for c in copied:
        row = {k: c.row.get(k) for k in MANIFEST_COLUMNS if k not in ("file", "verified")}
        row.update(file=c.rel, verified=c.verified)
        rows.append((row, c.row.get("marks")))
    with open(to / "index.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(MANIFEST_COLUMNS))
        w.writeheader()
        for row, _marks in rows:
            w.writerow({k: _csv_value(v) for k, v in row.items()})
    with open(to / "index.json", "w", encoding="utf-8") as f:
        json.dump([{**{k: row[k] for k in MANIFEST_COLUMNS}, "marks": marks}
                   for row, marks in rows], f, ensure_ascii=False, indent=1)
        f.write("\n")


def cmd_export(args: argparse.Namespace) -> int:
    """Copy the recordings matching the filters (``--since`` required) to ``--to DIR``,
    keeping the ``YYYY/MM/DD/`` layout, with a progress bar on a terminal; verify each
    copy's sha256 against the index; write ``index.csv`` and ``index.json`` there.
    Recordings still being written are skipped. Exit 1 if a file is missing or a copy
    does not match its sha256 (the manifest's ``verified`` column says which)."""

    async def body(store: Any, where: _Where) -> int:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        from switchd.recorder import index

        try:
            rows = [r async for r in index.query_all(store, **_filters(args))]
        except ValueError as exc:
            raise _Fail(f"switchd recordings export: {exc}", 2) from None
        rows.reverse()  # oldest first: the order a person reads an archive in
        live = [r for r in rows if r["status"] == "recording"]
        rows = [r for r in rows if r["status"] != "recording"]
        to = Path(args.to).absolute()
        if to == where.directory or to.is_relative_to(where.directory):
            raise _Fail(f"switchd recordings export: --to {to} is inside the recordings "
                        f"directory {where.directory}; export somewhere else", 2)
        to.mkdir(parents=True, exist_ok=True)
        err = Console(stderr=True)
        copied: list[_Copied] = []
        with Progress(TextColumn("{task.description}"), BarColumn(),
                      DownloadColumn(binary_units=True), TransferSpeedColumn(),
                      TimeRemainingColumn(), console=err,
                      disable=not err.is_terminal) as progress:
            task = progress.add_task(f"0/{len(rows)} files",
                                     total=sum(int(_num(r["size"])) for r in rows))
            for n, r in enumerate(rows, 1):
                progress.update(task, description=f"{n}/{len(rows)} files")
                rel = _safe_rel(str(r["file"]))
                if rel is None:
                    copied.append(_Copied(r, str(r["file"]), "missing"))
                    continue
                src, dst = where.directory / rel, to / rel
                try:
                    digest = await asyncio.to_thread(
                        _copy_and_hash, src, dst,
                        lambda n: progress.advance(task, n))
                except FileNotFoundError:
                    copied.append(_Copied(r, rel.as_posix(), "missing"))
                    continue
                want = r["sha256"]
                verified = "no sha256" if not want else "ok" if digest == want else "mismatch"
                copied.append(_Copied(r, rel.as_posix(), verified))
        _write_manifest(to, copied)
        counts: dict[str, int] = {}
        for c in copied:
            counts[c.verified] = counts.get(c.verified, 0) + 1
        total = sum(int(_num(c.row["size"])) for c in copied if c.verified != "missing")
        if copied:
            verdicts = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
            print(f"exported {len(copied) - counts.get('missing', 0)} recording(s), "
                  f"{_size(total)}, to {to} (index.csv, index.json); sha256: {verdicts}")
        else:
            print(f"no recordings match; wrote an empty index.csv to {to}")
        for c in copied:
            if c.verified in ("missing", "mismatch"):
                _err(f"switchd recordings export: {c.row['id']}: "
                     + ("file missing: " + str(where.directory / c.rel) if c.verified == "missing"
                        else f"the copy's sha256 differs from the index: {to / c.rel}"))
        if live:
            print(f"skipped {len(live)} recording(s) still being written "
                  f"({', '.join(str(r['id']) for r in live[:5])}{', …' if len(live) > 5 else ''})")
        return 1 if counts.get("missing") or counts.get("mismatch") else 0

    return _run(args, body)


# ------------------------------------------------------------------ parser


def add_recordings_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``switchd recordings find|export|keep|purge`` to ``sub`` (the main parser's
    sub-parsers). Returns the ``recordings`` parser."""
    rec = sub.add_parser("recordings", help="find, export, keep and purge call recordings")
    rsub = rec.add_subparsers(dest="recordings_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("-c", "--config", default="config.yaml",
                       help="config file: where state_dir and recording.directory are "
                            "(config.yaml)")
        p.add_argument("--state-dir", metavar="DIR",
                       help="where switchd.db is (overrides state_dir, as for `switchd run`)")
        p.add_argument("--dir", metavar="DIR",
                       help="the recordings directory (overrides recording.directory)")

    def filters(p: argparse.ArgumentParser, *, since_required: bool = False) -> None:
        p.add_argument("--call", help="a call id")
        p.add_argument("--caller", help="the caller's number, exactly")
        p.add_argument("--callee", help="the number called, exactly")
        p.add_argument("--agent", help="the agent id (or extension) who took the call")
        p.add_argument("--queue", help="the queue the call came through")
        p.add_argument("--since", required=since_required, metavar="TIME",
                       help="recordings that started at or after TIME: a date (2026-11-30, "
                            "midnight UTC), ISO-8601 (2026-11-30T11:48:43+08:00; no offset "
                            "means UTC) or epoch seconds")
        p.add_argument("--until", metavar="TIME", help="... that started before TIME")
        p.add_argument("--status", choices=("recording", "done", "recovered", "failed"),
                       help="only recordings in this state")

    fd = rsub.add_parser("find", help="list recordings matching filters, newest first",
                         description="List recordings from the index, newest first.")
    filters(fd)
    fd.add_argument("--limit", type=int, default=100, help="at most this many (1-10000; 100)")
    fd.add_argument("--json", action="store_true",
                    help="one JSON object per line: every column, file absolute, marks a list")
    common(fd)
    fd.set_defaults(func=cmd_find)

    ex = rsub.add_parser(
        "export", help="copy recordings (YYYY/MM/DD layout) and an index.csv to a folder",
        description="Copy the recordings matching the filters to --to DIR, keeping the "
                    "YYYY/MM/DD/ layout, verify each copy's sha256 against the index, and "
                    "write index.csv and index.json (with a 'verified' column) there.")
    filters(ex, since_required=True)
    ex.add_argument("--to", required=True, metavar="DIR", help="the folder to export to")
    common(ex)
    ex.set_defaults(func=cmd_export)

    kp = rsub.add_parser("keep", help="mark a recording kept: retention never deletes it")
    kp.add_argument("id", metavar="ID", help="the recording id (the call id)")
    kp.add_argument("--off", action="store_true", help="unmark it: retention may delete it")
    common(kp)
    kp.set_defaults(func=cmd_keep)

    pg = rsub.add_parser("purge", help="apply retention now (recording.retention)",
                         description="Delete recordings past the retention limits now: "
                                     "older than --days, then the oldest while over --max-mb; "
                                     "never kept or open ones.")
    pg.add_argument("--dry-run", action="store_true", help="show what would go; delete nothing")
    pg.add_argument("--days", type=float, help="override recording.retention.days")
    pg.add_argument("--max-mb", type=float, help="override recording.retention.max_mb (MiB)")
    common(pg)
    pg.set_defaults(func=cmd_purge)
    return rec
