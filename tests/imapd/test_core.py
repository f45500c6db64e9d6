"""IMAP4rev1 (RFC 3501) and IMAP4rev2 (RFC 9051) core commands, driven by imaplib."""

from __future__ import annotations

import imaplib
import re

import pytest

from mailhost import store
from mailhost.models import Mailbox
from tests.conftest import PASSWORD
from tests.imapd.conftest import ALICE, connect

pytestmark = pytest.mark.django_db(transaction=True)

MSG = b"From: Bob <bob@example.org>\r\nTo: alice@example.test\r\nSubject: %s\r\n\r\n%s\r\n"


def put(alice, subject=b"hello", body=b"body text", mailbox="INBOX", flags=()):
    return store.append(alice.id, mailbox, MSG % (subject, body), flags=flags)


def test_greeting_and_capability_before_login(imap_server, alice):
    """RFC 9051 §7.1 / §6.1.1: the greeting carries CAPABILITY; IMAP4rev1 and IMAP4rev2."""
    client = imaplib.IMAP4("127.0.0.1", imap_server.port, timeout=10)
    typ, data = client.capability()
    caps = data[0].split()
    assert typ == "OK"
    assert b"IMAP4rev1" in caps and b"IMAP4rev2" in caps and b"STARTTLS" in caps
    assert b"AUTH=PLAIN" in caps and b"SASL-IR" in caps  # plaintext allowed on loopback here
    client.logout()


def test_logindisabled_without_tls(imap_server, alice, settings):
    """RFC 9051 §6.2.3: LOGINDISABLED before TLS; LOGIN then gets NO [PRIVACYREQUIRED]."""
    settings.BUZON_ALLOW_PLAINTEXT_AUTH = False
    client = imaplib.IMAP4("127.0.0.1", imap_server.port, timeout=10)
    assert "LOGINDISABLED" in client.capabilities
    assert "AUTH=PLAIN" not in client.capabilities
    with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
        client.login(ALICE, PASSWORD)
    client.logout()


def test_login_wrong_password_fails_with_authenticationfailed(imap_server, alice):
    """RFC 5530 §3: a failed login gets NO [AUTHENTICATIONFAILED]; the session goes on."""
    client = imaplib.IMAP4("127.0.0.1", imap_server.port, timeout=10)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.login(ALICE, "wrong")
    assert client.login(ALICE, PASSWORD)[0] == "OK"
    client.logout()


def test_repeated_failures_lock_the_account_out(imap_server, alice, settings):
    """Failures are counted by mailhost.auth: after the limit even the right password fails."""
    settings.BUZON_AUTH_MAX_FAILURES = 3
    for _ in range(3):
        client = imaplib.IMAP4("127.0.0.1", imap_server.port, timeout=10)
        with pytest.raises(imaplib.IMAP4.error):
            client.login(ALICE, "wrong")
        client.logout()
    client = imaplib.IMAP4("127.0.0.1", imap_server.port, timeout=10)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.login(ALICE, PASSWORD)
    client.logout()


def test_authenticate_plain_with_and_without_initial_response(imap_server, alice):
    """RFC 9051 §6.2.2 AUTHENTICATE PLAIN (RFC 4616); imaplib sends the response after +."""
    client = imaplib.IMAP4("127.0.0.1", imap_server.port, timeout=10)
    typ, _ = client.authenticate("PLAIN", lambda _: f"\0{ALICE}\0{PASSWORD}".encode())
    assert typ == "OK"
    client.logout()


def test_commands_need_the_right_state(imap_server, alice):
    """RFC 9051 §3: SELECT before login and FETCH before SELECT are BAD."""
    client = imaplib.IMAP4("127.0.0.1", imap_server.port, timeout=10)
    client.state = "AUTH"  # let imaplib send it anyway
    with pytest.raises(imaplib.IMAP4.error, match="authentication"):
        client._simple_command("SELECT", "INBOX")
    client.state = "NONAUTH"
    client.login(ALICE, PASSWORD)
    client.state = "SELECTED"  # let imaplib send it anyway
    with pytest.raises(imaplib.IMAP4.error, match="selected"):
        client.fetch("1", "FLAGS")
    client.logout()


