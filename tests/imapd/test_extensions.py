"""IMAP extensions, driven by imapclient and, for what it cannot send, the raw client."""

from __future__ import annotations

import threading
import time
import zlib

import imapclient
import pytest
from imapclient.imapclient import SENT, TRASH

from mailhost import store
from tests.conftest import PASSWORD
from tests.imapd.conftest import ALICE
from tests.imapd.rawclient import RawClient

pytestmark = pytest.mark.django_db(transaction=True)


def put(alice, subject="hello", body="body", mailbox="INBOX", flags=(), extra=""):
    raw = (
        f"From: Bob <bob@example.org>\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
        f"{extra}\r\n{body}\r\n"
    ).encode()
    return store.append(alice.id, mailbox, raw, flags=flags)


@pytest.fixture
def client(imap_server, alice):
    c = imapclient.IMAPClient("127.0.0.1", port=imap_server.port, ssl=False, timeout=10)
    c.login(ALICE, PASSWORD)
    yield c
    try:
        c.logout()
    except Exception:
        pass


@pytest.fixture
def raw(imap_server, alice):
    c = RawClient(imap_server.port)
    c.login()
    yield c
    c.close()


def test_capabilities_after_login(client):
    """Every extension the issue lists is advertised after authentication."""
    caps = set(client.capabilities())
    for cap in (
        b"IDLE", b"UIDPLUS", b"MOVE", b"NAMESPACE", b"ID", b"UNSELECT", b"ENABLE", b"LITERAL+",
        b"SPECIAL-USE", b"CREATE-SPECIAL-USE", b"LIST-EXTENDED", b"LIST-STATUS", b"CHILDREN",
        b"ESEARCH", b"SEARCHRES", b"CONDSTORE", b"QRESYNC", b"SORT", b"THREAD=REFERENCES",
        b"THREAD=ORDEREDSUBJECT", b"QUOTA", b"STATUS=SIZE", b"UTF8=ACCEPT", b"COMPRESS=DEFLATE",
        b"IMAP4REV2",
    ):  # fmt: skip
        assert cap in caps, cap
    assert any(c.startswith(b"APPENDLIMIT=") for c in caps)


def test_uidplus_move_and_uid_expunge(client, alice):
    """RFC 4315 (UIDPLUS) and RFC 6851 (MOVE) through imapclient."""
    for i in range(3):
        put(alice, subject=f"m{i}")
    client.select_folder("INBOX")
    client.move([1], "Archive")
    assert client.search() == [2, 3]
    client.add_flags([2, 3], [imapclient.DELETED])
    client.uid_expunge([3])
    assert client.search() == [2]
    result = client.append("Sent", b"Subject: s\r\n\r\nx\r\n")
    assert b"APPENDUID" in result


def test_special_use_and_create_special_use(client):
    """RFC 6154: special-use attributes on LIST; CREATE ... (USE (\\Archive))."""
    assert client.find_special_folder(SENT) == "Sent"
    assert client.find_special_folder(TRASH) == "Trash"
    raw = client._imap
    tag = raw._command("CREATE", "Flagged-mail", "(USE (\\Flagged))")
    assert raw._command_complete("CREATE", tag)[0] == "OK"
    folders = {name: flags for flags, _, name in client.list_folders()}
    assert b"\\Flagged" in folders["Flagged-mail"]
    tag = raw._command("CREATE", "Bad-use", "(USE (\\Bogus))")
    typ, data = raw._command_complete("CREATE", tag)
    assert typ == "NO" and b"USEATTR" in data[0]


