"""IMAP wire syntax (RFC 3501 §4, §9): strings, literals, lists. Pure: no Django, no sockets."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.mail import imapfmt
from mailhost.mail.imapfmt import Raw, astring, nstring, paren_list, serialize


@pytest.fixture(autouse=True)
def data_dir():
    """Pure tests: override the project's autouse data-dir fixture (no settings needed)."""
    yield None


@pytest.fixture(autouse=True)
def _clear_cache():
    yield


# ---------------------------------------------------------------------------------------------
# A small, strict reader for what the server sends, used here and by test_parse.py.

_LITERAL = re.compile(rb"\{(\d+)\}\r\n")
_ATOM = re.compile(rb"[^ ()\"{\x00-\x1f\x7f]+")


class ImapSyntaxError(ValueError):
    pass


def read_imap(data: bytes, pos: int = 0, *, lenient_literals: bool = False):
    """Read one IMAP value at `pos`: NIL -> None, number -> int, string -> bytes,
    list -> list, any other atom -> bytes. Return (value, end).

    Strict RFC 3501 §9: quoted strings hold only 7-bit TEXT-CHARs with `"` and `\\` escaped;
    literals are `{n}` CRLF and n octets; lists are single-space separated, except that
    bodies follow each other with no space in a multipart (RFC 3501 §9 body-type-mpart).
    `lenient_literals` accepts a literal whose count is short by a few octets (as in a
    fixture whose CRLFs were rewritten after the count was taken).
    """
    stack: list[list] = []
    n = len(data)
    while True:
        if pos >= n:
            raise ImapSyntaxError(f"unexpected end at {pos}")
        c = data[pos]
        if c == 0x28:  # (
            stack.append([])
            pos += 1
            continue
        if c == 0x29:  # )
            if not stack:
                raise ImapSyntaxError(f"unbalanced ) at {pos}")
            value = stack.pop()
            pos += 1
        elif c == 0x22:  # "
            i = pos + 1
            buf = bytearray()
            while True:
                if i >= n:
                    raise ImapSyntaxError("unterminated quoted string")
                ch = data[i]
                if ch == 0x5C:
                    if i + 1 >= n or data[i + 1] not in b'"\\':
                        raise ImapSyntaxError(f"bad escape at {i}")
                    buf.append(data[i + 1])
                    i += 2
                    continue
                if ch == 0x22:
                    break
                if ch in (0, 10, 13) or ch > 0x7F:
                    raise ImapSyntaxError(f"byte {ch:#x} not allowed in a quoted string")
                buf.append(ch)
                i += 1
            value = bytes(buf)
            pos = i + 1
        elif c == 0x7B:  # {
            m = _LITERAL.match(data, pos)
            if m is None and lenient_literals:
                m = re.compile(rb"\{(\d+)\}\r?\n").match(data, pos)
            if m is None:
                raise ImapSyntaxError(f"bad literal at {pos}")
            start = m.end()
            end = start + int(m.group(1))
            if end > n:
                raise ImapSyntaxError("literal runs past the end")
            if lenient_literals:
                while end < n and data[end] not in b" )":
                    end += 1
            value = data[start:end]
            if b"\x00" in value:
                raise ImapSyntaxError("NUL in a literal (RFC 3501 §4.3)")
            pos = end
        else:
            m = _ATOM.match(data, pos)
            if m is None:
                raise ImapSyntaxError(f"unexpected byte {c:#x} at {pos}")
            tok = m.group()
            value = None if tok == b"NIL" else int(tok) if tok.isdigit() else tok
            pos = m.end()
        if not stack:
            return value, pos
        stack[-1].append(value)
        # what may follow a value inside a list: ")", a space, or "(" (multipart bodies)
        if pos < n and data[pos] == 0x20:
            pos += 1
            if pos < n and data[pos] in b" )":
                raise ImapSyntaxError(f"stray space at {pos}")
        elif pos < n and not (data[pos] == 0x29 or (data[pos] == 0x28 and isinstance(value, list))):
            raise ImapSyntaxError(f"missing separator at {pos}")


def read_all(data: bytes, **kwargs):
    """Read exactly one value that spans all of `data`."""
    value, end = read_imap(data, **kwargs)
    if end != len(data):
        raise ImapSyntaxError(f"trailing bytes after {end}: {data[end : end + 20]!r}")
    return value


# ---------------------------------------------------------------------------------------------


