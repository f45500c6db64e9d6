"""FETCH response items from stored rows: pure functions, no I/O (RFC 9051 §7.5.2).

Sections are slices of the stored bytes at the offsets the parser recorded on arrival
(`mailhost.mail.parse.find_section`); BINARY decodes the part's transfer encoding (RFC 3516).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from mailhost.mail.parse import (
    KNOWN_CTES,
    decode_part_body,
    find_section,
    header_fields,
    select_header_fields,
)
from mailhost.store.imapview import FetchRow, aware

from . import responses
from .commands import FetchAtt, Section
from .errors import No


def section_bytes(raw: bytes, parts: dict, section: Section) -> bytes | None:
    """BODY[section] as bytes, or None when the message has no such part."""
    span = find_section(parts, section.part)
    if span is None:
        return None
    if section.text == "":
        return raw[span.start : span.end]
    if section.text == "MIME":
        if span.mime is None:
            return None
        return raw[span.mime[0] : span.mime[1]]
    # HEADER, HEADER.FIELDS[.NOT], TEXT only apply to a message (RFC 9051 §6.4.5).
    if span.header is None or span.text is None:
        return b""
    if section.text == "TEXT":
        return raw[span.text[0] : span.text[1]]
    if section.text == "HEADER":
        return raw[span.header[0] : span.header[1]]
    return select_header_fields(
        raw,
        section.fields,
        header_end=span.header[1],
        start=span.header[0],
        exclude=section.text == "HEADER.FIELDS.NOT",
    )


def header_section_bytes(header: bytes, section: Section, sha256: str = "") -> bytes:
    """BODY[HEADER], BODY[HEADER.FIELDS (...)] or .NOT of the message itself, from its
    header block alone (the stored raw[:header_end])."""
    if section.text == "HEADER":
        return header
    if not sha256:
        return select_header_fields(
            header, section.fields, exclude=section.text == "HEADER.FIELDS.NOT"
        )
    return _pick_fields(header, sha256, _wanted(section), section.text == "HEADER.FIELDS.NOT")


def _wanted(section: Section) -> frozenset[bytes]:
    return frozenset(f.encode("utf-8", "surrogateescape").lower() for f in section.fields)


def _pick_fields(header: bytes, sha256: str, wanted: frozenset[bytes], exclude: bool) -> bytes:
    out = [field for name, field in _fields(header, sha256) if (name in wanted) != exclude]
    out.append(b"\r\n")
    return b"".join(out)


# Like Dovecot's cache file, in memory: the header block of recently fetched messages,
# split into fields once, so each later HEADER.FIELDS is a filter over a list. Keyed by
# content digest (the same bytes whatever the mailbox); LRU, at most HEADER_CACHE entries.
HEADER_CACHE = 8192
_header_cache: OrderedDict[str, list[tuple[bytes, bytes]]] = OrderedDict()


def _fields(header: bytes, sha256: str) -> list[tuple[bytes, bytes]]:
    """(name in ASCII lower case, field bytes ending in a line break) of a header block,
    compared as select_header_fields compares them (RFC 9051 §6.4.5: case-insensitive)."""
    hit = _header_cache.get(sha256)
    if hit is not None:
        _header_cache.move_to_end(sha256)
        return hit
    fields = []
    for name, field in header_fields(header):
        if not field.endswith(b"\n"):
            field += b"\r\n"
        fields.append((name.encode("utf-8", "surrogateescape").lower(), field))
    _header_cache[sha256] = fields
    if len(_header_cache) > HEADER_CACHE:
        _header_cache.popitem(last=False)
    return fields


def binary_bytes(raw: bytes, parts: dict, section: Section) -> bytes | None:
    """BINARY[part]: the part with its Content-Transfer-Encoding undone (RFC 3516 §4.2)."""
    span = find_section(parts, section.part)
    if span is None:
        return None
    body = raw[span.start : span.end]
    if not section.part:
        return raw
    cte = (span.cte or "7bit").strip().lower()
    if cte not in KNOWN_CTES:
        raise No(f"Unknown Content-Transfer-Encoding {cte[:40]}", "UNKNOWN-CTE")
    return decode_part_body(body, cte)


def _partial(data: bytes, att: FetchAtt) -> tuple[bytes, bytes]:
    if att.partial is None:
        return data, b""
    start, count = att.partial
    return data[start : start + count], b"<%d>" % start


Renderer = Callable[[FetchRow, bytes, int], bytes]


def renderer(att: FetchAtt) -> Renderer:
    """A function giving `item(att, row, flags, uid)`, with what depends only on `att`
    worked out once per FETCH rather than once per message."""
    name = att.name
    if name == "UID":
        return lambda row, flags, uid: b"UID %d" % uid
    if name == "FLAGS":
        return lambda row, flags, uid: b"FLAGS " + flags
    if name == "RFC822.SIZE":
        return lambda row, flags, uid: b"RFC822.SIZE %d" % row.size
    section = att.section
    if name == "BODY[]" and section is not None and section.text in _HEADER_TEXTS[1:]:
        wanted, exclude = _wanted(section), section.text == "HEADER.FIELDS.NOT"
        label = b"BODY[" + section.spec() + b"]"

        def header_fields_item(row: FetchRow, flags: bytes, uid: int) -> bytes:
            if row.raw is not None or row.header is None or section.part:
                return item(att, row, flags, uid)
            data, origin = _partial(_pick_fields(row.header, row.sha256, wanted, exclude), att)
            return label + origin + b" " + responses.literal(data)

        return header_fields_item
    return lambda row, flags, uid: item(att, row, flags, uid)


def item(att: FetchAtt, row: FetchRow, flags: bytes, uid: int) -> bytes:
    """One `NAME value` pair of a FETCH response."""
    name = att.name
    if name == "UID":
        return b"UID %d" % uid
    if name == "FLAGS":
        return b"FLAGS " + flags
    if name == "MODSEQ":
        return b"MODSEQ (%d)" % row.modseq
    if name == "INTERNALDATE":
        return b"INTERNALDATE " + responses.internaldate(aware(row.internaldate))
    if name == "RFC822.SIZE":
        return b"RFC822.SIZE %d" % row.size
    if name == "ENVELOPE":
        return b"ENVELOPE " + row.envelope
    if name == "BODYSTRUCTURE":
        return b"BODYSTRUCTURE " + row.bodystructure
    if name == "BODY":
        return b"BODY " + row.body
    if row.raw is None and row.header is not None:  # read for header sections only
        if name == "RFC822.HEADER":
            return b"RFC822.HEADER " + responses.literal(row.header)
        assert att.section is not None
        data = header_section_bytes(row.header, att.section, row.sha256)
        data, origin = _partial(data, att)
        return b"BODY[" + att.section.spec() + b"]" + origin + b" " + responses.literal(data)
    raw, parts = row.raw or b"", row.parts or {}
    if name == "RFC822":
        return b"RFC822 " + responses.literal(raw)
    if name in ("RFC822.HEADER", "RFC822.TEXT"):
        data = section_bytes(raw, parts, Section(text=name.split(".")[1])) or b""
        return name.encode() + b" " + responses.literal(data)
    assert att.section is not None
    if name == "BODY[]":
        data = section_bytes(raw, parts, att.section)
        label = b"BODY[" + att.section.spec() + b"]"
        if data is None:
            return label + b" NIL"
        data, origin = _partial(data, att)
        return label + origin + b" " + responses.literal(data)
    if name == "BINARY[]":
        data = binary_bytes(raw, parts, att.section)
        label = b"BINARY[" + att.section.spec() + b"]"
        if data is None:
            return label + b" NIL"
        data, origin = _partial(data, att)
        return label + origin + b" " + responses.literal(data, binary=b"\x00" in data)
    if name == "BINARY.SIZE":
        data = binary_bytes(raw, parts, att.section)
        return b"BINARY.SIZE[" + att.section.spec() + b"] %d" % len(data or b"")
    raise ValueError(name)


def sets_seen(att: FetchAtt) -> bool:
    """RFC 9051 §6.4.5: BODY[...] (not .PEEK), BINARY[...], RFC822 and RFC822.TEXT set \\Seen."""
    return (att.name in ("BODY[]", "BINARY[]") and not att.peek) or att.name in (
        "RFC822",
        "RFC822.TEXT",
    )


_HEADER_TEXTS = ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT")
_COLUMN_OF = {"ENVELOPE": "envelope", "BODY": "body", "BODYSTRUCTURE": "bodystructure"}


def columns(att: FetchAtt) -> set[str]:
    """What imapview.fetch_rows must read for this item (imapview.FETCH_COLUMNS)."""
    name = att.name
    if name in _COLUMN_OF:
        return {_COLUMN_OF[name]}
    if name == "INTERNALDATE":
        return {"internaldate"}
    if name == "RFC822.HEADER" or (
        name == "BODY[]"
        and att.section is not None
        and not att.section.part
        and att.section.text in _HEADER_TEXTS
    ):
        return {"header"}
    if needs_raw(att):
        return {"raw"}
    return set()


def needs_raw(att: FetchAtt) -> bool:
    return att.name in (
        "BODY[]",
        "BINARY[]",
        "BINARY.SIZE",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.TEXT",
    )


def needs_row(att: FetchAtt) -> bool:
    return att.name not in ("UID", "FLAGS", "MODSEQ")
