"""Cursors for the store's hand-written hot statements (sql.py, imapview.py, the search
fast path): the driver's own cursor on Django's connection, without Django's wrapper.

On PostgreSQL each statement is prepared (server-side binding, `prepare=True`): the server
parses and plans it once per connection instead of at every call, which halves its CPU
for a three-table FETCH read (bench/README.md: 245 -> 105 µs a query). Django's own
cursors bind parameters on the client, so the server plans every query afresh. On SQLite
the statement's `%s` placeholders become `?` once per statement text (Django's wrapper
does it with a regular expression at every call).

The statements run on the same connection, in the same transaction as the ORM's, and
database errors come out as Django's (`django.db.IntegrityError` ...), as from
`connection.cursor()`. While Django logs queries (DEBUG, or a test that counts them) they
go through Django's cursor instead, so the log stays complete.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections


class _Wrapped:
    """The DB-API calls the store uses, passed to the driver's cursor."""

    __slots__ = ("cursor",)

    def __init__(self, cursor) -> None:
        self.cursor = cursor

    def fetchall(self) -> list[tuple]:
        return self.cursor.fetchall()

    def fetchone(self) -> tuple | None:
        return self.cursor.fetchone()

    @property
    def rowcount(self) -> int:
        return self.cursor.rowcount


class _Prepared(_Wrapped):
    """A psycopg cursor whose statements are prepared on the server."""

    __slots__ = ()

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        self.cursor.execute(statement, params, prepare=True)


class _Qmark(_Wrapped):
    """A sqlite3 cursor that takes Django's `%s` placeholders."""

    __slots__ = ()

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        self.cursor.execute(_qmark(statement), params)


_PLACEHOLDER = re.compile(r"(?<!%)%s")


@functools.lru_cache(maxsize=1024)
def _qmark(statement: str) -> str:
    return _PLACEHOLDER.sub("?", statement).replace("%%", "%")


@contextmanager
def cursor() -> Iterator[_Prepared | _Qmark | Any]:
    """A cursor for the store's own SQL (with `%s` placeholders), closed afterwards.

    BUZON_DB_PREPARE=false, a database other than SQLite and PostgreSQL, or a connection
    that logs its queries give Django's `connection.cursor()` instead."""
    conn = connections[DEFAULT_DB_ALIAS]  # one look-up: each `connection.x` costs one
    vendor = conn.vendor
    if (
        not settings.BUZON_DB_PREPARE
        or vendor not in ("postgresql", "sqlite")
        or conn.queries_logged
    ):
        with conn.cursor() as django_cursor:
            yield django_cursor
        return
    if conn.connection is None:
        conn.ensure_connection()
    conn.validate_no_broken_transaction()
    with conn.wrap_database_errors:
        if vendor == "postgresql":
            import psycopg

            raw = psycopg.Cursor(conn.connection)
            wrapped: _Prepared | _Qmark = _Prepared(raw)
        else:
            raw = conn.connection.cursor()
            wrapped = _Qmark(raw)
        try:
            yield wrapped
        finally:
            raw.close()