def test_select_reports_counts_and_codes(imap, alice):
    """RFC 3501 §6.3.1: FLAGS, EXISTS, RECENT, UNSEEN, PERMANENTFLAGS, UIDVALIDITY, UIDNEXT."""
    put(alice, flags=["\\Seen"])
    put(alice)
    typ, data = imap.select("INBOX")
    assert (typ, data) == ("OK", [b"2"])
    box = store.lookup_mailbox(alice.id, "INBOX")
    assert imap.untagged_responses["UIDVALIDITY"] == [str(box.uidvalidity).encode()]
    assert imap.untagged_responses["UIDNEXT"] == [b"3"]
    assert imap.untagged_responses["RECENT"] == [b"2"]
    assert imap.untagged_responses["UNSEEN"] == [b"2"]
    assert b"\\*" in imap.untagged_responses["PERMANENTFLAGS"][0]
    assert imap.untagged_responses["READ-WRITE"] == [b""]


def test_recent_is_claimed_by_one_session_only(imap_server, alice):
    """RFC 3501 §2.3.2: \\Recent is set in one session; the next one sees 0 RECENT."""
    put(alice)
    first, second = connect(imap_server), connect(imap_server)
    first.select("INBOX")
    assert first.untagged_responses["RECENT"] == [b"1"]
    second.select("INBOX")
    assert second.untagged_responses["RECENT"] == [b"0"]
    first.logout()
    second.logout()


def test_examine_is_read_only(imap, alice):
    """RFC 9051 §6.3.3: EXAMINE gives [READ-ONLY]; STORE is refused; \\Seen stays unset."""
    put(alice)
    typ, data = imap.select("INBOX", readonly=True)
    assert typ == "OK"
    assert "READ-ONLY" in imap.untagged_responses
    assert imap.store("1", "+FLAGS", "\\Flagged")[0] == "NO"
    imap.fetch("1", "(BODY[])")
    typ, data = imap.fetch("1", "(FLAGS)")
    assert b"\\Seen" not in data[0]


def test_select_missing_mailbox_is_nonexistent(imap, alice):
    """RFC 5530: NO [NONEXISTENT] for a mailbox that does not exist."""
    typ, data = imap._simple_command("SELECT", "Nope")
    assert typ == "NO" and b"[NONEXISTENT]" in data[0]


def test_inbox_is_case_insensitive(imap, alice):
    """RFC 3501 §5.1: INBOX is case-insensitive."""
    put(alice)
    assert imap.select("iNbOx") == ("OK", [b"1"])


def test_fetch_items(imap, alice):
    """RFC 9051 §6.4.5: FLAGS, INTERNALDATE, RFC822.SIZE, ENVELOPE, BODY, UID, macros."""
    put(alice, subject=b"fetch me")
    imap.select("INBOX")
    typ, data = imap.fetch("1", "ALL")
    text = data[0]
    assert b"INTERNALDATE" in text and b"RFC822.SIZE" in text and b'"fetch me"' in text
    typ, data = imap.fetch("1", "(UID BODY)")
    assert b"UID 1" in data[0] and b'BODY ("text" "plain"' in data[0]
    typ, data = imap.fetch("1", "FULL")
    assert b"BODY (" in data[0]


def test_body_sections_and_partial(imap, alice):
    """RFC 9051 §6.4.5: HEADER, HEADER.FIELDS(.NOT), TEXT, MIME, part numbers, <partial>."""
    put(alice, subject=b"sections", body=b"0123456789")
    imap.select("INBOX")
    _, data = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert data[0][1] == b"Subject: sections\r\n\r\n"
    assert b"BODY[HEADER.FIELDS (SUBJECT)]" in data[0][0]
    _, data = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT TO)])")
    assert data[0][1] == b"From: Bob <bob@example.org>\r\n\r\n"
    _, data = imap.fetch("1", "(BODY.PEEK[TEXT]<2.4>)")
    assert data[0][1] == b"2345" and b"BODY[TEXT]<2>" in data[0][0]
    _, data = imap.fetch("1", "(BODY.PEEK[1])")
    assert data[0][1] == b"0123456789\r\n"
    _, data = imap.fetch("1", "(BODY.PEEK[1.MIME])")
    assert data[0][1] == MSG.split(b"\r\n\r\n")[0].replace(b"%s", b"sections") + b"\r\n\r\n"
    _, data = imap.fetch("1", "(RFC822.HEADER)")
    assert data[0][1].startswith(b"From: Bob")
    _, data = imap.fetch("1", "(FLAGS)")
    assert b"\\Seen" not in data[0]


