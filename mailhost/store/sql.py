"""Hand-written statements for the hot paths: delivery, and the IMAP writes (STORE,
EXPUNGE, APPEND) and change polls (ORM query building costs more than the queries
themselves at hundreds of commands a second). Each runs on SQLite (3.35+, for RETURNING)
and PostgreSQL; table names come from the models, values are parameters."""

from __future__ import annotations

import functools
from datetime import datetime

from django.db import DEFAULT_DB_ALIAS, connection, connections

from ..models import (
    Account,
    Alias,
    AliasTarget,
    Content,
    Domain,
    ExpungedMessage,
    Mailbox,
    Message,
)
from .cursors import cursor as raw_cursor

IN_LIMIT = 900  # values per IN list (SQLite's parameter limit is 999 on old builds)


@functools.cache
def _t(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


@functools.cache
def _quoted(columns: tuple[str, ...]) -> str:
    return ", ".join(connection.ops.quote_name(c) for c in columns)


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
    with raw_cursor() as cursor:
        cursor.execute(statement, [address, address])
        for kind, value in cursor.fetchall():
            if kind == "a":
                targets.append(value)
            else:
                account = int(value)
    return (targets or None), account


def allocate_uid(
    account_id: int, name: str, *, claim_recent: bool = False
) -> tuple[int, int, int, int, bool] | None:
    r"""Take the next UID and a new MODSEQ of a mailbox, locking its row.

    With `claim_recent`, the new message is also \Recent for the caller when every earlier
    message has been claimed already (recent_uid was at the new UID: RFC 3501 §2.3.2).
    Returns (mailbox id, uidvalidity, uid, modseq, claimed) or None when there is no such
    mailbox. (In SET, every column reads its value from before the UPDATE.)
    """
    recent = ", recent_uid = CASE WHEN recent_uid = uidnext THEN uidnext + 1 ELSE recent_uid END"
    statement = (
        f"UPDATE {_t(Mailbox)} SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1"
        f"{recent if claim_recent else ''} WHERE account_id = %s AND name = %s "
        "RETURNING id, uidvalidity, uidnext - 1, highestmodseq, recent_uid"
    )
    with raw_cursor() as cursor:
        cursor.execute(statement, [account_id, name])
        row = cursor.fetchone()
    if row is None:
        return None
    box, uidvalidity, uid, modseq, recent_uid = row
    return box, uidvalidity, uid, modseq, claim_recent and recent_uid == uid + 1


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
    with raw_cursor() as cursor:
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
    conn = connections[DEFAULT_DB_ALIAS]  # resolved once, not at each field's use
    quoted = _quoted(tuple(cols))
    ids: dict[str, int] = {}
    for k in range(0, len(rows), 200):
        chunk = rows[k : k + 200]
        params: list = []
        for values, refs in chunk:
            row = {**values, "refcount": refs, "orphaned_at": None}
            params.extend(f.get_db_prep_save(row[f.name], conn) for f in fields)
        marks = ", ".join(["(" + ", ".join(["%s"] * len(cols)) + ")"] * len(chunk))
        statement = (
            f"INSERT INTO {table} ({quoted}) VALUES {marks} "
            f"ON CONFLICT (sha256) DO UPDATE SET refcount = {table}.refcount + excluded.refcount, "
            "orphaned_at = NULL RETURNING id, sha256"
        )
        with raw_cursor() as cursor:
            cursor.execute(statement, params)
            for content_id, sha in cursor.fetchall():
                ids[sha] = content_id
    return ids


def _for_update() -> str:
    """Row lock for a read in a write transaction (SQLite locks the whole database)."""
    return " FOR UPDATE" if connection.features.has_select_for_update else ""


def _marks(n: int) -> str:
    return ", ".join(["%s"] * n)


def _chunks(values: list, size: int = IN_LIMIT):
    for k in range(0, len(values), size):
        yield values[k : k + size]


# The Mailbox columns in model order (Mailbox.from_db needs it), all but `created`.
MAILBOX_COLUMNS = tuple(f.attname for f in Mailbox._meta.concrete_fields if f.name != "created")


def owned_mailbox(account_id: int, mailbox_id: int, *, lock: bool) -> tuple | None:
    """The mailbox row (MAILBOX_COLUMNS) if the account owns it; locked when `lock`."""
    statement = (
        f"SELECT {', '.join(MAILBOX_COLUMNS)} FROM {_t(Mailbox)} "  # noqa: S608
        "WHERE id = %s AND account_id = %s" + (_for_update() if lock else "")
    )
    with raw_cursor() as cursor:
        cursor.execute(statement, [mailbox_id, account_id])
        return cursor.fetchone()


def lock_owned_mailbox(account_id: int, mailbox_id: int) -> tuple[int, int, int] | None:
    """Lock the mailbox row if the account owns it: (highestmodseq, uidnext, recent_uid)."""
    statement = (
        f"SELECT highestmodseq, uidnext, recent_uid FROM {_t(Mailbox)} "  # noqa: S608
        "WHERE id = %s AND account_id = %s" + _for_update()
    )
    with raw_cursor() as cursor:
        cursor.execute(statement, [mailbox_id, account_id])
        return cursor.fetchone()


def set_recent_uid(mailbox_id: int, value: int) -> None:
    with raw_cursor() as cursor:
        cursor.execute(
            f"UPDATE {_t(Mailbox)} SET recent_uid = %s WHERE id = %s", [value, mailbox_id]
        )


def allocate_uids(mailbox_id: int, count: int) -> tuple[int, int]:
    """Take `count` UIDs and one new MODSEQ of a mailbox: (uidnext, highestmodseq) after."""
    statement = (
        f"UPDATE {_t(Mailbox)} SET uidnext = uidnext + %s, highestmodseq = highestmodseq + 1 "
        "WHERE id = %s RETURNING uidnext, highestmodseq"
    )
    with raw_cursor() as cursor:
        cursor.execute(statement, [count, mailbox_id])
        uidnext, modseq = cursor.fetchone()
    return uidnext, modseq


def reserve_usage(account_id: int, amount: int) -> bool:
    """Add `amount` to the account's usage unless that passes its quota; False if it would."""
    statement = (
        f"UPDATE {_t(Account)} SET used_bytes = used_bytes + %s "
        "WHERE id = %s AND (quota_bytes = 0 OR used_bytes <= quota_bytes - %s)"
    )
    with raw_cursor() as cursor:
        cursor.execute(statement, [amount, account_id, amount])
        return cursor.rowcount > 0


def sub_usage(account_id: int, amount: int) -> None:
    """Take `amount` off the account's usage, never below zero."""
    statement = (
        f"UPDATE {_t(Account)} SET used_bytes = "
        "CASE WHEN used_bytes > %s THEN used_bytes - %s ELSE 0 END WHERE id = %s"
    )
    with raw_cursor() as cursor:
        cursor.execute(statement, [amount, amount, account_id])


def release_contents(counts: dict[int, int], now: datetime) -> None:
    """Drop `counts[id]` references of each Content row; one at zero or below gets
    orphaned_at = `now` (the right-hand sides see the row before the update)."""
    by_count: dict[int, list[int]] = {}
    for content_id, n in counts.items():
        by_count.setdefault(n, []).append(content_id)
    when = Content._meta.get_field("orphaned_at").get_db_prep_save(now, connection)
    table = _t(Content)
    with raw_cursor() as cursor:
        for n, ids in by_count.items():
            for chunk in _chunks(sorted(ids)):
                cursor.execute(
                    f"UPDATE {table} SET refcount = refcount - %s, "  # noqa: S608
                    "orphaned_at = CASE WHEN refcount - %s <= 0 THEN %s ELSE orphaned_at END "
                    f"WHERE id IN ({_marks(len(chunk))})",
                    [n, n, when, *chunk],
                )


def exact_uid_conditions(uids: list[int]) -> list[tuple[str, list[int]]]:
    """Conditions on `uid` matching exactly `uids` (ascending, distinct): one range when
    they are consecutive, IN lists otherwise."""
    if not uids:
        return []
    if uids[-1] - uids[0] + 1 == len(uids):
        return [("uid BETWEEN %s AND %s", [uids[0], uids[-1]])]
    return [(f"uid IN ({_marks(len(chunk))})", chunk) for chunk in _chunks(uids)]


def flag_rows(mailbox_id: int, uids: list[int]) -> list[tuple[int, int, int, int, str]]:
    """(id, uid, modseq, flags, keywords) of `uids` (ascending, distinct), in UID order."""
    out: list = []
    with raw_cursor() as cursor:
        for condition, params in exact_uid_conditions(uids):
            cursor.execute(
                f"SELECT id, uid, modseq, flags, keywords FROM {_t(Message)} "  # noqa: S608
                f"WHERE mailbox_id = %s AND {condition} ORDER BY uid",
                [mailbox_id, *params],
            )
            out.extend(cursor.fetchall())
    return out


def lock_with_flag_rows(
    account_id: int, mailbox_id: int, uids: list[int]
) -> tuple[int, list[tuple[int, int, int, int, str]]] | None:
    """lock_owned_mailbox and flag_rows together: (highestmodseq, rows), or None when the
    account has no such mailbox. One statement when the UIDs make one condition (STORE on
    a message or a range, the usual case): a round trip less on PostgreSQL."""
    conditions = exact_uid_conditions(uids)
    if len(conditions) != 1:
        locked = lock_owned_mailbox(account_id, mailbox_id)
        return None if locked is None else (locked[0], flag_rows(mailbox_id, uids))
    condition, params = conditions[0]
    lock = " FOR UPDATE OF b" if connection.features.has_select_for_update else ""
    statement = (
        f"SELECT b.highestmodseq, m.id, m.uid, m.modseq, m.flags, m.keywords "  # noqa: S608
        f"FROM {_t(Mailbox)} b LEFT JOIN {_t(Message)} m "
        f"ON m.mailbox_id = b.id AND m.{condition} "
        f"WHERE b.id = %s AND b.account_id = %s ORDER BY m.uid{lock}"
    )
    with raw_cursor() as cursor:
        cursor.execute(statement, [*params, mailbox_id, account_id])
        found = cursor.fetchall()
    if not found:
        return None
    return found[0][0], [row[1:] for row in found if row[1] is not None]


def set_flags_at(mailbox_id: int, modseq: int, updates: dict[tuple[int, str], list[int]]) -> None:
    """bump_modseq and set_message_flags for a mailbox whose row this transaction has
    locked, so its new MODSEQ is known (`modseq`, its highestmodseq + 1). PostgreSQL does
    the mailbox and the first flag set in one statement (a data-modifying WITH)."""
    if connection.vendor != "postgresql":
        bump_modseq(mailbox_id)
        set_message_flags(updates, modseq)
        return
    table = _t(Message)
    rest = dict(updates)
    (bits, keywords), ids = rest.popitem()
    first, more = ids[:IN_LIMIT], ids[IN_LIMIT:]
    with raw_cursor() as cursor:
        cursor.execute(
            f"WITH bump AS (UPDATE {_t(Mailbox)} SET highestmodseq = %s WHERE id = %s) "  # noqa: S608
            f"UPDATE {table} SET flags = %s, keywords = %s, modseq = %s "
            f"WHERE id IN ({_marks(len(first))})",
            [modseq, mailbox_id, bits, keywords, modseq, *first],
        )
    if more:
        rest[(bits, keywords)] = more
    if rest:
        set_message_flags(rest, modseq)


def bump_modseq(mailbox_id: int) -> int:
    """Give the mailbox a new MODSEQ and return it."""
    statement = (
        f"UPDATE {_t(Mailbox)} SET highestmodseq = highestmodseq + 1 "
        "WHERE id = %s RETURNING highestmodseq"
    )
    with raw_cursor() as cursor:
        cursor.execute(statement, [mailbox_id])
        return cursor.fetchone()[0]


def set_message_flags(updates: dict[tuple[int, str], list[int]], modseq: int) -> None:
    """Give the rows of each id list its (flags, keywords) and `modseq`: one UPDATE per
    distinct flag set."""
    table = _t(Message)
    with raw_cursor() as cursor:
        for (bits, keywords), ids in updates.items():
            for chunk in _chunks(ids):
                cursor.execute(
                    f"UPDATE {table} SET flags = %s, keywords = %s, modseq = %s "  # noqa: S608
                    f"WHERE id IN ({_marks(len(chunk))})",
                    [bits, keywords, modseq, *chunk],
                )


def delete_messages(
    mailbox_id: int, uids: list[int] | None, deleted_bit: int | None
) -> list[tuple[int, int, int]]:
    """Delete the mailbox's messages with these UIDs (ascending, distinct; None: all), only
    those with `deleted_bit` set when given; return (uid, content_id, size), UID order."""
    table = _t(Message)
    extra = "" if deleted_bit is None else " AND (flags & %s) <> 0"
    conditions = [("1 = 1", [])] if uids is None else exact_uid_conditions(uids)
    out: list = []
    with raw_cursor() as cursor:
        for condition, params in conditions:
            args = [mailbox_id, *params]
            if deleted_bit is not None:
                args.append(deleted_bit)
            cursor.execute(
                f"DELETE FROM {table} WHERE mailbox_id = %s AND {condition}{extra} "  # noqa: S608
                "RETURNING uid, content_id, size",
                args,
            )
            out.extend(cursor.fetchall())
    out.sort()
    return out


def expunge_in_one(
    account_id: int,
    mailbox_id: int,
    uids: list[int] | None,
    deleted_bit: int | None,
    modseq: int,
    now: datetime,
) -> list[int] | None:
    """PostgreSQL: what delete_messages, release_contents, sub_usage and record_expunged do
    together, in one statement (data-modifying WITHs all see the rows DELETE returns), for
    a mailbox whose row this transaction has locked, so `modseq` (its highestmodseq + 1) is
    known. Returns the expunged UIDs ascending, or None when this does not apply (another
    database, or UIDs that make more than one condition): then take the long way."""
    conditions = [("1 = 1", [])] if uids is None else exact_uid_conditions(uids)
    if connection.vendor != "postgresql" or len(conditions) != 1:
        return None
    condition, params = conditions[0]
    extra, bit = ("", []) if deleted_bit is None else (" AND (flags & %s) <> 0", [deleted_bit])
    when = Content._meta.get_field("orphaned_at").get_db_prep_save(now, connection)
    statement = (
        f"WITH gone AS (DELETE FROM {_t(Message)} WHERE mailbox_id = %s AND {condition}{extra} "  # noqa: S608
        "RETURNING uid, content_id, size), "
        f"refs AS (UPDATE {_t(Content)} c SET refcount = c.refcount - g.n, "
        "orphaned_at = CASE WHEN c.refcount - g.n <= 0 THEN %s ELSE c.orphaned_at END "
        "FROM (SELECT content_id, count(*) AS n FROM gone GROUP BY content_id) g "
        "WHERE c.id = g.content_id), "
        f"used AS (UPDATE {_t(Account)} SET used_bytes = GREATEST(used_bytes - "
        "(SELECT sum(size) FROM gone), 0) WHERE id = %s AND EXISTS (SELECT 1 FROM gone)), "
        f"bump AS (UPDATE {_t(Mailbox)} SET highestmodseq = %s "
        "WHERE id = %s AND EXISTS (SELECT 1 FROM gone)), "
        f"tomb AS (INSERT INTO {_t(ExpungedMessage)} (mailbox_id, uid, modseq) "
        "SELECT %s, uid, %s FROM gone) "
        "SELECT uid FROM gone ORDER BY uid"
    )
    args = [mailbox_id, *params, *bit, when, account_id, modseq, mailbox_id, mailbox_id, modseq]
    with raw_cursor() as cursor:
        cursor.execute(statement, args)
        return [row[0] for row in cursor.fetchall()]


def record_expunged(mailbox_id: int, uids: list[int]) -> int:
    """Give the mailbox a new MODSEQ and leave a tombstone per UID with it; return it."""
    modseq = bump_modseq(mailbox_id)
    table = _t(ExpungedMessage)
    with raw_cursor() as cursor:
        for chunk in _chunks(uids, 300):
            cursor.execute(
                f"INSERT INTO {table} (mailbox_id, uid, modseq) VALUES "  # noqa: S608
                + ", ".join(["(%s, %s, %s)"] * len(chunk)),
                [v for uid in chunk for v in (mailbox_id, uid, modseq)],
            )
    return modseq


def changes_since(account_id: int, mailbox_id: int, modseq: int):
    """One read: ((highestmodseq, uidnext) or None when the account has no such mailbox,
    [(uid, modseq, flags, keywords)] changed after `modseq` in UID order, [expunged uid]
    ascending)."""
    statement = (
        f"SELECT 0, highestmodseq, uidnext, 0, '' FROM {_t(Mailbox)} "  # noqa: S608
        "WHERE id = %s AND account_id = %s "
        f"UNION ALL SELECT 1, uid, modseq, flags, keywords FROM {_t(Message)} "
        "WHERE mailbox_id = %s AND modseq > %s "
        f"UNION ALL SELECT 2, uid, 0, 0, '' FROM {_t(ExpungedMessage)} "
        "WHERE mailbox_id = %s AND modseq > %s"
    )
    box = None
    changed: list = []
    expunged: list[int] = []
    with raw_cursor() as cursor:
        cursor.execute(statement, [mailbox_id, account_id, mailbox_id, modseq, mailbox_id, modseq])
        for kind, a, b, c, d in cursor.fetchall():
            if kind == 1:
                changed.append((a, b, c, d))
            elif kind == 2:
                expunged.append(a)
            else:
                box = (a, b)
    if box is None:
        return None
    changed.sort()
    expunged.sort()
    return box, changed, expunged
