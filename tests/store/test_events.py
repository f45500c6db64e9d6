"""Every committed change publishes one event; a rolled-back one publishes none."""

import asyncio

import pytest
from django.db import transaction

from mailhost import store
from mailhost.dbpool import run_db
from mailhost.store import events


@pytest.mark.django_db(transaction=True)
def test_delivery_and_flag_change_reach_a_subscriber(alice):
    box = store.lookup_mailbox(alice.id, "INBOX").id

    async def main():
        with events.subscribe(alice.id) as sub:
            await run_db(
                store.deliver,
                b"Subject: x\r\n\r\ny\r\n",
                mail_from="",
                rcpt_to=["alice@example.test"],
            )
            added = await sub.get(wait=5)
            await run_db(store.set_flags, alice.id, box, [1], ["\\Seen"])
            flagged = await sub.get(wait=5)
            return added, flagged

    added, flagged = asyncio.run(main())
    assert (added.kind, added.mailbox_id, added.uids) == ("added", box, [1])
    assert (flagged.kind, flagged.uids) == ("flags", [1])


@pytest.mark.django_db(transaction=True)
def test_rolled_back_change_publishes_nothing(alice):
    async def main():
        with events.subscribe(alice.id) as sub:

            def failing():
                with transaction.atomic():
                    store.append(alice.id, "INBOX", b"Subject: x\r\n\r\ny\r\n")
                    raise RuntimeError("rollback")

            with pytest.raises(RuntimeError):
                await run_db(failing)
            return await sub.get(wait=0.3)

    assert asyncio.run(main()) is None
