"""start(...) functions for the SMTP-family listeners: the daemons and tests call these."""

from __future__ import annotations

import asyncio

from .lmtp import LMTPHandler, make_protocol


async def start_lmtp(host: str, port: int) -> asyncio.AbstractServer:
    """Listen for LMTP on host:port (0 = any free port)."""
    loop = asyncio.get_running_loop()
    handler = LMTPHandler()
    return await loop.create_server(lambda: make_protocol(handler), host, port)


def listener_specs(host: str, *, port_overrides: dict | None = None) -> list:
    """The SMTP-family listeners, with ports from settings (0 = off)."""
    from django.conf import settings

    from mailhost.daemon import ListenerSpec

    ports = {"lmtp": settings.BUZON_LMTP_PORT, **(port_overrides or {})}
    return [ListenerSpec("lmtp", start_lmtp, host, ports["lmtp"])]
