"""POP3 download load: C clients each RETR and DELE M messages of their own, then QUIT.

    .venv/bin/python bench/pop3_load.py [--clients C] [--messages M] [--size 4K,1M]
                                        [--tls] [--seconds S]

Prints messages/s, MB/s (message bytes retrieved per second of wall time, QUIT's expunge
included) and the server's peak RSS. The server is `manage.py pop3d` in a subprocess, so
its RSS is its own; clients are threads with a raw socket reader (poplib's line-by-line
reading would be the bottleneck, not the server). Uses DATABASE_URL (default SQLite in a
throw-away data dir). Bounded in count (at most 2 GiB of mail per run) and in time;
traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    REPO,
    database_label,
    fresh_account,
    message,
    peak_rss_mb,
    setup_django,
    table,
)

PASSWORD = "bench-password"
MAX_TOTAL_BYTES = 2 * 1024**3
TERMINATOR = b"\r\n.\r\n"


def parse_size(text: str) -> int:
    from mailhost.config import parse_size as parse

    return parse(text)


def fill(clients: int, messages: int, size: int) -> list[str]:
    """One account per client (the maildrop lock is per account), M messages each."""
    from mailhost import store

    addresses = []
    for c in range(clients):
        address = f"pop{c}@bench.test"
        account = fresh_account(address, PASSWORD)
        items = [store.AppendItem(message(c * 100_000 + i, size)) for i in range(messages)]
        for i in range(0, len(items), 50):
            store.append_many(account.id, "INBOX", items[i : i + 50])
        addresses.append(address)
    return addresses


class Server:
    """`manage.py pop3d` on free ports, with its RSS sampled while it runs."""

    def __init__(self) -> None:
        env = dict(os.environ)
        env.update(
            BUZON_ALLOW_PLAINTEXT_AUTH="1",  # loopback only, for the plaintext figures
            BUZON_POP3_CONNECTIONS_PER_IP="0",
            BUZON_AUTH_FAILURE_DELAY="0",
            PYTHONUNBUFFERED="1",
        )
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "manage.py"), "pop3d"]
            + ["--pop3-port", "auto", "--pop3s-port", "auto"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
        self.ports: dict[str, int] = {}
        while len(self.ports) < 2:
            line = self.proc.stdout.readline().decode()
            if not line:
                raise SystemExit(f"pop3d exited: {self.proc.wait()}")
            if " listening on " in line:
                name, _, address = line.strip().partition(" listening on ")
                self.ports[name] = int(address.rsplit(":", 1)[1])
        import psutil

        self._ps = psutil.Process(self.proc.pid)
        self.peak_rss = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_rss = max(self.peak_rss, self._ps.memory_info().rss)
            except Exception:
                return
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._sampler.join()
        self.proc.terminate()
        self.proc.wait(timeout=15)
        self.proc.stdout.close()


class Client:
    """Just enough POP3 to download fast: bulk reads, scan for CRLF.CRLF."""

    def __init__(self, port: int, context: ssl.SSLContext | None) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
        self.sock = sock
        self.buf = bytearray()
        self.line()

    def _fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    def line(self) -> bytes:
        while (end := self.buf.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self.buf[: end + 2])
        del self.buf[: end + 2]
        if not line.startswith(b"+OK"):
            raise RuntimeError(line)
        return line

    def cmd(self, text: str) -> bytes:
        self.sock.sendall(text.encode() + b"\r\n")
        return self.line()

    def multiline(self) -> int:
        """Consume a multi-line body; return its size on the wire."""
        start = 0
        while (end := self.buf.find(TERMINATOR, start)) < 0:
            start = max(0, len(self.buf) - 4)
            self._fill()
        if self.buf.startswith(b".\r\n"):
            end = -2
        size = end + 2
        del self.buf[: end + len(TERMINATOR)]
        return size


def run_client(port, context, address, messages, results, index, start_at) -> None:
    client = Client(port, context)
    client.cmd(f"USER {address}")
    client.cmd(f"PASS {PASSWORD}")
    count = int(client.cmd("STAT").split()[1])
    assert count == messages, (count, messages)
    while time.perf_counter() < start_at:
        time.sleep(0.001)
    received = 0
    for n in range(1, count + 1):
        # PIPELINING (RFC 2449 §6.6): RETR and DELE in one write.
        client.sock.sendall(f"RETR {n}\r\nDELE {n}\r\n".encode())
        client.line()
        received += client.multiline()
        client.line()
    client.cmd("QUIT")  # the UPDATE state: one expunge of M messages
    results[index] = (count, received, time.perf_counter())
    client.sock.close()


def scenario(server: Server, clients: int, messages: int, size: int, tls: bool) -> list:
    addresses = fill(clients, messages, size)
    context = None
    port = server.ports["pop3"]
    if tls:
        from mailhost import tls as buzon_tls

        cert, _ = buzon_tls.cert_paths()
        context = ssl.create_default_context(cafile=str(cert))
        port = server.ports["pop3s"]
    results: list = [None] * clients
    start_at = time.perf_counter() + 0.5
    threads = [
        threading.Thread(
            target=run_client,
            args=(port, context, addr, messages, results, i, start_at),
            daemon=True,
        )
        for i, addr in enumerate(addresses)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    if any(r is None for r in results):
        raise SystemExit("a client failed or timed out")
    elapsed = max(r[2] for r in results) - start_at
    total = sum(r[0] for r in results)
    payload = total * len(message(0, size))
    label = f"{size // 1024} KiB, {clients} clients{', TLS' if tls else ''}"
    return [label, total, elapsed, total / elapsed, payload / elapsed / 1e6]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--messages", type=int, default=0, help="per client; 0 = by size")
    ap.add_argument("--size", default="4K,1M", help="comma-separated message sizes")
    ap.add_argument("--tls", action="store_true", help="also run over POP3S")
    args = ap.parse_args()
    setup_django()
    server = Server()
    rows = []
    try:
        for size_text in args.size.split(","):
            size = parse_size(size_text)
            messages = args.messages or (500 if size <= 64 * 1024 else 30)
            if args.clients * messages * size > MAX_TOTAL_BYTES:
                raise SystemExit("that is more than 2 GiB of mail; lower --messages")
            for tls in (False, True) if args.tls else (False,):
                rows.append(scenario(server, args.clients, messages, size, tls))
    finally:
        server.stop()
    print(
        table(
            f"POP3 RETR+DELE+QUIT on {database_label()}",
            ["scenario", "messages", "seconds", "msg/s", "MB/s"],
            rows,
        )
    )
    print(
        f"server peak RSS: {server.peak_rss / 2**20:.0f} MB; "
        f"bench process peak RSS: {peak_rss_mb():.0f} MB"
    )


if __name__ == "__main__":
    main()