def test_list_extended_and_list_status(raw, alice):
    """RFC 5258 LIST-EXTENDED (selection and return options) and RFC 5819 LIST-STATUS."""
    put(alice)
    raw.command(b"u", b"UNSUBSCRIBE Junk")
    lines = raw.command(b"a", b'LIST (SUBSCRIBED) "" "*" RETURN (STATUS (MESSAGES UIDNEXT))')
    text = b"".join(lines)
    assert b"Junk" not in text
    assert b'* LIST (\\HasNoChildren \\Subscribed) "/" INBOX' in text
    assert b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2)" in text
    lines = raw.command(b"b", b'LIST (SPECIAL-USE) "" "*" RETURN (SPECIAL-USE)')
    names = [line.split(b'"/" ')[1].strip() for line in lines if line.startswith(b"* LIST")]
    assert sorted(names) == [b"Archive", b"Drafts", b"Junk", b"Sent", b"Trash"]
    lines = raw.command(b"c", b'LIST "" ("INBOX" "Sent") RETURN (CHILDREN)')
    assert len([line for line in lines if line.startswith(b"* LIST")]) == 2
    raw.command(b"d", b"CREATE p/q")
    raw.command(b"e", b"UNSUBSCRIBE p")
    lines = raw.command(b"f", b'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    assert any(b"CHILDINFO" in line and line.rstrip().endswith(b"))") for line in lines)


def test_namespace_id_unselect(client, alice):
    """RFC 2342 NAMESPACE, RFC 2971 ID, RFC 3691 UNSELECT."""
    ns = client.namespace()
    assert ns.personal == (("", "/"),)
    info = client.id_({"name": "imapclient"})[0]
    assert dict(zip(info[::2], info[1::2], strict=True))[b"name"] == b"Buzon"
    client.select_folder("INBOX")
    client.unselect_folder()


def test_enable_and_condstore(client, alice):
    """RFC 7162 CONDSTORE: MODSEQ on FETCH, CHANGEDSINCE, UNCHANGEDSINCE, HIGHESTMODSEQ."""
    put(alice)
    put(alice)
    assert client.enable("CONDSTORE") == [b"CONDSTORE"]
    info = client.select_folder("INBOX")
    start = info[b"HIGHESTMODSEQ"]
    client.add_flags([2], [imapclient.FLAGGED])
    changed = client.fetch("1:*", ["FLAGS"], modifiers=[f"CHANGEDSINCE {start}"])
    assert list(changed) == [2] and changed[2][b"MODSEQ"][0] > start
    status = client.folder_status("INBOX", ["HIGHESTMODSEQ"])
    assert status[b"HIGHESTMODSEQ"] == changed[2][b"MODSEQ"][0]
    # UNCHANGEDSINCE older than message 2's MODSEQ: refused with [MODIFIED 2]
    typ, data = client._imap._simple_command(
        "UID", "STORE", "1:2", f"(UNCHANGEDSINCE {start})", "+FLAGS", "x"
    )
    assert typ == "OK" and b"[MODIFIED 2]" in data[0]
    assert client.search(["MODSEQ", start + 1]) == [1, 2]


def test_qresync_select_reports_vanished_and_changes(raw, alice):
    """RFC 7162 §3.2.5: SELECT (QRESYNC ...) sends VANISHED (EARLIER) and changed FETCHes."""
    for _ in range(3):
        put(alice)
    raw.command(b"e", b"ENABLE QRESYNC")
    lines = raw.command(b"s", b"SELECT INBOX")
    uidvalidity = next(int(line.split()[3][:-1]) for line in lines if b"UIDVALIDITY" in line)
    modseq = next(int(line.split()[3][:-1]) for line in lines if b"HIGHESTMODSEQ" in line)
    raw.command(b"f", b"UID STORE 2 +FLAGS.SILENT (\\Deleted)")
    raw.command(b"x", b"EXPUNGE")
    raw.command(b"g", b"UID STORE 3 +FLAGS.SILENT (\\Seen)")
    raw.command(b"u", b"UNSELECT")
    lines = raw.command(b"q", b"SELECT INBOX (QRESYNC (%d %d 1:3))" % (uidvalidity, modseq))
    text = b"".join(lines)
    assert b"* VANISHED (EARLIER) 2" in text
    assert b"FETCH (UID 3 FLAGS (\\Seen) MODSEQ" in text
    lines = raw.command(b"v", b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % modseq)
    assert b"* VANISHED (EARLIER) 2" in b"".join(lines)


def test_qresync_expunge_is_reported_as_vanished(raw, alice):
    """RFC 7162 §3.2.10: after ENABLE QRESYNC, VANISHED replaces EXPUNGE."""
    put(alice)
    put(alice)
    raw.command(b"e", b"ENABLE QRESYNC")
    raw.command(b"s", b"SELECT INBOX")
    raw.command(b"f", b"STORE 1 +FLAGS.SILENT (\\Deleted)")
    lines = raw.command(b"x", b"EXPUNGE")
    assert lines[0] == b"* VANISHED 1\r\n"


def test_esearch_and_searchres(raw, alice):
    """RFC 4731 ESEARCH RETURN (MIN MAX COUNT ALL); RFC 5182 SAVE and `$`."""
    for i in range(5):
        put(alice, subject="even" if i % 2 else "odd")
    raw.command(b"s", b"SELECT INBOX")
    lines = raw.command(b"a", b"SEARCH RETURN (MIN MAX COUNT ALL) SUBJECT odd")
    assert lines[0] == b'* ESEARCH (TAG "a") MIN 1 MAX 5 COUNT 3 ALL 1,3,5\r\n'
    lines = raw.command(b"b", b"UID SEARCH RETURN () SUBJECT even")
    assert lines[0] == b'* ESEARCH (TAG "b") UID ALL 2,4\r\n'
    lines = raw.command(b"c", b"SEARCH RETURN (SAVE) SUBJECT even")
    assert lines == [b"c OK SEARCH completed\r\n"]
    lines = raw.command(b"d", b"FETCH $ (UID)")
    assert [line for line in lines if line.startswith(b"* ")] == [
        b"* 2 FETCH (UID 2)\r\n",
        b"* 4 FETCH (UID 4)\r\n",
    ]
    lines = raw.command(b"e", b"SEARCH RETURN (COUNT) NOT $")
    assert lines[0] == b'* ESEARCH (TAG "e") COUNT 3\r\n'
    lines = raw.command(b"f", b"SEARCH RETURN (MIN) SUBJECT nothing-matches")
    assert lines[0] == b'* ESEARCH (TAG "f")\r\n'


def test_imap4rev2_search_returns_esearch(raw, alice):
    """RFC 9051 §6.4.4: in IMAP4rev2 SEARCH answers with ESEARCH; no RECENT on SELECT."""
    put(alice)
    assert raw.command(b"e", b"ENABLE IMAP4rev2")[0] == b"* ENABLED IMAP4rev2\r\n"
    lines = raw.command(b"s", b"SELECT INBOX")
    assert not any(b"RECENT" in line for line in lines)
    lines = raw.command(b"a", b"SEARCH ALL")
    assert lines[0] == b'* ESEARCH (TAG "a") ALL 1\r\n'


def test_sort_and_thread(client, alice):
    """RFC 5256: SORT (REVERSE SUBJECT), THREAD REFERENCES and ORDEREDSUBJECT."""
    put(
        alice,
        subject="b topic",
        extra="Message-ID: <1@x>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n",
    )
    put(
        alice,
        subject="a topic",
        extra="Message-ID: <2@x>\r\nDate: Tue, 2 Jan 2024 10:00:00 +0000\r\n",
    )
    put(
        alice,
        subject="Re: b topic",
        extra="Message-ID: <3@x>\r\nIn-Reply-To: <1@x>\r\nReferences: <1@x>\r\n"
        "Date: Wed, 3 Jan 2024 10:00:00 +0000\r\n",
    )
    client.select_folder("INBOX")
    assert client.sort(["SUBJECT"]) == [2, 1, 3]
    assert client.sort(["REVERSE", "DATE"]) == [3, 2, 1]
    assert client.thread("REFERENCES") == ((1, 3), (2,))
    assert client.thread("ORDEREDSUBJECT") == ((1, 3), (2,))  # by first message's date


def test_quota(client, alice):
    """RFC 9208: GETQUOTAROOT/GETQUOTA report STORAGE in KiB; SETQUOTA is refused."""
    type(alice).objects.filter(id=alice.id).update(quota_bytes=10 * 1024 * 1024)
    put(alice, body="x" * 3000)
    roots, quotas = client.get_quota_root("INBOX")
    assert roots.quota_roots == [""]
    assert quotas[0].resource == "STORAGE" and quotas[0].limit == 10240
    assert quotas[0].usage >= 3


def test_status_size_and_appendlimit(raw, alice):
    """RFC 8438 STATUS=SIZE; RFC 7889 APPENDLIMIT in STATUS."""
    put(alice, body="y" * 100)
    lines = raw.command(b"a", b"STATUS INBOX (SIZE APPENDLIMIT)")
    assert lines[0].startswith(b"* STATUS INBOX (SIZE ")
    assert b"APPENDLIMIT" in lines[0]


def test_idle_sees_delivery_within_a_second(client, alice):
    """RFC 2177: IDLE pushes EXISTS for a delivery made by another thread, promptly."""
    client.select_folder("INBOX")
    client.idle()
    deliverer = threading.Timer(
        0.2,
        store.deliver,
        args=(b"Subject: pushed\r\n\r\nx\r\n",),
        kwargs={"mail_from": "", "rcpt_to": ["alice@example.test"]},
    )
    started = time.monotonic()
    deliverer.start()
    responses = client.idle_check(timeout=5)
    elapsed = time.monotonic() - started
    client.idle_done()
    deliverer.join()
    assert (1, b"EXISTS") in responses
    assert elapsed < 1.2


def test_idle_reports_flag_changes_and_expunges(imap_server, client, alice):
    """RFC 2177 / RFC 9051 §7.4.1: FETCH FLAGS and EXPUNGE from other sessions during IDLE."""
    put(alice)
    put(alice)
    client.select_folder("INBOX")
    client.idle()
    other = imapclient.IMAPClient("127.0.0.1", port=imap_server.port, ssl=False, timeout=10)
    other.login(ALICE, PASSWORD)
    other.select_folder("INBOX")
    other.add_flags([2], [imapclient.FLAGGED])
    other.delete_messages([1])
    other.expunge()
    seen = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(r[1] == b"EXPUNGE" for r in seen):
        seen += client.idle_check(timeout=1)
    client.idle_done()
    other.logout()
    assert any(r[1] == b"FETCH" and b"\\Flagged" in repr(r).encode() for r in seen)
    assert (1, b"EXPUNGE") in seen


def test_literal_plus_and_literal_minus(raw, alice):
    """RFC 7888: non-synchronising literals need no continuation."""
    msg = b"Subject: lp\r\n\r\nhi\r\n"
    raw.send(b"a APPEND INBOX {%d+}\r\n%s\r\n" % (len(msg), msg))
    lines = raw.until_tagged(b"a")
    assert lines[-1].startswith(b"a OK [APPENDUID")
    lines = raw.command(b"b", b"LOGIN {5+}\r\nalice {3+}\r\nxyz")
    assert lines[-1].startswith(b"b BAD")  # LOGIN is not allowed once authenticated


def test_synchronising_literal_gets_continuation(raw, alice):
    """RFC 9051 §7.5: a synchronising literal is answered with "+" before the client sends it."""
    raw.send(b"a CREATE {5}\r\n")
    assert raw.line().startswith(b"+ ")
    raw.send(b"Mixed\r\n")
    assert raw.until_tagged(b"a")[-1].startswith(b"a OK")


def test_utf8_accept_names(raw, alice):
    """RFC 6855 §3: after ENABLE UTF8=ACCEPT, names are UTF-8 on the wire."""
    raw.command(b"e", b"ENABLE UTF8=ACCEPT")
    name = "Café".encode()
    raw.send(b"c CREATE {%d+}\r\n%s\r\n" % (len(name), name))
    assert raw.until_tagged(b"c")[-1].startswith(b"c OK")
    lines = raw.command(b"l", b'LIST "" "Caf*"')
    assert name in lines[0]
    assert store.lookup_mailbox(alice.id, "Café")


def test_compress_deflate(imap_server, alice):
    """RFC 4978: after OK, both directions are raw DEFLATE."""
    c = RawClient(imap_server.port)
    c.login()
    assert c.command(b"z", b"COMPRESS DEFLATE")[-1].startswith(b"z OK")
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    inflate = zlib.decompressobj(-15)
    c.send(deflate.compress(b"n NOOP\r\n") + deflate.flush(zlib.Z_SYNC_FLUSH))
    data = b""
    deadline = time.monotonic() + 5
    while b"n OK" not in data and time.monotonic() < deadline:
        data += inflate.decompress(c.sock.recv(4096))
    assert b"n OK" in data
    c.close()
