"""parse_message on every corpus message, and hand-written expectations for known ones.

Pure tests: bytes in, values out; no database, no sockets.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailhost.mail import parse
from mailhost.mail.parse import (
    MAX_DEPTH,
    MAX_PARTS,
    base_subject,
    decode_header_value,
    decode_part_body,
    find_section,
    header_fields,
    parse_message,
    select_header_fields,
)
from tests.mail.test_imapfmt import read_all


@pytest.fixture(autouse=True)
def data_dir():
    """Pure tests: override the project's autouse data-dir fixture (no settings needed)."""
    yield None


@pytest.fixture(autouse=True)
def _clear_cache():
    yield


def _corpus_dir() -> Path | None:
    """$BUZON_CORPUS, else shared/corpus beside the repository (<repo>/../shared/corpus)."""
    repo = Path(__file__).resolve().parents[2]
    candidates = [os.environ.get("BUZON_CORPUS"), repo.parent / "shared" / "corpus"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return None


CORPUS = _corpus_dir()
CORPUS_FILES = (
    sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name != "SOURCES.md") if CORPUS else []
)
needs_corpus = pytest.mark.skipif(CORPUS is None, reason="shared/corpus not found")


def corpus(name: str) -> bytes:
    if CORPUS is None:
        pytest.fail("shared/corpus not found beside the repository (set BUZON_CORPUS)")
    return (CORPUS / name).read_bytes()


def section_body(raw: bytes, parts: dict, section: tuple[int, ...]) -> bytes:
    span = find_section(parts, section)
    return raw[span.start : span.end]


def list_depth(value) -> int:
    if not isinstance(value, list):
        return 0
    return 1 + max((list_depth(v) for v in value), default=0)


