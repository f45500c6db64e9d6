"""mbox files (RFC 4155): read mboxo and mboxrd, write mboxrd.

Format notes, and the choices made here:
- A message starts at a line that begins with `From ` (the postmark). Every such line is a
  separator, as RFC 4155 and mboxrd define it; writers must quote `From ` lines in bodies.
  MimeKit's parser does the same (its `unmunged.mbox.txt` test expects 4 messages).
- The blank line that writers put before the next postmark is not part of the message:
  when a message's text ends in a blank line, that one line break is dropped. Files with no
  blank line between messages (mimekit `simple.mbox.txt`) keep their last line break.
- mboxrd quotes `>*From ` by adding one `>` and the reader removes one: exact both ways.
  mboxo only quotes `From `, so `>From ` in a body is ambiguous: mboxo files are read with
  no unquoting at all (`mbox_format="mboxo"`). Nothing in an mbox says which of the two
  wrote it, so the caller chooses; mboxrd by default.
- mbox cannot hold a message whose last byte is not a line break: the writer adds `\\n`
  and says so (`MboxWriter.added_newlines`). Maildir has no such limit.
- The postmark date (asctime, UTC when no zone is given) is the INTERNALDATE; without one,
  the Date: header is used.
- Flags come from the headers mutt, Dovecot, Thunderbird and Pine write: `Status:` (R),
  `X-Status:` (A F T D), `X-Keywords:` and `X-Mozilla-Status:`. Those headers stay in the
  bytes; the writer adds none, so the bytes round-trip exactly (flags do not; use Maildir).
- A folder tree maps to mailbox names: `Lists/python.mbox` or `Lists.sbd/python` (Thunderbird)
  is `Lists/python`; `X.mbox/mbox` (Apple Mail) is `X`.
"""

from __future__ import annotations

import email.utils
import os
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO

from . import Folder, Problem, Record

FORMATS = ("mboxrd", "mboxo")
BOM = b"\xef\xbb\xbf"
POSTMARK = b"From "
LINE_LIMIT = 1 << 20  # read lines in pieces of at most this many bytes
MBOX_SUFFIX = ".mbox"
# Files a mail client keeps next to its mbox files: skipped without a word.
IGNORED_NAMES = {"Info.plist", "table_of_contents", ".DS_Store", "msgFilterRules.dat"}
IGNORED_SUFFIXES = (".msf", ".lock", ".idx", ".index", ".toc")

_QUOTED = re.compile(rb">+From ")
_NEEDS_QUOTE = re.compile(rb"^(>*From )", re.MULTILINE)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# asctime as in `From sender Thu Sep 26 10:18:40 2025`, with the variants seen in the wild:
# no seconds, a zone name or offset before the year, an offset after it, "remote from x".
_POSTMARK_DATE = re.compile(
    rb"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),?\s+"
    rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+(\d{1,2})\s+"
    rb"(\d{1,2}):(\d\d)(?::(\d\d))?\s+"
    rb"(?:([A-Z]{1,5}|[+-]\d{4})\s+)?(\d{4})(?:\s+([+-]\d{4}))?"
)
_STATUS_FLAGS = {
    "R": "\\Seen",
    "A": "\\Answered",
    "F": "\\Flagged",
    "D": "\\Deleted",
    "T": "\\Draft",
}
# Thunderbird's X-Mozilla-Status bits (nsMsgMessageFlags).
_MOZILLA_FLAGS = (
    (0x0001, "\\Seen"),
    (0x0002, "\\Answered"),
    (0x0004, "\\Flagged"),
    (0x0008, "\\Deleted"),
    (0x1000, "$Forwarded"),
)
_FLAG_HEADERS = (b"status:", b"x-status:", b"x-keywords:", b"x-mozilla-status:", b"date:")


# Postmark lines -------------------------------------------------------------------------


