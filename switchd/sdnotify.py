"""systemd ``Type=notify`` support without a dependency.

The protocol (sd_notify(3), "Notes"): send one datagram of newline-separated
``VARIABLE=value`` assignments to the ``AF_UNIX`` ``SOCK_DGRAM`` socket named in
``$NOTIFY_SOCKET``. A name starting with ``/`` is a path; a name starting with ``@``
is in the Linux abstract namespace (the ``@`` stands for a leading NUL byte).
systemd reads the sender's credentials from the kernel, so nothing else is needed.

The daemon's contract with systemd (DESIGN.md §7): ``READY=1`` once listening,
``RELOADING=1`` then ``READY=1`` around a SIGHUP reload, ``STOPPING=1`` when shutdown
begins, ``WATCHDOG=1`` every `watchdog_interval_s` seconds while the loop is healthy.

Nothing here raises: a lost notification must never take the switch down, so
every call reports success as a bool and logs the first failure of a run.
"""

from __future__ import annotations

import os
import socket
import time
from types import TracebackType

import structlog

__all__ = ["SdNotifier", "watchdog_interval_s"]

_log = structlog.get_logger(__name__)


def _address(name: str) -> bytes | None:
    """Socket address for a ``$NOTIFY_SOCKET`` value, or None if unsupported.

    sd_notify(3): absolute paths and ``@`` abstract names. Newer systemd also
    accepts ``vsock:`` addresses (VMs); switchd runs on the host, so they are
    treated as "no notification socket".
    """
    if name.startswith("/"):
        return os.fsencode(name)
    if name.startswith("@") and len(name) > 1:
        return b"\0" + os.fsencode(name[1:])
    return None


class SdNotifier:
    """Sends sd_notify(3) state changes to the service manager.

    Args:
        socket_path: the notification socket; default ``$NOTIFY_SOCKET``. An
            absolute path or an ``@abstract`` name. With no socket (not run by
            systemd, or ``Type=simple``) the notifier is disabled and every call is
            a no-op that returns False.

    The socket is opened on first use and is non-blocking: if systemd's receive
    queue is full, the notification is dropped (returns False) rather than
    stalling the event loop.
    """

    def __init__(self, socket_path: str | None = None) -> None:
        name = os.environ.get("NOTIFY_SOCKET", "") if socket_path is None else socket_path
        self._name = name
        self._address = _address(name) if name else None
        self._sock: socket.socket | None = None
        self._closed = False
        self._failing = False
        if name and self._address is None:
            _log.warning("sd_notify socket address not supported; notifications off", address=name)

    @property
    def enabled(self) -> bool:
        """True when there is a notification socket to send to (and not closed)."""
        return self._address is not None and not self._closed

    def notify(self, *lines: str) -> bool:
        """Send ``lines`` (``"READY=1"``, ``"STATUS=..."``, ...) as one datagram.

        Returns:
            True if the datagram was sent; False when disabled, closed, given no
            lines, given a line containing a newline (it would forge extra
            assignments), or when the send failed. Never raises.
        """
        if self._address is None or self._closed or not lines:
            return False
        if any("\n" in line for line in lines):
            return False
        payload = "\n".join(lines).encode("utf-8")
        try:
            if self._sock is None:
                self._sock = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
                )
            self._sock.sendto(payload, self._address)
        except OSError as exc:
            if not self._failing:
                _log.warning("sd_notify failed", address=self._name, error=str(exc))
            self._failing = True
            return False
        self._failing = False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (startup finished, or a reload finished), with optional STATUS."""
        if status is None:
            return self.notify("READY=1")
        return self.notify("READY=1", _status_line(status))

    def reloading(self) -> bool:
        """``RELOADING=1`` plus ``MONOTONIC_USEC`` (CLOCK_MONOTONIC, microseconds).

        systemd >= 253 uses MONOTONIC_USEC to tell this reload from an earlier one
        (sd_notify(3), "RELOADING=1"). Send `ready` when the reload is done.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        """``STOPPING=1``: shutdown began (sd_notify(3))."""
        return self.notify("STOPPING=1")

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: keep-alive ping for ``WatchdogSec=`` (sd_notify(3))."""
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """``STATUS=text``: one line shown by ``systemctl status``; newlines become spaces."""
        return self.notify(_status_line(text))

    def close(self) -> None:
        """Close the socket; later calls return False. Safe to call twice."""
        self._closed = True
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> SdNotifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _status_line(text: str) -> str:
    """``STATUS=`` line with line breaks flattened, since the protocol is line based."""
    return "STATUS=" + " ".join(text.splitlines())


def watchdog_interval_s() -> float | None:
    """Seconds between ``WATCHDOG=1`` pings, or None when no watchdog is requested.

    sd_watchdog_enabled(3): ``$WATCHDOG_USEC`` is the timeout in microseconds;
    ``$WATCHDOG_PID``, when set, names the process it is meant for, and any other
    process must ignore it. The return value is half the timeout, the interval
    that document recommends. None when unset, not a positive integer, or meant
    for another PID.
    """
    raw_usec = os.environ.get("WATCHDOG_USEC")
    if not raw_usec:
        return None
    raw_pid = os.environ.get("WATCHDOG_PID")
    if raw_pid:
        try:
            if int(raw_pid) != os.getpid():
                return None
        except ValueError:
            return None
    try:
        usec = int(raw_usec)
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000
