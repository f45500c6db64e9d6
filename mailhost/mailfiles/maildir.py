"""Maildir and Maildir++ (as Courier and Dovecot keep them): read and write.

- Layout: `root/{cur,new,tmp}` is INBOX; `root/.Sent` and `root/.Lists.python` are `Sent`
  and `Lists/python`. Maildir++ uses `.` as the delimiter and, like Dovecot, names in
  modified UTF-7 (RFC 3501 §5.1.3); a `.` inside a name level is written `&AC4-`.
- File names are `unique:2,FLAGS` (cr.yp.to/proto/maildir.html): D Draft, F Flagged,
  P Passed (`$Forwarded`), R Replied (`\\Answered`), S Seen, T Trashed (`\\Deleted`); a-z are
  keywords, numbered in the folder's `dovecot-keywords` file (`0 name` is `a`).
- `new/` holds mail no client has looked at: no flags unless its name has them.
- INTERNALDATE is the file's mtime, as Dovecot keeps it; when the mtime is unusable (0),
  the leading timestamp of the name (`1700000000.M123P45.host`).
- The writer puts every message in `cur/` with its flags (written to `tmp/`, then renamed),
  names it `<time>.M<usec>P<pid>Q<n>.<host>,S=<size>:2,<flags>` and sets its mtime to the
  INTERNALDATE. A folder has 26 keyword letters: more keywords in one folder are dropped
  (`MaildirWriter.dropped_keywords` counts them).
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..mail import utf7
from . import Folder, Problem, Record

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
KEYWORDS_FILE = "dovecot-keywords"
LETTER_FLAGS = {
    "D": "\\Draft",
    "F": "\\Flagged",
    "P": "$Forwarded",
    "R": "\\Answered",
    "S": "\\Seen",
    "T": "\\Deleted",
}
FLAG_LETTERS = {flag.lower(): letter for letter, flag in LETTER_FLAGS.items()}
INFO_SEPARATORS = (":2,", "!2,")  # "!" where ":" is not allowed in file names
MAX_KEYWORD_LETTERS = 26


# Modified UTF-7 (RFC 3501 §5.1.3) ---------------------------------------------------------


def mutf7_encode(text: str, also: str = "") -> str:
    """Modified UTF-7 (RFC 3501 §5.1.3) as Dovecot writes Maildir++ folder names."""
    return utf7.encode(text, also=also)


def mutf7_decode(text: str) -> str:
    """Decode modified UTF-7; raise ValueError when `text` is not valid."""
    return utf7.decode(text, strict=False)


def folder_name(dirname: str) -> str:
    """`.Lists.python` (a Maildir++ directory) -> `Lists/python`."""
    levels = dirname.removeprefix(".").split(".")
    decoded = []
    for level in levels:
        try:
            decoded.append(mutf7_decode(level))
        except ValueError:
            decoded.append(level)  # Dovecot with UTF-8 names, or another writer: as it is
    return "/".join(decoded)


def folder_dirname(mailbox: str) -> str:
    """`Lists/python` -> `.Lists.python`; INBOX is the root itself (``)."""
    if mailbox == "INBOX":
        return ""
    return "." + ".".join(mutf7_encode(level, also=".") for level in mailbox.split("/"))


# Flags in file names ------------------------------------------------------------------


def info_letters(filename: str) -> str:
    """The flag letters of `unique:2,FRS` (`` when the name has no info part)."""
    for sep in INFO_SEPARATORS:
        at = filename.rfind(sep)
        if at >= 0:
            info = filename[at + len(sep) :]
            end = 0
            while end < len(info) and info[end].isascii() and info[end].isalpha():
                end += 1
            return info[:end]
    return ""


def flags_from_name(filename: str, keywords: dict[str, str]) -> tuple[str, ...]:
    """IMAP flags from a file name; `keywords` maps letters a-z to keyword names."""
    flags = set()
    for letter in info_letters(filename):
        if letter in LETTER_FLAGS:
            flags.add(LETTER_FLAGS[letter])
        elif letter in keywords:
            flags.add(keywords[letter])
    return tuple(sorted(flags))


def read_keywords(path: Path) -> dict[str, str]:
    """Parse a dovecot-keywords file (`0 $Label1` per line) into {letter: keyword}."""
    try:
        text = path.read_text("utf-8", "replace")
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        number, _, name = line.strip().partition(" ")
        if number.isdigit() and int(number) < MAX_KEYWORD_LETTERS and name.strip():
            out[chr(ord("a") + int(number))] = name.strip()
    return out


def name_timestamp(filename: str) -> datetime | None:
    """The leading `1700000000` of a Maildir name as a datetime, if it has one."""
    head = filename.split(".", 1)[0]
    if head.isdigit() and 0 < int(head) < 2**33:
        return EPOCH + timedelta(seconds=int(head))
    return None


# Reading ------------------------------------------------------------------------------


def _has_mail_dirs(path: Path) -> bool:
    return (path / "cur").is_dir() or (path / "new").is_dir()


def is_maildir(path: Path) -> bool:
    """A Maildir has cur/ or new/, at the root or (Maildir++ only) in a `.Name` folder."""
    if _has_mail_dirs(path):
        return True
    try:
        children = list(os.scandir(path))
    except OSError:
        return False
    return any(c.name.startswith(".") and c.is_dir() and _has_mail_dirs(Path(c)) for c in children)


def folders(root: Path) -> list[tuple[str, Path]]:
    """Every (mailbox name, directory) of a Maildir++ tree: INBOX first, then by name."""
    found = [("INBOX", root)] if _has_mail_dirs(root) else []
    subdirs = sorted(
        c.name
        for c in os.scandir(root)
        if c.name.startswith(".") and c.name not in (".", "..") and c.is_dir()
    )
    found.extend(
        (folder_name(name), root / name) for name in subdirs if _has_mail_dirs(root / name)
    )
    return found


@dataclass(frozen=True)
class _Entry:
    internaldate: datetime | None
    name: str
    path: Path
    size: int


def _entries(mailbox: str, directory: Path) -> Iterator[_Entry | Problem]:
    """The message files in new/ and cur/, in INTERNALDATE order, or what is wrong with them."""
    entries: list[_Entry] = []
    for sub in ("new", "cur"):
        try:
            names = os.listdir(directory / sub)
        except FileNotFoundError:
            continue
        except OSError as e:
            yield Problem(mailbox, str(directory / sub), f"cannot list: {e.strerror or e}")
            continue
        for name in names:
            if name.startswith("."):
                continue
            path = directory / sub / name
            try:
                st = path.stat()
            except OSError as e:
                yield Problem(mailbox, str(path), f"cannot stat: {e.strerror or e}")
                continue
            if stat.S_ISDIR(st.st_mode):
                yield Problem(mailbox, str(path), "is a directory, not a message file")
                continue
            if not stat.S_ISREG(st.st_mode):
                yield Problem(mailbox, str(path), "is not a regular file")
                continue
            when = None
            if st.st_mtime_ns > 0:
                when = EPOCH + timedelta(microseconds=st.st_mtime_ns // 1000)
            entries.append(_Entry(when or name_timestamp(name), name, path, st.st_size))
    entries.sort(key=lambda e: (e.internaldate or EPOCH, e.name))
    yield from entries


def read_maildir(root: Path, *, max_size: int | None = None) -> Iterator[Folder | Record | Problem]:
    """Yield each folder of the Maildir++ tree at `root` and its messages."""
    for mailbox, directory in folders(root):
        yield Folder(mailbox)
        keywords = read_keywords(directory / KEYWORDS_FILE)
        for entry in _entries(mailbox, directory):
            if isinstance(entry, Problem):
                yield entry
                continue
            source = str(entry.path)
            if max_size is not None and entry.size > max_size:
                yield Problem(mailbox, source, f"message is larger than {max_size} bytes")
                continue
            try:
                raw = entry.path.read_bytes()
            except OSError as e:
                yield Problem(mailbox, source, f"cannot read: {e.strerror or e}")
                continue
            if not raw:
                yield Problem(mailbox, source, "empty file")
                continue
            flags = flags_from_name(entry.name, keywords)
            yield Record(mailbox, raw, flags, entry.internaldate, source)


def count_maildir(root: Path) -> int:
    n = 0
    for _, directory in folders(root):
        for sub in ("new", "cur"):
            try:
                n += sum(1 for name in os.listdir(directory / sub) if not name.startswith("."))
            except OSError:
                pass
    return n


# Writing ------------------------------------------------------------------------------


def _hostname() -> str:
    # The Maildir spec's escapes for the two characters a unique name cannot hold.
    return (socket.gethostname() or "localhost").replace("/", "\\057").replace(":", "\\072")


class MaildirWriter:
    """Write mailboxes into a Maildir++ tree at `root` (Dovecot reads it as it is)."""

    def __init__(self, root: Path, hostname: str | None = None):
        self.root = root
        self.dropped_keywords = 0  # keyword flags beyond a folder's 26 letters
        self._host = hostname or _hostname()
        self._pid = os.getpid()
        self._seq = 0
        self._dirs: dict[str, Path] = {}
        self._letters: dict[str, dict[str, str]] = {}  # mailbox -> {keyword: letter}

    def folder(self, mailbox: str) -> Path:
        """Create the folder of `mailbox` (with cur/ new/ tmp/) and return its directory."""
        if mailbox in self._dirs:
            return self._dirs[mailbox]
        directory = self.root / folder_dirname(mailbox) if mailbox != "INBOX" else self.root
        for sub in ("cur", "new", "tmp"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        if directory != self.root:
            (directory / "maildirfolder").touch()  # Maildir++: "this is a subfolder"
        self._dirs[mailbox] = directory
        self._letters[mailbox] = {}
        return directory

    def letters(self, mailbox: str, flags: Iterable[str]) -> str:
        """The info letters for `flags` in `mailbox`, assigning keyword letters as needed."""
        assigned = self._letters[mailbox]
        out = set()
        for flag in flags:
            letter = FLAG_LETTERS.get(flag.lower())
            if letter:
                out.add(letter)
                continue
            if flag.startswith("\\"):
                continue  # \Recent and unknown system flags have no letter
            if flag not in assigned:
                if len(assigned) >= MAX_KEYWORD_LETTERS:
                    self.dropped_keywords += 1
                    continue
                assigned[flag] = chr(ord("a") + len(assigned))
            out.add(assigned[flag])
        return "".join(sorted(out))  # the spec wants them in ASCII order

    def write(
        self, mailbox: str, raw: bytes, flags: Iterable[str], internaldate: datetime | None
    ) -> Path:
        """Write one message into cur/ and return its path."""
        directory = self.folder(mailbox)
        when = (internaldate or datetime.now(UTC)).astimezone(UTC)
        delta = when - EPOCH
        seconds = delta.days * 86400 + delta.seconds
        self._seq += 1
        unique = f"{seconds}.M{delta.microseconds}P{self._pid}Q{self._seq}.{self._host}"
        name = f"{unique},S={len(raw)}:2,{self.letters(mailbox, flags)}"
        tmp = directory / "tmp" / unique
        with open(tmp, "xb") as f:
            f.write(raw)
        ns = seconds * 10**9 + delta.microseconds * 1000
        os.utime(tmp, ns=(ns, ns))
        target = directory / "cur" / name
        os.rename(tmp, target)
        return target

    def close(self) -> None:
        """Write each folder's dovecot-keywords file."""
        for mailbox, assigned in self._letters.items():
            if assigned:
                lines = [f"{ord(letter) - ord('a')} {kw}\n" for kw, letter in assigned.items()]
                (self._dirs[mailbox] / KEYWORDS_FILE).write_text("".join(lines), "utf-8")

    def __enter__(self) -> MaildirWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
