"""A stored message in its POP3 wire form, chunk by chunk. No sockets, no Django.

RFC 1939 §3: a multi-line response ends with CRLF "." CRLF; every line that starts with
"." gets one more "." in front ("byte-stuffing"). Messages are stored byte-exact, and
some arrive with bare LF line ends, so LF without CR becomes CRLF on the way out
(RFC 1939 §11: "octet count ... with CRLF line endings"). A bare CR is sent as it is.
Work is done per chunk, so a 50 MB message never sits in memory whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

CHUNK = 256 * 1024
TERMINATOR = b".\r\n"


class Normalizer:
    """Turn bare LF into CRLF across chunk boundaries (a CR at a chunk's end waits)."""

    def __init__(self) -> None:
        self._held_cr = False

    def feed(self, chunk: bytes) -> bytes:
        if self._held_cr:
            chunk = b"\r" + chunk
            self._held_cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self._held_cr = True
        if b"\n" not in chunk:
            return chunk
        if chunk.count(b"\n") == chunk.count(b"\r\n"):
            return chunk  # already CRLF throughout: the common case, no copy
        return chunk.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

    def flush(self) -> bytes:
        held, self._held_cr = self._held_cr, False
        return b"\r" if held else b""


class Stuffer:
    """Byte-stuff CRLF-normalised data (RFC 1939 §3) and remember whether a line is open."""

    def __init__(self) -> None:
        self.at_line_start = True

    def feed(self, data: bytes) -> bytes:
        if not data:
            return data
        out = data.replace(b"\r\n.", b"\r\n..") if b"\r\n." in data else data
        if self.at_line_start and out[:1] == b".":
            out = b"." + out
        self.at_line_start = out.endswith(b"\r\n")
        return out

    def end(self) -> bytes:
        """The end of the multi-line response: a CRLF first if the last line is open."""
        return TERMINATOR if self.at_line_start else b"\r\n" + TERMINATOR


class TopFilter:
    """Keep the header, the blank line and the first `lines` body lines (RFC 1939 §7 TOP).

    Works on CRLF-normalised data; `done` turns True once nothing more is wanted.
    """

    def __init__(self, lines: int) -> None:
        self.remaining = lines
        self.in_header = True
        self.line_open = False  # bytes of the current line already passed on
        self.done = False

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        pos, size = 0, len(data)
        while pos < size and not self.done:
            if not self.in_header and self.remaining <= 0:
                self.done = True
                break
            end = data.find(b"\r\n", pos)
            if end < 0:
                out.append(data[pos:])
                self.line_open = True
                break
            empty = end == pos and not self.line_open
            out.append(data[pos : end + 2])
            self.line_open = False
            pos = end + 2
            if self.in_header:
                if empty:
                    self.in_header = False
                    self.done = self.remaining <= 0
            else:
                self.remaining -= 1
                self.done = self.remaining <= 0
        return b"".join(out)


class Encoder:
    """Normalise, (for TOP) cut, and byte-stuff a message fed one chunk at a time."""

    def __init__(self, *, top: int | None = None) -> None:
        self._normalizer, self._stuffer = Normalizer(), Stuffer()
        self._limiter = TopFilter(top) if top is not None else None

    @property
    def done(self) -> bool:
        return self._limiter is not None and self._limiter.done

    def feed(self, chunk: bytes) -> bytes:
        data = self._normalizer.feed(chunk)
        if self._limiter is not None:
            data = self._limiter.feed(data)
        return self._stuffer.feed(data)

    def finish(self) -> bytes:
        tail = b"" if self.done else self._normalizer.flush()
        if self._limiter is not None and tail:
            tail = self._limiter.feed(tail)
        return self._stuffer.feed(tail) + self._stuffer.end()


def encode(chunks: Iterable[bytes], *, top: int | None = None) -> Iterator[bytes]:
    """Yield the wire form of a message given as chunks, ending with CRLF.CRLF."""
    encoder = Encoder(top=top)
    for chunk in chunks:
        if out := encoder.feed(chunk):
            yield out
        if encoder.done:
            break
    yield encoder.finish()


def wire_size(f: BinaryIO, chunk: int = 1024 * 1024) -> int:
    """The message's size as RETR sends it, before byte-stuffing (what LIST and STAT say).

    Every LF without a CR before it gains one octet; nothing else changes.
    """
    size = bare_lf = 0
    last = b""
    while data := f.read(chunk):
        size += len(data)
        lf = data.count(b"\n")
        if lf:
            pairs = data.count(b"\r\n")
            if last == b"\r" and data[:1] == b"\n":
                pairs += 1
            bare_lf += lf - pairs
        last = data[-1:]
    return size + bare_lf
