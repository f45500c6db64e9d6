"""SPF (RFC 7208), DKIM (RFC 6376) and DMARC (RFC 7489) on inbound mail, with loopback DNS."""

from __future__ import annotations

import base64
import smtplib

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.smtpd.test_mx import inbox


@pytest.fixture(scope="module")
def sender_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def message(sender: str = "news@sender.test") -> bytes:
    return (
        f"From: News <{sender}>\r\nTo: alice@example.test\r\nSubject: auth\r\n"
        "Message-ID: <1@sender.test>\r\n\r\nHello\r\n"
    ).encode()


def signed(raw: bytes, pem: bytes, domain: str = "sender.test") -> bytes:
    return dkim.sign(raw, b"sel", domain.encode(), pem, include_headers=[b"from", b"subject"]) + raw


def publish(dns_server, sender_key, *, spf: str, dmarc: str) -> None:
    dns_server.txt("sender.test", spf)
    dns_server.txt("sel._domainkey.sender.test", sender_key[1])
    dns_server.txt("_dmarc.sender.test", dmarc)
    dns_server.add("sender.test", "MX", "10 mail.sender.test.")


def send(port: int, raw: bytes, mail_from: str = "bounce@sender.test"):
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as c:
        c.ehlo("mail.sender.test")
        c.mail(mail_from)
        c.rcpt("alice@example.test")
        return c.data(raw)


def auth_results(stored: bytes) -> str:
    head = stored.split(b"\r\n\r\n")[0].decode()
    field = head.split("Authentication-Results:")[1]
    return " ".join(field.split("\r\n")[0:6])


def test_spf_dkim_dmarc_pass(mx_server, alice, dns_server, sender_key):
    publish(dns_server, sender_key, spf="v=spf1 ip4:127.0.0.1 -all", dmarc="v=DMARC1; p=reject")
    code, _ = send(mx_server.port, signed(message(), sender_key[0]))
    assert code == 250
    [stored] = inbox(alice)
    results = auth_results(stored)
    assert "spf=pass" in results and "dkim=pass" in results and "dmarc=pass" in results
    assert "header.d=sender.test" in results


def test_dmarc_reject_refuses_at_data(mx_server, alice, dns_server, sender_key):
    """RFC 7489 §6.3: p=reject and neither SPF nor DKIM aligned: 550 after DATA."""
    publish(dns_server, sender_key, spf="v=spf1 ip4:192.0.2.1 -all", dmarc="v=DMARC1; p=reject")
    code, text = send(mx_server.port, message())  # unsigned, SPF fails
    assert code == 550 and text.startswith(b"5.7.1")
    assert inbox(alice) == []


def test_dmarc_quarantine_files_into_junk(mx_server, alice, dns_server, sender_key):
    publish(dns_server, sender_key, spf="v=spf1 ip4:192.0.2.1 -all", dmarc="v=DMARC1; p=quarantine")
    tampered = signed(message(), sender_key[0]).replace(b"Hello", b"Hullo")
    assert send(mx_server.port, tampered)[0] == 250
    assert inbox(alice) == []
    [junk] = inbox(alice, "Junk")
    results = auth_results(junk)
    assert "spf=fail" in results and "dkim=fail" in results and "dmarc=fail" in results


def test_dkim_alone_passes_dmarc_when_spf_fails(mx_server, alice, dns_server, sender_key):
    publish(dns_server, sender_key, spf="v=spf1 ip4:192.0.2.1 -all", dmarc="v=DMARC1; p=reject")
    assert send(mx_server.port, signed(message(), sender_key[0]))[0] == 250
    results = auth_results(inbox(alice)[0])
    assert "spf=fail" in results and "dkim=pass" in results and "dmarc=pass" in results


def test_no_records_means_none(mx_server, alice):
    assert send(mx_server.port, message(), mail_from="x@unknown.test")[0] == 250
    results = auth_results(inbox(alice)[0])
    assert "spf=none" in results and "dkim=none" in results


def test_forged_authentication_results_are_removed(mx_server, alice, dns_server, sender_key):
    """RFC 8601 §5: a field claiming to be ours that arrived from outside is dropped."""
    publish(dns_server, sender_key, spf="v=spf1 ip4:127.0.0.1 -all", dmarc="v=DMARC1; p=none")
    forged = b"Authentication-Results: mx.example.test; dkim=pass header.d=bank.test\r\n"
    assert send(mx_server.port, forged + message())[0] == 250
    stored = inbox(alice)[0]
    assert b"bank.test" not in stored
    assert stored.count(b"Authentication-Results:") == 1
