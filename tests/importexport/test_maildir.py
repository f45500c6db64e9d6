"""Maildir++ reading and writing: flags in names, dovecot-keywords, folders, dates."""

import os
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.mailfiles import Folder, Problem, Record, count, detect, read
from mailhost.mailfiles.maildir import (
    MaildirWriter,
    flags_from_name,
    folder_dirname,
    folder_name,
    info_letters,
    mutf7_decode,
    mutf7_encode,
    read_keywords,
)

WHEN = datetime(2024, 5, 17, 8, 30, 15, 123456, tzinfo=UTC)


def make_maildir(root):
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


@pytest.mark.parametrize(
    "name, flags",
    [
        ("1700000000.M1P2.host:2,S", ("\\Seen",)),
        (
            "1700000000.M1P2.host,S=123,W=130:2,DFPRST",
            (
                "$Forwarded",
                "\\Answered",
                "\\Deleted",
                "\\Draft",
                "\\Flagged",
                "\\Seen",
            ),
        ),
        ("1700000000.M1P2.host:2,Sac", ("\\Seen", "$Junk", "work")),
        ("1700000000.M1P2.host:2,Sz", ("\\Seen",)),  # no keyword z in this folder
        ("1700000000.M1P2.host!2,F", ("\\Flagged",)),
        ("1700000000.M1P2.host", ()),
        ("1700000000.M1P2.host:2,", ()),
        ("1700000000.M1P2.host:1,xyz", ()),  # experimental info: not flags
    ],
    ids=["seen", "all-system", "keywords", "unknown-letter", "bang", "no-info", "empty", "info-1"],
)
def test_flags_are_read_from_file_names(name, flags):
    keywords = {"a": "work", "c": "$Junk"}
    assert sorted(flags_from_name(name, keywords)) == sorted(flags)


def test_dovecot_keywords_file_numbers_letters_from_a(tmp_path):
    path = tmp_path / "dovecot-keywords"
    path.write_text("0 $Forwarded\n1 work\n\n25 last\n26 beyond\nbroken\n")
    assert read_keywords(path) == {"a": "$Forwarded", "b": "work", "z": "last"}
    assert read_keywords(tmp_path / "missing") == {}


@pytest.mark.parametrize(
    "dirname, mailbox",
    [
        (".Sent", "Sent"),
        (".Lists.python", "Lists/python"),
        (".INBOX.sub", "INBOX/sub"),
        (".Entw&APw-rfe", "Entwürfe"),
        (".a&AC4-b", "a.b"),
        (".Tom &- Jerry", "Tom & Jerry"),
        (".Raw&UTF8ü", "Raw&UTF8ü"),  # not modified UTF-7: kept as it is
    ],
)
def test_maildirpp_directory_names_map_to_mailbox_names(dirname, mailbox):
    assert folder_name(dirname) == mailbox


@given(st.lists(st.text(min_size=1).filter(lambda s: "/" not in s), min_size=1, max_size=3))
def test_any_mailbox_name_survives_a_maildirpp_directory_name(levels):
    mailbox = "/".join(levels)
    dirname = folder_dirname(mailbox) if mailbox != "INBOX" else ".INBOX"
    assert "/" not in dirname
    assert folder_name(dirname) == mailbox


@given(st.text())
def test_modified_utf7_round_trips(text):
    encoded = mutf7_encode(text, also=".")
    assert encoded.isascii() and "." not in encoded
    assert mutf7_decode(encoded) == text


