"""Every message in shared/corpus: APPENDed, then fetched back byte-exact with a
BODYSTRUCTURE that a real client (imapclient's parser) accepts (RFC 9051 §7.5.2)."""

from __future__ import annotations

import imapclient
import pytest

from tests.conftest import PASSWORD, corpus_files
from tests.imapd.conftest import ALICE
from tests.imapd.rawclient import RawClient

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_corpus_message_round_trips(imap_server, alice, settings):
    files = [p for p in corpus_files() if p.stat().st_size > 0]
    assert files, "no corpus found"
    settings.BUZON_IMAP_COMMANDS_PER_SECOND = 0
    client = imapclient.IMAPClient("127.0.0.1", port=imap_server.port, ssl=False, timeout=30)
    client.login(ALICE, PASSWORD)
    client.create_folder("Corpus")
    # APPEND over a raw socket: imaplib would turn bare LFs into CRLF on the way.
    raw_client = RawClient(imap_server.port)
    raw_client.login()
    for i, path in enumerate(files):
        raw = path.read_bytes()
        raw_client.send(b"a%d APPEND Corpus {%d+}\r\n%s\r\n" % (i, len(raw), raw))
    expected = {}
    for i, path in enumerate(files):
        reply = raw_client.until_tagged(b"a%d" % i)[-1]
        assert reply.startswith(b"a%d OK [APPENDUID" % i), (path, reply)
        uid = int(reply.split(b"]")[0].split()[-1])
        expected[uid] = (path, path.read_bytes())
    raw_client.close()
    client.select_folder("Corpus", readonly=True)
    uids = sorted(expected)
    for i in range(0, len(uids), 50):
        chunk = uids[i : i + 50]
        data = client.fetch(chunk, ["BODY.PEEK[]", "BODYSTRUCTURE", "ENVELOPE", "RFC822.SIZE"])
        for uid in chunk:
            path, raw = expected[uid]
            item = data[uid]
            assert item[b"BODY[]"] == raw, path
            assert item[b"RFC822.SIZE"] == len(raw), path
            assert item[b"BODYSTRUCTURE"] is not None, path
    client.logout()
