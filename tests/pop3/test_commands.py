"""RFC 1939 commands through poplib against the real server (plaintext on loopback)."""

import poplib

import pytest

from mailhost import store
from tests.conftest import PASSWORD

from .conftest import ALICE, inbox_uids, login, make_message, put

pytestmark = pytest.mark.django_db(transaction=True)


def test_greeting_has_no_apop_timestamp(pop3_server):
    """RFC 1939 §7: only a server offering APOP puts a timestamp in the greeting."""
    client = poplib.POP3("127.0.0.1", pop3_server.port, timeout=10)
    welcome = client.getwelcome()
    client.quit()
    assert welcome.startswith(b"+OK") and b"<" not in welcome


def test_stat_list_uidl_on_a_snapshot(pop3_server, pop, alice):
    """RFC 1939 §5: STAT, LIST (all and one), UIDL (all and one); numbers from 1."""
    assert pop.stat() == (0, 0)
    pop.quit()
    uids = put(alice, make_message(1), make_message(2, b"x" * 100 + b"\r\n"))
    box = store.lookup_mailbox(alice.id, "INBOX")
    client = login(pop3_server.port)
    sizes = [len(make_message(1)), len(make_message(2, b"x" * 100 + b"\r\n"))]
    assert client.stat() == (2, sum(sizes))
    resp, lines, _ = client.list()
    assert lines == [f"1 {sizes[0]}".encode(), f"2 {sizes[1]}".encode()]
    assert client.list(2) == f"+OK 2 {sizes[1]}".encode()
    resp, lines, _ = client.uidl()
    assert lines == [f"{n} {box.uidvalidity}.{uid}".encode() for n, uid in enumerate(uids, 1)]
    assert client.uidl(1) == f"+OK 1 {box.uidvalidity}.{uids[0]}".encode()
    # Delivered after login: not in this session's maildrop (the snapshot).
    put(alice, make_message(3))
    assert client.stat()[0] == 2
    client.quit()


def test_retr_returns_the_stored_message(pop3_server, plaintext_ok, alice):
    raw = make_message(1, b".starts with a dot\r\nplain\r\n..two dots\r\n")
    put(alice, raw)
    client = login(pop3_server.port)
    resp, lines, octets = client.retr(1)
    assert resp == f"+OK {len(raw)} octets".encode()
    # poplib un-stuffs: what it returns is the message line by line.
    assert b"\r\n".join(lines) + b"\r\n" == raw
    client.quit()


def test_retr_normalises_bare_lf_and_list_counts_crlf(pop3_server, plaintext_ok, alice):
    """RFC 1939 §11: sizes count CRLF line ends, as sent."""
    raw = b"From: b@example.org\nSubject: lf\n\nline one\nline two"
    put(alice, raw)
    client = login(pop3_server.port)
    wire_size = len(raw.replace(b"\n", b"\r\n"))
    assert client.list(1) == f"+OK 1 {wire_size}".encode()
    resp, lines, _ = client.retr(1)
    assert lines == raw.split(b"\n")
    client.quit()


def test_top_sends_headers_and_n_lines(pop3_server, plaintext_ok, alice):
    put(alice, make_message(1, b"one\r\ntwo\r\nthree\r\n"))
    client = login(pop3_server.port)
    _, lines, _ = client.top(1, 0)
    assert lines[-1] == b"" and b"Subject: message 1" in lines
    _, lines2, _ = client.top(1, 2)
    assert lines2 == lines + [b"one", b"two"]
    with pytest.raises(poplib.error_proto):
        client.top(2, 1)
    client.quit()


def test_dele_marks_and_quit_deletes_in_one_update(pop3_server, plaintext_ok, alice):
    """RFC 1939 §6: DELE only marks; QUIT in TRANSACTION removes (UPDATE state)."""
    uids = put(alice, make_message(1), make_message(2), make_message(3))
    client = login(pop3_server.port)
    assert client.dele(2).startswith(b"+OK")
    with pytest.raises(poplib.error_proto, match="already deleted"):
        client.dele(2)
    with pytest.raises(poplib.error_proto):
        client.retr(2)
    with pytest.raises(poplib.error_proto):
        client.list(2)
    assert client.stat()[0] == 2
    assert [line.split()[0] for line in client.uidl()[1]] == [b"1", b"3"]
    assert inbox_uids(alice) == uids  # nothing deleted before QUIT
    assert client.quit().startswith(b"+OK")
    assert inbox_uids(alice) == [uids[0], uids[2]]


