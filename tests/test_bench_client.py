"""The IMAP load generator's bulk response reader (bench/imap_load.py): responses split
across reads anywhere, literals whose content looks like tagged lines or literal markers."""

import asyncio
import random

import pytest

from bench.imap_load import Client, response_lines, scan_line, scan_response

TAG = b"t7"


def lit(content: bytes) -> bytes:
    return b"{%d}\r\n%s" % (len(content), content)


# Lines of responses to command t7; literals carry fake tagged lines and fake markers.
UNTAGGED = [
    b"* 200 EXISTS\r\n",
    b"* 3 FETCH (UID 3 FLAGS (\\Seen))\r\n",
    b"* 4 FETCH (BODY[] " + lit(b"t7 OK fake\r\nt7 NO fake too\r\n") + b")\r\n",
    b"* 5 FETCH (BODY[HEADER] " + lit(b"\r\nt7 OK x\r\n\r\n") + b" BODY[TEXT] {0}\r\n)\r\n",
    b"* 6 FETCH (BODY[] " + lit(b"{99}\r\nabc") + b" FLAGS ())\r\n",
    b"* 7 FETCH (BODY[] " + lit(b"t7 O") + b" UID 7)\r\n",
    b"* 8 FETCH (BODY[] " + lit(b"\r\n") + b")\r\n",
    b"* OK [ALERT] t7 OK is not at the start of this line\r\n",
    b"* 9 FETCH (BODY[] " + lit(b"{5}\r\n") + b")\r\n",
    b"* 10 FETCH (BODY[] " + lit(b"x\r\nt7 OK " * 300) + b")\r\n",
]
TAGGED = [
    b"* 200 EXISTS\r\n",
    b"* 3 FETCH (UID 3 FLAGS (\\Seen))\r\n",
    b"* 4 FETCH (BODY[] {27}\r\nt7 OK fake\r\nt7 NO fake too\r\n)\r\n",
    b"* 5 FETCH (BODY[HEADER] {12}\r\n\r\nt7 OK x\r\n\r\n BODY[TEXT] {0}\r\n)\r\n",
    b"* 6 FETCH (BODY[] {9}\r\n{99}\r\nabc FLAGS ())\r\n",
    b"* 7 FETCH (BODY[] {4}\r\nt7 O UID 7)\r\n",
    b"* 8 FETCH (BODY[] {2}\r\n\r\n)\r\n",
    b"* OK [ALERT] t7 OK is not at the start of this line\r\n",
    b"* 9 FETCH (BODY[] {5}\r\n{5}\r\n)\r\n",
]
TAGGED = [b"t7 OK FETCH completed\r\n", b"t7 NO [TRYCREATE] no such mailbox\r\n"]
# What may follow the response on the wire: untagged updates, other tags, or nothing.
REST = [b"", b"* 12 EXPUNGE\r\n", b"t70 OK later\r\n", b"t7", b"* 1 FETCH (BODY[] {3}\r\nt7 "]


def responses(rng: random.Random, count: int) -> list[bytes]:
    out = [TAGGED[0], b"t7 OK\r\n"]
    for _ in range(count):
        body = b"".join(rng.choice(UNTAGGED) for _ in range(rng.randint(0, 6)))
        out.append(body + rng.choice(TAGGED))
    return out


def splits(rng: random.Random, data: bytes) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 6))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


