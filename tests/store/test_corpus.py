"""Every real-world message in shared/corpus stores and reads back byte-exact."""

import hashlib

import pytest

from mailhost import store
from mailhost.models import Content
from tests.conftest import corpus_dir, corpus_files

FILES = corpus_files()


@pytest.mark.django_db
def test_corpus_is_there():
    assert len(FILES) > 400, f"corpus not found at {corpus_dir()}"


@pytest.mark.django_db
def test_every_corpus_message_stores_parses_and_reads_back_byte_exact(alice):
    box = store.lookup_mailbox(alice.id, "INBOX").id
    expected = {}
    for path in FILES:
        raw = path.read_bytes()
        appended = store.append(alice.id, "INBOX", raw)
        expected[appended.uid] = hashlib.sha256(raw).hexdigest()
    for uid, digest in expected.items():
        assert hashlib.sha256(store.read_message(alice.id, box, uid)).hexdigest() == digest
    metas = store.fetch_meta(alice.id, box, list(expected))
    assert all(m.bodystructure.startswith(b"(") and m.envelope.startswith(b"(") for m in metas)
    assert Content.objects.count() == len(set(expected.values()))