def postmark_date(line: bytes) -> datetime | None:
    """Return the date of a `From sender date` line, or None when it has none."""
    m = _POSTMARK_DATE.search(line, 5)
    if m is None:
        return None
    mon, day, hour, minute, second, zone1, year, zone2 = m.groups()
    try:
        when = datetime(
            int(year),
            _MONTHS.index(mon.decode()) + 1,
            int(day),
            int(hour),
            int(minute),
            int(second or 0),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    offset = zone2 or (zone1 if zone1 and zone1[:1] in b"+-" else None)
    if offset:
        sign = -1 if offset[:1] == b"-" else 1
        delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
        when = when.replace(tzinfo=timezone(sign * delta))
    return when


def postmark(sender: str, when: datetime | None) -> bytes:
    """Return `From sender asctime\\n`, the date in UTC (`From MAILER-DAEMON ...` by default)."""
    sender = "".join(ch for ch in sender if ch > " " and ch != "\x7f") or "MAILER-DAEMON"
    when = (when or datetime.now(UTC)).astimezone(UTC)
    date = (
        f"{_DAYS[when.weekday()]} {_MONTHS[when.month - 1]} {when.day:2d} "
        f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} {when.year}"
    )
    return f"From {sender} {date}\n".encode("utf-8", "replace")


def envelope_sender(raw: bytes) -> str:
    """The address for the postmark: Return-Path, else From, else MAILER-DAEMON."""
    for name in (b"return-path:", b"from:"):
        value = header_value(raw, name)
        if value:
            address = email.utils.parseaddr(value.decode("utf-8", "replace"))[1]
            if address and " " not in address:
                return address
    return "MAILER-DAEMON"


def header_value(raw: bytes, name: bytes) -> bytes | None:
    """The unfolded value of the first `name` header (lower case, with the colon)."""
    found: list[bytes] | None = None
    for line in _header_lines(raw):
        if found is not None:
            if line[:1] in (b" ", b"\t"):
                found.append(line.strip())
                continue
            break
        if line[: len(name)].lower() == name:
            found = [line[len(name) :].strip()]
    return b" ".join(found) if found is not None else None


def _header_lines(raw: bytes) -> Iterator[bytes]:
    start = 0
    while start < len(raw):
        end = raw.find(b"\n", start)
        end = len(raw) if end < 0 else end
        line = raw[start:end]
        if line in (b"", b"\r"):
            return
        yield line
        start = end + 1


# Flags in headers ----------------------------------------------------------------------


def header_flags(headers: dict[bytes, bytes]) -> tuple[str, ...]:
    """IMAP flags from Status:, X-Status:, X-Keywords: and X-Mozilla-Status: values."""
    flags: set[str] = set()
    for name in (b"status:", b"x-status:"):
        for letter in headers.get(name, b"").decode("ascii", "replace"):
            if letter in _STATUS_FLAGS:
                flags.add(_STATUS_FLAGS[letter])
    mozilla = headers.get(b"x-mozilla-status:", b"").strip()
    if mozilla:
        try:
            bits = int(mozilla[:4], 16)
        except ValueError:
            bits = 0
        flags.update(name for bit, name in _MOZILLA_FLAGS if bits & bit)
    for keyword in re.split(rb"[\s,]+", headers.get(b"x-keywords:", b"")):
        text = keyword.decode("ascii", "replace")
        if text and text.isprintable() and not any(ch in text for ch in '(){%*"\\]'):
            flags.add(text)
    return tuple(sorted(flags))


def _date_header(value: bytes | None) -> datetime | None:
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value.decode("ascii", "replace"))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# Reading -------------------------------------------------------------------------------


def is_mbox(path: Path) -> bool:
    """Does the file start like an mbox (a postmark, after an optional BOM) or is it empty?"""
    with open(path, "rb") as f:
        head = f.read(len(BOM) + len(POSTMARK)).removeprefix(BOM)
    return not head or head.startswith(POSTMARK)


