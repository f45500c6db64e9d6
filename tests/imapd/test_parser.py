"""The IMAP parser and modified UTF-7, as pure functions (no server, no database)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.imap import commands as c
from imapd.imap.parser import (
    CommandBuffer,
    CommandTooLarge,
    LiteralRequest,
    ParseError,
    literal_request,
    parse_command,
)
from mailhost.mail import utf7


@pytest.mark.parametrize(
    "line, expected",
    [
        (b"a LOGIN {5}\r\n", LiteralRequest(5, True, False)),
        (b"a APPEND x {12+}\r\n", LiteralRequest(12, False, False)),
        (b"a APPEND x ~{3}\r\n", LiteralRequest(3, True, True)),
        (b"a NOOP\r\n", None),
        (b'a LOGIN "{5}"\r\n', None),
    ],
    ids=["sync", "literal-plus", "literal8", "none", "quoted-braces"],
)
def test_literal_request(line, expected):
    """RFC 9051 §4.3 literals; RFC 7888 non-synchronising; RFC 3516 literal8."""
    assert literal_request(line) == expected


def test_command_buffer_bounds_literals():
    buf = CommandBuffer(max_line=100, max_literal=10, max_command=1000)
    with pytest.raises(CommandTooLarge) as e:
        buf.add_line(b"t1 APPEND INBOX {11}\r\n")
    assert e.value.tag == "t1"


def test_parse_fetch_with_sections_and_partial():
    """RFC 9051 §6.4.5 fetch items, macros and section specs."""
    cmd = parse_command(b"a UID FETCH 1:*,3 (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From)]<0.10>)\r\n")
    assert isinstance(cmd, c.Fetch) and cmd.uid
    assert cmd.seqset.ranges == ((1, None), (3, 3))
    body = cmd.items[-1]
    assert body.section == c.Section((1, 2), "HEADER.FIELDS", ("FROM",))
    assert body.peek and body.partial == (0, 10)
    assert cmd.items[0].name == "UID"  # UID FETCH always returns UID
    fast = parse_command(b"b FETCH 1 FAST\r\n")
    assert [i.name for i in fast.items] == ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]


def test_parse_search_tree():
    """RFC 9051 §6.4.4: implicit AND, OR, NOT, parentheses, dates, literals."""
    cmd = parse_command(
        b"a SEARCH CHARSET UTF-8 OR FROM {3}\r\nbob NOT (SEEN 1:3) SINCE 1-Feb-2024\r\n"
    )
    assert cmd.charset == "UTF-8"
    assert cmd.criteria == c.SearchAnd(
        (
            c.SearchOr(
                c.SearchKey("FROM", (b"bob",)),
                c.SearchNot(
                    c.SearchAnd(
                        (c.SearchKey("SEEN"), c.SearchKey("SEQSET", (c.SeqSet(((1, 3),)),)))
                    )
                ),
            ),
            c.SearchKey("SINCE", (dt.date(2024, 2, 1),)),
        )
    )


@pytest.mark.parametrize(
    "data",
    [
        b"a FETCH 0 FLAGS\r\n",
        b"a FETCH 4294967296 FLAGS\r\n",
        b"a FETCH 1 (FLAGS\r\n",
        b"a SEARCH " + b"(" * 100 + b"ALL" + b")" * 100 + b"\r\n",
        b"a STORE 1 FLAGZ x\r\n",
        b"a LOGIN {5}\r\nab\r\n",
        b"a SELECT\r\n",
        b"a UID NOOP\r\n",
        b"a SORT () UTF-8 ALL\r\n",
        b'a LIST (RECURSIVEMATCH) "" *\r\n',
        b'a APPEND INBOX "x"\r\n',
        b"+ NOOP\r\n",
    ],
    ids=[
        "zero",
        "too-big",
        "unclosed",
        "deep",
        "store-item",
        "short-literal",
        "no-mailbox",
        "uid-noop",
        "empty-sort",
        "recursivematch-alone",
        "append-quoted",
        "bad-tag",
    ],  # fmt: skip
)
def test_malformed_commands_raise_parse_error(data):
    with pytest.raises(ParseError):
        parse_command(data)


def test_dates_and_qresync_and_store():
    cmd = parse_command(b'a APPEND INBOX (\\Seen) " 7-Feb-1994 21:52:25 -0800" {2+}\r\nhi\r\n')
    assert cmd.internaldate == dt.datetime(1994, 2, 8, 5, 52, 25, tzinfo=dt.UTC)
    sel = parse_command(b"a SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211))\r\n")
    assert sel.qresync == c.QResync(67890007, 90060115194045000, c.SeqSet(((41, 211),)))
    store = parse_command(b"a STORE 1 (UNCHANGEDSINCE 5) +FLAGS.SILENT \\Seen $x\r\n")
    assert (store.mode, store.silent, store.flags, store.unchangedsince) == (
        "add", True, ("\\Seen", "$x"), 5)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parser_never_fails_other_than_parse_error(data):
    """Arbitrary bytes give a Command or a ParseError, never another exception."""
    try:
        parse_command(data + b"\r\n")
    except ParseError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_utf7_round_trip(name):
    """RFC 3501 §5.1.3: encode then decode gives the name back; output is printable ASCII."""
    encoded = utf7.encode(name)
    assert all(0x20 <= ord(ch) <= 0x7E for ch in encoded)
    if all(not 0xD800 <= ord(ch) <= 0xDFFF for ch in name):
        assert utf7.decode(encoded) == name


@pytest.mark.parametrize("bad", ["&", "&Jjo", "&AGE-", "caf\u00e9", "&U,BTF2XlZyyKng-x&-&-"[:5]])
def test_utf7_rejects_malformed(bad):
    with pytest.raises(utf7.InvalidUtf7):
        utf7.decode(bad)


def test_parse_cache_reuses_a_parse_under_the_new_tag_and_keeps_passwords_out():
    """A repeated command is served from the parse cache with its own tag; LOGIN is never
    cached (its text holds a password); a command with a literal is never cached."""
    from imapd.imap import parser

    parser._parsed.clear()
    first = parse_command(b"a1 UID FETCH 1:* (FLAGS)\r\n")
    second = parse_command(b"b22 UID FETCH 1:* (FLAGS)\r\n")
    assert (first.tag, second.tag) == ("a1", "b22")
    assert first.items == second.items and second.uid
    assert len(parser._parsed) == 1
    parse_command(b'l LOGIN user "secret"\r\n')
    parse_command(b"s SEARCH SUBJECT {3}\r\nabc\r\n")
    assert not any(b"secret" in key or b"abc" in key for key in parser._parsed)