def crlf(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# ---------------------------------------------------------------------------------------------
# Invariants, checked on every corpus file and on fuzzed input


def numbered_sections(parts: dict):
    """Yield (section, node) for every numbered part, per RFC 3501 §6.4.5."""

    def inside(node: dict, sec: tuple[int, ...]):
        if "p" in node:
            for i, child in enumerate(node["p"], 1):
                yield sec + (i,), child
                yield from inside(child, sec + (i,))
        elif "m" in node:
            inner = node["m"]
            if "p" in inner:
                yield from inside(inner, sec)
            else:
                yield sec + (1,), inner

    if "p" in parts:
        yield from inside(parts, ())
    else:
        yield (1,), parts
        yield from inside(parts, (1,))


def nodes(node: dict):
    yield node
    for child in node.get("p", []):
        yield from nodes(child)
    if "m" in node:
        yield from nodes(node["m"])


def check_spans(node: dict, lo: int, hi: int) -> None:
    assert lo <= node["h"] <= node["b"] <= node["e"] <= hi, node
    assert isinstance(node["t"], str) and node["t"].count("/") == 1
    if "p" in node:
        assert node["p"], "a multipart always has parts"
        prev = node["b"]
        for child in node["p"]:
            assert child["h"] >= prev, "parts are in order and do not overlap"
            check_spans(child, node["b"], node["e"])
            prev = child["e"]
    if "m" in node:
        inner = node["m"]
        assert inner["h"] == node["b"] and inner["e"] == node["e"]
        check_spans(inner, node["b"], node["e"])


def without_extensions(bs):
    """BODYSTRUCTURE minus extension data is BODY (RFC 3501 §7.4.2)."""
    if isinstance(bs[0], list):
        i = next(k for k, x in enumerate(bs) if not isinstance(x, list))
        return [without_extensions(c) for c in bs[:i]] + [bs[i]]
    if bs[0].lower() == b"message" and bs[1].lower() in (b"rfc822", b"global"):
        return bs[:8] + [without_extensions(bs[8]), bs[9]]
    if bs[0].lower() == b"text":
        return bs[:8]
    return bs[:7]


def check_structure(bs, node: dict, raw: bytes) -> None:
    """The serialised BODYSTRUCTURE describes exactly the parts tree."""
    if "p" in node:
        i = next(k for k, x in enumerate(bs) if not isinstance(x, list))
        children, subtype, ext = bs[:i], bs[i], bs[i + 1 :]
        assert len(children) == len(node["p"])
        assert node["t"] == "multipart/" + subtype.decode()
        assert len(ext) == 4  # body-fld-param, dsp, lang, loc
        for child_bs, child in zip(children, node["p"], strict=True):
            check_structure(child_bs, child, raw)
        return
    mtype, subtype, params, _cid, _desc, enc, size = bs[:7]
    assert node["t"] == f"{mtype.decode()}/{subtype.decode()}"
    assert params is None or (len(params) % 2 == 0 and all(isinstance(p, bytes) for p in params))
    assert re.sub(r"[\x00-\x1f\x7f]", " ", enc.decode("ascii", "replace")) == node["c"]
    assert size == node["e"] - node["b"]
    lines = raw.count(b"\n", node["b"], node["e"])
    if "m" in node:
        envelope, body, nlines = bs[7:10]
        check_envelope(envelope)
        check_structure(body, node["m"], raw)
        assert nlines == lines
        ext = bs[10:]
    elif mtype == b"text":
        assert bs[7] == lines
        ext = bs[8:]
    else:
        ext = bs[7:]
    assert len(ext) == 4  # md5, dsp, lang, loc


def check_envelope(env) -> None:
    assert isinstance(env, list) and len(env) == 10
    for i in (0, 1, 8, 9):
        assert env[i] is None or isinstance(env[i], bytes)
    for i in range(2, 8):
        assert env[i] is None or all(isinstance(a, list) and len(a) == 4 for a in env[i])


def check_invariants(raw: bytes, m: parse.ParsedMessage) -> None:
    assert m.size == len(raw)
    assert 0 <= m.header_end <= m.size
    parts = m.parts
    assert json.loads(json.dumps(parts)) == parts
    assert parts["h"] == 0 and parts["b"] == m.header_end and parts["e"] == m.size
    check_spans(parts, 0, m.size)
    assert sum(1 for _ in nodes(parts)) <= MAX_PARTS + 1

    bodystructure = read_all(m.bodystructure)
    check_structure(bodystructure, parts, raw)
    assert read_all(m.body) == without_extensions(bodystructure)
    check_envelope(read_all(m.envelope))

    whole = find_section(parts, ())
    assert (whole.start, whole.end, whole.header, whole.text) == (
        0,
        m.size,
        (0, m.header_end),
        (m.header_end, m.size),
    )
    for section, node in numbered_sections(parts):
        span = find_section(parts, section)
        assert span is not None, section
        assert (span.start, span.end, span.mime) == (node["b"], node["e"], (node["h"], node["b"]))
        assert span.content_type == node["t"] and span.cte == node["c"]
        if "m" in node:
            inner = node["m"]
            assert span.header == (inner["h"], inner["b"])
            assert span.text == (inner["b"], inner["e"])
        else:
            assert span.header is None and span.text is None

    for name in ("subject", "from_display", "from_addr", "to", "cc", "bcc", "message_id"):
        value = getattr(m, name)
        assert isinstance(value, str)
        assert not any(c < " " or c == "\x7f" or "\ud800" <= c <= "\udfff" for c in value), name
    for name in ("in_reply_to", "base_subject", "preview"):
        assert not any(c < " " for c in getattr(m, name)), name
    assert all(isinstance(r, str) and r.startswith("<") for r in m.references)
    assert m.date is None or m.date.tzinfo is not None
    assert len(m.preview) <= parse.PREVIEW_CHARS
    assert len(m.from_addr) <= 320


@needs_corpus
@pytest.mark.parametrize(
    "path", CORPUS_FILES, ids=[str(p.relative_to(CORPUS)) for p in CORPUS_FILES] if CORPUS else []
)
def test_corpus_message_parses_into_consistent_structure(path):
    """Every corpus message parses without an exception (SOURCES.md "Expected behaviour" 1,
    4): spans lie within raw, BODYSTRUCTURE is balanced IMAP describing the same tree, every
    section resolves (RFC 3501 §6.4.5, §7.4.2)."""
    raw = path.read_bytes()
    m = parse._parse(raw)  # not parse_message: that would hide a bug behind the fallback
    check_invariants(raw, m)


# ---------------------------------------------------------------------------------------------
# Hand-written expectations

SIMPLE = crlf(
    "Date: Mon, 01 Jan 2024 10:00:00 +0000\n"
    "From: Alice Example <Alice@Example.ORG>\n"
    "To: bob@example.test\n"
    "Subject: Hello\n"
    "Message-ID: <1@example.org>\n"
    "\n"
    "Hi Bob,\n"
    "two lines.\n"
)


def test_simple_text_plain_message():
    """RFC 3501 §7.4.2: ENVELOPE, BODY and BODYSTRUCTURE of a one-part message; no
    Content-Type means text/plain; charset=us-ascii (RFC 2045 §5.2)."""
    m = parse_message(SIMPLE)
    alice = b'(("Alice Example" NIL "Alice" "Example.ORG"))'
    assert m.envelope == (
        b'("Mon, 01 Jan 2024 10:00:00 +0000" "Hello" '
        + b" ".join([alice] * 3)  # sender and reply-to default to from
        + b' ((NIL NIL "bob" "example.test")) NIL NIL NIL "<1@example.org>")'
    )
    assert m.body == b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 21 2)'
    assert m.bodystructure == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 21 2 NIL NIL NIL NIL)'
    )
    assert m.header_end == SIMPLE.index(b"Hi Bob")
    assert m.subject == "Hello" and m.base_subject == "Hello"
    assert (m.from_display, m.from_addr) == ("Alice Example", "alice@example.org")
    assert (m.to, m.cc, m.bcc) == ("bob@example.test", "", "")
    assert m.date == datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
    assert (m.message_id, m.in_reply_to, m.references) == ("<1@example.org>", "", [])
    assert m.preview == "Hi Bob, two lines."
    assert m.has_attachments is False
    span = find_section(m.parts, (1,))
    assert SIMPLE[span.start : span.end] == b"Hi Bob,\r\ntwo lines.\r\n"
    assert SIMPLE[slice(*span.mime)] == SIMPLE[: m.header_end]
    assert find_section(m.parts, (2,)) is None


ALTERNATIVE = crlf(
    'From: a@example.org\nContent-Type: multipart/alternative; boundary="XX"\n\n'
    "preamble\n"
    "--XX\n"
    "Content-Type: text/plain; charset=utf-8\n\n"
    "plain\n"
    "--XX\n"
    "Content-Type: text/html; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n\n"
    "<p>html=3D</p>\n"
    "--XX--\n"
    "epilogue\n"
)


