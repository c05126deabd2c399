"""baresip (Debian's headless softphone) driven from tests over its ctrl_tcp socket.

One instance per phone, with a config directory written here: loopback only, G.711,
RFC 4733 keys, its microphone a WAV file (``aufile``), what it hears dumped to WAV by
``sndfile`` (``<dir>/rec/dump-…-dec.wav``), no sound hardware. Commands and events are
netstring JSON (``{"command": "dial", "params": "sip:…"}``; events like
``CALL_ESTABLISHED``, ``CALL_DTMF_START``, ``CALL_CLOSED``). Ports: baresip also binds
SIP port + 1, so instances are kept 10 apart.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import socket
import subprocess
import threading
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

BINARY = shutil.which("baresip")


def free_port_block(n: int = 4) -> int:
    """A port p such that p..p+n-1 (UDP and TCP) looked free just now."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p + n >= 65535:
            continue
        try:
            socks = []
            for k in range(n):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    t = socket.socket(socket.AF_INET, kind)
                    socks.append(t)
                    t.bind(("127.0.0.1", p + k))
            return p
        except OSError:
            continue
        finally:
            for t in socks:
                t.close()
    raise RuntimeError("no free block of ports")


def write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(samples.astype("<i2").tobytes())


class Baresip:
    """A baresip phone ``aor`` (``<sip:201@127.0.0.1:5070>;auth_pass=…``) saying ``voice``."""

    def __init__(self, folder: Path, account: str, voice: Path, *, answer: str = "auto") -> None:
        self.dir = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "rec").mkdir(exist_ok=True)
        base = free_port_block(4)
        self.sip_port, self.ctrl_port = base, base + 2
        rtp = 20000 + (base % 400) * 100
        (folder / "config").write_text("\n".join([
            "poll_method\tepoll", f"sip_listen\t127.0.0.1:{self.sip_port}",
            "call_local_timeout\t120", "call_max_calls\t4", "audio_path\t/usr/share/baresip",
            "audio_player\taubridge,nil", f"audio_source\taufile,{voice}", "audio_alert\taubridge,nil",
            "ausrc_srate\t8000", "auplay_srate\t8000", "ausrc_channels\t1", "auplay_channels\t1",
            "audio_level\tno", "ausrc_format\ts16", "auplay_format\ts16", "auenc_format\ts16",
            "audec_format\ts16", "audio_buffer\t20-160", f"rtp_ports\t{rtp}-{rtp + 39}",
            "rtcp_mux\tno", "jitter_buffer_delay\t5-10", "rtp_stats\tno",
            "dns_server\t127.0.0.1:53", "net_interface\t127.0.0.1",
            "module_path\t/usr/lib/baresip/modules", "module\tg711.so", "module\tsndfile.so",
            "module\taufile.so", "module\taubridge.so", "module_tmp\tuuid.so",
            "module_tmp\taccount.so", "module_app\tmenu.so", "module_app\tctrl_tcp.so",
            f"ctrl_tcp_listen\t127.0.0.1:{self.ctrl_port}", f"snd_path\t{folder / 'rec'}",
            "ringback_disabled\tyes", "statmode_default\toff", ""]))
        (folder / "accounts").write_text(
            f"{account};answermode={answer};audio_codecs=PCMU,PCMA\n")
        self.events: list[dict[str, Any]] = []
        self._pending: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._responses: queue.Queue[dict[str, Any]] = queue.Queue()
        self._token = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None

    def start(self, timeout: float = 10.0) -> Baresip:
        assert BINARY is not None
        log = open(self.dir / "baresip.log", "wb")
        self.proc = subprocess.Popen([BINARY, "-f", str(self.dir)], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
                                     env=dict(os.environ, HOME=str(self.dir)))
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"baresip exited {self.proc.returncode}: "
                                   f"{(self.dir / 'baresip.log').read_text()[-2000:]}")
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=0.5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError("baresip's ctrl_tcp never came up") from None
                time.sleep(0.05)
        self.sock.settimeout(None)
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.cmd("quit", wait=False)
            except OSError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _read(self) -> None:
        buf = b""
        assert self.sock is not None
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while (colon := buf.find(b":")) >= 0:
                n = int(buf[:colon])
                if len(buf) < colon + n + 2:
                    break
                msg = json.loads(buf[colon + 1:colon + 1 + n])
                buf = buf[colon + n + 2:]
                if msg.get("event"):
                    with self._cond:
                        self.events.append(msg)
                        self._pending.append(msg)
                        self._cond.notify_all()
                elif msg.get("response"):
                    self._responses.put(msg)

    def cmd(self, command: str, params: str | None = None, *, wait: bool = True) -> dict | None:
        self._token += 1
        req: dict[str, str] = {"command": command, "token": str(self._token)}
        if params is not None:
            req["params"] = params
        raw = json.dumps(req).encode()
        assert self.sock is not None
        self.sock.sendall(b"%d:%s," % (len(raw), raw))
        if not wait:
            return None
        while True:
            r = self._responses.get(timeout=5)
            if r.get("token") == str(self._token):
                return r

    def wait_registered(self, timeout: float = 10.0) -> None:
        """Poll ``reginfo`` (REGISTER_OK fires before we can connect)."""
        deadline = time.monotonic() + timeout
        data = ""
        while time.monotonic() < deadline:
            r = self.cmd("reginfo")
            data = re.sub(r"\x1b\[[0-9;]*m", "", (r or {}).get("data", ""))
            if re.search(r"\bOK\b", data):
                return
            time.sleep(0.1)
        raise TimeoutError(f"baresip did not register: {data!r}")

    def wait_event(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, ev in enumerate(self._pending):
                    if ev.get("type") == kind:
                        return self._pending.pop(i)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {kind} within {timeout} s; saw "
                                       f"{[e.get('type') for e in self.events]}")
                self._cond.wait(left)

    def heard(self) -> np.ndarray:
        """What it received in its last call (int16 at 8 kHz, from the sndfile dump)."""
        files = sorted((self.dir / "rec").glob("*-dec.wav"))
        if not files:
            return np.zeros(0, dtype=np.int16)
        with wave.open(str(files[-1])) as w:
            return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
