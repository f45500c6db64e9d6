"""FETCH of header sections from the stored header block and the parsed-field cache
(imapd/imap/fetchdata.py) answers exactly what slicing the whole message answers.

RFC 9051 §6.4.5: HEADER.FIELDS / HEADER.FIELDS.NOT match field names case-insensitively and
return the fields byte-exact, in their order, followed by the empty line.
"""

from __future__ import annotations

import hashlib

import pytest

from imapd.imap import fetchdata
from imapd.imap.commands import Section
from mailhost.mail.parse import parse_message
from tests.conftest import corpus_files

SECTIONS = [
    Section(text="HEADER"),
    Section(text="HEADER.FIELDS", fields=("From", "TO", "subject", "Date", "Message-ID")),
    Section(text="HEADER.FIELDS", fields=("received",)),
    Section(text="HEADER.FIELDS", fields=("X-Nothing-Like-This",)),
    Section(text="HEADER.FIELDS.NOT", fields=("Received", "DKIM-Signature")),
    Section(text="HEADER.FIELDS", fields=("\u212aey", "Content-Type")),  # Kelvin sign: no fold
]

HOSTILE = [
    b"From: a@b\r\nSubject : spaced\r\n folded\r\nnot a field\r\nTo: c@d\r\n\r\nbody\r\n",
    b"From: a@b\nSubject: bare LF\n\nbody\n",
    b"Subject: no blank line, no body",
    b"\r\nbody only\r\n",
    b"X-Odd:\r\nX-Odd: twice\r\n\tcontinued\r\nx-odd: lower\r\n\r\n",
    b"From: \xff\xfe binary \x00 bytes\r\nKey: v\r\n\r\n",
]


def _cases():
    for path in corpus_files():
        yield pytest.param(path.read_bytes(), id=path.name)
    for i, raw in enumerate(HOSTILE):
        yield pytest.param(raw, id=f"hostile-{i}")


@pytest.mark.parametrize("raw", list(_cases()))
def test_header_block_answers_like_the_whole_message(raw):
    parsed = parse_message(raw)
    header = raw[: parsed.header_end]
    sha = hashlib.sha256(raw).hexdigest()
    for section in SECTIONS:
        expected = fetchdata.section_bytes(raw, parsed.parts, section)
        assert fetchdata.header_section_bytes(header, section) == expected, section
        # twice: the first call fills the cache, the second is served from it
        assert fetchdata.header_section_bytes(header, section, sha) == expected, section
        assert fetchdata.header_section_bytes(header, section, sha) == expected, section


def test_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(fetchdata, "HEADER_CACHE", 10)
    fetchdata._header_cache.clear()
    section = Section(text="HEADER.FIELDS", fields=("Subject",))
    for i in range(50):
        header = b"Subject: %d\r\n\r\n" % i
        got = fetchdata.header_section_bytes(header, section, f"sha-{i}")
        assert got == b"Subject: %d\r\n\r\n" % i
    assert len(fetchdata._header_cache) == 10
    assert "sha-49" in fetchdata._header_cache and "sha-0" not in fetchdata._header_cache