def test_rfc3501_modified_utf7_example():
    assert mutf7_encode("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"


def test_reader_yields_folders_then_messages_in_date_order_with_flags_and_dates(tmp_path):
    root = make_maildir(tmp_path / "Maildir")
    (root / "cur" / "200.M1P1.h:2,RSa").write_bytes(b"Subject: b\n\nb\n")
    (root / "cur" / "100.M1P1.h:2,S").write_bytes(b"Subject: a\n\na\n")
    (root / "new" / "300.M1P1.h").write_bytes(b"Subject: c\n\nc\n")
    (root / "dovecot-keywords").write_text("0 $Important\n")
    for name, stamp in [("cur/100.M1P1.h:2,S", 100), ("cur/200.M1P1.h:2,RSa", 200)]:
        os.utime(root / name, (stamp, stamp))
    os.utime(root / "new" / "300.M1P1.h", (300, 300))
    sent = make_maildir(root / ".Sent")
    (sent / "cur" / "1.M1P1.h:2,S").write_bytes(b"Subject: s\n\ns\n")
    make_maildir(root / ".Lists.python")
    (root / ".NotAFolder").mkdir()
    (root / "tmp" / "half-written").write_bytes(b"Subj")

    assert detect(root) == "maildir" and count(root) == 4
    items = list(read(root))
    assert [i.name for i in items if isinstance(i, Folder)] == ["INBOX", "Lists/python", "Sent"]
    inbox = [i for i in items if isinstance(i, Record) and i.folder == "INBOX"]
    assert [r.raw for r in inbox] == [
        b"Subject: a\n\na\n",
        b"Subject: b\n\nb\n",
        b"Subject: c\n\nc\n",
    ]
    assert [r.flags for r in inbox] == [("\\Seen",), ("$Important", "\\Answered", "\\Seen"), ()]
    assert [int(r.internaldate.timestamp()) for r in inbox] == [100, 200, 300]


def test_directory_and_unreadable_files_are_reported_and_the_rest_read(tmp_path):
    root = make_maildir(tmp_path / "Maildir")
    (root / "cur" / "1.M1P1.h:2,S").mkdir()  # a directory where a message should be
    (root / "cur" / "2.M1P1.h:2,S").write_bytes(b"")
    locked = root / "cur" / "3.M1P1.h:2,S"
    locked.write_bytes(b"Subject: locked\n\n")
    locked.chmod(0)
    (root / "cur" / "4.M1P1.h:2,S").write_bytes(b"Subject: fine\n\nok\n")
    (root / "cur" / "5.M1P1.h:2,S").symlink_to(tmp_path / "gone")  # dangling
    os.mkfifo(root / "cur" / "6.M1P1.h:2,S")
    try:
        items = list(read(root))
    finally:
        locked.chmod(0o600)
    assert [r.raw for r in items if isinstance(r, Record)][-1] == b"Subject: fine\n\nok\n"
    reasons = {os.path.basename(p.source): p.reason for p in items if isinstance(p, Problem)}
    assert reasons["1.M1P1.h:2,S"] == "is a directory, not a message file"
    assert reasons["2.M1P1.h:2,S"] == "empty file"
    assert reasons["5.M1P1.h:2,S"].startswith("cannot stat")
    assert reasons["6.M1P1.h:2,S"] == "is not a regular file"
    if os.geteuid() != 0:  # root reads anything
        assert reasons["3.M1P1.h:2,S"].startswith("cannot read")


def test_writer_puts_flags_keywords_and_dates_where_readers_find_them(tmp_path):
    root = tmp_path / "out"
    with MaildirWriter(root, hostname="host") as writer:
        writer.folder("INBOX")
        writer.write("INBOX", b"Subject: a\n\na", ("\\Seen", "\\Answered", "$Forwarded"), WHEN)
        writer.write("Lists/python", b"Subject: b\n\nb\n", ("work", "\\Recent", "$Junk"), WHEN)
        writer.write("Lists/python", b"Subject: c\n\nc\n", ("$Junk",), None)
        writer.folder("Empty")
    [inbox_file] = os.listdir(root / "cur")
    assert inbox_file.endswith(",S=13:2,PRS") and inbox_file.startswith("1715934615.M123456P")
    assert info_letters(inbox_file) == "PRS"
    assert (root / ".Lists.python" / "maildirfolder").exists()
    assert (root / ".Lists.python" / "dovecot-keywords").read_text() == "0 work\n1 $Junk\n"
    assert not (root / "dovecot-keywords").exists()
    items = list(read(root))
    assert [i.name for i in items if isinstance(i, Folder)] == ["INBOX", "Empty", "Lists/python"]
    got = {r.raw: r for r in items if isinstance(r, Record)}
    assert got[b"Subject: a\n\na"].flags == ("$Forwarded", "\\Answered", "\\Seen")
    assert got[b"Subject: a\n\na"].internaldate == WHEN  # microseconds too
    assert got[b"Subject: b\n\nb\n"].flags == ("$Junk", "work")
    assert got[b"Subject: c\n\nc\n"].flags == ("$Junk",)


def test_a_folder_holds_26_keyword_letters_and_counts_what_it_drops(tmp_path):
    with MaildirWriter(tmp_path / "out") as writer:
        writer.write("INBOX", b"Subject: k\n\n", [f"kw{i}" for i in range(30)], WHEN)
    assert writer.dropped_keywords == 4
    [record] = [r for r in read(tmp_path / "out") if isinstance(r, Record)]
    assert len(record.flags) == 26
