"""Run sync ORM code from asyncio daemons on a bounded thread pool (ARCHITECTURE: Async)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings
from django.db import close_old_connections

T = TypeVar("T")
_pool: ThreadPoolExecutor | None = None


def pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=settings.BUZON_DB_THREADS, thread_name_prefix="db")
    return _pool


def _call(fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
    close_old_connections()  # long-lived process: drop stale or broken connections
    return fn(*args, **kwargs)


async def run_db(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run `fn` off the event loop, on the bounded pool (not asgiref's single thread)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(pool(), functools.partial(_call, fn, args, kwargs))
