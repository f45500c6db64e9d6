"""The POP3 parser and the wire encoding: pure functions on bytes (no server, no database)."""

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imapd.pop3 import parser, wire
from imapd.pop3.parser import ParseError, parse_command


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"USER alice@example.test\r\n", parser.User("alice@example.test")),
        (b"pass two words \r\n", parser.Pass("two words ")),
        (b"STAT\r\n", parser.Stat()),
        (b"list\r\n", parser.List()),
        (b"LIST 3\r\n", parser.List(3)),
        (b"RETR 1\n", parser.Retr(1)),
        (b"TOP 2 0\r\n", parser.Top(2, 0)),
        (b"UIDL\r\n", parser.Uidl()),
        (b"UIDL 7\r\n", parser.Uidl(7)),
        (b"DELE 1\r\n", parser.Dele(1)),
        (b"NOOP\r\n", parser.Noop()),
        (b"RSET\r\n", parser.Rset()),
        (b"QUIT\r\n", parser.Quit()),
        (b"CAPA\r\n", parser.Capa()),
        (b"STLS\r\n", parser.Stls()),
        (b"AUTH\r\n", parser.Auth(None)),
        (b"AUTH plain\r\n", parser.Auth("PLAIN")),
        (b"AUTH PLAIN AGEAYg==\r\n", parser.Auth("PLAIN", "AGEAYg==")),
        (b"AUTH PLAIN =\r\n", parser.Auth("PLAIN", "=")),
        (
            b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n",
            parser.Apop("mrose", "c4c9334bac560ecc979e58001b3e22fb"),
        ),
    ],
    ids=lambda v: v.decode().strip() if isinstance(v, bytes) else "",
)
def test_valid_commands_parse(line, expected):
    """RFC 1939 §3: keywords are case-insensitive; PASS keeps its spaces (§7)."""
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        b"\r\n",
        b"FOO\r\n",
        b"RETRIEVE 1\r\n",
        b"RETR\r\n",
        b"RETR 0\r\n",
        b"RETR -1\r\n",
        b"RETR +1\r\n",
        b"RETR 1x\r\n",
        b"RETR 99999999999\r\n",
        b"RETR 1 2\r\n",
        b"RETR  1\r\n",
        b"TOP 1\r\n",
        b"TOP 1 -5\r\n",
        b"STAT now\r\n",
        b"LIST 1 2\r\n",
        b"USER\r\n",
        b"PASS\r\n",
        b"AUTH PLAIN a b\r\n",
        b"RETR \xff\r\n",
        b"RETR \x001\r\n",
        b"RETR \xd9\xa3\r\n",  # an Arabic-Indic digit: isdigit() but not a POP3 number
    ],
    ids=repr,
)
def test_bad_commands_raise_parse_error(line):
    with pytest.raises(ParseError):
        parse_command(line)


def encode(raw: bytes, size: int = 7, top: int | None = None) -> bytes:
    chunks = [raw[i : i + size] for i in range(0, len(raw), size)]
    return b"".join(wire.encode(chunks, top=top))


def decode(data: bytes) -> bytes:
    """What a client does: split lines, drop the terminator, un-stuff (RFC 1939 §3)."""
    assert data.endswith(b"\r\n.\r\n") or data == b".\r\n"
    lines = data.split(b"\r\n")[:-2]
    return b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n" for line in lines)


def crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_retr_stuffs_dots_and_normalises_bare_lf():
    raw = b"Subject: x\n\n.hidden\r\n..two\n.\nend"
    assert encode(raw) == b"Subject: x\r\n\r\n..hidden\r\n...two\r\n..\r\nend\r\n.\r\n"


def test_top_sends_header_blank_line_and_n_body_lines():
    raw = b"A: 1\r\nB: 2\r\n\r\nl1\r\n.l2\r\nl3\r\n"
    assert encode(raw, top=0) == b"A: 1\r\nB: 2\r\n\r\n.\r\n"
    assert encode(raw, top=2) == b"A: 1\r\nB: 2\r\n\r\nl1\r\n..l2\r\n.\r\n"
    assert encode(raw, top=99) == encode(raw)
    assert encode(b"A: only header", top=3) == b"A: only header\r\n.\r\n"


@given(
    st.lists(st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"x.y", b"\r\n.\r\n"])),
    st.integers(min_value=1, max_value=9),
)
def test_encoding_round_trips_whatever_the_chunking(parts, size):
    """Decoding what RETR sends gives the message with CRLF line ends, for any chunking;
    wire_size (LIST/STAT) is exactly that length."""
    raw = b"".join(parts)
    out = encode(raw, size)
    expected = crlf(raw)
    if expected and not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    assert decode(out) == expected
    assert out.count(b"\r\n.\r\n") + out.startswith(b".\r\n") == 1
    assert wire.wire_size(io.BytesIO(raw), chunk=size) == len(crlf(raw))


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=64))
def test_parser_never_raises_anything_but_parse_error(data, _):
    try:
        parse_command(data[: parser.MAX_LINE])
    except ParseError:
        pass
