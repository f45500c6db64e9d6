"""Import and export throughput: a 10,000-message mbox of 4 KiB messages, into a fresh account.

    DJANGO_SETTINGS_MODULE=mailhost.settings BUZON_DATA_DIR=$(mktemp -d) \
        .venv/bin/python bench/import_bench.py [--messages N] [--size BYTES]

Uses DATABASE_URL (default SQLite in the data dir) and migrates it. Prints messages, seconds,
messages/s and the process's peak RSS after each step. Bounded: N messages (at most 100,000),
files in a temporary directory that is removed at the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    database_label,
    fresh_account,
    message,
    peak_rss_mb,
    setup_django,
    table,
)

WHEN = "Sat Nov 28 10:00:00 2026"


def build_mbox(path: Path, count: int, size: int) -> int:
    """Write `count` distinct messages of about `size` bytes (LF line ends); return bytes."""
    with open(path, "wb") as f:
        for i in range(count):
            raw = message(i, size).replace(b"\r\n", b"\n")
            f.write(f"From bench@example.org {WHEN}\n".encode() + raw + b"\n")
    return path.stat().st_size


def timed(label: str, count_of, fn) -> list:
    start = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - start
    done = count_of(result)
    return [label, done, elapsed, done / elapsed if elapsed else 0.0, peak_rss_mb()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=4096)
    args = parser.parse_args()
    count = max(1, min(args.messages, 100_000))

    setup_django()
    from mailhost import importer

    rows = []
    with tempfile.TemporaryDirectory(prefix="buzon-import-bench-") as tmp:
        mbox = Path(tmp) / "bench.mbox"
        size = build_mbox(mbox, count, args.size)
        first = fresh_account("import@bench.test")
        second = fresh_account("import2@bench.test")

        def imported(stats):
            assert stats.errors == 0, stats.summary()
            return stats.imported + stats.duplicates

        rows.append(timed("import mbox", imported, lambda: importer.import_path(first.id, mbox)))
        rows.append(
            timed(
                "re-import (all duplicates)", imported, lambda: importer.import_path(first.id, mbox)
            )
        )
        out = Path(tmp) / "export"
        rows.append(
            timed(
                "export maildir",
                lambda s: s.messages,
                lambda: importer.export_account(first.id, out, "maildir"),
            )
        )
        rows.append(timed("import maildir", imported, lambda: importer.import_path(second.id, out)))
    title = (
        f"import/export on {database_label()}: {count:,} messages of {args.size:,} bytes "
        f"({size / 2**20:.1f} MiB mbox)"
    )
    print(table(title, ["step", "messages", "seconds", "messages/s", "peak RSS MB"], rows))


if __name__ == "__main__":
    main()