def test_multipart_alternative():
    """RFC 2046 §5.1.1: the CRLF before a delimiter belongs to it; preamble and epilogue are
    not parts. RFC 3501 §7.4.2: body-type-mpart has no space between the bodies."""
    m = parse_message(ALTERNATIVE)
    assert m.body == (
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 5 0)'
        b'("text" "html" ("charset" "utf-8") NIL NIL "quoted-printable" 14 0) "alternative")'
    )
    assert m.bodystructure == (
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 5 0 NIL NIL NIL NIL)'
        b'("text" "html" ("charset" "utf-8") NIL NIL "quoted-printable" 14 0 NIL NIL NIL NIL)'
        b' "alternative" ("boundary" "XX") NIL NIL NIL)'
    )
    one, two = find_section(m.parts, (1,)), find_section(m.parts, (2,))
    assert ALTERNATIVE[one.start : one.end] == b"plain"
    assert ALTERNATIVE[two.start : two.end] == b"<p>html=3D</p>"
    assert ALTERNATIVE[slice(*two.mime)] == (
        b"Content-Type: text/html; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    )
    assert two.cte == "quoted-printable"
    assert decode_part_body(ALTERNATIVE[two.start : two.end], two.cte) == b"<p>html=</p>"
    assert find_section(m.parts, (3,)) is None
    assert find_section(m.parts, (1, 1)) == one  # a leaf's part 1 is itself (as Dovecot)
    assert m.preview == "plain"


NESTED = crlf(
    "From: Bob <bob@example.test>\n"
    "Subject: Fwd: hi\n"
    "Content-Type: multipart/mixed; boundary=b1\n\n"
    "--b1\n"
    "Content-Type: text/plain\n\n"
    "see attached\n"
    "--b1\n"
    "Content-Type: message/rfc822\n"
    "Content-Description: forwarded\n\n"
    "From: Carol <carol@example.net>\n"
    "Subject: hi\n"
    "Date: Tue, 02 Jan 2024 08:00:00 -0500\n"
    "Content-Type: multipart/alternative; boundary=b2\n\n"
    "--b2\n"
    "Content-Type: text/plain\n\n"
    "inner plain\n"
    "--b2\n"
    "Content-Type: text/html\n\n"
    "<b>inner</b>\n"
    "--b2--\n"
    "--b1--\n"
)


def test_message_rfc822_part_is_a_nested_message():
    """RFC 3501 §6.4.5: BODY[2] is the whole encapsulated message, BODY[2.HEADER] and
    BODY[2.TEXT] its header and body, BODY[2.1] the first part of its multipart body;
    §7.4.2: a message/rfc822 body has envelope, body structure and line count."""
    m = parse_message(NESTED)
    inner_start = NESTED.index(b"From: Carol")
    inner_body = NESTED.index(b"--b2\r\n")
    end = NESTED.index(b"\r\n--b1--")

    two = find_section(m.parts, (2,))
    assert (two.start, two.end) == (inner_start, end)
    assert two.header == (inner_start, inner_body)
    assert two.text == (inner_body, end)
    assert NESTED[slice(*two.mime)] == (
        b"Content-Type: message/rfc822\r\nContent-Description: forwarded\r\n\r\n"
    )
    assert two.content_type == "message/rfc822"
    inner_plain = find_section(m.parts, (2, 1))
    assert NESTED[inner_plain.start : inner_plain.end] == b"inner plain"
    assert NESTED[slice(*inner_plain.mime)] == b"Content-Type: text/plain\r\n\r\n"
    assert section_body(NESTED, m.parts, (2, 2)) == b"<b>inner</b>"
    assert find_section(m.parts, (2, 3)) is None
    assert find_section(m.parts, (1,)).header is None  # HEADER only for message parts

    bs = read_all(m.bodystructure)
    part2 = bs[1]
    size = end - inner_start
    assert part2[:7] == [b"message", b"rfc822", None, None, b"forwarded", b"7bit", size]
    env = part2[7]
    assert env[0] == b"Tue, 02 Jan 2024 08:00:00 -0500" and env[1] == b"hi"
    assert env[2] == [[b"Carol", None, b"carol", b"example.net"]]
    assert part2[8][2:4] == [b"alternative", [b"boundary", b"b2"]]
    assert part2[9] == NESTED.count(b"\n", inner_start, end)
    assert m.has_attachments is True  # a forwarded message is shown as an attachment
    assert m.preview == "see attached"


def test_headerless_and_empty_message_rfc822_parts():
    """An empty message/rfc822 part still has an (all-NIL) envelope and a body; a base64
    message/rfc822 (forbidden by RFC 2046 §5.2.1) is an opaque leaf."""
    m = parse_message(corpus("synthetic/message-rfc822-empty-and-headerless.eml"))
    bs = read_all(m.bodystructure)
    assert bs[0][7] == [None] * 10 and bs[0][6] == 0
    assert bs[1][8][:2] == [b"text", b"plain"] and bs[1][6] == 35
    assert bs[2][:2] == [b"application", b"octet-stream"] and bs[2][5] == b"base64"


def shape(bs):
    """(type, subtype, params with lower-case names, children) of a BODYSTRUCTURE."""
    if isinstance(bs[0], list):
        i = next(k for k, x in enumerate(bs) if not isinstance(x, list))
        params = bs[i + 1]
        return ("multipart", bs[i].lower(), _params(params), [shape(c) for c in bs[:i]])
    kids = [shape(bs[8])] if bs[0].lower() == b"message" and bs[1].lower() == b"rfc822" else []
    return (bs[0].lower().decode(), bs[1].lower(), _params(bs[2]), kids)


def _params(params):
    if not params:
        return []
    return [(params[i].lower(), params[i + 1]) for i in range(0, len(params), 2)]


def test_finnie_torture_shape_matches_wildduck_fixture():
    """Types, subtypes and parameters of every part of Ryan Finnie's MIME torture test match
    the BODYSTRUCTURE that WildDuck's fixture recorded from a real server (SOURCES.md)."""
    fixture = corpus("finnie-torture/expected-fetch-response.from-wildduck-fixture.txt")
    start = fixture.index(b"BODYSTRUCTURE ") + len(b"BODYSTRUCTURE ")
    from tests.mail.test_imapfmt import read_imap

    expected, _ = read_imap(fixture, start, lenient_literals=True)
    raw = corpus("finnie-torture/ryan_finnie_mime_torture.eml")
    got = read_all(parse_message(raw).bodystructure)
    assert shape(got) == shape(expected)
    # Octet counts agree too once line endings are CRLF, except in the parts the fixture's
    # server re-encoded when the message was re-sent.
    got_crlf = read_all(parse_message(crlf(raw)).bodystructure)
    assert [p[6] for p in got_crlf[:9]] == [p[6] for p in expected[:9]]


CRISPIN_SECTIONS = {
    (1,): "text/plain",
    (2,): "message/rfc822",
    (2, 1): "text/plain",
    (2, 2): "multipart/mixed",
    (2, 2, 1): "text/richtext",
    (2, 3): "application/andrew-inset",
    (3,): "message/rfc822",
    (3, 1): "audio/basic",
    (4,): "audio/basic",
    (5,): "image/pbm",
    (6,): "message/rfc822",
    (6, 1): "multipart/mixed",
    (6, 1, 1): "text/plain",
    (6, 1, 2): "audio/x-sun",
    (6, 2): "multipart/mixed",
    (6, 2, 1): "image/gif",
    (6, 2, 2): "image/gif",
    (6, 2, 3): "application/x-be2",
    (6, 2, 4): "application/atomicmail",
    (6, 3): "audio/x-sun",
    (7,): "message/rfc822",
    (7, 1): "text/plain",
    (7, 2): "image/pgm",
    (7, 3): "text/plain",
    (8,): "message/rfc822",
    (8, 1): "text/plain",
    (8, 2): "image/pbm",
    (9,): "message/rfc822",
    (9, 1): "application/postscript",
    (10,): "image/gif",
    (11,): "message/rfc822",
    (11, 1): "audio/basic",
    (11, 2): "audio/basic",
    (12,): "message/rfc822",
    (12, 1): "application/postscript",
    (12, 2): "text/plain",  # "Content-Type: BINARY" is invalid: RFC 2045 §5.2 default
    (12, 3): "message/rfc822",
    (12, 3, 1): "text/plain",
    (12, 3, 2): "multipart/parallel",
    (12, 3, 2, 1): "image/gif",
    (12, 3, 2, 2): "audio/basic",
    (12, 3, 3): "application/atomicmail",
    (12, 3, 4): "message/rfc822",
    (12, 3, 4, 1): "audio/x-sun",
}


def test_crispin_torture_section_numbering():
    """RFC 3501 §6.4.5 section numbers of Mark Crispin's MIME torture test."""
    raw = corpus("crispin-torture/torture-test.eml")
    m = parse_message(raw)
    found = {sec: node["t"] for sec, node in numbered_sections(m.parts)}
    assert found == CRISPIN_SECTIONS
    for missing in [(13,), (2, 4), (6, 1, 3), (12, 3, 2, 3), (0,)]:
        assert find_section(m.parts, missing) is None

    def body(*section):
        span = find_section(m.parts, section)
        return raw[span.start : span.end]

    assert body(1).startswith(b"This is a demonstration of multi-part mail")
    header = find_section(m.parts, (2,)).header
    assert raw[slice(*header)].startswith(b"Received: from dimacs.rutgers.edu")
    assert raw[slice(*header)].endswith(b"\r\n\r\n")
    assert raw[slice(*find_section(m.parts, (2, 1)).mime)] == b"\r\n"  # a part with no header
    assert raw[slice(*find_section(m.parts, (12, 3, 2)).mime)].startswith(
        b"Content-type: multipart/parallel"
    )
    assert body(12, 3, 2).startswith(b"--seconddivider")
    # crymap added header fields so that every multipart extension field is present
    bs = read_all(m.bodystructure)
    assert bs[-5:] == [
        b"mixed",
        [b"boundary", b"owatagusiam"],
        [b"inline", [b"name", b"torture"]],
        b"en",
        b"/plugh",
    ]


@pytest.mark.parametrize(
    ("raw_value", "decoded"),
    [
        # RFC 2047 §8 examples
        (b"(=?ISO-8859-1?Q?a?=)", "(a)"),
        (b"(=?ISO-8859-1?Q?a?= b)", "(a b)"),
        (b"(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)", "(ab)"),
        (b"(=?ISO-8859-1?Q?a?=  =?ISO-8859-1?Q?b?=)", "(ab)"),
        (b"(=?ISO-8859-1?Q?a?=\r\n    =?ISO-8859-1?Q?b?=)", "(ab)"),
        (b"(=?ISO-8859-1?Q?a_b?=)", "(a b)"),
        (b"(=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=)", "(a b)"),
        (b"=?US-ASCII?Q?Keith_Moore?=", "Keith Moore"),
        (b"=?ISO-8859-1?Q?Andr=E9?= Pirard", "André Pirard"),
        (b"=?utf-8?b?4oI=?= =?utf-8?b?rA==?=", "€"),  # a character split over two words
        (b"=?utf-8*en?q?with_language?=", "with language"),  # RFC 2231 §5
        (b"=?UTF-8?B?SGVsbG8=====?=", "Hello"),  # too much padding
        (b"=?utf-8?b?SGVsbG8?=", "Hello"),  # missing padding
        (b"=?utf-8?b?!!notbase64!!?=", "=?utf-8?b?!!notbase64!!?="),
        (b"=?utf-8?x?unknown-encoding?=", "=?utf-8?x?unknown-encoding?="),
        (b"=?x-unknown?q?abc?=", "abc"),
        (b"=?utf-8?q?line1=0D=0ABcc:_x@example.com?=", "line1  Bcc: x@example.com"),
        (b"=?utf-8?q?before=00after?=", "before after"),
        (b"Gr\xc3\xbc\xc3\x9fe", "Grüße"),  # raw UTF-8 (RFC 6532)
        (b"Gr\xfc\xdfe", "Grüße"),  # raw latin-1: not UTF-8, so windows-1252
        (b"=?utf-7?q?+ADw-script+AD4-?=", "<script>"),
    ],
    ids=lambda v: v.decode("latin-1") if isinstance(v, bytes) else None,
)
def test_rfc2047_header_decoding(raw_value, decoded):
    """RFC 2047 §6.2: whitespace between adjacent encoded-words is ignored; undecodable words
    are shown as they are (§6.3); controls never reach the decoded text."""
    assert decode_header_value(raw_value) == decoded


def test_subject_is_decoded_and_unfolded_but_envelope_keeps_raw_words():
    raw = crlf(
        "Subject: =?utf-8?q?caf=C3=A9?=\n =?utf-8?q?_cr=C3=A8me?= and\n\tmore\n"
        "From: =?utf-8?q?Jos=C3=A9?= <jose@example.net>\n\nbody\n"
    )
    m = parse_message(raw)
    assert m.subject == "café crème and\tmore".replace("\t", " ")
    env = read_all(m.envelope)
    assert env[1] == b"=?utf-8?q?caf=C3=A9?= =?utf-8?q?_cr=C3=A8me?= and\tmore"
    assert env[2] == [[b"=?utf-8?q?Jos=C3=A9?=", None, b"jose", b"example.net"]]
    assert m.from_display == "José"


def test_address_edge_cases():
    """RFC 3501 §7.4.2 groups; RFC 5322 §4.4 obs-route; RFC 2047 §5(3): no decoding inside
    quoted strings."""
    raw = crlf(
        'From: "Quoted \\"Name\\" with @ and ," <"weird local"@example.org>\n'
        "To: alice@example.com <bob@example.net>, undisclosed-recipients:;\n"
        'Cc: "=?utf-8?q?not_decoded?=" <q@example.net>, <@r1,@r2:user@example.net>,\n'
        " x@example.net (Comment Name), alice\n"
        "Bcc: <>\n"
        "Reply-To:\n\nbody\n"
    )
    m = parse_message(raw)
    env = read_all(m.envelope)
    sender = [[b'Quoted "Name" with @ and ,', None, b'"weird local"', b"example.org"]]
    assert env[2] == env[3] == env[4] == sender  # empty Reply-To defaults to From
    assert env[5] == [
        [b"alice@example.com", None, b"bob", b"example.net"],
        [None, None, b"undisclosed-recipients", None],
        [None, None, None, None],
    ]
    assert env[6] == [
        [b"=?utf-8?q?not_decoded?=", None, b"q", b"example.net"],
        [None, b"@r1,@r2", b"user", b"example.net"],
        [b"Comment Name", None, b"x", b"example.net"],
        [None, None, b"alice", b"MISSING_DOMAIN"],
    ]
    assert env[7] is None
    assert m.from_addr == '"weird local"@example.org'
    assert m.to == "alice@example.com <bob@example.net>"
    assert m.cc == (
        "=?utf-8?q?not_decoded?= <q@example.net>, user@example.net, "
        "Comment Name <x@example.net>, alice"
    )


@needs_corpus
def test_fast_address_path_agrees_with_full_parser():
    """The fast path for plain address lists gives exactly the full parser's result."""
    seen = 0
    for path in CORPUS_FILES:
        raw = path.read_bytes()
        for name, field in header_fields(raw, parse_message(raw).header_end):
            if name.lower() not in ("from", "to", "cc", "reply-to", "sender"):
                continue
            value = parse._value(field, field.index(b":"), len(field))
            if parse._FAST_UNSAFE.search(value):
                continue
            fast = parse._addresses_fast(value)
            if fast is None:
                continue
            seen += 1
            full = parse._addresses_full(value)
            assert [(a.imap(), a.display_name) for a in fast] == [
                (a.imap(), a.display_name) for a in full
            ], value
    assert seen > 100


@pytest.mark.parametrize(
    ("subject", "base"),
    [
        ("Re: hello", "hello"),
        ("RE: Re: re: hello", "hello"),
        ("Fwd: hello (fwd)", "hello"),
        ("Fw: hello (FWD) (fwd)", "hello"),
        ("[list] Re: hello", "hello"),
        ("Re: [list] hello", "hello"),
        ("Re[2]: hello", "hello"),
        ("[fwd: hello]", "hello"),
        ("Re: [Fwd: Re: hello] (fwd)", "hello"),
        ("[only-blob]", "[only-blob]"),
        ("  Re:   hello \t  world  ", "hello world"),
        ("Re:", ""),
        ("Reply: hello", "Reply: hello"),
        ("hello", "hello"),
        ("", ""),
    ],
)
def test_base_subject(subject, base):
    """RFC 5256 §2.1 base subject extraction for SORT and THREAD."""
    assert base_subject(subject) == base


def mime(part_headers: str, body: str = "x\n") -> bytes:
    return crlf(
        "From: a@example.org\nContent-Type: multipart/mixed; boundary=B\n\n"
        f"--B\n{part_headers}\n\n{body}--B--\n"
    )


@pytest.mark.parametrize(
    ("headers", "filename"),
    [
        ('Content-Disposition: attachment; filename="plain.txt"', "plain.txt"),
        (
            'Content-Disposition: attachment; filename*1="part-two.txt"; filename*0="one-"',
            "one-part-two.txt",
        ),
        ("Content-Disposition: attachment; filename*=utf-8''%E6%97%A5%E6%9C%AC.txt", "日本.txt"),
        (
            "Content-Disposition: attachment; filename*0*=utf-8''%E2%82%AC;\n filename*1=\".txt\"",
            "€.txt",
        ),
        (
            "Content-Disposition: attachment; filename*=iso-8859-1'en'caf%E9.txt",
            "café.txt",
        ),
        (
            "Content-Disposition: attachment; filename=\"plain.txt\"; filename*=utf-8''better.txt",
            "better.txt",
        ),
        ('Content-Type: application/pdf; name="by-name.pdf"', "by-name.pdf"),
        (
            'Content-Type: application/pdf; name="=?utf-8?q?r=C3=A9sum=C3=A9?=.pdf"',
            "résumé.pdf",
        ),
        ("Content-Disposition: attachment; filename*=utf-8''evil.txt%00.pdf", "evil.txt.pdf"),
        ('Content-Disposition: attachment; FILENAME="UPPER.TXT"', "UPPER.TXT"),
    ],
    ids=[
        "plain",
        "continuations",
        "extended",
        "mixed-segments",
        "latin1",
        "star-wins",
        "name",
        "rfc2047-name",
        "nul",
        "upper-case-name",
    ],
)
def test_rfc2231_filenames(headers, filename):
    """RFC 2231 §3 continuations, §4 charset/language, percent-encoding; RFC 2183 filename
    before Content-Type name."""
    m = parse_message(mime(headers))
    assert m.parts["p"][0]["fn"] == filename
    assert m.has_attachments is True


def test_rfc2231_boundary_parameter():
    raw = crlf(
        'Content-Type: multipart/mixed; boundary*0="ab"; boundary*1="cd"\n\n'
        "--abcd\n\none\n--abcd\n\ntwo\n--abcd--\n"
    )
    assert [p["t"] for p in parse_message(raw).parts["p"]] == ["text/plain", "text/plain"]


def test_bodystructure_parameters_are_raw():
    """Parameters are sent as written (RFC 2231 forms included) for the client to decode."""
    m = parse_message(mime("Content-Type: text/plain; CHARSET=ISO-8859-1; format=flowed"))
    assert read_all(m.bodystructure)[0][2] == [b"CHARSET", b"ISO-8859-1", b"format", b"flowed"]


def test_extension_data_of_a_part():
    """RFC 3501 §7.4.2 body-ext-1part: md5, disposition, language(s), location."""
    m = parse_message(
        mime(
            "Content-Type: image/png\nContent-ID: <img1@x>\nContent-Description: a dot\n"
            "Content-Transfer-Encoding: base64\nContent-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
            "Content-Disposition: inline; filename=dot.png\n"
            "Content-Language: en, de\nContent-Location: http://example.com/dot.png",
            "iVBORw0KGgo=\n",
        )
    )
    part = read_all(m.bodystructure)[0]
    assert part == [
        b"image", b"png", None, b"<img1@x>", b"a dot", b"base64", 12,
        b"Q2hlY2sgSW50ZWdyaXR5IQ==", [b"inline", [b"filename", b"dot.png"]],
        [b"en", b"de"], b"http://example.com/dot.png",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "tree"),
    [
        ("synthetic/multipart-prefix-boundaries.eml",
         ["multipart/mixed", [["multipart/alternative", ["text/plain", "text/html"]],
                              "text/plain"]]),
        ("synthetic/multipart-boundary-trailing-whitespace.eml",
         ["multipart/mixed", ["text/plain", "text/plain"]]),
        ("synthetic/multipart-missing-final-boundary.eml",
         ["multipart/mixed", ["text/plain", "text/plain"]]),
        ("synthetic/multipart-boundary-never-appears.eml", "text/plain"),
        ("synthetic/multipart-no-boundary-param.eml", "text/plain"),
        ("synthetic/multipart-empty-boundary-param.eml", "text/plain"),
        ("cpython/msg_39.txt",
         ["multipart/mixed", [["multipart/mixed", [
             ["multipart/alternative", ["application/octet-stream"] * 2]] * 3],
             "text/plain"]]),
        ("mimekit/messages/empty-multipart.txt", ["multipart/mixed", ["text/plain"] * 2]),
        ("wildduck/no_empty_line_between_text_boundary.eml",
         ["multipart/mixed", ["text/plain", "text/plain"]]),
    ],
    ids=lambda v: v if isinstance(v, str) and "/" in v and "." in v else None,
)  # fmt: skip
def test_boundary_edge_cases(name, tree):
    """RFC 2046 §5.1.1: exact delimiter lines win over prefix matches, enclosing delimiters
    close inner parts, trailing LWSP is allowed; a multipart without usable delimiters is
    shown as text/plain (RFC 2045 §5.2)."""

    def simplify(node):
        if "p" in node:
            return [node["t"], [simplify(c) for c in node["p"]]]
        return node["t"]

    assert simplify(parse_message(corpus(name)).parts) == tree