def test_rset_unmarks_and_noop_answers(pop3_server, plaintext_ok, alice):
    uids = put(alice, make_message(1), make_message(2))
    client = login(pop3_server.port)
    client.dele(1)
    client.dele(2)
    assert client.stat() == (0, 0)
    assert client.noop() == b"+OK"
    assert client.rset().startswith(b"+OK")
    assert client.stat()[0] == 2
    client.quit()
    assert inbox_uids(alice) == uids


def test_out_of_range_and_wrong_state_get_err(pop3_server, plaintext_ok, alice):
    put(alice, make_message(1))
    client = poplib.POP3("127.0.0.1", pop3_server.port, timeout=10)
    for call in (client.stat, client.list, client.noop, client.rset, lambda: client.retr(1)):
        with pytest.raises(poplib.error_proto, match="not allowed before login"):
            call()
    with pytest.raises(poplib.error_proto, match="USER first"):
        client.pass_(PASSWORD)
    client.user(ALICE)
    client.pass_(PASSWORD)
    for n in (2, 99):
        with pytest.raises(poplib.error_proto, match="No message"):
            client.retr(n)
        with pytest.raises(poplib.error_proto):
            client.dele(n)
        with pytest.raises(poplib.error_proto):
            client.uidl(n)
    with pytest.raises(poplib.error_proto, match="not allowed after login"):
        client.user(ALICE)
    with pytest.raises(poplib.error_proto, match="not allowed after login"):
        client._shortcmd("STLS")
    assert client.stat()[0] == 1  # the session went on
    client.quit()


def test_quit_in_authorization_closes_without_update(pop3_server):
    client = poplib.POP3("127.0.0.1", pop3_server.port, timeout=10)
    assert client.quit().startswith(b"+OK")


def test_wrong_password_then_right_one(pop3_server, plaintext_ok, alice):
    client = poplib.POP3("127.0.0.1", pop3_server.port, timeout=10)
    client.user(ALICE)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        client.pass_("wrong")
    client.user(ALICE)
    assert client.pass_(PASSWORD).startswith(b"+OK")
    client.quit()


def test_apop_is_refused(pop3_server, alice):
    """README "POP3": APOP needs a plaintext-equivalent secret; accounts keep a hash."""
    client = poplib.POP3("127.0.0.1", pop3_server.port, timeout=10)
    with pytest.raises(poplib.error_proto, match="APOP is not supported"):
        client._shortcmd("APOP alice@example.test c4c9334bac560ecc979e58001b3e22fb")
    client.quit()


def test_pipelined_commands_are_answered_in_order(raw, plaintext_ok, alice):
    """RFC 2449 §6.6 PIPELINING: a batch of commands in one write, replies in order."""
    put(alice, make_message(1), make_message(2))
    c = raw()
    c.send(
        f"USER {ALICE}\r\nPASS {PASSWORD}\r\nSTAT\r\nUIDL 1\r\nRETR 2\r\nDELE 1\r\n"
        "LIST\r\nQUIT\r\n".encode()
    )
    assert c.line().startswith(b"+OK")
    assert c.line().startswith(b"+OK")
    assert c.line().startswith(b"+OK 2 ")
    assert c.line().startswith(b"+OK 1 ")
    assert c.line().startswith(b"+OK")
    assert b"Subject: message 2\r\n" in c.multiline()
    assert c.line().startswith(b"+OK")
    assert c.line().startswith(b"+OK 1 messages")
    assert len(c.multiline()) == 1
    assert c.line().startswith(b"+OK Bye; 1 messages deleted")
    assert len(inbox_uids(alice)) == 1
