"""Behaviour of switchd.sdnotify against a real AF_UNIX datagram socket."""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from switchd.sdnotify import SdNotifier, watchdog_interval_s

# sun_path holds 108 bytes including the NUL; pytest's tmp_path can be longer.
_SUN_PATH_MAX = 107


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    short_dir = None
    if len(os.fsencode(path)) > _SUN_PATH_MAX:
        short_dir = tempfile.mkdtemp(prefix="sdn")
        path = os.path.join(short_dir, "n.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield sock, path
    sock.close()
    os.unlink(path)
    if short_dir is not None:
        os.rmdir(short_dir)


@pytest.fixture
def make() -> Iterator[Callable[..., SdNotifier]]:
    """SdNotifier constructor whose instances are closed after the test."""
    made: list[SdNotifier] = []

    def build(socket_path: str | None = None) -> SdNotifier:
        notifier = SdNotifier(socket_path)
        made.append(notifier)
        return notifier

    yield build
    for notifier in made:
        notifier.close()


def _no_more(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(4096)
    except BlockingIOError:
        return True
    return False


def test_ready_sends_exactly_ready_1(receiver, make):
    sock, path = receiver
    notifier = make(path)
    assert notifier.enabled
    assert notifier.ready() is True
    assert sock.recv(4096) == b"READY=1"


def test_ready_with_status_sends_both_lines_in_one_datagram(receiver, make):
    sock, path = receiver
    assert make(path).ready("serving 8 trunks") is True
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving 8 trunks"
    assert _no_more(sock)


def test_stopping_watchdog_and_status_datagrams(receiver):
    sock, path = receiver
    with SdNotifier(path) as notifier:
        assert notifier.stopping()
        assert notifier.watchdog()
        assert notifier.status("draining 3 calls")
        assert notifier.notify("READY=1", "STATUS=back")
    assert [sock.recv(4096) for _ in range(4)] == [
        b"STOPPING=1",
        b"WATCHDOG=1",
        b"STATUS=draining 3 calls",
        b"READY=1\nSTATUS=back",
    ]


def test_status_with_a_newline_cannot_forge_another_assignment(receiver, make):
    sock, path = receiver
    notifier = make(path)
    assert notifier.status("ok\nREADY=1")
    assert sock.recv(4096) == b"STATUS=ok READY=1"
    assert notifier.notify("STATUS=x\nSTOPPING=1") is False
    assert _no_more(sock)


def test_reloading_sends_the_current_monotonic_time_in_microseconds(receiver, make):
    sock, path = receiver
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert make(path).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    first, second = sock.recv(4096).decode().split("\n")
    assert first == "RELOADING=1"
    key, value = second.split("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_notify_socket_from_the_environment_is_used(receiver, monkeypatch, make):
    sock, path = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert make().watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"


def test_abstract_socket_name_with_at_prefix_works(monkeypatch, make):
    name = "switchd-test-" + secrets.token_hex(8)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        notifier = make()
        assert notifier.enabled
        assert notifier.ready()
        assert sock.recv(4096) == b"READY=1"
    finally:
        sock.close()


def test_without_notify_socket_every_call_is_a_quiet_no_op(monkeypatch, make):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = make()
    assert notifier.enabled is False
    assert notifier.notify("READY=1") is False
    assert notifier.ready("x") is False
    assert notifier.reloading() is False
    assert notifier.stopping() is False
    assert notifier.watchdog() is False
    assert notifier.status("x") is False
    notifier.close()


def test_a_socket_path_that_does_not_exist_returns_false(tmp_path, make):
    notifier = make(str(tmp_path / "missing.sock"))
    assert notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False


def test_an_unbound_abstract_name_returns_false(make):
    assert make("@switchd-nobody-" + secrets.token_hex(8)).ready() is False


def test_unsupported_address_disables_the_notifier(make):
    notifier = make("vsock:2:1234")
    assert notifier.enabled is False
    assert notifier.ready() is False


def test_after_close_calls_return_false_and_close_is_idempotent(receiver, make):
    sock, path = receiver
    notifier = make(path)
    assert notifier.ready()
    sock.recv(4096)
    notifier.close()
    notifier.close()
    assert notifier.enabled is False
    assert notifier.watchdog() is False
    assert _no_more(sock)


def test_notify_with_no_lines_sends_nothing(receiver, make):
    sock, path = receiver
    assert make(path).notify() is False
    assert _no_more(sock)


def test_watchdog_interval_is_half_the_timeout_in_seconds(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval_s() == 5.0


def test_watchdog_interval_applies_when_watchdog_pid_is_ours(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval_s() == 15.0


def test_watchdog_meant_for_another_pid_is_ignored(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert watchdog_interval_s() is None


@pytest.mark.parametrize("value", [None, "", "abc", "0", "-5"])
def test_watchdog_interval_is_none_when_unset_or_invalid(monkeypatch, value):
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    if value is None:
        monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    else:
        monkeypatch.setenv("WATCHDOG_USEC", value)
    assert watchdog_interval_s() is None
