"""Listener plumbing shared by IMAP and POP3: TLS, upgrades, bounded reads, per-IP caps."""

from __future__ import annotations

import asyncio
import logging
import ssl
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class LineTooLong(Exception):
    """The client sent a line longer than the limit; the rest of it was discarded."""


class Connection:
    """One client connection: bounded line and byte reads, writes, STARTTLS and DEFLATE."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, tls: bool
    ) -> None:
        self.reader, self.writer = reader, writer
        self.tls = tls
        peer = writer.get_extra_info("peername") or ("", 0)
        self.peer_ip: str = peer[0] if peer else ""
        self.local_port: int = (writer.get_extra_info("sockname") or ("", 0))[1]
        self._inflate: zlib._Decompress | None = None  # type: ignore[name-defined]
        self._deflate: zlib._Compress | None = None  # type: ignore[name-defined]
        self._buffer = bytearray()  # decompressed input not yet consumed
        self.closed = False

    @property
    def is_loopback(self) -> bool:
        return self.peer_ip.startswith("127.") or self.peer_ip == "::1"

    async def _fill(self) -> bool:
        """Read more input into the buffer; False at end of stream."""
        chunk = await self.reader.read(65536)
        if not chunk:
            return False
        if self._inflate is not None:
            chunk = self._inflate.decompress(chunk)
        self._buffer += chunk
        return True

    async def readline(self, limit: int) -> bytes | None:
        """Return one line with its CRLF/LF, or None at EOF. Raise LineTooLong past `limit`
        (after discarding the rest of that line, so the session can answer and go on)."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                if end + 1 > limit:
                    del self._buffer[: end + 1]
                    raise LineTooLong()
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                return line
            if len(self._buffer) > limit:
                self._buffer.clear()
                await self._discard_line()
                raise LineTooLong()
            if not await self._fill():
                if self._buffer:
                    line = bytes(self._buffer)
                    self._buffer.clear()
                    return line
                return None

    async def _discard_line(self) -> None:
        while True:
            if not await self._fill():
                return
            end = self._buffer.find(b"\n")
            if end >= 0:
                del self._buffer[: end + 1]
                return
            self._buffer.clear()

    async def readexactly(self, n: int) -> bytes | None:
        """Return exactly n bytes (an IMAP literal), or None at EOF."""
        while len(self._buffer) < n:
            if not await self._fill():
                return None
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def has_buffered_input(self) -> bool:
        return bool(self._buffer)

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        if self._deflate is not None:
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        self.writer.write(data)

    async def drain(self) -> None:
        try:
            await self.writer.drain()
        except (ConnectionError, OSError):
            self.closed = True

    async def start_tls(self, context: ssl.SSLContext) -> None:
        """Upgrade to TLS (STARTTLS/STLS). Input buffered before it is discarded, as
        RFC 3207 §4.2 / RFC 2595 §3.1 require (no plaintext command injection)."""
        self._buffer.clear()
        pending = getattr(self.reader, "_buffer", None)  # StreamReader's own read-ahead
        if pending:
            pending.clear()
        await self.writer.start_tls(context)
        self.tls = True

    def start_deflate(self) -> None:
        """COMPRESS=DEFLATE (RFC 4978): raw deflate both ways from the next byte on."""
        self._inflate = zlib.decompressobj(-15)
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        if self._buffer:  # bytes after the command were already compressed
            pending = bytes(self._buffer)
            self._buffer = bytearray(self._inflate.decompress(pending))

    @property
    def compressed(self) -> bool:
        return self._deflate is not None

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2)
        except (ConnectionError, OSError, TimeoutError, ssl.SSLError):
            pass


class ConnectionLimiter:
    """At most `per_ip` simultaneous connections from one address (0 = no limit)."""

    def __init__(self, per_ip: int) -> None:
        self.per_ip = per_ip
        self.counts: Counter[str] = Counter()

    def acquire(self, ip: str) -> bool:
        if self.per_ip and self.counts[ip] >= self.per_ip:
            return False
        self.counts[ip] += 1
        return True

    def release(self, ip: str) -> None:
        self.counts[ip] -= 1
        if self.counts[ip] <= 0:
            del self.counts[ip]


Handler = Callable[[Connection], Awaitable[None]]


async def serve(
    host: str,
    port: int,
    handler: Handler,
    *,
    ssl_context: ssl.SSLContext | None = None,
    per_ip: int = 0,
    on_refused: Callable[[Connection], Awaitable[None]] | None = None,
) -> asyncio.AbstractServer:
    """Listen on host:port; run `handler(conn)` per connection, never letting one crash
    the listener. With `ssl_context`, TLS starts at once (implicit TLS, RFC 8314)."""
    limiter = ConnectionLimiter(per_ip)

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(reader, writer, tls=ssl_context is not None)
        if not limiter.acquire(conn.peer_ip):
            try:
                if on_refused is not None:
                    await on_refused(conn)
            finally:
                await conn.close()
            return
        try:
            await handler(conn)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, TimeoutError):
            pass
        except Exception:
            log.exception("session from %s ended by an unexpected error", conn.peer_ip)
        finally:
            limiter.release(conn.peer_ip)
            await conn.close()

    # asyncio refuses ssl_handshake_timeout without ssl (ValueError), so only with TLS.
    tls_options = {"ssl": ssl_context, "ssl_handshake_timeout": 30} if ssl_context else {}
    return await asyncio.start_server(on_connect, host, port, limit=2**20, **tls_options)
