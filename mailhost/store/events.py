"""The "mailbox changed" event bus: the store publishes on commit, sessions subscribe.

One process (the embedded default): a thread-safe in-process hub hands each event to the
event loop of every subscriber. Many processes (REDIS_URL set): the store also publishes
on the Redis channel `buzon.mbox`, and one listener task per event loop in every process
relays what it hears to that process's local subscribers, so an IMAP IDLE session on one
process sees a delivery made by another. Without Redis, processes on the same machine
(`imapd --workers N` on SQLite, or smtpd and imapd run apart) reach each other through
Unix datagram sockets in the data directory (localbus.py; BUZON_LOCAL_EVENTS). Events are
hints that something changed; the subscriber asks the store what (`changes_since`), so a
lost event costs latency, not data.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.db import transaction

from . import localbus

log = logging.getLogger(__name__)
CHANNEL = "buzon.mbox"


@dataclass(frozen=True)
class MailboxEvent:
    account_id: int
    mailbox_id: int
    kind: str  # added | flags | expunged | created | deleted | renamed
    uids: list[int] = field(default_factory=list)
    modseq: int = 0
    origin: str = ""  # the publishing process, so Redis echoes are not delivered twice


_ORIGIN = f"{threading.get_native_id()}-{id(object())}"
_lock = threading.Lock()
_subscribers: dict[int, set[Subscription]] = {}
_redis_client = None
_listeners: dict[int, asyncio.Task] = {}  # id(loop) -> listener task


class Subscription:
    """Events for one account, delivered into the subscribing event loop."""

    def __init__(self, account_id: int) -> None:
        self.account_id = account_id
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[MailboxEvent] = asyncio.Queue(maxsize=10_000)

    def _offer(self, event: MailboxEvent) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:  # a stuck subscriber: it will resynchronise anyway
            pass

    async def get(self, wait: float | None = None) -> MailboxEvent | None:
        """The next event, or None after `wait` seconds."""
        try:
            return await asyncio.wait_for(self.queue.get(), wait)
        except TimeoutError:
            return None

    def drain(self) -> list[MailboxEvent]:
        events = []
        while not self.queue.empty():
            events.append(self.queue.get_nowait())
        return events

    def close(self) -> None:
        with _lock:
            subs = _subscribers.get(self.account_id)
            if subs:
                subs.discard(self)
                if not subs:
                    del _subscribers[self.account_id]

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def subscribe(account_id: int) -> Subscription:
    """Subscribe the running event loop to an account's events (use as a context manager)."""
    sub = Subscription(account_id)
    with _lock:
        _subscribers.setdefault(account_id, set()).add(sub)
    if settings.REDIS_URL:
        _ensure_listener(sub.loop)
    elif settings.BUZON_LOCAL_EVENTS:
        localbus.listen(sub.loop, _from_peer)
    return sub


def _from_peer(data: dict) -> None:
    if data.get("origin") != _ORIGIN:
        _dispatch_local(MailboxEvent(**data))


def _dispatch_local(event: MailboxEvent) -> None:
    with _lock:
        subs = list(_subscribers.get(event.account_id, ()))
    here = asyncio.events._get_running_loop()
    for sub in subs:
        if sub.loop is here:  # published on the subscriber's own loop: no wake-up needed
            sub._offer(event)
            continue
        try:
            sub.loop.call_soon_threadsafe(sub._offer, event)
        except RuntimeError:  # that loop is closed
            sub.close()


def publish(event: MailboxEvent) -> None:
    """Send `event` now, to this process and (with Redis) to every other process."""
    publish_many([event])


def publish_many(events: list[MailboxEvent]) -> None:
    """Send `events` in order: to this process's subscribers, then to the other processes
    (with Redis, all of them in one round trip)."""
    if not events:
        return
    for event in events:
        _dispatch_local(event)
    if settings.REDIS_URL:
        global _redis_client
        try:
            if _redis_client is None:
                import redis

                _redis_client = redis.Redis.from_url(settings.REDIS_URL)
            payloads = [json.dumps({**asdict(e), "origin": _ORIGIN}) for e in events]
            if len(payloads) == 1:
                _redis_client.publish(CHANNEL, payloads[0])
            else:
                pipe = _redis_client.pipeline(transaction=False)
                for payload in payloads:
                    pipe.publish(CHANNEL, payload)
                pipe.execute()
        except Exception:  # the bus is best-effort; the rows are the truth
            log.exception("could not publish a mailbox event to Redis")
    elif settings.BUZON_LOCAL_EVENTS:
        try:
            for event in events:
                localbus.publish({**asdict(event), "origin": _ORIGIN})
        except Exception:
            log.exception("could not publish a mailbox event to the other processes")


def publish_on_commit(event: MailboxEvent) -> None:
    """Publish once the surrounding transaction commits (never for a rolled-back change)."""
    transaction.on_commit(lambda: _publish_or_hold(event))


_held = threading.local()  # events of a commit not yet durable (see held())


def _publish_or_hold(event: MailboxEvent) -> None:
    pending = getattr(_held, "events", None)
    if pending is None:
        publish(event)
    else:
        pending.append(event)


@contextmanager
def held() -> Iterator[list[MailboxEvent]]:
    """Collect the events of the commits made inside instead of publishing them: the
    caller publishes them once the commit is durable (mailhost/dbpool.py's group commit
    syncs SQLite's WAL after the commit, with the writer lock released)."""
    _held.events = pending = []
    try:
        yield pending
    finally:
        _held.events = None


def _ensure_listener(loop: asyncio.AbstractEventLoop) -> None:
    task = _listeners.get(id(loop))
    if task is None or task.done():
        _listeners[id(loop)] = loop.create_task(_listen())


async def _listen() -> None:
    import redis.asyncio as aioredis

    while True:
        try:
            client = aioredis.Redis.from_url(settings.REDIS_URL)
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    data = json.loads(message["data"])
                    if data.get("origin") == _ORIGIN:
                        continue
                    _dispatch_local(MailboxEvent(**data))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Redis event listener failed; reconnecting")
            await asyncio.sleep(1)
