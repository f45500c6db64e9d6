"""IDLE (RFC 2177, RFC 9051 §6.3.13): push updates as the store publishes them.

The session waits on its event subscription (mailhost.store.events) and asks the store
what changed only when an event for the selected mailbox arrives: it never polls.
"""

from __future__ import annotations

import asyncio

from django.conf import settings

from .. import commands as c
from .. import responses
from ..errors import Answered, Bad, Bye
from ..session import Session, handles


@handles(c.Idle)
async def idle(s: Session, cmd: c.Idle) -> None:
    await s.report_updates()
    s.send(b"+ idling\r\n")
    await s.drain()
    from imapd.net import LineTooLong

    reader = asyncio.ensure_future(s.conn.readline(settings.BUZON_IMAP_MAX_LINE))
    try:
        async with asyncio.timeout(settings.BUZON_IMAP_IDLE_TIMEOUT):
            while True:
                waiter = asyncio.ensure_future(s.sub.queue.get())
                done, _ = await asyncio.wait({reader, waiter}, return_when=asyncio.FIRST_COMPLETED)
                if waiter in done:
                    event = waiter.result()
                    sel = s.selected
                    force = sel is not None and event.mailbox_id == sel.mailbox_id
                    await s.report_updates(force=force)
                    await s.drain()
                else:
                    waiter.cancel()
                if reader in done:
                    break
    except TimeoutError as e:
        raise Bye("IDLE for too long") from e
    finally:
        if not reader.done():
            reader.cancel()
    try:
        line = reader.result()
    except LineTooLong as e:
        raise Bad("Expected DONE") from e
    if line is None:
        raise Bye("Connection closed")
    if line.rstrip(b"\r\n").upper() != b"DONE":
        raise Bad("Expected DONE")
    s.send(responses.status(cmd.tag, b"OK", "IDLE terminated"))
    raise Answered()
