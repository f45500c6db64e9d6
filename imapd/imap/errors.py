"""What a handler raises to refuse a command; the session turns it into the reply."""

from __future__ import annotations


class ImapError(Exception):
    status = b"NO"

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


class No(ImapError):
    """A valid request that was refused: tagged NO [code] text."""

    status = b"NO"


class Bad(ImapError):
    """A syntax or protocol-state error: tagged BAD."""

    status = b"BAD"


class Bye(ImapError):
    """End the connection after an untagged BYE."""

    status = b"BYE"


class Answered(Exception):
    """The handler already sent its tagged reply (STARTTLS, COMPRESS, IDLE end)."""
