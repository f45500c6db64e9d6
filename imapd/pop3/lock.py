"""The maildrop lock (RFC 1939 §8): one POP3 session per account, across processes.

A database lease (mailhost.leases) that the session renews while it lives and releases at
the end; if its process dies, the lease simply expires after BUZON_POP3_LOCK_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid

from django.conf import settings

from mailhost import leases
from mailhost.dbpool import run_db

log = logging.getLogger(__name__)
# A client that drops its connection and reconnects at once (curl, fetchmail after an
# error) must not find its own previous session still holding the lock.
WAIT_SECONDS = 1.0


def lease_name(account_id: int) -> str:
    return f"pop3:maildrop:{account_id}"


class MaildropLock:
    def __init__(self, account_id: int) -> None:
        self.name = lease_name(account_id)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.seconds = max(2, settings.BUZON_POP3_LOCK_SECONDS)
        self.held = False
        self.lost = False
        self._renewer: asyncio.Task | None = None

    async def acquire(self, wait: float = WAIT_SECONDS) -> bool:
        """Take the lock, waiting up to `wait` seconds for a session that is ending."""
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            self.held = await run_db(leases.acquire, self.name, self.owner, self.seconds)
            if self.held or asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(0.1)
        if self.held:
            self._renewer = asyncio.create_task(self._renew_forever())
        return self.held

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.seconds / 3)
            try:
                ok = await run_db(leases.renew, self.name, self.owner, self.seconds)
                if not ok:  # expired and taken (the loop stalled?): try to take it back
                    ok = await run_db(leases.acquire, self.name, self.owner, self.seconds)
            except Exception:
                log.exception("could not renew the POP3 lock %s", self.name)
                continue
            if not ok:
                log.warning("POP3 lock %s was lost to another session", self.name)
                self.lost = True
                return

    async def confirm(self) -> bool:
        """Renew now and say whether this session still holds the lock (before UPDATE)."""
        if self.lost or not self.held:
            return False
        if not await run_db(leases.renew, self.name, self.owner, self.seconds):
            self.lost = True
        return not self.lost

    async def release(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            self._renewer = None
        if self.held:
            self.held = False
            try:
                await run_db(leases.release, self.name, self.owner)
            except Exception:  # it expires on its own
                log.exception("could not release the POP3 lock %s", self.name)
