"""Every committed change publishes one event; a rolled-back one publishes none."""

import asyncio
import json

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


def test_publish_many_keeps_order_here_and_on_redis(settings):
    """A group commit's events go out together: in order to this process's subscribers,
    and with Redis in one pipelined round trip that other processes hear in order."""
    batch = [events.MailboxEvent(7, 70, "flags", [i], i) for i in range(1, 4)]
    heard = []
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        pubsub = client.pubsub()
        pubsub.subscribe(events.CHANNEL)
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"

    async def main():
        with events.subscribe(7) as sub:
            events.publish_many(batch)
            return [await sub.get(wait=5) for _ in batch]

    got = asyncio.run(main())
    assert [e.modseq for e in got] == [1, 2, 3]
    if settings.REDIS_URL:
        while len(heard) < 3:
            message = pubsub.get_message(timeout=5)
            assert message is not None, heard
            if message["type"] == "message":
                heard.append(json.loads(message["data"])["modseq"])
        assert heard == [1, 2, 3]
        pubsub.close()
