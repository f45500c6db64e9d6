"""Hand-written statements for the delivery hot path (ORM query building costs more than
the queries themselves at hundreds of deliveries a second). Each runs on SQLite (3.35+, for
RETURNING) and PostgreSQL; table names come from the models, values are parameters."""

from __future__ import annotations

from datetime import datetime

from django.db import connection

from ..models import Account, Alias, AliasTarget, Domain, Mailbox, Message


def _t(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def lookup_address(address: str) -> tuple[list[str] | None, int | None]:
    """Return (alias targets or None, active account id or None) for `address` in one query."""
    statement = (
        f"SELECT 'a', t.address FROM {_t(AliasTarget)} t "
        f"JOIN {_t(Alias)} a ON a.id = t.alias_id JOIN {_t(Domain)} d ON d.id = a.domain_id "
        "WHERE a.source = %s AND a.active AND d.active "
        "UNION ALL "
        f"SELECT 'u', CAST(u.id AS VARCHAR(20)) FROM {_t(Account)} u "
        f"JOIN {_t(Domain)} d2 ON d2.id = u.domain_id "
        "WHERE u.address = %s AND u.active AND d2.active"
    )
    targets: list[str] = []
    account: int | None = None
    with connection.cursor() as cursor:
        cursor.execute(statement, [address, address])
        for kind, value in cursor.fetchall():
            if kind == "a":
                targets.append(value)
            else:
                account = int(value)
    return (targets or None), account


def allocate_uid(account_id: int, name: str) -> tuple[int, int, int, int] | None:
    """Take the next UID and a new MODSEQ of a mailbox, locking its row.

    Returns (mailbox id, uidvalidity, uid, modseq) or None when there is no such mailbox.
    """
    statement = (
        f"UPDATE {_t(Mailbox)} SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 "
        "WHERE account_id = %s AND name = %s "
        "RETURNING id, uidvalidity, uidnext - 1, highestmodseq"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, [account_id, name])
        row = cursor.fetchone()
    return tuple(row) if row else None


def insert_message(
    mailbox_id: int,
    uid: int,
    modseq: int,
    flags: int,
    keywords: str,
    internaldate: datetime,
    size: int,
    content_id: int,
) -> None:
    field = Message._meta.get_field("internaldate")
    statement = (
        f"INSERT INTO {_t(Message)} "
        "(mailbox_id, uid, modseq, flags, keywords, internaldate, size, content_id) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    )
    when = field.get_db_prep_save(internaldate, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            statement, [mailbox_id, uid, modseq, flags, keywords, when, size, content_id]
        )


def upsert_content(fields: dict, refs: int) -> int:
    """INSERT a Content row, or add `refs` references to the existing one; return its id."""
    return upsert_contents([(fields, refs)])[fields["sha256"]]


def upsert_contents(rows: list[tuple[dict, int]]) -> dict[str, int]:
    """Upsert Content rows (distinct sha256 each) with their reference counts; return
    {sha256: id}. Multi-row INSERT ... ON CONFLICT DO UPDATE ... RETURNING, 200 rows a time."""
    from ..models import Content

    if not rows:
        return {}
    table = _t(Content)
    cols = [*rows[0][0], "refcount", "orphaned_at"]
    fields = [Content._meta.get_field(name) for name in cols]
    quoted = ", ".join(connection.ops.quote_name(c) for c in cols)
    ids: dict[str, int] = {}
    for k in range(0, len(rows), 200):
        chunk = rows[k : k + 200]
        params: list = []
        for values, refs in chunk:
            row = {**values, "refcount": refs, "orphaned_at": None}
            params.extend(f.get_db_prep_save(row[f.name], connection) for f in fields)
        marks = ", ".join(["(" + ", ".join(["%s"] * len(cols)) + ")"] * len(chunk))
        statement = (
            f"INSERT INTO {table} ({quoted}) VALUES {marks} "
            f"ON CONFLICT (sha256) DO UPDATE SET refcount = {table}.refcount + excluded.refcount, "
            "orphaned_at = NULL RETURNING id, sha256"
        )
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            for content_id, sha in cursor.fetchall():
                ids[sha] = content_id
    return ids
