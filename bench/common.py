"""Shared bits of the bench scripts: Django set-up on a scratch data dir, stats, tables."""

from __future__ import annotations

import os
import resource
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def setup_django() -> None:
    """Use the configured DATABASE_URL (default SQLite) and a throw-away data dir."""
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("BUZON_DATA_DIR", tempfile.mkdtemp(prefix="buzon-bench-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhost.settings")
    os.environ.setdefault("BUZON_FAST_HASHER", "1")
    os.environ.setdefault("BUZON_LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def database_label() -> str:
    from django.db import connection

    return connection.vendor


def fresh_account(address: str, password: str = "bench-password"):
    """Create (or re-create) a bench account on the bench domain."""
    from mailhost.directory import add_account, add_domain
    from mailhost.models import Account, Domain

    domain = address.split("@")[1]
    if not Domain.objects.filter(name=domain).exists():
        add_domain(domain)
    Account.objects.filter(address=address).delete()
    return add_account(address, password)


def vacuum_analyze() -> None:
    """PostgreSQL: VACUUM ANALYZE after loading, as autovacuum would. This machine's
    PostgreSQL runs with autovacuum off, so without it the dead rows of earlier runs and
    stale statistics slow every later run (measured: 2,900 -> 1,100 commands/s)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


def message(i: int, size: int = 4096) -> bytes:
    head = (
        f"From: Bench <bench@example.org>\r\nTo: user@bench.test\r\n"
        f"Subject: bench message {i}\r\nMessage-ID: <{i}.{os.getpid()}@bench>\r\n"
        "Date: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog. " * 2 + b"\r\n"
    body = (line * (size // len(line) + 1))[: max(0, size - len(head) - 2)]
    return head + body + b"\r\n"


def table(title: str, headers: list[str], rows: list[list]) -> str:
    cells = [headers] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(headers))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        lines.append("  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def stats(latencies_ms: list[float]) -> tuple[float, float]:
    return percentile(latencies_ms, 50), percentile(latencies_ms, 99)


__all__ = ["statistics"]
