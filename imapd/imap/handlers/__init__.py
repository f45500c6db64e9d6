"""Command handlers: one coroutine per command, registered in session.HANDLERS on import."""

from . import auth, idle, mailboxes, messages, search  # noqa: F401
