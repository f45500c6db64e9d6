"""IMAP fixtures: the real server in a thread (imapd.imap.server.start_imap), plaintext
logins allowed on loopback unless a test turns that off, and a logged-in imaplib client."""

from __future__ import annotations

import imaplib

import pytest

from tests.conftest import PASSWORD
from tests.servers import start_in_thread

ALICE = "alice@example.test"


@pytest.fixture(autouse=True)
def _imap_settings(settings):
    settings.BUZON_ALLOW_PLAINTEXT_AUTH = True
    settings.BUZON_AUTH_FAILURE_DELAY = 0
    settings.BUZON_IMAP_IDLE_TIMEOUT = 60


@pytest.fixture
def imap_server(transactional_db):
    from imapd.imap.server import start_imap

    thread = start_in_thread(start_imap)
    yield thread
    thread.stop()


@pytest.fixture
def imaps_server(transactional_db):
    from imapd.imap.server import start_imap

    thread = start_in_thread(start_imap, implicit_tls=True)
    yield thread
    thread.stop()


def connect(server, user: str = ALICE) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", server.port, timeout=10)
    client.login(user, PASSWORD)
    return client


@pytest.fixture
def imap(imap_server, alice):
    client = connect(imap_server)
    yield client
    try:
        client.logout()
    except (imaplib.IMAP4.abort, OSError):
        pass
