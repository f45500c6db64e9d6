"""The listeners this process runs, for logs and /healthz."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Listener:
    name: str
    host: str
    port: int


_lock = threading.Lock()
_listeners: dict[str, Listener] = {}


def register(name: str, host: str, port: int) -> Listener:
    listener = Listener(name, host, port)
    with _lock:
        _listeners[name] = listener
    return listener


def unregister(name: str) -> None:
    with _lock:
        _listeners.pop(name, None)


def running() -> list[Listener]:
    with _lock:
        return sorted(_listeners.values(), key=lambda item: item.name)