class FakeReader:
    """Hands out the given chunks one read at a time; records what it handed out."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.fed = b""

    async def read(self, n: int) -> bytes:
        chunk = self.chunks.pop(0) if self.chunks else b""
        assert len(chunk) <= n
        self.fed += chunk
        return chunk


class FakeWriter:
    def __init__(self) -> None:
        self.sent = b""

    def write(self, data: bytes) -> None:
        self.sent += data


def client_for(chunks: list[bytes], n: int = 6) -> Client:
    c = Client()
    c.reader, c.writer = FakeReader(chunks), FakeWriter()
    c.n = n
    return c


def test_scan_response_at_every_split_point():
    for resp in responses(random.Random(1), 40):
        for rest in REST:
            data = resp + rest
            assert scan_response(data, TAG + b" ") == (len(resp), 0)
            for i in range(len(data) + 1):
                end, scan = scan_response(data[:i], TAG + b" ")
                if i < len(resp):
                    assert end == -1, (data, i)
                    end, _ = scan_response(data, TAG + b" ", scan)
                assert end == len(resp), (data, i)


def test_reader_returns_the_response_and_keeps_the_rest_buffered():
    rng = random.Random(2)
    for resp in responses(rng, 300):
        rest = rng.choice(REST)
        data = resp + rest
        c = client_for(splits(rng, data))
        assert asyncio.run(c.read_response(TAG)) == resp
        assert bytes(c.buf) == c.reader.fed[len(resp) :]
        assert c.reader.fed == data[: len(c.reader.fed)]


def test_responses_back_to_back_in_one_stream():
    rng = random.Random(3)
    # Same-length tags, so that the literals' announced sizes stay right.
    tags = [b"t%c" % c for c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"]
    resps = [r.replace(TAG, tag) for r, tag in zip(responses(rng, 50), tags, strict=False)]
    wire = b"".join(resps)
    c = client_for([wire[i : i + 97] for i in range(0, len(wire), 97)])

    async def run():
        return [await c.read_response(tag) for tag in tags[: len(resps)]]

    assert asyncio.run(run()) == resps
    assert c.buf == b""


def test_command_checks_the_tagged_status():
    ok = UNTAGGED[2] + TAGGED[0]
    c = client_for(splits(random.Random(4), ok))
    assert asyncio.run(c.command(b"FETCH 4 BODY[]")) == ok
    assert c.writer.sent == b"t7 FETCH 4 BODY[]\r\n"
    c = client_for([UNTAGGED[0] + TAGGED[1]])
    with pytest.raises(RuntimeError, match="TRYCREATE"):
        asyncio.run(c.command(b"SELECT nowhere"))
    # A literal whose content is an OK tagged line does not hide the real NO.
    c = client_for([b"* 1 FETCH (BODY[] " + lit(b"t7 OK x\r\n") + b")\r\n", TAGGED[1]])
    with pytest.raises(RuntimeError, match="TRYCREATE"):
        asyncio.run(c.command(b"FETCH 1 BODY[]"))
    c = client_for([b"t7 OK APPEND", b" done\r\n"])
    asyncio.run(c.command(b"APPEND INBOX", b"Subject: x\r\n\r\nhi\r\n"))
    assert c.writer.sent == b"t7 APPEND INBOX {18+}\r\nSubject: x\r\n\r\nhi\r\n\r\n"


def test_idle_lines():
    rng = random.Random(5)
    wire = b"+ idling\r\n* 201 EXISTS\r\n* 1 FETCH (" + lit(b"ab\r\ncd") + b")\r\n* 3 EXPUNGE\r\n"
    for _ in range(100):
        c = client_for(splits(rng, wire))

        async def run(c=c):
            return [await c.read_line() for _ in range(4)]

        assert b"".join(asyncio.run(run())) == wire
        assert asyncio.run(client_for([wire]).read_line()) == b"+ idling\r\n"
    assert scan_line(b"* 1 FETCH (BODY[] {6}\r\nab\r\n") == (-1, 29)
    assert scan_line(b"+ idl") == (-1, 0)


def test_closed_connection():
    c = client_for([b"* 1 EXISTS\r\nt7 O"])
    with pytest.raises(ConnectionError):
        asyncio.run(c.read_response(TAG))


def test_response_lines_keep_literals_inside_their_line():
    lines = [UNTAGGED[0], UNTAGGED[2], UNTAGGED[4], UNTAGGED[7], TAGGED[0]]
    assert response_lines(b"".join(lines)) == lines
    plain = [UNTAGGED[0], UNTAGGED[1], b"* 2 EXPUNGE\r\n", TAGGED[0]]
    assert response_lines(b"".join(plain)) == plain
