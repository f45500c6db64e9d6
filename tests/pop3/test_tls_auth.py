"""Passwords only over TLS (RFC 2595, RFC 8314), CAPA (RFC 2449), AUTH PLAIN (RFC 5034),
response codes (RFC 3206), the failure delay and the lockout of mailhost.auth."""

import poplib
import time

import pytest

from mailhost import sasl
from tests.conftest import PASSWORD

from .conftest import ALICE, login, make_message, put

pytestmark = pytest.mark.django_db(transaction=True)


def capa_names(client: poplib.POP3) -> set[str]:
    return set(client.capa())


def test_capa_hides_passwords_before_tls_and_shows_them_after_stls(pop3_server, client_context):
    client = poplib.POP3("127.0.0.1", pop3_server.port, timeout=10)
    before = client.capa()
    assert {"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "STLS"} <= set(before)
    assert "USER" not in before and "SASL" not in before
    assert before["EXPIRE"] == ["NEVER"]
    assert "LOGIN-DELAY" not in before
    assert client.stls(context=client_context).startswith(b"+OK")
    after = client.capa()
    assert after["SASL"] == ["PLAIN"] and "USER" in after
    assert "STLS" not in after
    client.quit()


def test_user_pass_and_auth_refused_before_tls(pop3_server, alice):
    """ARCHITECTURE: passwords are only accepted over TLS."""
    client = poplib.POP3("127.0.0.1", pop3_server.port, timeout=10)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\].*TLS"):
        client.user(ALICE)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\].*TLS"):
        client._shortcmd("AUTH PLAIN " + sasl.encode_plain(ALICE, PASSWORD))
    assert client._longcmd("AUTH")[1] == []  # no mechanism offered in plaintext
    client.quit()


def test_plaintext_from_loopback_only_with_the_development_setting(pop3_server, settings, alice):
    settings.BUZON_ALLOW_PLAINTEXT_AUTH = True
    client = login(pop3_server.port)
    assert client.stat() == (0, 0)
    client.quit()


def test_stls_then_user_pass_retr(pop3_server, client_context, alice):
    raw = make_message(1)
    put(alice, raw)
    client = login(pop3_server.port, context=client_context)
    assert client.retr(1)[1] == raw.rstrip(b"\r\n").split(b"\r\n")
    with pytest.raises(poplib.error_proto):
        client._shortcmd("STLS")
    client.quit()


def test_stls_twice_is_refused(pop3_server, client_context):
    client = poplib.POP3("127.0.0.1", pop3_server.port, timeout=10)
    client.stls(context=client_context)
    with pytest.raises(poplib.error_proto, match="Already using TLS"):
        client._shortcmd("STLS")
    client.quit()


def test_pop3s_implicit_tls(pop3s_server, client_context, alice):
    """RFC 8314 §3.3: TLS from the first byte; no STLS offered then."""
    put(alice, make_message(1))
    client = poplib.POP3_SSL("127.0.0.1", pop3s_server.port, timeout=10, context=client_context)
    caps = client.capa()
    assert "STLS" not in caps and "USER" in caps
    client.user(ALICE)
    client.pass_(PASSWORD)
    assert client.stat()[0] == 1
    client.quit()


def test_auth_plain_with_initial_response(pop3s_server, client_context, alice):
    client = poplib.POP3_SSL("127.0.0.1", pop3s_server.port, timeout=10, context=client_context)
    resp = client._shortcmd("AUTH PLAIN " + sasl.encode_plain(ALICE, PASSWORD))
    assert resp.startswith(b"+OK")
    assert client.stat() == (0, 0)
    with pytest.raises(poplib.error_proto):
        client._shortcmd("AUTH PLAIN " + sasl.encode_plain(ALICE, PASSWORD))
    client.quit()


