"""start(...) functions for the SMTP-family listeners: the daemons and tests call these.

- smtp (BUZON_SMTP_PORT): the MX; STARTTLS offered, AUTH only after it.
- submission (BUZON_SUBMISSION_PORT): RFC 6409, STARTTLS then AUTH required.
- submissions (BUZON_SUBMISSIONS_PORT): RFC 8314 implicit TLS, AUTH required.
- lmtp (BUZON_LMTP_PORT): RFC 2033, for an MTA in front of us.
"""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings

from mailhost import tls

from .handler import MX, SMTPHandler, SubmissionHandler
from .lmtp import LMTPHandler, make_protocol
from .protocol import BuzonSMTP, ConnectionTracker

log = logging.getLogger(__name__)


def _protocol_factory(handler, *, starttls: bool, implicit_tls: bool, ident: str):
    tracker = ConnectionTracker(settings.BUZON_SMTP_MAX_CONNECTIONS_PER_IP)
    context = tls.server_context() if starttls else None

    def factory() -> BuzonSMTP:
        return BuzonSMTP(
            handler,
            tracker=tracker,
            implicit_tls=implicit_tls,
            hostname=settings.BUZON_HOSTNAME,
            ident=ident,
            data_size_limit=settings.BUZON_MAX_MESSAGE_SIZE,
            enable_SMTPUTF8=True,
            decode_data=False,
            tls_context=context,
            timeout=settings.BUZON_SMTP_TIMEOUT,
        )

    return factory


async def start_smtp(host: str, port: int) -> asyncio.AbstractServer:
    """The inbound MX on host:port (0 = any free port)."""
    loop = asyncio.get_running_loop()
    factory = _protocol_factory(
        SMTPHandler(MX), starttls=True, implicit_tls=False, ident="Buzón ESMTP"
    )
    return await loop.create_server(factory, host, port)


async def start_submission(host: str, port: int) -> asyncio.AbstractServer:
    """Message submission with STARTTLS (RFC 6409, RFC 3207)."""
    loop = asyncio.get_running_loop()
    factory = _protocol_factory(
        SubmissionHandler(), starttls=True, implicit_tls=False, ident="Buzón ESMTP submission"
    )
    return await loop.create_server(factory, host, port)


async def start_submissions(host: str, port: int) -> asyncio.AbstractServer:
    """Message submission over implicit TLS (RFC 8314 §3.3)."""
    loop = asyncio.get_running_loop()
    factory = _protocol_factory(
        SubmissionHandler(), starttls=False, implicit_tls=True, ident="Buzón ESMTP submission"
    )
    return await loop.create_server(factory, host, port, ssl=tls.server_context())


async def start_lmtp(host: str, port: int) -> asyncio.AbstractServer:
    """Listen for LMTP on host:port (0 = any free port)."""
    loop = asyncio.get_running_loop()
    handler = LMTPHandler()
    return await loop.create_server(lambda: make_protocol(handler), host, port)


async def queue_runner(interval: float = 60.0) -> None:
    """Sweep the outbound queue every `interval` seconds (what runmail's sweeper does)."""
    from mailhost import jobs, tasks

    while True:
        jobs.enqueue(tasks.sweep_queue)
        await asyncio.sleep(interval)


def listener_specs(host: str, *, port_overrides: dict | None = None) -> list:
    """The SMTP-family listeners, with ports from settings (0 = off)."""
    from mailhost.daemon import ListenerSpec

    ports = {
        "smtp": settings.BUZON_SMTP_PORT,
        "submission": settings.BUZON_SUBMISSION_PORT,
        "submissions": settings.BUZON_SUBMISSIONS_PORT,
        "lmtp": settings.BUZON_LMTP_PORT,
        **(port_overrides or {}),
    }
    starts = {
        "smtp": start_smtp,
        "submission": start_submission,
        "submissions": start_submissions,
        "lmtp": start_lmtp,
    }
    return [ListenerSpec(name, start, host, ports[name]) for name, start in starts.items()]
