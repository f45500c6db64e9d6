"""What FETCH reads of a message that never changes, kept in memory (imapview.fetch_rows).

A message's UID names the same content for the life of its mailbox (UIDs are never reused
and a mailbox id is never given to another mailbox), so its size, INTERNALDATE, digest,
header block and serialised ENVELOPE/BODY/BODYSTRUCTURE can be kept once read: like
Dovecot's index cache, in memory. With the session's flags cache (which is current while no
event says otherwise), a FETCH of messages read before needs no database query at all:
clients fetch the same headers again and again (each time a list is shown).

Entries are keyed by (account, mailbox, uid) and only ever filled from a query that checked
the mailbox's owner. The whole cache holds at most BUZON_IMAP_FETCH_CACHE_MB of such
values per process, least recently used out first. Message bodies are not kept: BODY[] of a
cached message reads its blob file (the operating system caches those).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from django.conf import settings

Key = tuple[int, int, int]  # (account id, mailbox id, uid)

# Column values an entry can hold (imapview.FETCH_COLUMNS, with "raw" kept as the parts
# map only, and "header" only when the header block is in its column).
_cache: OrderedDict[Key, dict] = OrderedDict()
_sizes: dict[Key, int] = {}
_total = 0
_lock = threading.Lock()  # fetch_rows also runs on the DB pool's threads


def get(key: Key) -> dict | None:
    entry = _cache.get(key)
    if entry is not None:
        try:
            _cache.move_to_end(key)
        except KeyError:  # evicted meanwhile by another thread: still a valid answer
            pass
    return entry


def put(key: Key, values: dict, parts_size: int = 0) -> None:
    """Merge `values` (column -> value) into the entry of `key`. Their size is the length
    of bytes values, and `parts_size` for the parts map (its length as JSON)."""
    global _total
    limit = settings.BUZON_IMAP_FETCH_CACHE_MB * 1024 * 1024
    with _lock:
        entry = _cache.get(key)
        if entry is None:
            entry = _cache[key] = {}
            _sizes[key] = _OVERHEAD
            _total += _OVERHEAD
        else:
            _cache.move_to_end(key)
        added = 0
        for name, value in values.items():
            if name not in entry:
                entry[name] = value
                if isinstance(value, bytes):
                    added += len(value)
                elif name == "parts":
                    added += parts_size
        _sizes[key] += added
        _total += added
        while _total > limit and _cache:
            old, _ = _cache.popitem(last=False)
            _total -= _sizes.pop(old)


def clear() -> None:
    global _total
    with _lock:
        _cache.clear()
        _sizes.clear()
        _total = 0


_OVERHEAD = 400  # bytes of dict, key and digest string per entry, roughly