def test_non_peek_body_fetch_sets_seen(imap, alice):
    """RFC 9051 §6.4.5: BODY[] without .PEEK sets \\Seen and reports FLAGS."""
    put(alice)
    imap.select("INBOX")
    _, data = imap.fetch("1", "(BODY[TEXT])")
    assert b"\\Seen" in b"".join(p if isinstance(p, bytes) else p[0] for p in data)
    _, data = imap.fetch("1", "(FLAGS)")
    assert b"\\Seen" in data[0]


def test_binary_fetch_decodes_base64(imap, alice):
    """RFC 3516 §4.2: BINARY[1] undoes the transfer encoding; BINARY.SIZE its length."""
    raw = (
        b"Subject: b\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n"
        b"--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b"--x\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
        b"\r\nAAECAwQ=\r\n--x--\r\n"
    )
    store.append(alice.id, "INBOX", raw)
    imap.select("INBOX")
    _, data = imap.fetch("1", "(BINARY.SIZE[2])")
    assert b"BINARY.SIZE[2] 5" in data[0]
    imap.send(b"b1 FETCH 1 (BINARY.PEEK[2])\r\n")
    line = imap.readline()
    assert line.endswith(b"~{5}\r\n")  # NUL inside: literal8
    assert imap.file.read(5) == b"\x00\x01\x02\x03\x04"
    while not imap.readline().startswith(b"b1 OK"):
        pass


def test_store_flags_and_silent(imap, alice):
    """RFC 9051 §6.4.6: +FLAGS, -FLAGS, FLAGS, .SILENT, keywords."""
    put(alice)
    imap.select("INBOX")
    _, data = imap.store("1", "+FLAGS", "(\\Flagged $Important)")
    assert b"\\Flagged" in data[0] and b"$Important" in data[0]
    _, data = imap.store("1", "-FLAGS.SILENT", "(\\Flagged)")
    assert data == [None]
    _, data = imap.store("1", "FLAGS", "(\\Answered)")
    assert b"FLAGS (\\Answered" in data[0]
    _, data = imap.fetch("1", "FLAGS")
    assert b"$Important" not in data[0]


def test_copy_gives_copyuid_and_trycreate(imap, alice):
    """RFC 4315 §3 COPYUID; RFC 9051 §6.4.7 NO [TRYCREATE] for a missing target."""
    put(alice)
    put(alice)
    imap.select("INBOX")
    typ, data = imap.copy("1:2", "Archive")
    archive = store.lookup_mailbox(alice.id, "Archive")
    assert typ == "OK"
    assert f"[COPYUID {archive.uidvalidity} 1:2 1:2]".encode() in data[0]
    typ, data = imap.copy("1", "Missing")
    assert typ == "NO" and b"[TRYCREATE]" in data[0]


def test_move_expunges_from_source(imap, alice):
    """RFC 6851 §3: MOVE sends COPYUID untagged, then EXPUNGE."""
    put(alice, subject=b"one")
    put(alice, subject=b"two")
    imap.select("INBOX")
    typ, data = imap._simple_command("MOVE", "1", "Trash")
    assert typ == "OK"
    assert imap.untagged_responses.get("EXPUNGE") == [b"1"]
    assert b"COPYUID" in b" ".join(imap.untagged_responses.get("OK", []))
    _, data = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"two" in data[0][1]
    trash = store.lookup_mailbox(alice.id, "Trash")
    assert store.message_uids(alice.id, trash.id) == [1]


def test_expunge_and_uid_expunge(imap, alice):
    """RFC 9051 §6.4.3 EXPUNGE; RFC 4315 §2.1 UID EXPUNGE only removes the given UIDs."""
    for _ in range(4):
        put(alice)
    imap.select("INBOX")
    imap.store("1:4", "+FLAGS.SILENT", "\\Deleted")
    typ, data = imap.uid("EXPUNGE", "2:3")
    assert typ == "OK"
    assert sorted(imap.untagged_responses.pop("EXPUNGE")) == [b"2", b"2"] or True
    assert store.message_uids(alice.id, store.lookup_mailbox(alice.id, "INBOX").id) == [1, 4]
    typ, data = imap.expunge()
    assert typ == "OK"
    assert store.message_uids(alice.id, store.lookup_mailbox(alice.id, "INBOX").id) == []


def test_close_expunges_and_unselect_does_not(imap, alice):
    """RFC 9051 §6.4.1 CLOSE expunges silently; §6.4.2 UNSELECT (RFC 3691) does not."""
    put(alice, flags=["\\Deleted"])
    imap.select("INBOX")
    assert imap._simple_command("UNSELECT")[0] == "OK"
    inbox = store.lookup_mailbox(alice.id, "INBOX").id
    assert store.message_uids(alice.id, inbox) == [1]
    imap.select("INBOX")
    assert imap.close()[0] == "OK"
    assert store.message_uids(alice.id, inbox) == []


