"""The ASGI web server (uvicorn) embedded in runmail's event loop, as a listener."""

from __future__ import annotations

import asyncio
import socket

import uvicorn


class WebServer:
    """Looks like an asyncio server to mailhost.daemon: sockets, close(), wait_closed()."""

    def __init__(self, server: uvicorn.Server, sock: socket.socket) -> None:
        self._server, self._sock, self._closed = server, sock, None
        self.sockets = [sock]

    def close(self) -> None:
        if self._closed is None:
            self._closed = asyncio.ensure_future(self._server.shutdown(sockets=[self._sock]))

    async def wait_closed(self) -> None:
        if self._closed is not None:
            await self._closed


async def start_web(host: str, port: int) -> WebServer:
    config = uvicorn.Config(
        "mailhost.asgi:application",
        lifespan="off",
        log_level="warning",
        timeout_graceful_shutdown=5,
        proxy_headers=False,
    )
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, reuse_port=False)
    sock.setblocking(False)
    await server.startup(sockets=[sock])
    return WebServer(server, sock)
