"""POP3 fixtures: servers in a thread (plain+STLS and implicit TLS), a trustme CA, a raw client."""

from __future__ import annotations

import poplib
import socket
import ssl

import pytest

from imapd.pop3 import server as pop3_server_module
from mailhost import store
from tests.conftest import PASSWORD
from tests.servers import start_in_thread

ALICE = "alice@example.test"


def make_message(i: int, body: bytes = b"Hello\r\n", subject: str | None = None) -> bytes:
    subject = subject or f"message {i}"
    return (
        f"From: Bob <bob@example.org>\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{i}@example.org>\r\n\r\n"
    ).encode() + body


def put(account, *raws: bytes) -> list[int]:
    """Append messages to the account's INBOX; return their UIDs."""
    return [store.append(account.id, "INBOX", raw).uid for raw in raws]


def inbox_uids(account) -> list[int]:
    box = store.lookup_mailbox(account.id, "INBOX")
    return store.message_uids(account.id, box.id)


@pytest.fixture
def tls_ca(tmp_path, settings):
    """A trustme CA; the server's certificate for 127.0.0.1 and localhost comes from it."""
    import trustme

    from mailhost import tls

    ca = trustme.CA()
    # fetchmail insists on a CommonName in the leaf, not only subjectAltName.
    cert = ca.issue_cert("127.0.0.1", "localhost", common_name="localhost")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(cert_path)
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(cert_path, append=True)
    cert.private_key_pem.write_to_path(key_path)
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    settings.BUZON_TLS_CERT, settings.BUZON_TLS_KEY = str(cert_path), str(key_path)
    tls.reset()
    ca.path = tmp_path / "ca.pem"
    yield ca
    tls.reset()


@pytest.fixture
def client_context(tls_ca) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    tls_ca.configure_trust(ctx)
    return ctx


@pytest.fixture
def plaintext_ok(settings):
    """Development mode: passwords accepted without TLS from loopback."""
    settings.BUZON_ALLOW_PLAINTEXT_AUTH = True


@pytest.fixture
def _no_unhandled_errors():
    pop3_server_module.unhandled_errors.clear()
    yield
    errors = list(pop3_server_module.unhandled_errors)
    pop3_server_module.unhandled_errors.clear()
    assert not errors, f"the POP3 server hit unexpected errors: {errors!r}"


@pytest.fixture
def pop3_server(transactional_db, tls_ca, _no_unhandled_errors):
    """POP3 with STLS on a free port; the certificate comes from `tls_ca`."""
    thread = start_in_thread(pop3_server_module.start_pop3)
    yield thread
    thread.stop()


@pytest.fixture
def pop3s_server(transactional_db, tls_ca, _no_unhandled_errors):
    thread = start_in_thread(pop3_server_module.start_pop3, implicit_tls=True)
    yield thread
    thread.stop()


@pytest.fixture
def pop(pop3_server, plaintext_ok, alice):
    """A poplib client logged in as alice (plaintext on loopback, development mode)."""
    client = poplib.POP3("127.0.0.1", pop3_server.port, timeout=10)
    client.user(ALICE)
    client.pass_(PASSWORD)
    yield client
    try:
        client.close()
    except OSError:
        pass


def login(port: int, *, context: ssl.SSLContext | None = None) -> poplib.POP3:
    client = poplib.POP3("127.0.0.1", port, timeout=10)
    if context is not None:
        client.stls(context=context)
    client.user(ALICE)
    client.pass_(PASSWORD)
    return client


class RawClient:
    """Send exact bytes, read whole reply lines: for what poplib will not send."""

    def __init__(self, port: int, timeout: float = 10) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.greeting = self.line()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        return self.file.readline(100_000)

    def cmd(self, data: bytes) -> bytes:
        self.send(data + b"\r\n")
        return self.line()

    def multiline(self) -> list[bytes]:
        lines = []
        while (line := self.line()) != b".\r\n":
            assert line, "connection closed inside a multi-line response"
            lines.append(line)
        return lines

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def raw(pop3_server):
    clients: list[RawClient] = []

    def connect() -> RawClient:
        client = RawClient(pop3_server.port)
        clients.append(client)
        return client

    yield connect
    for c in clients:
        c.close()
