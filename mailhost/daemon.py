"""Run asyncio listeners until SIGTERM/SIGINT: shared by every daemon command and runmail."""

from __future__ import annotations

import asyncio
import logging
import signal
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
