"""start_imap(...) and the IMAP listener specs: the daemon command, runmail and tests call these."""

from __future__ import annotations

import asyncio

from django.conf import settings

from mailhost import tls

from ..net import Connection, serve
from . import handlers  # noqa: F401  (registers the command handlers)
from .session import Session


async def _session(conn: Connection) -> None:
    await Session(conn).run()


async def _refuse(conn: Connection) -> None:
    conn.write(b"* BYE Too many connections from your address\r\n")
    await conn.drain()


async def start_imap(host: str, port: int, *, implicit_tls: bool = False) -> asyncio.AbstractServer:
    """Listen for IMAP on host:port (0 = any free port); TLS from the first byte with
    `implicit_tls` (RFC 8314), else STARTTLS is offered."""
    return await serve(
        host,
        port,
        _session,
        ssl_context=tls.server_context() if implicit_tls else None,
        per_ip=settings.BUZON_IMAP_CONNECTIONS_PER_IP,
        on_refused=_refuse,
    )


def listener_specs(host: str, *, port_overrides: dict | None = None) -> list:
    """The IMAP listeners: "imap" (STARTTLS) and "imaps" (implicit TLS); 0 = off."""
    from mailhost.daemon import ListenerSpec

    ports = {
        "imap": settings.BUZON_IMAP_PORT,
        "imaps": settings.BUZON_IMAPS_PORT,
        **(port_overrides or {}),
    }
    return [
        ListenerSpec("imap", start_imap, host, ports["imap"]),
        ListenerSpec("imaps", start_imap, host, ports["imaps"], {"implicit_tls": True}),
    ]
