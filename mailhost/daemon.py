"""Run asyncio listeners until SIGTERM/SIGINT: shared by every daemon command and runmail."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from . import listeners

log = logging.getLogger(__name__)
StartFn = Callable[..., Awaitable[asyncio.AbstractServer]]
GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class ListenerSpec:
    """One listener: `start(host, port, **kwargs)` returns a started asyncio server."""

    name: str
    start: StartFn
    host: str
    port: int | str  # 0 = off; "auto" = any free port
    kwargs: dict | None = None

    @property
    def enabled(self) -> bool:
        return self.port not in (0, "0", None)


async def start_listeners(
    specs: Sequence[ListenerSpec], on_listen: Callable[[str, str, int], None]
) -> list[asyncio.AbstractServer]:
    servers = []
    for spec in specs:
        if not spec.enabled:
            continue
        port = 0 if spec.port == "auto" else int(spec.port)
        server = await spec.start(spec.host, port, **(spec.kwargs or {}))
        real_port = server.sockets[0].getsockname()[1]
        listeners.register(spec.name, spec.host, real_port)
        on_listen(spec.name, spec.host, real_port)
        servers.append(server)
    return servers


async def wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def close_servers(servers: Sequence[asyncio.AbstractServer]) -> None:
    """Stop accepting, give open sessions a few seconds, then close (ARCHITECTURE §5)."""
    for server in servers:
        server.close()
    try:
        async with asyncio.timeout(GRACE_SECONDS):
            for server in servers:
                await server.wait_closed()
    except TimeoutError:
        log.info("closing sessions still open after %.0fs", GRACE_SECONDS)
        for server in servers:
            close_clients = getattr(server, "close_clients", None)
            if close_clients:
                close_clients()


async def serve_until_signal(
    specs: Sequence[ListenerSpec],
    on_listen: Callable[[str, str, int], None],
    extra: Sequence[Callable[[], Awaitable[None]]] = (),
) -> None:
    servers = await start_listeners(specs, on_listen)
    tasks = [asyncio.create_task(fn()) for fn in extra]
    try:
        await wait_for_signal()
    finally:
        for task in tasks:
            task.cancel()
        await close_servers(servers)
        for spec in specs:
            listeners.unregister(spec.name)


# --- several worker processes on one port (`--workers N`) -------------------------------
#
# The parent binds every listening socket before forking: one socket per worker and
# listener, all with SO_REUSEPORT on the same port (so `auto` picks one port for all, and
# the kernel spreads new connections evenly over the workers). Each forked child runs its
# own event loop, DB thread pools and Redis event listener, and serves only its sockets;
# the parent only forwards SIGTERM/SIGINT, reaps and restarts. A worker that dies is
# logged and restarted after a second (its sockets stay open in the parent meanwhile, so
# connections the kernel hashed to it wait in the backlog); more than RESTART_LIMIT deaths
# within RESTART_WINDOW seconds stop the other workers and the parent exits 1.

RESTART_LIMIT = 5
RESTART_WINDOW = 60.0
STOP_DEADLINE = GRACE_SECONDS + 10.0  # then SIGKILL what is left


class WorkersError(ValueError):
    """`--workers N` cannot run with this configuration."""


def check_workers(workers: int) -> None:
    """Refuse N > 1 where processes could not act as one server."""
    from django.conf import settings

    if workers < 1:
        raise WorkersError("--workers must be 1 or more")
    if workers == 1:
        return
    if not settings.REDIS_URL and not settings.BUZON_LOCAL_EVENTS:
        raise WorkersError(
            "--workers > 1 needs REDIS_URL or BUZON_LOCAL_EVENTS: mailbox-changed events "
            "(IDLE, new mail, flags and expunges seen by other sessions) must cross processes"
        )


def _bind(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` listening sockets on host:port (0 = one free port for all), SO_REUSEPORT."""
    family, _, _, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(1024)
            sock.setblocking(False)
            address = sock.getsockname()  # the port `0` picked, for the next ones
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The daemons' event loop: uvloop (libuv; about a fifth less CPU per IMAP command than
    asyncio's selector loop, bench/README.md) unless BUZON_EVENT_LOOP=asyncio."""
    return _loop_class()()


def _loop_class() -> type[asyncio.AbstractEventLoop]:
    from django.conf import settings

    if settings.BUZON_EVENT_LOOP == "uvloop":
        import uvloop

        return uvloop.Loop
    return asyncio.SelectorEventLoop


def _prebound_loop(prebound: dict[tuple[str, int], socket.socket]) -> asyncio.AbstractEventLoop:
    """An event loop whose create_server(host, port) serves a socket bound by the parent,
    so the listeners' own start functions (asyncio.start_server) work unchanged."""

    class PreboundLoop(_loop_class()):  # type: ignore[misc, valid-type]
        async def create_server(self, protocol_factory, host=None, port=None, **kwargs):
            sock = prebound.pop((host, port), None) if kwargs.get("sock") is None else None
            if sock is not None:
                return await super().create_server(protocol_factory, sock=sock, **kwargs)
            return await super().create_server(protocol_factory, host, port, **kwargs)

    return PreboundLoop()