def read_mbox(
    path: Path,
    folder: str = "INBOX",
    *,
    mbox_format: str = "mboxrd",
    max_size: int | None = None,
) -> Iterator[Folder | Record | Problem]:
    """Yield Folder(folder), then a Record per message of the mbox file at `path`."""
    if mbox_format not in FORMATS:
        raise ValueError(f"mbox format must be one of {FORMATS}")
    try:
        f = open(path, "rb")
    except OSError as e:
        yield Problem(folder, str(path), f"cannot open: {e.strerror or e}")
        return
    with f:
        try:
            head = f.read(len(BOM) + len(POSTMARK))
        except OSError as e:
            yield Problem(folder, str(path), f"cannot read: {e.strerror or e}")
            return
        if not head:
            yield Folder(folder)  # an empty mbox is an empty mailbox
            return
        if head.startswith(BOM):
            head = head[len(BOM) :]
            f.seek(len(BOM))
        else:
            f.seek(0)
        if not head.startswith(POSTMARK[: len(head)]) or len(head) < len(POSTMARK):
            yield Problem(folder, str(path), "not an mbox file: it does not start with 'From '")
            return
        yield Folder(folder)
        yield from _messages(f, path, folder, mbox_format == "mboxrd", max_size)


def _messages(
    f: BinaryIO, path: Path, folder: str, unquote_rd: bool, max_size: int | None
) -> Iterator[Record | Problem]:
    lines: list[bytes] = []
    size = 0
    start_line = 0
    date: datetime | None = None
    headers: dict[bytes, bytes] = {}
    in_headers = True
    too_big = False
    last_name: bytes | None = None

    def finish(at_eof: bool) -> Record | Problem:
        source = f"{path}:{start_line}"
        if too_big:
            return Problem(folder, source, f"message is larger than {max_size} bytes")
        raw = b"".join(lines)
        if at_eof and raw and not raw.endswith(b"\n"):
            return Problem(folder, source, "truncated: the file ends inside this message")
        if raw.endswith(b"\n\n"):
            raw = raw[:-1]
        elif raw.endswith(b"\n\r\n"):
            raw = raw[:-2]
        if not raw.strip():
            return Problem(folder, source, "empty message")
        flags = header_flags(headers)
        return Record(folder, raw, flags, date or _date_header(headers.get(b"date:")), source)

    lineno = 0
    at_line_start = True  # False after a piece of a line longer than LINE_LIMIT
    try:
        for line in iter(lambda: f.readline(LINE_LIMIT), b""):
            starts_line, at_line_start = at_line_start, line.endswith(b"\n")
            if starts_line:  # (the rest of a very long line is body bytes, nothing more)
                lineno += 1
                if line.startswith(POSTMARK):
                    if lineno > 1:
                        yield finish(False)
                    lines, size, start_line, too_big = [], 0, lineno, False
                    date, headers, in_headers, last_name = postmark_date(line), {}, True, None
                    continue
                if unquote_rd and line[:1] == b">" and _QUOTED.match(line):
                    line = line[1:]
                if in_headers:
                    in_headers, last_name = _header_line(line, headers, last_name)
            if too_big:
                continue
            size += len(line)
            if max_size is not None and size > max_size + 2:  # + the separator line break
                too_big, lines = True, []
                continue
            lines.append(line)
    except OSError as e:
        yield Problem(folder, f"{path}:{lineno}", f"read error, rest of file skipped: {e}")
        return
    if lineno:
        yield finish(True)


def _header_line(
    line: bytes, headers: dict[bytes, bytes], last_name: bytes | None
) -> tuple[bool, bytes | None]:
    """Note the flag and date headers; return (still in the header block, field to unfold)."""
    if line in (b"\n", b"\r\n"):
        return False, None
    if line[:1] in (b" ", b"\t"):
        if last_name is not None:
            headers[last_name] += b" " + line.strip()
        return True, last_name
    lower = line[:18].lower()
    for name in _FLAG_HEADERS:
        if lower.startswith(name) and name not in headers:
            headers[name] = line[len(name) :].strip()
            return True, name
    return True, None


def count_mbox(path: Path) -> int:
    """Count the postmark lines without holding more than a chunk in memory."""
    n, tail = 0, b"\n"
    try:
        with open(path, "rb") as f:
            chunk = f.read(1 << 20)
            chunk = chunk.removeprefix(BOM)
            while chunk:
                block = tail + chunk
                n += block.count(b"\nFrom ")
                tail = block[-5:]
                chunk = f.read(1 << 20)
    except OSError:
        return 0
    return n


# Folder trees --------------------------------------------------------------------------


def _ignored(name: str) -> bool:
    return name.startswith(".") or name in IGNORED_NAMES or name.endswith(IGNORED_SUFFIXES)