def test_delimiter_lines_with_trailing_whitespace_keep_exact_bodies():
    raw = corpus("synthetic/multipart-boundary-trailing-whitespace.eml")
    m = parse_message(raw)
    assert [section_body(raw, m.parts, (i,)) for i in (1, 2)] == [b"one", b"two"]


def test_missing_final_boundary_runs_to_the_end():
    raw = corpus("synthetic/multipart-missing-final-boundary.eml")
    span = find_section(parse_message(raw).parts, (2,))
    assert raw[span.start : span.end] == b"part two, then EOF without --zz--\r\n"


def test_nesting_is_capped():
    """120 nested multiparts: parsing stops at MAX_DEPTH, the rest is an opaque leaf."""
    m = parse_message(corpus("synthetic/nested-multipart-120-deep.eml"))
    depth, node = 0, m.parts
    while "p" in node:
        node, depth = node["p"][0], depth + 1
    assert depth == MAX_DEPTH
    assert node["t"] == "application/octet-stream"
    assert list_depth(read_all(m.bodystructure)) == MAX_DEPTH + 1


def test_message_nesting_is_capped():
    m = parse_message(corpus("synthetic/nested-message-rfc822-60-deep.eml"))
    depth, node = 0, m.parts
    while "m" in node:
        node, depth = node["m"], depth + 1
    assert depth == MAX_DEPTH and node["t"] == "application/octet-stream"


