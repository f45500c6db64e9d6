"""TLS: STARTTLS on the IMAP port and implicit TLS on IMAPS (RFC 9051 §6.2.1, RFC 8314)."""

from __future__ import annotations

import imaplib
import ssl

import pytest
import trustme

from mailhost import tls
from tests.conftest import PASSWORD
from tests.imapd.conftest import ALICE

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ca(tmp_path, settings):
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    settings.BUZON_TLS_CERT, settings.BUZON_TLS_KEY = str(cert_path), str(key_path)
    settings.BUZON_ALLOW_PLAINTEXT_AUTH = False
    tls.reset()
    yield authority
    tls.reset()


def client_context(ca) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def test_starttls_then_login(ca, imap_server, alice):
    """RFC 9051 §6.2.1: after STARTTLS, LOGINDISABLED is gone and LOGIN works."""
    client = imaplib.IMAP4("127.0.0.1", imap_server.port, timeout=10)
    assert "LOGINDISABLED" in client.capabilities
    assert client.starttls(ssl_context=client_context(ca))[0] == "OK"
    assert "LOGINDISABLED" not in client.capabilities and "STARTTLS" not in client.capabilities
    assert client.login(ALICE, PASSWORD)[0] == "OK"
    assert client.select("INBOX")[0] == "OK"
    client.logout()


def test_starttls_twice_is_bad(ca, imap_server, alice):
    client = imaplib.IMAP4("127.0.0.1", imap_server.port, timeout=10)
    client.starttls(ssl_context=client_context(ca))
    with pytest.raises(imaplib.IMAP4.error):
        client._simple_command("STARTTLS")
    client.logout()


def test_implicit_tls(ca, imaps_server, alice):
    """RFC 8314 §3.3: IMAPS speaks TLS from the first byte; passwords are accepted."""
    client = imaplib.IMAP4_SSL(
        "127.0.0.1", imaps_server.port, ssl_context=client_context(ca), timeout=10
    )
    assert "STARTTLS" not in client.capabilities
    assert client.login(ALICE, PASSWORD)[0] == "OK"
    assert client.list()[0] == "OK"
    client.logout()
