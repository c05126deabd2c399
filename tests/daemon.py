"""Helpers for end-to-end tests: start the real daemon as a subprocess, talk to it over TCP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from switchd.cti.codec import parse_line
from switchd.passwords import hash_secret

ROOT = Path(__file__).resolve().parent.parent
FAST_HASH = {s: hash_secret(s, iterations=1000) for s in ("demo", "demo-admin")}


def make_config(*, flows: bool = False, queues: dict[str, Any] | None = None,
                agents: list[dict[str, Any]] | None = None,
                queue_routes: dict[str, str] | None = None,
                **overrides: Any) -> dict[str, Any]:
    """The shipped config.yaml with demo traffic off and cheap hashes, plus ``overrides``.

    The shipped flows and prompts are used where they are (absolute paths). With
    ``flows=False`` (the default, for tests of plain call control) the demo service
    number 8000 rings group sales directly instead of entering flows/main.yaml.
    ``queues`` and ``agents`` replace the shipped ACD sections (config.yaml's shape:
    ``{"q": {"strategy": "linear"}}``, ``[{"id": "a1", "extension": 201, "queues":
    {"q": 0}, "login": True}]``); the shipped flows need the shipped queues, so give
    them only with ``flows=False``. ``queue_routes`` (DNIS -> queue name) go first in
    the routes: ``{"6000": "q"}`` sends calls to 6000 to ``queue:q``.
    ``overrides`` are dotted keys: ``{"sim.bots.answer_after_s": 0}``.
    """
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    if queues is not None:
        cfg["queues"] = queues
        # The shipped extra mailboxes belong to the shipped queues.
        cfg.setdefault("voicemail", {})["boxes"] = {}
    if agents is not None:
        cfg["agents"] = agents
    for dnis, name in reversed(list((queue_routes or {}).items())):
        cfg["routes"].insert(0, {"dnis": dnis, "to": f"queue:{name}"})
    for user in cfg["users"]:
        user["secret"] = FAST_HASH["demo-admin" if user["name"] == "admin" else "demo"]
    cfg["sim"]["traffic"]["enabled"] = False
    cfg.setdefault("ivr", {})["flows_dir"] = str(ROOT / "flows")
    cfg.setdefault("media", {})["prompts_dir"] = str(ROOT / "prompts")
    cfg["media"]["moh_dir"] = str(ROOT / "prompts" / "moh")
    if not flows:
        for route in cfg["routes"]:
            if str(route.get("to", "")).startswith("flow:"):
                route["to"] = "group:sales"
    for dotted, value in overrides.items():
        node = cfg
        *path, last = dotted.split(".")
        for key in path:
            node = node.setdefault(key, {})
        node[last] = value
    return cfg


@dataclass
class Daemon:
    """A running ``switchd run`` subprocess."""

    proc: subprocess.Popen[bytes]
    port: int
    state_dir: Path
    config_path: Path
    log_path: Path

    @property
    def db(self) -> Path:
        return self.state_dir / "switchd.db"

    def log_lines(self) -> list[str]:
        return self.log_path.read_text().splitlines()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def start_daemon(tmp: Path, cfg: dict[str, Any] | None = None, *, extra: list[str] | None = None,
                 listen: str = "127.0.0.1:0", wait: bool = True,
                 env: dict[str, str] | None = None) -> Daemon:
    """Write ``cfg`` (default :func:`make_config`) under ``tmp`` and start the daemon on it."""
    tmp.mkdir(parents=True, exist_ok=True)
    config_path = tmp / "config.yaml"
    config_path.write_text(yaml.safe_dump(cfg if cfg is not None else make_config()))
    state_dir = tmp / "state"
    log_path = tmp / "stdout.log"
    out = open(log_path, "wb")
    base = dict(os.environ, PYTHONUNBUFFERED="1")
    for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        base.pop(key, None)
    env = {**base, **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "switchd", "run", "-c", str(config_path), "--state-dir",
         str(state_dir), "--cti-listen", listen, *(extra or [])],
        stdout=out, stderr=subprocess.PIPE, cwd=tmp, env=env)
    out.close()
    d = Daemon(proc, 0, state_dir, config_path, log_path)
    if not wait:
        return d
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for line in d.log_lines():
            if '"cti_listening"' in line:
                d.port = json.loads(line)["port"]
                return d
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited {proc.returncode}: "
                               f"{proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError("daemon did not log cti_listening within 20 s")


@contextmanager
def running(tmp: Path, cfg: dict[str, Any] | None = None, **kw: Any) -> Iterator[Daemon]:
    """Start a daemon and make sure it is gone afterwards."""
    d = start_daemon(tmp, cfg, **kw)
    try:
        yield d
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(5)


@dataclass
class Client:
    """A CTI client over a real TCP socket. Replies and events are kept apart."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    greeting: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    _tag: int = 0

    @classmethod
    async def connect(cls, port: int) -> Client:
        r, w = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        c = cls(r, w)
        c.greeting = (await asyncio.wait_for(r.readline(), 5)).decode().rstrip("\r\n")
        return c

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def line(self, timeout: float = 5.0) -> str:
        raw = await asyncio.wait_for(self.reader.readline(), timeout)
        if not raw:
            raise EOFError("server closed the connection")
        return raw.decode().rstrip("\r\n")

    async def reply(self, tag: str | None = None, timeout: float = 5.0) -> list[str]:
        """Read up to the final OK/ERR/END (with ``tag``), filing events on the way."""
        out: list[str] = []
        while True:
            text = await self.line(timeout)
            if text.startswith("EVENT "):
                self.events.append(self.parse_event(text))
                continue
            out.append(text)
            body = text.split(" ", 1)[1] if text.startswith("#") else text
            if tag is not None and not text.startswith(f"#{tag} "):
                continue
            if body.startswith(("OK", "ERR", "END")):
                return out

    async def cmd(self, text: str, timeout: float = 5.0) -> list[str]:
        """Send one tagged request and return its reply lines (the last is OK/ERR/END)."""
        self._tag += 1
        tag = f"t{self._tag}"
        await self.send_raw(f"#{tag} {text}\n".encode())
        return [x.split(" ", 1)[1] for x in await self.reply(tag, timeout)]

    async def ok(self, text: str) -> dict[str, str]:
        """Send a request that must succeed; return the OK line's fields."""
        lines = await self.cmd(text)
        assert lines[-1].startswith("OK"), f"{text!r} -> {lines}"
        return fields(lines[-1])

    async def wait_event(self, name: str, timeout: float = 5.0, **match: str) -> dict[str, Any]:
        """Wait for an event ``name`` whose fields include ``match``."""
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events:
                if ev["event"] == name and all(ev.get(k) == v for k, v in match.items()):
                    return ev
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {name} {match}; got {[e['event'] for e in self.events]}")
            text = await self.line(left)
            if text.startswith("EVENT "):
                self.events.append(self.parse_event(text))

    @staticmethod
    def parse_event(text: str) -> dict[str, Any]:
        _, name, rest = text.split(" ", 2)
        req = parse_line(f"X {rest}")
        assert not hasattr(req, "code"), text
        return {"event": name, **req.args}  # type: ignore[union-attr]

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


def fields(line: str) -> dict[str, str]:
    """The key=value fields of an OK/ERR/ITEM/END line."""
    req = parse_line(line)
    assert not hasattr(req, "code"), line
    return dict(req.args)  # type: ignore[union-attr]


async def admin(port: int) -> Client:
    """A client logged in as the demo admin."""
    c = await Client.connect(port)
    await c.ok("AUTH user=admin secret=demo-admin")
    return c


def stop_and_check_json(d: Daemon) -> tuple[int, list[dict[str, Any]]]:
    """SIGTERM the daemon; return its exit code and every stdout line parsed as JSON."""
    code = d.stop()
    return code, [json.loads(x) for x in d.log_lines() if x.strip()]


__all__ = ["Client", "Daemon", "admin", "fields", "running", "start_daemon", "stop_and_check_json",
           "make_config"]