def _reset_after_fork() -> None:
    """Per-process state a forked worker must not inherit from the parent."""
    from mailhost import dbpool
    from mailhost.store import events, localbus

    dbpool._pool = dbpool._write_pool = dbpool._writer = dbpool._syncer = None
    dbpool._loop_writers.clear()
    # Redis echoes are recognised by origin: each worker needs its own.
    events._ORIGIN = f"{os.getpid()}-{id(object())}"
    events._redis_client = None
    events._listeners.clear()
    localbus.close()


async def _watch_parent(parent: int) -> None:
    """Stop this worker if the parent disappears (killed with SIGKILL)."""
    while os.getppid() == parent:  # noqa: ASYNC110 - nothing to wait on but polling
        await asyncio.sleep(1)
    os.kill(os.getpid(), signal.SIGTERM)


def _run_worker(
    index: int,
    specs: Sequence[ListenerSpec],
    prebound: dict[tuple[str, int], socket.socket],
    extra: Sequence[Callable[[], Awaitable[None]]],
    parent: int,
) -> int:
    try:
        _reset_after_fork()
        tasks = [*extra, functools.partial(_watch_parent, parent)]
        with asyncio.Runner(loop_factory=lambda: _prebound_loop(dict(prebound))) as runner:
            runner.run(serve_until_signal(specs, lambda *a: None, extra=tasks))
        return 0
    except KeyboardInterrupt:
        return 0
    except BaseException:
        log.exception("worker %d (pid %d) failed", index, os.getpid())
        return 1


def serve_workers(
    specs: Sequence[ListenerSpec],
    on_listen: Callable[[str, str, int], None],
    workers: int,
    extra: Sequence[Callable[[], Awaitable[None]]] = (),
) -> int:
    """Serve `specs` from `workers` forked processes until SIGTERM/SIGINT; the exit status
    (0 after a signal, 1 when workers kept dying). `extra` tasks run in worker 0 only.
    Raises OSError when a port cannot be bound (before any fork)."""
    from django.db import connections

    check_workers(workers)
    bound: list[tuple[ListenerSpec, list[socket.socket]]] = []
    try:
        for spec in specs:
            if spec.enabled:
                port = 0 if spec.port == "auto" else int(spec.port)
                bound.append((spec, _bind(spec.host, port, workers)))
    except OSError:
        for _, socks in bound:
            for sock in socks:
                sock.close()
        raise
    real_specs = []
    for spec, socks in bound:
        port = socks[0].getsockname()[1]
        real_specs.append(dataclasses.replace(spec, port=port))
        listeners.register(spec.name, spec.host, port)
        on_listen(spec.name, spec.host, port)
    connections.close_all()  # no DB connection may be shared across fork
    sys.stdout.flush()
    sys.stderr.flush()

    parent = os.getpid()
    children: dict[int, int] = {}  # pid -> worker index
    deaths: list[float] = []
    state = {"stopping": False, "failed": False}

    def fork(index: int) -> None:
        prebound = {(spec.host, spec.port): socks[index] for spec, (_, socks) in
                    zip(real_specs, bound, strict=True)}  # fmt: skip
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                for _, socks in bound:  # keep only this worker's sockets
                    for i, sock in enumerate(socks):
                        if i != index:
                            sock.close()
                status = _run_worker(index, real_specs, prebound,
                                     extra if index == 0 else (), parent)  # fmt: skip
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        children[pid] = index
        log.info("worker %d started (pid %d)", index, pid)

    def stop_all(signum: int = signal.SIGTERM) -> None:
        state["stopping"] = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, lambda signum, frame: stop_all())
    try:
        for index in range(workers):
            fork(index)
        stop_deadline = None
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                if state["stopping"]:
                    if stop_deadline is None:
                        stop_deadline = time.monotonic() + STOP_DEADLINE
                    elif time.monotonic() > stop_deadline:
                        log.error("workers still running after %.0fs: killing", STOP_DEADLINE)
                        for pid in children:
                            os.kill(pid, signal.SIGKILL)
                time.sleep(0.1)
                continue
            index = children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            if state["stopping"]:
                continue
            log.error("worker %d (pid %d) exited with status %d", index, pid, code)
            now = time.monotonic()
            deaths[:] = [t for t in deaths if now - t < RESTART_WINDOW] + [now]
            if len(deaths) > RESTART_LIMIT:
                log.error("%d worker deaths within %.0fs: stopping", len(deaths), RESTART_WINDOW)
                state["failed"] = True
                stop_all()
                continue
            time.sleep(1)
            if not state["stopping"]:
                fork(index)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for _, socks in bound:
            for sock in socks:
                sock.close()
        for spec, _ in bound:
            listeners.unregister(spec.name)
    return 1 if state["failed"] else 0


def run(
    specs: Sequence[ListenerSpec],
    on_listen: Callable[[str, str, int], None],
    *,
    workers: int = 1,
    extra: Sequence[Callable[[], Awaitable[None]]] = (),
) -> int:
    """What the daemon commands call: one process (workers=1) or `serve_workers`."""
    if workers == 1:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(serve_until_signal(specs, on_listen, extra=extra))
        return 0
    return serve_workers(specs, on_listen, workers, extra=extra)
