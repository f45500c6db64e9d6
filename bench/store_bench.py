"""Store and LMTP throughput: prints messages/s, p50/p99 latency and peak RSS.

    .venv/bin/python bench/store_bench.py [--messages N] [--seconds S]

Uses DATABASE_URL (default SQLite in a throw-away data dir). Every loop is bounded in
count and in time; traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import smtplib
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    database_label,
    fresh_account,
    message,
    peak_rss_mb,
    setup_django,
    stats,
    table,
)


def bench_store(count: int, deadline: float) -> list:
    from mailhost import store

    fresh_account("store@bench.test")
    latencies, done, start = [], 0, time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        [result] = store.deliver(
            message(i), mail_from="b@example.org", rcpt_to=["store@bench.test"]
        )
        assert result.ok, result.reply
        latencies.append((time.perf_counter() - t0) * 1000)
        done += 1
        if time.perf_counter() > deadline:
            break
    elapsed = time.perf_counter() - start
    return ["store.deliver, 1 thread", done, elapsed, done / elapsed, *stats(latencies)]


def start_lmtp_thread():
    from smtpd.server import start_lmtp

    ready, holder = threading.Event(), {}

    async def main():
        server = await start_lmtp("127.0.0.1", 0)
        holder["port"] = server.sockets[0].getsockname()[1]
        holder["loop"] = asyncio.get_running_loop()
        holder["stop"] = asyncio.Event()
        ready.set()
        await holder["stop"].wait()
        server.close()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    ready.wait(10)
    return holder


def bench_lmtp(clients: int, count: int, deadline: float, port: int) -> list:
    fresh_account(f"lmtp{clients}@bench.test")
    rcpt = f"lmtp{clients}@bench.test"
    per_client = count // clients
    latencies: list[float] = []
    lock = threading.Lock()

    def client(n: int) -> int:
        sent = 0
        with smtplib.LMTP("127.0.0.1", port, timeout=30) as c:
            c.ehlo("bench")  # LHLO
            for i in range(per_client):
                t0 = time.perf_counter()
                refused = c.sendmail("b@example.org", [rcpt], message(n * per_client + i))
                assert not refused
                with lock:
                    latencies.append((time.perf_counter() - t0) * 1000)
                sent += 1
                if time.perf_counter() > deadline:
                    break
        return sent

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        done = sum(pool.map(client, range(clients)))
    elapsed = time.perf_counter() - start
    return [f"LMTP, {clients} client(s)", done, elapsed, done / elapsed, *stats(latencies)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=60, help="time limit per row")
    parser.add_argument("--skip-import", action="store_true")
    args = parser.parse_args()
    setup_django()
    rows = [bench_store(args.messages, time.perf_counter() + args.seconds)]
    server = start_lmtp_thread()
    for clients in (1, 10):
        rows.append(
            bench_lmtp(clients, args.messages, time.perf_counter() + args.seconds, server["port"])
        )
    server["loop"].call_soon_threadsafe(server["stop"].set)
    if not args.skip_import:
        try:
            from bench.import_bench import run as run_import
        except ImportError:
            run_import = None
        if run_import is not None:
            rows.append(run_import(10_000))
    print(
        table(
            f"Buzón store bench — database: {database_label()}, 4 KiB messages",
            ["what", "messages", "seconds", "msg/s", "p50 ms", "p99 ms"],
            rows,
        )
    )
    print(f"peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