def test_part_count_is_capped():
    """20,000 empty parts: at most MAX_PARTS nodes; the rest is treated as epilogue."""
    raw = corpus("synthetic/many-empty-parts-20000.eml")
    m = parse_message(raw)
    assert len(m.parts["p"]) == MAX_PARTS - 1
    assert m.parts["e"] == len(raw)


def test_huge_headers_are_kept_whole():
    raw = corpus("synthetic/huge-unfolded-subject-256k.eml")
    m = parse_message(raw)
    assert len(m.subject) > 250_000
    assert len(read_all(m.envelope)[1]) > 250_000


def test_header_block_without_empty_line():
    """A line that is neither a field nor a continuation starts the body (cpython msg_35)."""
    raw = crlf("From: a@example.org\nSubject: s\nno colon on this line\nmore\n")
    m = parse_message(raw)
    assert raw[m.header_end :] == b"no colon on this line\r\nmore\r\n"
    assert m.subject == "s"


def test_stray_lines_among_header_fields_are_skipped():
    """An mbox "From " line or an MTA's broken wrap (mimekit issue358) does not end the
    header block when well-formed fields follow it."""
    raw = crlf(
        "From alice Mon Jan  1 10:00:00 2024\nFrom: a@example.org\nX-Long: 1;2\n"
        "3;4 wrapped without indentation\nSubject: s\n\nbody\n"
    )
    m = parse_message(raw)
    assert (m.from_addr, m.subject) == ("a@example.org", "s")
    assert raw[m.header_end :] == b"body\r\n"
    assert [name for name, _ in header_fields(raw, m.header_end)] == ["From", "X-Long", "Subject"]
    junk = corpus("synthetic/header-without-colon-and-leading-space.eml")
    assert parse_message(junk).to == "b@example.net"


