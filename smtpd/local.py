"""Local delivery from the SMTP-family daemons: plan on the read pool, commit on the writer.

Parsing, the blob's fsync and recipient lookups run on the read pool in parallel; only the
write transaction goes to `run_db_write`, which on SQLite commits many deliveries together
in one transaction and one fsync (group commit). A 250 still waits for that commit.
"""

from __future__ import annotations

from mailhost import store
from mailhost.dbpool import run_db, run_db_write
from mailhost.store.values import RecipientResult


async def deliver(
    raw: bytes, *, mail_from: str, rcpt_to: list[str], folder: str = "INBOX"
) -> list[RecipientResult]:
    plan = await run_db(store.plan_delivery, raw, rcpt_to)
    return await run_db_write(store.execute_delivery, plan, mail_from=mail_from, folder=folder)
