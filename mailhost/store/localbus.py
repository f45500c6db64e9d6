"""Mailbox events between processes on one machine, without Redis: Unix datagram sockets.

Every process that has subscribers (an IMAP worker, runmail) binds one datagram socket in
BUZON_DATA_DIR/run/events/, named after its pid; a process that publishes sends each event
to every socket there but its own. So `imapd --workers 2` on SQLite, or `smtpd` and `imapd`
run as separate processes, tell each other of new mail, flag changes and expunges as the
Redis channel does when REDIS_URL is set (mailhost/store/events.py uses one or the other).

Events are hints (the store's rows are the truth), so this is best-effort by design: a peer
whose queue is full misses the event (its sessions catch up at their next command), a
socket whose process died is removed by the first sender that finds it refusing, and an
event too big for one datagram goes without its UID list.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

log = logging.getLogger(__name__)

MAX_DATAGRAM = 60_000  # bytes; bigger events are sent without their UID list
RESCAN_SECONDS = 0.1  # how stale the list of peers may be (besides the folder's mtime check)

_own: socket.socket | None = None
_own_path = ""
_own_loop: asyncio.AbstractEventLoop | None = None
_peers: list[str] = []
_scanned_at = 0.0
_scanned_dir = ""
_scanned_mtime = 0
_send_sock: socket.socket | None = None


def directory() -> Path:
    return Path(settings.BUZON_DATA_DIR) / "run" / "events"


def listen(loop: asyncio.AbstractEventLoop, deliver: Callable[[dict], None]) -> None:
    """Bind this process's socket (once) and hand every event that arrives to `deliver`."""
    global _own, _own_path, _own_loop
    alive = _own_loop is not None and not _own_loop.is_closed()
    if _own is not None and alive and _own_path.startswith(str(directory()) + os.sep):
        return  # one socket a process, read on the first loop that subscribed
    if _own is not None and alive:
        _own_loop.remove_reader(_own.fileno())  # type: ignore[union-attr]
    close()
    folder = directory()
    folder.mkdir(parents=True, exist_ok=True)
    path = str(folder / f"{os.getpid()}.sock")
    try:
        os.unlink(path)  # a dead process with our pid left it
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    _own, _own_path, _own_loop = sock, path, loop
    _rescan(force=True)

    def readable() -> None:
        while True:
            try:
                data = sock.recv(MAX_DATAGRAM + 4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                log.exception("local event socket failed")
                return
            try:
                deliver(json.loads(data))
            except Exception:  # one bad datagram must not stop the others
                log.exception("bad local event datagram")

    loop.add_reader(sock.fileno(), readable)


def close() -> None:
    """Forget this process's socket (a forked worker binds its own)."""
    global _own, _own_path, _own_loop, _send_sock
    if _own is not None:
        try:
            _own.close()
        finally:
            _own = None
    _own_path, _own_loop = "", None
    if _send_sock is not None:
        _send_sock.close()
        _send_sock = None


def _rescan(force: bool = False) -> None:
    """Refresh the list of peers when the folder changed (a socket came or went), and at
    least every RESCAN_SECONDS (file times are coarse: two changes in one tick look alike)."""
    global _peers, _scanned_at, _scanned_dir, _scanned_mtime
    now = time.monotonic()
    folder = str(directory())
    try:
        mtime = os.stat(folder).st_mtime_ns
    except FileNotFoundError:
        _peers, _scanned_dir = [], folder
        return
    fresh = folder == _scanned_dir and mtime == _scanned_mtime
    if not force and fresh and now - _scanned_at < RESCAN_SECONDS:
        return
    try:
        names = [e.path for e in os.scandir(folder) if e.name.endswith(".sock")]
    except FileNotFoundError:
        names = []
    _peers = [p for p in names if p != _own_path]
    _scanned_at, _scanned_dir, _scanned_mtime = now, folder, mtime


def publish(payload: dict) -> None:
    """Send one event to every other process's socket (never blocks)."""
    global _send_sock
    _rescan()
    if not _peers:
        return
    data = json.dumps(payload, separators=(",", ":")).encode()
    if len(data) > MAX_DATAGRAM:
        data = json.dumps({**payload, "uids": []}, separators=(",", ":")).encode()
    if _send_sock is None:
        _send_sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        _send_sock.setblocking(False)
    for peer in list(_peers):
        try:
            _send_sock.sendto(data, peer)
        except (ConnectionRefusedError, FileNotFoundError):
            _forget(peer)
        except OSError as e:  # EAGAIN: that process is behind; it resynchronises anyway
            if e.errno not in (errno.EAGAIN, errno.ENOBUFS):
                log.warning("local event to %s failed: %s", peer, e)


def _forget(peer: str) -> None:
    """Remove a socket nobody listens on any more (its process is gone)."""
    if peer in _peers:
        _peers.remove(peer)
    try:
        os.unlink(peer)
    except OSError:
        pass