def test_lf_only_message_has_the_same_structure_as_crlf():
    lf = NESTED.replace(b"\r\n", b"\n")
    a, b = parse_message(lf), parse_message(NESTED)
    assert shape(read_all(a.bodystructure)) == shape(read_all(b.bodystructure))
    assert section_body(lf, a.parts, (2, 1)) == b"inner plain"


def test_duplicate_content_type_first_wins():
    m = parse_message(corpus("synthetic/duplicate-content-type.eml"))
    assert m.parts["t"] == "text/plain"


def test_digest_parts_default_to_message_rfc822():
    """RFC 2046 §5.1.5: in multipart/digest the default type is message/rfc822."""
    raw = crlf("Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: one\n\nbody\n--d--\n")
    part = parse_message(raw).parts["p"][0]
    assert part["t"] == "message/rfc822" and "m" in part


@pytest.mark.parametrize(
    ("headers", "body", "preview"),
    [
        ("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64",
         "SGVsbG8sIHfDtnJsZCEKCgpTZWNvbmQgICBwYXJhZ3JhcGgu\n", "Hello, wörld! Second paragraph."),
        ("Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: "
         "quoted-printable", "caf=E9 soft=\nbreak\n", "café softbreak"),
        ("Content-Type: text/html; charset=utf-8",
         "<html><head><title>T</title><style>p{x:1}</style></head><body><p>Hello &amp;"
         " welcome</p><script>alert(1)</script><!-- c --><p>bye</p></body></html>\n",
         "Hello & welcome bye"),
        ("Content-Type: text/plain; charset=x-made-up\nContent-Transfer-Encoding: base64",
         "!!!***\n", ""),
        ("Content-Type: text/plain; charset=utf-8", "a\x00b\x1b[31mred\u200b\n", "a b [31mred"),
    ],
    ids=["base64", "qp-latin1", "html", "garbage", "controls"],
)  # fmt: skip
def test_preview(headers, body, preview):
    assert parse_message(crlf(f"{headers}\n\n{body}")).preview == preview