def test_auth_plain_with_a_challenge_and_cancel(pop3s_server, client_context, alice):
    """RFC 5034 §4: an empty "+ " challenge, the response on its own line; "*" cancels."""
    client = poplib.POP3_SSL("127.0.0.1", pop3s_server.port, timeout=10, context=client_context)
    client._putcmd("AUTH PLAIN")
    assert client._getline()[0] == b"+ "
    client._putcmd("*")
    with pytest.raises(poplib.error_proto, match="cancelled"):
        client._getresp()
    client._putcmd("AUTH PLAIN")
    assert client._getline()[0] == b"+ "
    client._putcmd("not base64!")
    with pytest.raises(poplib.error_proto, match="base64"):
        client._getresp()
    client._putcmd("AUTH PLAIN")
    client._getline()
    client._putcmd(sasl.encode_plain(ALICE, PASSWORD))
    assert client._getresp().startswith(b"+OK")
    client.quit()


def test_auth_plain_for_another_identity_fails(pop3s_server, client_context, alice, carol):
    client = poplib.POP3_SSL("127.0.0.1", pop3s_server.port, timeout=10, context=client_context)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        client._shortcmd("AUTH PLAIN " + sasl.encode_plain(ALICE, PASSWORD, "carol@example.test"))
    with pytest.raises(poplib.error_proto, match="Unsupported"):
        client._shortcmd("AUTH CRAM-MD5")
    client.quit()


def test_failed_logins_are_delayed_and_close_after_three(
    pop3s_server, client_context, settings, alice
):
    settings.BUZON_AUTH_FAILURE_DELAY = 0.3
    client = poplib.POP3_SSL("127.0.0.1", pop3s_server.port, timeout=10, context=client_context)
    started = time.monotonic()
    for _ in range(3):
        client.user(ALICE)
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Authentication failed"):
            client.pass_("wrong")
    assert time.monotonic() - started >= 0.9
    with pytest.raises((poplib.error_proto, OSError)):
        client.noop()  # the server hung up after the third failure


def test_lockout_refuses_even_the_right_password(pop3s_server, client_context, settings, alice):
    """mailhost.auth counts failures per address and IP across connections."""
    settings.BUZON_AUTH_MAX_FAILURES = 2
    for _ in range(2):
        c = poplib.POP3_SSL("127.0.0.1", pop3s_server.port, timeout=10, context=client_context)
        c.user(ALICE)
        with pytest.raises(poplib.error_proto):
            c.pass_("wrong")
        c.quit()
    c = poplib.POP3_SSL("127.0.0.1", pop3s_server.port, timeout=10, context=client_context)
    c.user(ALICE)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        c.pass_(PASSWORD)
    c.quit()


def test_login_delay_is_announced_and_enforced(pop3s_server, client_context, settings, alice):
    """RFC 2449 §6.10 / §8.1.2: LOGIN-DELAY n, and -ERR [LOGIN-DELAY] when too soon."""
    settings.BUZON_POP3_LOGIN_DELAY = 60
    c = poplib.POP3_SSL("127.0.0.1", pop3s_server.port, timeout=10, context=client_context)
    assert c.capa()["LOGIN-DELAY"] == ["60"]
    c.user(ALICE)
    c.pass_(PASSWORD)
    c.quit()
    c = poplib.POP3_SSL("127.0.0.1", pop3s_server.port, timeout=10, context=client_context)
    c.user(ALICE)
    with pytest.raises(poplib.error_proto, match=r"\[LOGIN-DELAY\]"):
        c.pass_(PASSWORD)
    c.quit()


def test_expire_is_announced_as_configured(pop3_server, settings):
    settings.BUZON_POP3_EXPIRE = "30"
    c = poplib.POP3("127.0.0.1", pop3_server.port, timeout=10)
    assert c.capa()["EXPIRE"] == ["30"]
    c.quit()


def test_plain_initial_response_equals_sign_means_empty(pop3s_server, client_context, alice):
    c = poplib.POP3_SSL("127.0.0.1", pop3s_server.port, timeout=10, context=client_context)
    with pytest.raises(poplib.error_proto):
        c._shortcmd("AUTH PLAIN =")
    c.quit()
