"""Run jobs: on Celery workers when CELERY_BROKER_URL is set, else in-process.

The durable state of every job lives in ORM rows, never only in a broker or this queue,
so a lost job loses no mail: the periodic sweep finds the rows again.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)
_queue: queue.Queue[tuple[Callable[..., Any], tuple, dict] | None] = queue.Queue()
_worker: threading.Thread | None = None


def enqueue(task: Any, *args: Any, **kwargs: Any) -> None:
    """Run the Celery task `task` soon: `.delay()` with a broker, the local worker without."""
    if settings.CELERY_BROKER_URL:
        task.delay(*args, **kwargs)
    else:
        _queue.put((task, args, kwargs))
        start_worker()


def start_worker() -> threading.Thread:
    global _worker
    if _worker is None or not _worker.is_alive():
        _worker = threading.Thread(target=_run, name="buzon-jobs", daemon=True)
        _worker.start()
    return _worker


def stop_worker(timeout: float = 5.0) -> None:
    global _worker
    if _worker is not None and _worker.is_alive():
        _queue.put(None)
        _worker.join(timeout)
    _worker = None


def drain(timeout: float = 10.0) -> None:
    """Wait until queued jobs have run (tests, shutdown)."""
    done = threading.Event()
    _queue.put((lambda: done.set(), (), {}))
    start_worker()
    done.wait(timeout)


def _run() -> None:
    while True:
        item = _queue.get()
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
