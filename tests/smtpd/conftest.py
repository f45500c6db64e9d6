"""SMTP fixtures: a loopback DNS server, trustme TLS, our listeners, a loopback remote MX."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass, field

import pytest
import trustme
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.conftest import PASSWORD
from tests.servers import start_in_thread
from tests.smtpd.dnsserver import DNSServer


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_cert(ca):
    return ca.issue_cert("127.0.0.1", "localhost", "mx.example.test", "mx.remote.test")


@pytest.fixture(autouse=True)
def smtp_settings(settings, tmp_path, server_cert, data_dir):
    """TLS from trustme, quick DNS, no auth delays; and the loopback DNS server for SPF."""
    from mailhost import tls

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    server_cert.cert_chain_pems[0].write_to_path(cert)
    server_cert.private_key_pem.write_to_path(key)
    settings.BUZON_TLS_CERT, settings.BUZON_TLS_KEY = str(cert), str(key)
    tls.reset()
    settings.BUZON_DNS_TIMEOUT = 2
    settings.BUZON_AUTH_FAILURE_DELAY = 0
    settings.BUZON_QUEUE_BACKOFF_MIN = 60
    settings.BUZON_QUEUE_BACKOFF_MAX = 3600
    yield settings
    tls.reset()


@pytest.fixture(autouse=True)
def dns_server(settings):
    server = DNSServer().start()
    settings.BUZON_DNS_SERVERS = f"127.0.0.1:{server.port}"
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _drain_jobs(django_db_blocker):
    """Queue attempts run on the in-process worker; let them finish before the DB goes."""
    yield
    from mailhost import jobs

    with django_db_blocker.unblock():
        jobs.drain(10)


def client_context(ca) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.fixture
def tls_client(ca) -> ssl.SSLContext:
    return client_context(ca)


@pytest.fixture
def mx_server(transactional_db):
    from smtpd.server import start_smtp

    thread = start_in_thread(start_smtp)
    yield thread
    thread.stop()


@pytest.fixture
def submission_server(transactional_db):
    from smtpd.server import start_submission

    thread = start_in_thread(start_submission)
    yield thread
    thread.stop()


@pytest.fixture
def submissions_server(transactional_db):
    from smtpd.server import start_submissions

    thread = start_in_thread(start_submissions)
    yield thread
    thread.stop()


@pytest.fixture
def bob_domain(transactional_db):
    """Another local account, for local + remote submissions."""
    from mailhost.directory import add_account

    return add_account("bob@example.test", PASSWORD)


# The loopback "remote MX" ------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    mail_options: list[str]


@dataclass
class RemoteBehaviour:
    rcpt: dict[str, str] = field(default_factory=dict)  # address -> reply (e.g. "450 ...")
    data: str | None = None  # reply to the end of DATA instead of 250
    messages: list[Received] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)


class RemoteHandler:
    def __init__(self, behaviour: RemoteBehaviour) -> None:
        self.b = behaviour

    async def handle_MAIL(self, server, session, envelope, address, options):  # noqa: N802
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
        if address in self.b.rcpt:
            return self.b.rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session: Session, envelope: Envelope):  # noqa: N802
        if self.b.data:
            return self.b.data
        self.b.messages.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.original_content,
                session.ssl is not None,
                list(envelope.mail_options),
            )
        )
        return "250 2.0.0 OK remote"


class RemoteSMTP(SMTP):
    async def smtp_EHLO(self, hostname):
        await super().smtp_EHLO(hostname)

    async def handle_exception(self, error):  # pragma: no cover
        return f"451 {error}"


@pytest.fixture
def remote_mx(settings, dns_server, ca):
    """An aiosmtpd MX for `remote.test` (and `other.test`) on loopback, with STARTTLS."""
    behaviour = RemoteBehaviour()
    cert = ca.issue_cert("mx.remote.test")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)

    class Handler(RemoteHandler):
        async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
            session.host_name = hostname
            return responses[:-1] + ["250-PIPELINING", responses[-1]]

    async def start(host, port):
        loop = asyncio.get_running_loop()
        handler = Handler(behaviour)
        return await loop.create_server(
            lambda: RemoteSMTP(handler, tls_context=ctx, enable_SMTPUTF8=True), host, port
        )

    thread = start_in_thread(start)
    settings.BUZON_REMOTE_SMTP_PORT = thread.port
    for domain in ("remote.test", "other.test"):
        dns_server.add(domain, "MX", "10 mx.remote.test.")
    dns_server.add("mx.remote.test", "A", "127.0.0.1")
    behaviour.port = thread.port
    yield behaviour
    thread.stop()


def login(client: smtplib.SMTP, user: str = "alice@example.test") -> None:
    client.login(user, PASSWORD)