def test_preview_is_short_and_skips_attachments():
    raw = mime(
        "Content-Type: text/plain\nContent-Disposition: attachment; filename=a.txt",
        "attached text\n",
    )
    assert parse_message(raw).preview == ""
    long = parse_message(crlf("\n" + "word " * 1000)).preview
    assert parse.PREVIEW_CHARS - 5 < len(long) <= parse.PREVIEW_CHARS


@pytest.mark.parametrize(
    ("headers", "attached"),
    [
        ("Content-Type: application/pdf", True),
        ("Content-Type: text/plain\nContent-Disposition: attachment", True),
        ("Content-Type: text/plain", False),
        ("Content-Type: application/pgp-signature", False),
        ("Content-Type: image/png; name=a.png\nContent-Disposition: inline", True),
    ],
)
def test_has_attachments(headers, attached):
    assert parse_message(mime(headers)).has_attachments is attached


def test_inline_images_of_multipart_related_are_not_attachments():
    raw = crlf(
        "Content-Type: multipart/related; boundary=R\n\n"
        "--R\nContent-Type: text/html\n\n<img src=cid:i1>\n"
        "--R\nContent-Type: image/png; name=i.png\nContent-ID: <i1>\n\nxx\n--R--\n"
    )
    assert parse_message(raw).has_attachments is False


