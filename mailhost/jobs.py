"""Run jobs: on Celery workers when CELERY_BROKER_URL is set, else on in-process threads.

The durable state of every job lives in ORM rows, never only in a broker or this queue,
so a lost job loses no mail: the periodic sweep finds the rows again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)
_queue: queue.Queue[tuple[Callable[..., Any], tuple, dict] | None] = queue.Queue()
_workers: list[threading.Thread] = []
_lock = threading.Lock()


def enqueue(task: Any, *args: Any, **kwargs: Any) -> None:
    """Run the Celery task `task` soon: `.delay()` with a broker, a local worker without."""
    if settings.CELERY_BROKER_URL:
        task.delay(*args, **kwargs)
    else:
        _queue.put((task, args, kwargs))
        start_worker()


def start_worker() -> None:
    """Start the in-process workers (BUZON_JOB_THREADS of them) if they are not running:
    several, so one slow remote MX does not hold up every other delivery."""
    with _lock:
        _workers[:] = [t for t in _workers if t.is_alive()]
        for n in range(len(_workers), max(1, settings.BUZON_JOB_THREADS)):
            thread = threading.Thread(target=_run, name=f"buzon-jobs-{n}", daemon=True)
            thread.start()
            _workers.append(thread)


def stop_worker(timeout: float = 5.0) -> None:
    with _lock:
        workers = [t for t in _workers if t.is_alive()]
        _workers.clear()
    for _ in workers:
        _queue.put(None)
    deadline = time.monotonic() + timeout
    for thread in workers:
        thread.join(max(0.0, deadline - time.monotonic()))


def drain(timeout: float = 10.0) -> bool:
    """Wait until every queued job has run (tests, shutdown); False on time-out."""
    deadline = time.monotonic() + timeout
    while _queue.unfinished_tasks and time.monotonic() < deadline:
        time.sleep(0.01)
    return not _queue.unfinished_tasks


def _run() -> None:
    while True:
        item = _queue.get()
        try:
            if item is None:
                return
            fn, args, kwargs = item
            try:
                close_old_connections()
                fn(*args, **kwargs)
            except Exception:
                log.exception("job %r failed", getattr(fn, "name", fn))
            finally:
                close_old_connections()
        finally:
            _queue.task_done()
