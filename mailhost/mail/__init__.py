"""Mail formats in pure Python: bytes in, values out.

This package never imports Django, opens sockets or touches the disk. The store calls
`parse.parse_message(raw)` exactly once per arriving message and keeps the result in database
rows; IMAP, POP3 and webmail then serve bodies by slicing the stored raw bytes with the offsets
recorded in `ParsedMessage.parts` (see `parse.find_section`).

Invariants:

- Parsers never raise on message content. Anything malformed degrades to the RFC 2045 §5.2
  default (text/plain; charset=us-ascii) or to application/octet-stream, never to an exception.
- Work is bounded: MIME nesting depth (`parse.MAX_DEPTH`), part count (`parse.MAX_PARTS`), and
  only a prefix of a body is decoded for the preview. Header decoders are iterative.
- Raw bytes are never rewritten. Offsets index the exact bytes given; IMAP strings built from
  header values are those bytes (only NUL, which IMAP cannot carry, is replaced; see imapfmt).
- `str` values meant for the database (subject, display names, preview...) are valid Unicode
  without NUL, C0 controls or lone surrogates, so PostgreSQL and JSON accept them.
"""

from .parse import ParsedMessage, SectionSpan, find_section, parse_message

__all__ = ["ParsedMessage", "SectionSpan", "find_section", "parse_message"]
