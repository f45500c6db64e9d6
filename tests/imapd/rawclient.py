"""A raw IMAP client for bytes imaplib cannot send: bad syntax, literals, pipelining."""

from __future__ import annotations

import re
import socket

from tests.conftest import PASSWORD

_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")


class RawClient:
    def __init__(self, port: int, *, host: str = "127.0.0.1", timeout: float = 10) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.greeting = self.line()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        """One response line with any literals it carries, CRLF included; b"" at EOF."""
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    rest, self.buf = self.buf, b""
                    return out + rest
                self.buf += chunk
            end = self.buf.index(b"\r\n") + 2
            piece, self.buf = self.buf[:end], self.buf[end:]
            out += piece
            m = _LITERAL.search(piece)
            if not m:
                return out
            size = int(m.group(1))
            while len(self.buf) < size:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
            out += self.buf[:size]
            self.buf = self.buf[size:]

    def until_tagged(self, tag: bytes) -> list[bytes]:
        """Lines up to and including the one starting with `tag `."""
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if not line or line.startswith(tag + b" "):
                return lines

    def command(self, tag: bytes, text: bytes) -> list[bytes]:
        self.send(tag + b" " + text + b"\r\n")
        return self.until_tagged(tag)

    def login(self, user: str = "alice@example.test") -> None:
        lines = self.command(b"L", b'LOGIN %s "%s"' % (user.encode(), PASSWORD.encode()))
        assert lines[-1].startswith(b"L OK"), lines

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
