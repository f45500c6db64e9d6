"""Parse one POP3 command line (bytes) into a command value. No sockets, no Django.

RFC 1939 §3: a keyword of three or four characters, case-insensitive, then arguments
separated by single spaces; RFC 2449 §4: a command line is at most 255 octets with its
CRLF (the caller reads bounded lines; `MAX_LINE` is the limit it uses).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_LINE = 255  # RFC 2449 §4, CRLF included
MAX_SASL_LINE = 4096  # RFC 5034 §4: SASL responses are not bound by the command limit
# RFC 1939 §3 says arguments are at most 40 characters; addresses are often longer, so
# only the line limit bounds them.
MAX_NUMBER = 10**9  # message numbers and TOP line counts fit in a Python int anyway


class ParseError(ValueError):
    """The line is not a well-formed command; `str(e)` is the text for the -ERR reply."""


@dataclass(frozen=True)
class Command:
    @property
    def name(self) -> str:
        return type(self).__name__.upper()


@dataclass(frozen=True)
class User(Command):
    user: str


@dataclass(frozen=True)
class Pass(Command):
    password: str


@dataclass(frozen=True)
class Apop(Command):
    user: str
    digest: str


@dataclass(frozen=True)
class Auth(Command):
    mechanism: str | None  # None: "AUTH" alone, which lists the mechanisms
    initial: str | None = None  # base64, or "=" for an empty response (RFC 5034 §4)


@dataclass(frozen=True)
class Capa(Command):
    pass


@dataclass(frozen=True)
class Stls(Command):
    pass


@dataclass(frozen=True)
class Quit(Command):
    pass


@dataclass(frozen=True)
class Stat(Command):
    pass


@dataclass(frozen=True)
class List(Command):
    msg: int | None = None


@dataclass(frozen=True)
class Retr(Command):
    msg: int


@dataclass(frozen=True)
class Dele(Command):
    msg: int


@dataclass(frozen=True)
class Noop(Command):
    pass


@dataclass(frozen=True)
class Rset(Command):
    pass


@dataclass(frozen=True)
class Top(Command):
    msg: int
    lines: int


@dataclass(frozen=True)
class Uidl(Command):
    msg: int | None = None


def _number(text: str, what: str = "message number") -> int:
    # Digits only: no sign, no spaces, no "1e3"; RFC 1939 numbers are decimal.
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        raise ParseError(f"Invalid {what}: {text[:20]!r}")
    value = int(text)
    if value > MAX_NUMBER:
        raise ParseError(f"Invalid {what}: too large")
    return value


def _msg(text: str) -> int:
    value = _number(text)
    if value < 1:
        raise ParseError("Message numbers start at 1")
    return value


def _args(args: list[str], low: int, high: int, keyword: str) -> list[str]:
    if not low <= len(args) <= high:
        if low == high:
            raise ParseError(f"{keyword} takes {low} argument{'s' if low != 1 else ''}")
        raise ParseError(f"{keyword} takes {low} to {high} arguments")
    for a in args:
        if not a:
            raise ParseError("Arguments are separated by one space")
    return args


def _no_args(cls: type[Command]):
    def build(args: list[str]) -> Command:
        _args(args, 0, 0, cls.__name__.upper())
        return cls()

    return build


def _optional_msg(cls: type[Command]):
    def build(args: list[str]) -> Command:
        args = _args(args, 0, 1, cls.__name__.upper())
        return cls(_msg(args[0])) if args else cls()

    return build


def _one_msg(cls: type[Command]):
    def build(args: list[str]) -> Command:
        return cls(_msg(_args(args, 1, 1, cls.__name__.upper())[0]))

    return build


def _top(args: list[str]) -> Command:
    msg, lines = _args(args, 2, 2, "TOP")
    return Top(_msg(msg), _number(lines, "line count"))


def _user(args: list[str]) -> Command:
    return User(_args(args, 1, 1, "USER")[0])


def _apop(args: list[str]) -> Command:
    name, digest = _args(args, 2, 2, "APOP")
    return Apop(name, digest)


def _auth(args: list[str]) -> Command:
    if not args:
        return Auth(None)
    if len(args) > 2 or not all(args):
        raise ParseError("AUTH takes a mechanism and an optional initial response")
    return Auth(args[0].upper(), args[1] if len(args) == 2 else None)


BUILDERS = {
    "USER": _user,
    "APOP": _apop,
    "AUTH": _auth,
    "CAPA": _no_args(Capa),
    "STLS": _no_args(Stls),
    "QUIT": _no_args(Quit),
    "STAT": _no_args(Stat),
    "LIST": _optional_msg(List),
    "RETR": _one_msg(Retr),
    "DELE": _one_msg(Dele),
    "NOOP": _no_args(Noop),
    "RSET": _no_args(Rset),
    "TOP": _top,
    "UIDL": _optional_msg(Uidl),
}


def strip_eol(line: bytes) -> bytes:
    """Drop the CRLF (or a bare LF, which lenient clients send) that ends a line."""
    if line.endswith(b"\r\n"):
        return line[:-2]
    if line.endswith(b"\n"):
        return line[:-1]
    return line


def parse_command(line: bytes) -> Command:
    """Return the command on `line` (with or without its line ending), or raise ParseError."""
    line = strip_eol(line)
    if not line:
        raise ParseError("Empty command")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParseError("Commands must be UTF-8") from e
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise ParseError("Control characters are not allowed in commands")
    keyword, _, rest = text.partition(" ")
    keyword = keyword.upper()
    if keyword == "PASS":
        # RFC 1939 §7: PASS has one argument, and spaces in it belong to the password.
        if not rest:
            raise ParseError("PASS takes a password")
        return Pass(rest)
    build = BUILDERS.get(keyword)
    if build is None:
        if len(keyword) > 4 or not keyword.isascii() or not keyword.isalpha():
            raise ParseError("Unknown command")
        raise ParseError(f"Unknown command {keyword}")
    args = rest.split(" ") if rest else []
    return build(args)
