"""A tiny authoritative DNS server for tests (dnspython), on 127.0.0.1, UDP and TCP.

Records come from a dict: {("name", "TYPE"): ["rdata", ...]}. A name with no records at
all answers NXDOMAIN; a known name without the asked type answers NOERROR/no data.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class DNSServer:
    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.queries: list[tuple[str, str]] = []
        self._servers: list[socketserver.BaseServer] = []
        self.port = 0

    # Records -----------------------------------------------------------------------------

    def add(self, name: str, rtype: str, *values: str) -> None:
        self.records.setdefault((name.rstrip(".").lower(), rtype.upper()), []).extend(values)

    def txt(self, name: str, text: str) -> None:
        chunks = [text[i : i + 250] for i in range(0, len(text), 250)] or [""]
        self.add(name, "TXT", " ".join('"' + c.replace('"', '\\"') + '"' for c in chunks))

    def clear(self) -> None:
        self.records.clear()

    # Protocol ----------------------------------------------------------------------------

    def answer(self, wire: bytes, *, udp: bool) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        for question in query.question:
            name = question.name.to_text().rstrip(".").lower()
            rtype = dns.rdatatype.to_text(question.rdtype)
            self.queries.append((name, rtype))
            values = self.records.get((name, rtype))
            if values:
                response.answer.append(dns.rrset.from_text(question.name, 60, "IN", rtype, *values))
            elif not any(k[0] == name for k in self.records):
                response.set_rcode(dns.rcode.NXDOMAIN)
        out = response.to_wire()
        limit = query.payload if query.edns >= 0 else 512
        if udp and len(out) > limit:  # the client retries over TCP
            response.answer.clear()
            response.flags |= dns.flags.TC
            out = response.to_wire()
        return out

    def start(self) -> DNSServer:
        server = self

        class UDPHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                sock.sendto(server.answer(data, udp=True), self.client_address)

        class TCPHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                head = self.request.recv(2)
                if len(head) < 2:
                    return
                (length,) = struct.unpack("!H", head)
                data = b""
                while len(data) < length:
                    chunk = self.request.recv(length - len(data))
                    if not chunk:
                        return
                    data += chunk
                out = server.answer(data, udp=False)
                self.request.sendall(struct.pack("!H", len(out)) + out)

        for _ in range(20):  # UDP and TCP on the same free port
            udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0), UDPHandler)
            port = udp.server_address[1]
            try:
                socketserver.ThreadingTCPServer.allow_reuse_address = True
                tcp = socketserver.ThreadingTCPServer(("127.0.0.1", port), TCPHandler)
            except OSError:
                udp.server_close()
                continue
            break
        else:
            raise OSError("no free port for the test DNS server")
        udp.daemon_threads = tcp.daemon_threads = True
        self._servers = [udp, tcp]
        self.port = port
        for s in self._servers:
            threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        for s in self._servers:
            s.shutdown()
            s.server_close()


def resolve_once(port: int, name: str, rtype: str = "A") -> list[str]:
    """Ask the server directly (a quick self-check for tests)."""
    query = dns.message.make_query(name, rtype)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(query.to_wire(), ("127.0.0.1", port))
        data, _ = s.recvfrom(65535)
    reply = dns.message.from_wire(data)
    return [r.to_text() for rrset in reply.answer for r in rrset]
