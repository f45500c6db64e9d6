"""`curl imap://` as a client: listing mailboxes, fetching a message, STARTTLS."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import trustme

from mailhost import store, tls
from tests.conftest import PASSWORD


@pytest.fixture(autouse=True)
def _curl_installed():
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed: run `bash .ci/apt-install` (as root)")


pytestmark = [
    pytest.mark.django_db(transaction=True),
]
RAW = b"From: bob@example.org\r\nSubject: via curl\r\n\r\nHello from curl\r\n"


def curl(*args: str) -> bytes:
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "20", "-u", f"alice@example.test:{PASSWORD}", *args],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def test_curl_lists_and_fetches(imap_server, alice):
    """curl uses CAPABILITY, AUTHENTICATE PLAIN (SASL-IR), LIST, SELECT, UID FETCH BODY[]."""
    store.append(alice.id, "INBOX", RAW)
    base = f"imap://127.0.0.1:{imap_server.port}"
    listing = curl(f"{base}/")
    assert b'"/" INBOX' in listing and b"Sent" in listing
    assert curl(f"{base}/INBOX;UID=1") == RAW
    assert curl(f"{base}/INBOX;UID=1/;SECTION=TEXT") == b"Hello from curl\r\n"
    assert b"SEARCH 1" in curl(f"{base}/INBOX?SUBJECT%20curl")


def test_curl_over_starttls(imap_server, alice, tmp_path, settings):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "c.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "k.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    settings.BUZON_TLS_CERT, settings.BUZON_TLS_KEY = (
        str(tmp_path / "c.pem"),
        str(tmp_path / "k.pem"),
    )
    settings.BUZON_ALLOW_PLAINTEXT_AUTH = False
    tls.reset()
    store.append(alice.id, "INBOX", RAW)
    url = f"imap://127.0.0.1:{imap_server.port}/INBOX;UID=1"
    assert curl("--ssl-reqd", "--cacert", str(tmp_path / "ca.pem"), url) == RAW
    tls.reset()
