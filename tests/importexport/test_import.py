"""Import into the store and export back: the corpus round trips byte-exact."""

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailhost import importer, store
from mailhost.directory import add_account
from mailhost.mailfiles.maildir import folder_dirname
from tests.conftest import PASSWORD, corpus_dir, corpus_files

# Flag letters and keyword letters cycled over the corpus files (a, b: dovecot-keywords).
NAME_FLAGS = ["S", "RS", "FS", "", "DS", "PST", "Sab", "a", "FRSb"]
KEYWORDS = {"a": "$Important", "b": "project-x"}
LETTERS = {
    "D": "\\Draft",
    "F": "\\Flagged",
    "P": "$Forwarded",
    "R": "\\Answered",
    "S": "\\Seen",
    "T": "\\Deleted",
    **KEYWORDS,
}
BASE = datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)


def sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def corpus_maildir(root: Path) -> dict[str, dict[str, tuple]]:
    """Write every corpus file into a Maildir++ tree; return what the store should then hold.

    A corpus directory becomes a folder (`mimekit/messages` is `.mimekit.messages`; cpython
    goes to INBOX); every 7th file is in new/ without flags; mtimes are distinct dates.
    """
    expected: dict[str, dict[str, tuple]] = {}
    base = corpus_dir()
    for i, path in enumerate(corpus_files()):
        rel = path.parent.relative_to(base).as_posix()
        mailbox = "INBOX" if rel == "cpython" else rel
        directory = root / folder_dirname(mailbox) if mailbox != "INBOX" else root
        for sub in ("cur", "new", "tmp"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        (directory / "dovecot-keywords").write_text("0 $Important\n1 project-x\n")
        letters = "" if i % 7 == 0 else NAME_FLAGS[i % len(NAME_FLAGS)]
        name = f"{1600000000 + i}.M{i}P1.corpus,S={path.stat().st_size}"
        target = (
            directory
            / ("new" if i % 7 == 0 else "cur")
            / (name if i % 7 == 0 else f"{name}:2,{letters}")
        )
        raw = path.read_bytes()
        target.write_bytes(raw)
        when = BASE + timedelta(hours=i, microseconds=i)
        ns = int((when - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 10**9 + i * 1000
        os.utime(target, ns=(ns, ns))
        flags = tuple(sorted(LETTERS[c] for c in letters))
        # Identical bytes in one folder are one message: the first one (oldest) wins.
        expected.setdefault(mailbox, {}).setdefault(sha(raw), (flags, when))
    return expected


def snapshot(account_id: int, *, with_flags: bool = True) -> dict[str, dict[str, tuple]]:
    """{mailbox: {sha256 of the stored bytes: (sorted flags, internaldate)}} of an account."""
    out = {}
    for box in store.list_mailboxes(account_id):
        metas = store.fetch_meta(account_id, box.id, store.message_uids(account_id, box.id))
        out[box.name] = {
            m.sha256: (tuple(sorted(m.flags)) if with_flags else (), m.internaldate) for m in metas
        }
    return out


def stored_bytes(account_id: int) -> dict[str, list[bytes]]:
    out = {}
    for box in store.list_mailboxes(account_id):
        out[box.name] = sorted(
            store.read_message(account_id, box.id, uid)
            for uid in store.message_uids(account_id, box.id)
        )
    return out


@pytest.fixture
def dave(domain):
    return add_account("dave@example.test", PASSWORD)


@pytest.mark.django_db
def test_corpus_mbox_files_import_into_folders_with_their_dates(alice, tmp_path):
    tree = tmp_path / "mail"
    tree.mkdir()
    for path in sorted((corpus_dir() / "mimekit" / "mbox").glob("*.txt")):
        (tree / path.name.removesuffix(".mbox.txt")).write_bytes(path.read_bytes())
    stats = importer.import_path(alice.id, tree)
    assert (stats.imported, stats.duplicates, stats.errors) == (11, 0, 0)
    assert sorted(stats.folders_created) == ["issue1189", "simple", "unmunged"]
    got = snapshot(alice.id)
    assert [len(got[name]) for name in ("issue1189", "simple", "unmunged")] == [4, 3, 4]
    dates = sorted(d for _, d in got["issue1189"].values())
    assert dates[0] == datetime(2025, 9, 26, 17, 18, 40, tzinfo=UTC)
    box = store.lookup_mailbox(alice.id, "issue1189")
    first = store.read_message(alice.id, box.id, 1)
    assert first.startswith(b"MIME-Version: 1.0\nDate: Fri, 26 Sep 2025 10:18:40 -0700\n")


@pytest.mark.django_db
@pytest.mark.slow
def test_every_corpus_file_round_trips_through_maildir_and_mbox(alice, carol, dave, tmp_path):
    """Bytes, flags, keywords, INTERNALDATE and folders survive Maildir -> store -> Maildir
    -> store; mbox keeps bytes (plus a final line break where missing), dates and folders."""
    source = tmp_path / "Maildir"
    expected = corpus_maildir(source)
    total = sum(len(v) for v in expected.values())

    stats = importer.import_path(alice.id, source)
    assert stats.errors == 0 and stats.imported == total
    assert stats.duplicates == len(corpus_files()) - total
    first = snapshot(alice.id)
    for mailbox, messages in expected.items():
        assert first[mailbox] == messages, mailbox
    stored = {raw for raws in stored_bytes(alice.id).values() for raw in raws}
    assert stored == {p.read_bytes() for p in corpus_files()}

    # Re-running the import adds nothing.
    again = importer.import_path(alice.id, source)
    assert (again.imported, again.errors, again.folders_created) == (0, 0, [])
    assert snapshot(alice.id) == first

    exported = importer.export_account(alice.id, tmp_path / "export", "maildir")
    assert exported.messages == total and exported.dropped_keywords == 0
    assert importer.import_path(carol.id, tmp_path / "export").imported == total
    assert snapshot(carol.id) == first
    assert stored_bytes(carol.id) == stored_bytes(alice.id)

    as_mbox = importer.export_account(alice.id, tmp_path / "mbox", "mbox")
    originals = stored_bytes(alice.id)
    no_newline = sum(1 for v in originals.values() for raw in v if not raw.endswith(b"\n"))
    assert as_mbox.added_newlines == no_newline > 0
    assert importer.import_path(dave.id, tmp_path / "mbox").imported == total
    mbox_bytes = stored_bytes(dave.id)
    assert mbox_bytes.keys() == originals.keys()
    for mailbox, raws in originals.items():
        assert mbox_bytes[mailbox] == sorted(r if r.endswith(b"\n") else r + b"\n" for r in raws)
    dates = {m: sorted(d.replace(microsecond=0) for _, d in v.values()) for m, v in first.items()}
    assert {m: sorted(d for _, d in v.values()) for m, v in snapshot(dave.id).items()} == dates


@pytest.mark.django_db
def test_reimporting_an_mbox_adds_no_duplicates(alice, tmp_path):
    path = corpus_dir() / "mimekit" / "mbox" / "issue1189.mbox.txt"
    assert importer.import_path(alice.id, path, folder="Lists/x").imported == 4
    again = importer.import_path(alice.id, path, folder="Lists/x", batch_size=3)
    assert (again.imported, again.duplicates, again.errors) == (0, 4, 0)
    assert len(snapshot(alice.id)["Lists/x"]) == 4


@pytest.mark.django_db
def test_corrupt_files_are_reported_and_skipped_and_the_rest_imported(alice, tmp_path):
    root = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    (root / "cur" / "1.M1.h:2,S").write_bytes(b"Subject: one\n\nfine\n")
    (root / "cur" / "2.M1.h:2,S").mkdir()
    (root / "cur" / "3.M1.h:2,S").symlink_to(tmp_path / "missing")
    (root / "new" / "4.M1.h").write_bytes(b"Subject: four\n\nfine\n")
    reports: list[str] = []
    stats = importer.import_path(alice.id, root, report=reports.append)
    assert (stats.imported, stats.errors) == (2, 2)
    assert any("2.M1.h:2,S: is a directory" in r for r in reports)
    assert any("3.M1.h:2,S: cannot stat" in r for r in reports)

    tree = tmp_path / "mboxes"
    tree.mkdir()
    (tree / "Cut.mbox").write_bytes(b"From a\nSubject: 1\n\none\n\nFrom b\nSubject: 2\n\ntw")
    (tree / "Garbage.mbox").write_bytes(b"\x89PNG\r\n")
    reports.clear()
    stats = importer.import_path(alice.id, tree, report=reports.append)
    assert (stats.imported, stats.errors) == (1, 2)
    assert any("Cut.mbox:6: truncated" in r for r in reports)
    assert any("Garbage.mbox: not an mbox" in r for r in reports)
    assert "Garbage" not in snapshot(alice.id)


@pytest.mark.django_db
def test_a_message_the_store_refuses_is_skipped_alone(alice, tmp_path, settings):
    settings.BUZON_MAX_MESSAGE_SIZE = 100
    path = tmp_path / "m"
    path.write_bytes(
        b"From a\nSubject: 1\n\nsmall\n\n"
        b"From b\nSubject: 2\n\n" + b"x" * 200 + b"\n\n"
        b"From c\nSubject: 3\n\nsmall too\n\n"
    )
    reports: list[str] = []
    stats = importer.import_path(alice.id, path, report=reports.append)
    assert (stats.imported, stats.errors) == (2, 1)
    assert "larger than 100 bytes" in reports[0]


@pytest.mark.django_db
def test_over_quota_stops_the_import(alice, tmp_path):
    alice.quota_bytes = 50
    alice.save()
    path = tmp_path / "m"
    path.write_bytes(b"From a\nSubject: 1\n\n" + b"x" * 100 + b"\n\n")
    with pytest.raises(importer.Aborted, match="quota"):
        importer.import_path(alice.id, path)


@pytest.mark.django_db
def test_a_bad_folder_name_is_reported_and_its_messages_counted_as_errors(alice, tmp_path):
    tree = tmp_path / "t"
    (tree / "a*b.mbox").parent.mkdir(parents=True)
    (tree / "a*b.mbox").write_bytes(b"From a\nSubject: 1\n\none\n")
    (tree / "ok.mbox").write_bytes(b"From a\nSubject: 1\n\none\n")
    reports: list[str] = []
    stats = importer.import_path(alice.id, tree, report=reports.append)
    assert (stats.imported, stats.errors) == (1, 1)
    assert reports[0].startswith("skipped folder 'a*b'")


@pytest.mark.django_db
def test_export_refuses_a_destination_that_is_not_empty(alice, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(importer.Aborted, match="not an empty directory"):
        importer.export_account(alice.id, tmp_path / "full", "maildir")


@pytest.mark.django_db
def test_a_batch_the_store_rejects_is_retried_one_by_one(alice, tmp_path, monkeypatch):
    from mailhost.store import messages

    real = messages.parse_message

    def parse(raw):
        if b"poison" in raw:
            raise ValueError("cannot parse this one")
        return real(raw)

    monkeypatch.setattr(messages, "parse_message", parse)
    path = tmp_path / "m"
    path.write_bytes(
        b"".join(
            b"From a\nSubject: %d\n\n%s\n\n" % (i, b"poison" if i == 3 else b"ok") for i in range(6)
        )
    )
    reports: list[str] = []
    stats = importer.import_path(alice.id, path, batch_size=4, report=reports.append)
    assert (stats.imported, stats.errors) == (5, 1)
    assert reports == [f"skipped {path}:16: ValueError: cannot parse this one"]


@pytest.mark.django_db
def test_a_folder_name_in_another_charset_is_reported(alice, tmp_path):
    root = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
        os.makedirs(os.fsencode(root) + b"/.Caf\xe9/" + sub.encode())
    (root / "cur" / "1.M1.h:2,S").write_bytes(b"Subject: one\n\nfine\n")
    with open(os.fsencode(root) + b"/.Caf\xe9/cur/2.M1.h:2,S", "wb") as f:
        f.write(b"Subject: two\n\n")
    reports: list[str] = []
    stats = importer.import_path(alice.id, root, report=reports.append)
    assert (stats.imported, stats.errors) == (1, 1)
    assert reports == ["skipped folder 'Caf\\udce9': its name is not UTF-8"]
