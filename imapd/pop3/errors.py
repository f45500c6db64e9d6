"""POP3 errors: each knows its -ERR reply, with an RFC 2449 §8 / RFC 3206 response code."""

from __future__ import annotations

from django.db import DatabaseError

from mailhost.store import errors as store_errors

# Response codes (RFC 2449 §8.1 IN-USE and LOGIN-DELAY, RFC 3206 SYS/TEMP, SYS/PERM, AUTH).
IN_USE = "IN-USE"
LOGIN_DELAY = "LOGIN-DELAY"
SYS_TEMP = "SYS/TEMP"
SYS_PERM = "SYS/PERM"
AUTH = "AUTH"


class Err(Exception):
    """Answer the command with -ERR; the session goes on unless `close` is set."""

    def __init__(self, text: str, code: str | None = None, *, close: bool = False) -> None:
        super().__init__(text)
        self.text, self.code, self.close = text, code, close

    def reply(self) -> bytes:
        code = f"[{self.code}] " if self.code else ""
        return f"-ERR {code}{self.text}\r\n".encode()


# One table for store errors (STYLE §4). A message or the INBOX gone is permanent for this
# session; the database being unreachable or busy is temporary.
STORE_ERRORS: list[tuple[type[BaseException], Err]] = [
    (store_errors.MailboxNotFound, Err("The maildrop is not available", SYS_PERM)),
    (store_errors.AccountNotFound, Err("The account is not available", SYS_PERM)),
    (FileNotFoundError, Err("That message was removed by another session", SYS_PERM)),
    (DatabaseError, Err("The mail store is busy; try again later", SYS_TEMP)),
]


def from_exception(e: BaseException) -> Err | None:
    """The reply for a known store or database error, or None for a bug."""
    for cls, err in STORE_ERRORS:
        if isinstance(e, cls):
            return err
    return None
