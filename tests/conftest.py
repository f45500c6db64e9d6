"""Shared fixtures: personas on example.test, a private data dir, servers on free ports."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tests.servers import start_in_thread

PASSWORD = "correct horse battery staple"
REPO = Path(__file__).resolve().parents[1]


def corpus_dir() -> Path:
    if env := os.environ.get("BUZON_CORPUS"):
        return Path(env)
    return REPO.parent / "shared" / "corpus"


def corpus(name: str) -> bytes:
    return (corpus_dir() / name).read_bytes()


def corpus_files() -> list[Path]:
    base = corpus_dir()
    return sorted(p for p in base.rglob("*") if p.is_file() and p.name != "SOURCES.md")


@pytest.fixture(autouse=True)
def data_dir(tmp_path, settings):
    """Every test writes blobs and TLS material into its own directory."""
    settings.BUZON_DATA_DIR = tmp_path / "data"
    settings.BUZON_DATA_DIR.mkdir()
    from mailhost import tls

    tls.reset()
    yield settings.BUZON_DATA_DIR
    tls.reset()


@pytest.fixture(scope="session", autouse=True)
def _close_db_pool_connections(django_db_setup, django_db_blocker):
    """At the end, close the connections the servers' DB threads keep (CONN_MAX_AGE), so
    PostgreSQL can drop the test database."""
    yield
    with django_db_blocker.unblock():
        _close_pool_connections()


def _close_pool_connections() -> None:
    from concurrent.futures import wait

    from django.db import connection, connections

    from mailhost import dbpool

    for pool in (getattr(dbpool, "_pool", None), getattr(dbpool, "_write_pool", None)):
        if pool is None:
            continue
        barrier = threading.Barrier(pool._max_workers, timeout=5)

        def close(barrier=barrier) -> None:
            connections.close_all()
            try:  # hold this thread until every thread has run one close()
                barrier.wait()
            except threading.BrokenBarrierError:
                pass

        wait([pool.submit(close) for _ in range(pool._max_workers)], timeout=10)
    writer = getattr(dbpool, "_writer", None)
    if writer is not None:
        writer.submit(connections.close_all).result(timeout=10)
    # Threads of servers, job workers and killed child processes may still hold sessions.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    from mailhost.store import fetchcache

    cache.clear()
    fetchcache.clear()  # keyed by row ids, which a flushed test database may hand out again
    yield


@pytest.fixture
def domain(db):
    from mailhost.directory import add_domain

    return add_domain("example.test")


@pytest.fixture
def alice(domain):
    from mailhost.directory import add_account

    return add_account("alice@example.test", PASSWORD, display_name="Alice")


@pytest.fixture
def carol(domain):
    from mailhost.directory import add_account

    return add_account("carol@example.test", PASSWORD, display_name="Carol")


@pytest.fixture
def lmtp_server(transactional_db):
    from smtpd.server import start_lmtp

    thread = start_in_thread(start_lmtp)
    yield thread
    thread.stop()