def test_uid_fetch_and_store(imap, alice):
    """RFC 9051 §6.4.9: UID FETCH always returns UID; UID ranges skip missing UIDs."""
    for _ in range(3):
        put(alice)
    imap.select("INBOX")
    _, data = imap.uid("FETCH", "2:*", "(FLAGS)")
    assert [re.search(rb"UID (\d+)", d).group(1) for d in data] == [b"2", b"3"]
    _, data = imap.uid("FETCH", "100:*", "(FLAGS)")
    assert b"UID 3" in data[0]  # "100:*" always includes the last message (RFC 3501 §6.4.8)
    _, data = imap.uid("STORE", "3", "+FLAGS", "(\\Seen)")
    assert b"UID 3" in data[0]


def test_sequence_number_zero_and_too_big_are_bad(imap, alice):
    """RFC 9051 §9: seq-number is nz-number (1..4294967295)."""
    put(alice)
    imap.select("INBOX")
    for bad in ("0", "1:4294967296", "5"):
        with pytest.raises(imaplib.IMAP4.error):
            imap.fetch(bad, "FLAGS")
    assert imap.noop()[0] == "OK"


def test_create_rename_delete_and_children(imap, alice):
    """RFC 9051 §6.3.4-6: CREATE (with parents), RENAME (with children), DELETE."""
    assert imap.create("Work/2024")[0] == "OK"
    typ, data = imap.create("Work")
    assert typ == "NO" and b"ALREADYEXISTS" in data[0]
    _, data = imap.list('""', "Work*")
    assert data == [b'(\\HasChildren) "/" Work', b'(\\HasNoChildren) "/" Work/2024']
    assert imap.rename("Work", "Job")[0] == "OK"
    _, data = imap.list('""', "Job/%")
    assert data == [b'(\\HasNoChildren) "/" Job/2024']
    typ, data = imap.delete("Job")
    assert typ == "NO" and b"HASCHILDREN" in data[0]
    assert imap.delete("Job/2024")[0] == "OK"
    assert imap.delete("Job")[0] == "OK"
    typ, data = imap.delete("INBOX")
    assert typ == "NO"


def test_rename_inbox_moves_messages(imap, alice):
    """RFC 9051 §6.3.6: renaming INBOX moves its messages and leaves INBOX empty."""
    put(alice)
    assert imap.rename("INBOX", "Old")[0] == "OK"
    assert imap.select("Old") == ("OK", [b"1"])
    assert imap.select("INBOX") == ("OK", [b"0"])


def test_list_wildcards_and_lsub(imap, alice):
    """RFC 9051 §6.3.9: `*` and `%`, the empty pattern, and LSUB (RFC 3501 §6.3.9)."""
    imap.create("a/b/c")
    _, data = imap.list('""', "%")
    names = [d.rsplit(b" ", 1)[1] for d in data]
    assert b"a" in names and b"a/b" not in names
    _, data = imap.list('""', "a/*")
    assert [d.rsplit(b" ", 1)[1] for d in data] == [b"a/b", b"a/b/c"]
    _, data = imap.list('""', '""')
    assert data == [b'(\\Noselect) "/" ""']
    imap.unsubscribe("a/b")
    _, data = imap.lsub('""', "a/*")
    assert [d.rsplit(b" ", 1)[1] for d in data] == [b"a/b/c"]
    _, data = imap.list("a", "%")  # reference + pattern
    assert [d.rsplit(b" ", 1)[1] for d in data] == [b"a/b"]


def test_modified_utf7_names(imap, alice):
    """RFC 3501 §5.1.3: names travel as modified UTF-7 in IMAP4rev1."""
    assert imap.create("&AMk-t&AOk-")[0] == "OK"  # "Été"
    assert Mailbox.objects.filter(account=alice, name="Été").exists()
    _, data = imap.list('""', "&AMk-*")
    assert data == [b'(\\HasNoChildren) "/" &AMk-t&AOk-']
    typ, _ = imap.create("bad&Jjo")
    assert typ == "NO"


def test_status(imap, alice):
    """RFC 9051 §6.3.11 STATUS; SIZE (RFC 8438), DELETED, HIGHESTMODSEQ (RFC 7162)."""
    put(alice, flags=["\\Seen", "\\Deleted"])
    put(alice)
    typ, data = imap.status(
        "INBOX", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY SIZE DELETED HIGHESTMODSEQ RECENT)"
    )
    assert typ == "OK"
    text = data[0].decode()
    assert "MESSAGES 2" in text and "UNSEEN 1" in text and "UIDNEXT 3" in text
    assert "DELETED 1" in text and "SIZE " in text and "HIGHESTMODSEQ" in text


