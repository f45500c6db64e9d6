"""start_pop3(...) and the POP3 listener specs: the daemon, runmail and the tests call these."""

from __future__ import annotations

import asyncio

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from imapd import net
from mailhost import tls
from mailhost.daemon import ListenerSpec

from .errors import SYS_TEMP, Err
from .session import Session, unhandled_errors

__all__ = ["listener_specs", "start_pop3", "unhandled_errors"]


def check_settings() -> None:
    expire = str(settings.BUZON_POP3_EXPIRE)
    if expire != "NEVER" and not expire.isdigit():
        raise ImproperlyConfigured("BUZON_POP3_EXPIRE must be a number of days or NEVER")


async def _session(conn: net.Connection) -> None:
    await Session(conn).run()


async def _refuse(conn: net.Connection) -> None:
    conn.write(Err("Too many connections from your address", SYS_TEMP).reply())
    await conn.drain()


async def start_pop3(host: str, port: int, *, implicit_tls: bool = False) -> asyncio.AbstractServer:
    """Listen for POP3 on host:port (0 = any free port): STLS offered, or implicit TLS
    from the first byte (POP3S, RFC 8314 §3.3)."""
    check_settings()
    return await net.serve(
        host,
        port,
        _session,
        ssl_context=tls.server_context() if implicit_tls else None,
        per_ip=settings.BUZON_POP3_CONNECTIONS_PER_IP,
        on_refused=_refuse,
    )


def listener_specs(host: str, *, port_overrides: dict | None = None) -> list[ListenerSpec]:
    """ "pop3" (STLS) and "pop3s" (implicit TLS), with ports from settings (0 = off)."""
    ports = {
        "pop3": settings.BUZON_POP3_PORT,
        "pop3s": settings.BUZON_POP3S_PORT,
        **(port_overrides or {}),
    }
    return [
        ListenerSpec("pop3", start_pop3, host, ports["pop3"]),
        ListenerSpec("pop3s", start_pop3, host, ports["pop3s"], {"implicit_tls": True}),
    ]