def test_nstring_none_is_nil():
    """RFC 3501 §4.5: NIL represents the non-existence of a data item."""
    assert nstring(None) == b"NIL"


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (b"", b'""'),
        (b"hello world", b'"hello world"'),
        ("str too", b'"str too"'),
        (b'say "hi"', b'"say \\"hi\\""'),
        (b"back\\slash", b'"back\\\\slash"'),
        (b"NIL", b'"NIL"'),
        (b"tab\there", b'"tab\there"'),
    ],
    ids=["empty", "ascii", "str", "dquote", "backslash", "nil-word", "tab"],
)
def test_quoted_strings_escape_quoted_specials(value, wire):
    """RFC 3501 §9: quoted-specials (DQUOTE and backslash) are escaped in a quoted string."""
    assert nstring(value) == wire
    assert read_all(wire) == (value.encode() if isinstance(value, str) else value)


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (b"line1\r\nline2", b"{12}\r\nline1\r\nline2"),
        (b"bare\rcr", b"{7}\r\nbare\rcr"),
        (b"bare\nlf", b"{7}\r\nbare\nlf"),
        ("Grüße", b"{7}\r\nGr\xc3\xbc\xc3\x9fe"),
        (b"latin1 \xfc", b"{8}\r\nlatin1 \xfc"),
    ],
    ids=["crlf", "bare-cr", "bare-lf", "utf8-str", "latin1-bytes"],
)
def test_strings_that_cannot_be_quoted_become_literals(value, wire):
    """RFC 3501 §4.3: CR, LF and 8-bit octets can only be sent in a literal."""
    assert nstring(value) == wire


def test_long_strings_are_sent_as_literals():
    value = b"x" * (imapfmt.QUOTED_MAX + 1)
    assert nstring(value) == b"{%d}\r\n" % len(value) + value
    assert nstring(value[:-1]) == b'"' + value[:-1] + b'"'


@pytest.mark.parametrize(
    "value", [b"a\x00b", b"\x00", b'x\x00"', b"8bit\xff\x00"], ids=["mid", "only", "dq", "8bit"]
)
def test_nul_is_replaced_by_a_space_of_the_same_length(value):
    """RFC 3501 §4.3 / RFC 9051 §4.3: CHAR8 excludes NUL even in literals."""
    wire = nstring(value)
    assert b"\x00" not in wire
    assert read_all(wire) == value.replace(b"\x00", b" ")


def test_surrogateescaped_str_round_trips_to_original_bytes():
    """8-bit header bytes carried as str (utf-8, surrogateescape) go out as the same bytes."""
    original = b"J\xfcrgen \xe2\x82\xac"  # latin-1 byte, then valid UTF-8
    carried = original.decode("utf-8", "surrogateescape")
    assert nstring(carried) == b"{%d}\r\n" % len(original) + original


def test_lone_surrogate_is_replaced_not_raised():
    assert nstring("\ud800x") == b'"?x"'


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        ("INBOX", b"INBOX"),
        ("Sent Items", b'"Sent Items"'),
        ("", b'""'),
        ("NIL", b'"NIL"'),
        ("a]b", b'"a]b"'),
        ("%", b'"%"'),
        ("Entwürfe", b"{9}\r\nEntw\xc3\xbcrfe"),
    ],
    ids=["atom", "space", "empty", "nil", "resp-special", "wildcard", "8bit"],
)
def test_astring_uses_an_atom_only_when_it_is_one(value, wire):
    """RFC 3501 §9: astring = 1*ASTRING-CHAR / string."""
    assert astring(value) == wire


def test_paren_list_joins_serialised_items():
    assert paren_list([]) == b"()"
    assert paren_list([b"\\Seen", b"\\Answered"]) == b"(\\Seen \\Answered)"


def test_serialize_nested_values():
    value = [None, 1, "a", b"b\r\n", [Raw(b"\\Seen"), []], (2, None)]
    wire = serialize(value)
    assert wire == b'(NIL 1 "a" {3}\r\nb\r\n (\\Seen ()) (2 NIL))'
    assert read_all(wire) == [None, 1, b"a", b"b\r\n", [b"\\Seen", []], [2, None]]


@pytest.mark.parametrize(
    "bad", [True, 1.5, object(), {"a": 1}], ids=["bool", "float", "obj", "dict"]
)
def test_serialize_rejects_non_imap_values(bad):
    with pytest.raises(TypeError):
        serialize(bad)


@given(st.recursive(st.none() | st.integers(0, 2**63) | st.binary() | st.text(), st.lists))
def test_serialized_values_read_back_identically(value):
    """Property: whatever serialize() produces is valid IMAP and reads back to the value
    (str as UTF-8, NUL as space)."""

    def expected(v):
        if isinstance(v, list):
            return [expected(x) for x in v]
        if isinstance(v, str):
            return expected(v.encode("utf-8"))  # st.text() has no lone surrogates
        if isinstance(v, bytes):
            return v.replace(b"\x00", b" ")
        return v

    assert read_all(serialize(value)) == expected(value)