def tree_files(root: Path) -> Iterator[tuple[str, Path]]:
    """Yield (mailbox name, path) for every candidate mbox file under `root`, sorted."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not _ignored(d))
        rel = Path(dirpath).relative_to(root).parts
        levels = [_unescape(_strip(part, (".sbd", MBOX_SUFFIX))) for part in rel]
        for name in sorted(filenames):
            if _ignored(name):
                continue
            if name == "mbox" and rel and rel[-1].endswith(MBOX_SUFFIX):
                mailbox = "/".join(levels)  # Apple Mail: Name.mbox/mbox
            else:
                mailbox = "/".join([*levels, _unescape(_strip(name, (MBOX_SUFFIX,)))])
            yield mailbox, Path(dirpath) / name


def _strip(name: str, suffixes: Iterable[str]) -> str:
    for suffix in suffixes:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


_ESCAPED = re.compile(r"%(25|2[Ee])")


def _unescape(level: str) -> str:
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), level) if "%" in level else level


def _escape(level: str) -> str:
    """A mailbox name level as a file or directory name that reads back as the same level.

    `%` becomes `%25`; a leading `.` (hidden files are skipped) and the `.` of a trailing
    `.mbox` or `.sbd` (stripped on import) become `%2E`.
    """
    level = level.replace("%", "%25")
    if level.startswith("."):
        level = "%2E" + level[1:]
    for suffix in (MBOX_SUFFIX, ".sbd"):
        if level.endswith(suffix):
            level = level[: -len(suffix)] + "%2E" + suffix[1:]
    return level


def read_mbox_tree(
    root: Path, *, mbox_format: str = "mboxrd", max_size: int | None = None
) -> Iterator[Folder | Record | Problem]:
    """Yield the mailboxes of a folder of mbox files, one after the other."""
    for mailbox, path in tree_files(root):
        if not path.is_file():
            yield Problem(mailbox, str(path), "not a regular file")
            continue
        yield from read_mbox(path, mailbox, mbox_format=mbox_format, max_size=max_size)


def count_mbox_tree(root: Path) -> int:
    return sum(count_mbox(path) for _, path in tree_files(root))


# Writing -------------------------------------------------------------------------------


def quote_from(raw: bytes) -> bytes:
    """mboxrd: add one `>` to every line matching `>*From `."""
    if b"From " not in raw:
        return raw
    return _NEEDS_QUOTE.sub(rb">\1", raw)


def unquote_from(raw: bytes) -> bytes:
    """mboxrd: remove one `>` from every line matching `>+From ` (the inverse of quote_from)."""
    if b">From " not in raw:
        return raw
    return re.sub(rb"(?m)^>(>*From )", rb"\1", raw)


def mailbox_path(root: Path, mailbox: str) -> Path:
    """`Lists/python` -> root/Lists/python.mbox (its parent's own messages: root/Lists.mbox)."""
    levels = [_escape(level) for level in mailbox.split("/")]
    return root.joinpath(*levels[:-1], levels[-1] + MBOX_SUFFIX)


class MboxWriter:
    """Write mailboxes as a tree of mboxrd files under `root`, one file per mailbox."""

    def __init__(self, root: Path):
        self.root = root
        self.added_newlines = 0  # messages that did not end in a line break
        self._file: BinaryIO | None = None
        self._mailbox: str | None = None

    def folder(self, mailbox: str) -> Path:
        """Start the file of `mailbox` (empty until messages come)."""
        self.close()
        path = mailbox_path(self.root, mailbox)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "xb")
        self._mailbox = mailbox
        return path

    def write(self, mailbox: str, raw: bytes, flags: Iterable[str], internaldate) -> None:
        """Append one message: postmark, mboxrd-quoted bytes, line break, blank line."""
        if mailbox != self._mailbox:
            self.folder(mailbox)
        assert self._file is not None
        self._file.write(postmark(envelope_sender(raw), internaldate))
        self._file.write(quote_from(raw))
        if not raw.endswith(b"\n"):
            self._file.write(b"\n")
            self.added_newlines += 1
        self._file.write(b"\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._mailbox = None

    def __enter__(self) -> MboxWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