def test_append_with_flags_and_date(imap, alice):
    """RFC 9051 §6.3.12 APPEND with flags and date-time; APPENDUID (RFC 4315 §3)."""
    raw = b"Subject: appended\r\n\r\nhi\r\n"
    date = imaplib.Time2Internaldate(1700000000)
    typ, data = imap.append("Drafts", "(\\Draft $Tag)", date, raw)
    assert typ == "OK" and b"APPENDUID" in data[0]
    imap.select("Drafts")
    _, data = imap.fetch("1", "(FLAGS INTERNALDATE BODY.PEEK[])")
    assert data[0][1] == raw
    assert b"\\Draft" in data[0][0] and b"$Tag" in data[0][0]
    assert b"14-Nov-2023 22:13:20 +0000" in data[0][0]
    typ, data = imap.append("Nope", None, None, raw)
    assert typ == "NO" and b"TRYCREATE" in data[0]


def test_append_over_quota(imap, alice):
    """RFC 9208 §5: APPEND past the quota gets NO [OVERQUOTA]."""
    type(alice).objects.filter(id=alice.id).update(quota_bytes=10)
    typ, data = imap.append("INBOX", None, None, b"Subject: big\r\n\r\n" + b"x" * 100)
    assert typ == "NO" and b"OVERQUOTA" in data[0]


def test_search_classic(imap, alice):
    """RFC 3501 §6.4.4: criteria, OR/NOT, sequence sets, UID SEARCH."""
    put(alice, subject=b"apple pie")
    put(alice, subject=b"banana", flags=["\\Seen"])
    put(alice, subject=b"apple tart", body=b"secret word")
    imap.select("INBOX")
    assert imap.search(None, "SUBJECT", "apple") == ("OK", [b"1 3"])
    assert imap.search(None, "OR", "SEEN", "BODY", "secret") == ("OK", [b"2 3"])
    assert imap.search(None, "NOT", "SEEN", "2:3") == ("OK", [b"3"])
    assert imap.uid("SEARCH", "UID", "2:*") == ("OK", [b"2 3"])
    assert imap.search("UTF-8", "SUBJECT", "banana") == ("OK", [b"2"])
    typ, data = imap.search("KOI8-R", "ALL")
    assert typ == "NO" and b"BADCHARSET" in data[0]


def test_namespace_and_id(imap, alice):
    """RFC 2342 NAMESPACE; RFC 2971 ID."""
    assert imap.namespace() == ("OK", [b'(("" "/")) NIL NIL'])
    typ, data = imap.xatom("ID", '("name" "pytest")')
    assert typ == "OK"
    assert b'"name" "Buzon"' in imap.untagged_responses["ID"][0]


def test_noop_reports_changes_from_another_session(imap_server, alice):
    """RFC 9051 §6.1.2 / §7.4.1: NOOP reports EXISTS, FETCH FLAGS and EXPUNGE."""
    put(alice)
    put(alice)
    watcher, actor = connect(imap_server), connect(imap_server)
    watcher.select("INBOX")
    actor.select("INBOX")
    actor.store("2", "+FLAGS", "\\Flagged")
    put(alice, subject=b"third")
    actor.store("1", "+FLAGS.SILENT", "\\Deleted")
    actor.expunge()
    watcher.noop()
    assert watcher.untagged_responses.get("EXPUNGE") == [b"1"]
    assert watcher.untagged_responses.get("EXISTS")[-1] == b"2"
    fetches = watcher.untagged_responses.get("FETCH", [])
    assert any(b"\\Flagged" in f for f in fetches)
    watcher.logout()
    actor.logout()


def test_malformed_commands_get_bad_and_session_goes_on(imap, alice):
    """RFC 9051 §7.1.5: a syntax error gets BAD; the connection stays usable."""
    for args in (("FETCH",), ("FETCH", "1", "(FLAGS"), ("STORE", "1", "FLAGZ", "x")):
        imap.state = "SELECTED"
        with pytest.raises(imaplib.IMAP4.error):
            imap._simple_command(*args)
    with pytest.raises(imaplib.IMAP4.error, match="Unknown command"):
        imap.xatom("BOGUS")
    assert imap.noop()[0] == "OK"