def test_threading_fields():
    raw = crlf(
        "Message-ID: <  abc@x  >\nIn-Reply-To: <p@x> (comment)\n"
        "References: <r1@x>\n <r2@x> junk <p@x>\nDate: 1 Jan 24 10:00 EST\n\n"
    )
    m = parse_message(raw)
    assert (m.message_id, m.in_reply_to) == ("<abc@x>", "<p@x>")
    assert m.references == ["<r1@x>", "<r2@x>", "<p@x>"]
    assert m.date == datetime(2024, 1, 1, 10, 0, tzinfo=timezone(timedelta(hours=-5)))


@pytest.mark.parametrize("date", ["", "garbage", "Mon, 99 Foo 2024 99:99:99 +9999", "1 Jan 99999"])
def test_unparseable_dates_are_none(date):
    assert parse_message(crlf(f"Date: {date}\n\nx\n")).date is None


def test_header_fields_keep_original_bytes():
    """For BODY[HEADER.FIELDS (...)] (RFC 3501 §6.4.5): fields byte-exact, folding kept."""
    raw = b"Subject: a\r\n b\r\nX-Other: 1\r\nsubject : second\nFrom: x@y\r\n\r\nbody"
    fields = header_fields(raw, raw.index(b"body"))
    assert fields == [
        ("Subject", b"Subject: a\r\n b\r\n"),
        ("X-Other", b"X-Other: 1\r\n"),
        ("subject", b"subject : second\n"),
        ("From", b"From: x@y\r\n"),
    ]
    assert select_header_fields(raw, ["SUBJECT"]) == (b"Subject: a\r\n b\r\nsubject : second\n\r\n")
    assert select_header_fields(raw, [b"subject", "from"], exclude=True) == b"X-Other: 1\r\n\r\n"
    nested = NESTED
    span = find_section(parse_message(nested).parts, (2,))
    assert select_header_fields(nested, ["subject"], span.header[1], span.header[0]) == (
        b"Subject: hi\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("data", "cte", "decoded"),
    [
        (b"SGVsbG8s\r\nIHdvcmxk\r\nIQ==\r\n", "base64", b"Hello, world!"),
        (b"SGV*&^%$#@!sbG8=\r\n", "BASE64", b"Hello"),  # junk is skipped
        (b"SGk=SGk=", "base64", b"HiHi"),  # concatenated, each padded
        (b"SGVsbG8", "base64", b"Hello"),  # missing padding
        (b"SGVsbG8gd29ybGQ=\r\nx", "base64", b"Hello world"),  # one stray character
        (b"", "base64", b""),
        (b"caf=E9 =\r\nsoft =ZZ bad", "quoted-printable", b"caf\xe9 soft =ZZ bad"),
        (b"raw \xff bytes", "8bit", b"raw \xff bytes"),
        (b"raw", "x-uuencode", b"raw"),
    ],
)
def test_decode_part_body(data, cte, decoded):
    """RFC 2045 §6.7/§6.8 decoding for BINARY (RFC 3516), tolerant of garbage."""
    assert decode_part_body(data, cte) == decoded


def test_parse_message_never_raises_even_on_internal_errors(monkeypatch):
    """A parser bug must not stop delivery: parse_message falls back to one text part."""

    def boom(raw):
        raise RuntimeError("bug")

    monkeypatch.setattr(parse, "_parse", boom)
    m = parse_message(SIMPLE)
    assert m.header_end == SIMPLE.index(b"Hi Bob") and m.size == len(SIMPLE)
    read_all(m.bodystructure)
    check_spans(m.parts, 0, m.size)


# ---------------------------------------------------------------------------------------------
# Properties

FRAGMENTS = [
    b"Content-Type: multipart/mixed; boundary=a\r\n",
    b'Content-Type: multipart/alternative; boundary="ab"\r\n',
    b"Content-Type: multipart/digest; boundary=a\r\n",
    b"Content-Type: message/rfc822\r\n",
    b"Content-Type: text/plain; charset=utf-8\r\n",
    b"Content-Type: text\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Disposition: attachment; filename*0*=utf-8''%E2; filename*1=x\r\n",
    b'From: "A, B" <a@b>, (c) d@e, g: h@i;\r\n',
    b"Subject: =?utf-8?b?4oI=?= =?utf-8?q?x?=\r\n",
    b" folded\r\n",
    b"--a\r\n",
    b"--a--\r\n",
    b"--ab\r\n",
    b"--ab--  \r\n",
    b"--abc\r\n",
    b"\r\n",
    b"\n",
    b"\r",
    b"text line\r\n",
    b"SGVsbG8=\r\n",
    b"=E9=\r\n",
    b"\x00\xff",
    b"no colon\r\n",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40))
def test_mime_like_input_keeps_invariants(fragments):
    raw = b"".join(fragments)
    check_invariants(raw, parse._parse(raw))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_random_bytes_never_raise(raw):
    check_invariants(raw, parse._parse(raw))
