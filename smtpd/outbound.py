"""The outbound SMTP client: delivers queued messages (mailhost.queue) to remote MXes.

- Route: the relay host if one is set (BUZON_RELAY_*), else the domain's MX records in
  preference order (RFC 5321 §5.1), the domain itself without MX, and an immediate failure
  for a null MX (RFC 7505). MX hosts are contacted on BUZON_REMOTE_SMTP_PORT.
- One connection per host for all of a domain's recipients; PIPELINING (RFC 2920) when
  offered; opportunistic STARTTLS (RFC 3207; RFC 7435: no certificate check, since an MX
  certificate rarely matches and a failed handshake falls back to plain text).
- Per-recipient outcomes: each RCPT reply, then the DATA reply for those accepted.
- Line endings are normalised to CRLF and dots stuffed (RFC 5321 §4.5.2).
"""

from __future__ import annotations

import base64
import logging
import re
import socket
import ssl
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from mailhost import queue, queue_spool
from mailhost.mail import address as addr

from . import dns as smtp_dns

log = logging.getLogger(__name__)
_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\s+")


class SmtpError(Exception):
    """The session failed as a whole (connection, greeting, EHLO, MAIL, DATA)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code, self.text = code, text


@dataclass(frozen=True)
class Reply:
    code: int
    text: str

    @property
    def enhanced(self) -> str:
        m = _ENHANCED.match(self.text)
        if m:
            return m.group(1)
        return {2: "2.0.0", 4: "4.0.0", 5: "5.0.0"}.get(self.code // 100, "4.0.0")

    @property
    def message(self) -> str:
        return _ENHANCED.sub("", self.text, count=1)


def normalize_crlf(raw: bytes) -> bytes:
    """Every line ends with CRLF: bare LF and bare CR become CRLF."""
    text = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return text if text.endswith(b"\r\n") else text + b"\r\n"


def dot_stuff(data: bytes) -> bytes:
    stuffed = re.sub(rb"(?m)^\.", b"..", data)
    return stuffed + b".\r\n"


class Client:
    """A small blocking SMTP client: enough for a queue runner, with pipelining."""

    def __init__(self, host: str, port: int, *, timeout: float, helo: str) -> None:
        self.host, self.port, self.helo = host, port, helo
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.caps: dict[str, str] = {}
        self.tls = False

    def close(self) -> None:
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> Reply:
        lines = []
        while True:
            line = self.file.readline(8192)
            if not line:
                raise SmtpError(421, "4.4.2 Connection closed by remote host")
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if len(text) < 3 or not text[:3].isdigit():
                raise SmtpError(451, "4.5.0 Malformed reply from remote host")
            lines.append(text[4:])
            if text[3:4] != "-":
                return Reply(int(text[:3]), " ".join(lines) if len(lines) > 1 else lines[0])

    def command(self, line: str) -> Reply:
        self.send(line.encode("utf-8") + b"\r\n")
        return self.reply()

    def greet(self) -> None:
        r = self.reply()
        if r.code != 220:
            raise SmtpError(r.code, r.text)
        self.ehlo()

    def ehlo(self) -> None:
        self.send(f"EHLO {self.helo}\r\n".encode())
        lines = []
        while True:
            line = self.file.readline(8192)
            if not line:
                raise SmtpError(421, "4.4.2 Connection closed by remote host")
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(text)
            if text[3:4] != "-":
                break
        code = int(lines[-1][:3]) if lines[-1][:3].isdigit() else 500
        if code != 250:
            r = self.command(f"HELO {self.helo}")
            if r.code != 250:
                raise SmtpError(r.code, r.text)
            self.caps = {}
            return
        self.caps = {}
        for text in lines[1:]:
            keyword, _, params = text[4:].partition(" ")
            self.caps[keyword.upper()] = params

    def starttls(self, context: ssl.SSLContext) -> None:
        r = self.command("STARTTLS")
        if r.code != 220:
            raise SmtpError(r.code, r.text)
        self.file.close()
        self.sock = context.wrap_socket(self.sock, server_hostname=self.host)
        self.file = self.sock.makefile("rb")
        self.tls = True
        self.ehlo()  # RFC 3207 §4.2: forget what we knew, ask again

    def auth(self, user: str, password: str) -> None:
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        r = self.command(f"AUTH PLAIN {token}")
        if r.code != 235:
            raise SmtpError(r.code, r.text)

    def transaction(self, mail_from: str, rcpts: list[str], data: bytes) -> list[Reply]:
        """One mail transaction; a reply per recipient (the DATA reply for accepted ones)."""
        utf8 = not (mail_from.isascii() and all(r.isascii() for r in rcpts))
        if utf8 and "SMTPUTF8" not in self.caps:
            reply = Reply(553, "5.6.7 Remote server does not support SMTPUTF8 addresses")
            return [reply for _ in rcpts]
        params = []
        if "SIZE" in self.caps:
            params.append(f"SIZE={len(data)}")
        if "8BITMIME" in self.caps and any(b > 127 for b in data):
            params.append("BODY=8BITMIME")
        if utf8:
            params.append("SMTPUTF8")
        mail = f"MAIL FROM:<{mail_from}>" + "".join(" " + p for p in params)
        commands = [mail] + [f"RCPT TO:<{r}>" for r in rcpts]
        if "PIPELINING" in self.caps:  # RFC 2920 §3.1: DATA ends the group
            self.send(("\r\n".join(commands + ["DATA"]) + "\r\n").encode("utf-8"))
            mail_reply = self.reply()
            rcpt_replies = [self.reply() for _ in rcpts]
            data_reply = self.reply()
        else:
            mail_reply = self.command(commands[0])
            if mail_reply.code != 250:
                return [mail_reply for _ in rcpts]
            rcpt_replies = [self.command(c) for c in commands[1:]]
            data_reply = (
                self.command("DATA")
                if any(r.code in (250, 251) for r in rcpt_replies)
                else Reply(554, "5.5.1 No valid recipients")
            )
        if mail_reply.code != 250:
            if data_reply.code == 354:  # a server that said 354 anyway gets an empty message
                self.send(b".\r\n")
                self.reply()
            return [mail_reply for _ in rcpts]
        accepted = [i for i, r in enumerate(rcpt_replies) if r.code in (250, 251)]
        if not accepted:
            if data_reply.code == 354:
                self.send(b".\r\n")
                self.reply()
            return rcpt_replies
        if data_reply.code != 354:
            return [data_reply if i in accepted else r for i, r in enumerate(rcpt_replies)]
        self.send(dot_stuff(data))
        final = self.reply()
        return [final if i in accepted else r for i, r in enumerate(rcpt_replies)]

    def quit(self) -> None:
        try:
            self.command("QUIT")
        except (OSError, SmtpError):
            pass
        self.close()


def _client_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # opportunistic (RFC 7435)
    return ctx


@dataclass(frozen=True)
class Route:
    hosts: list[tuple[str, int]]  # (host or IP, port) in the order to try
    relay: bool = False


def route_for(domain: str) -> Route:
    if settings.BUZON_RELAY_HOST:
        return Route([(settings.BUZON_RELAY_HOST, settings.BUZON_RELAY_PORT)], relay=True)
    port = settings.BUZON_REMOTE_SMTP_PORT
    hosts: list[tuple[str, int]] = []
    for mx in smtp_dns.mx_hosts(domain):
        hosts += [(ip, port) for ip in smtp_dns.addresses(mx)]
    if not hosts:
        raise smtp_dns.DnsFailure(451, "4.4.4", f"No address for the mail exchangers of {domain}")
    return Route(hosts)


def _session(host: str, port: int, relay: bool) -> Client:
    timeout = settings.BUZON_OUTBOUND_TIMEOUT
    helo = settings.BUZON_HOSTNAME
    if relay and settings.BUZON_RELAY_TLS == "implicit":
        client = Client(host, port, timeout=timeout, helo=helo)
        client.sock = ssl.create_default_context().wrap_socket(client.sock, server_hostname=host)
        client.file = client.sock.makefile("rb")
        client.tls = True
        client.greet()
    else:
        client = Client(host, port, timeout=timeout, helo=helo)
        client.greet()
        want_tls = settings.BUZON_RELAY_TLS != "none" if relay else True
        if want_tls and "STARTTLS" in client.caps:
            context = ssl.create_default_context() if relay else _client_context()
            client.starttls(context)
        elif relay and settings.BUZON_RELAY_TLS == "starttls":
            client.quit()
            raise SmtpError(451, "4.7.0 Relay host does not offer STARTTLS")
    if relay and settings.BUZON_RELAY_USER:
        client.auth(settings.BUZON_RELAY_USER, settings.BUZON_RELAY_PASSWORD)
    return client


def send_to_domain(
    mail_from: str, rcpts: list[tuple[int, str]], data: bytes, domain: str
) -> list[queue.Outcome]:
    """Try the domain's hosts in order until one takes the transaction."""
    try:
        route = route_for(domain)
    except smtp_dns.DnsFailure as e:
        return [queue.Outcome(rid, e.code, e.enhanced, e.text) for rid, _ in rcpts]
    last = SmtpError(451, "4.4.1 No answer from any mail exchanger")
    for host, port in route.hosts:
        try:
            client = _session(host, port, route.relay)
        except ssl.SSLError as e:
            if route.relay:
                last = SmtpError(451, f"4.7.0 TLS with the relay host failed: {e}")
                continue
            log.info("TLS with %s:%s failed (%s); trying without", host, port, e)
            try:
                timeout, helo = settings.BUZON_OUTBOUND_TIMEOUT, settings.BUZON_HOSTNAME
                client = Client(host, port, timeout=timeout, helo=helo)
                client.greet()
            except (OSError, SmtpError) as e2:
                last = e2 if isinstance(e2, SmtpError) else SmtpError(451, f"4.4.1 {e2}")
                continue
        except OSError as e:
            last = SmtpError(451, f"4.4.1 Connection to {host} failed: {e}")
            continue
        except SmtpError as e:
            last = e
            if e.code >= 500 and route.relay:
                break
            continue  # a 4xx/5xx greeting or EHLO: the next MX may do better (RFC 5321 §5.1)
        try:
            replies = client.transaction(mail_from, [a for _, a in rcpts], data)
        except (OSError, SmtpError) as e:
            client.close()
            code = e.code if isinstance(e, SmtpError) else 451
            text = e.text if isinstance(e, SmtpError) else f"4.4.2 Connection lost: {e}"
            enhanced = _ENHANCED.match(text)
            return [
                queue.Outcome(
                    rid, code, enhanced.group(1) if enhanced else "4.4.2", text, remote_mta=host
                )
                for rid, _ in rcpts
            ]
        client.quit()
        return [
            queue.Outcome(rid, r.code, r.enhanced, r.message, remote_mta=host)
            for (rid, _), r in zip(rcpts, replies, strict=True)
        ]
    enhanced = _ENHANCED.match(last.text)
    return [
        queue.Outcome(rid, last.code, enhanced.group(1) if enhanced else "4.4.1", last.text)
        for rid, _ in rcpts
    ]


def deliver_message(message_id: int, *, now: datetime | None = None) -> list[queue.Outcome]:
    """Make one attempt for every due recipient of a queued message; record the outcomes."""
    claim = queue.claim(message_id, now=now)
    if claim is None:
        return []
    try:
        data = normalize_crlf(queue_spool.read(claim.sha256))
    except FileNotFoundError:
        outcomes = [
            queue.Outcome(rid, 550, "5.3.0", "Queue file missing") for rid, _ in claim.recipients
        ]
        queue.record(message_id, outcomes, now=now)
        return outcomes
    by_domain: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for rid, address in claim.recipients:
        by_domain[addr.split(address)[1]].append((rid, address))
    outcomes: list[queue.Outcome] = []
    try:
        if settings.BUZON_RELAY_HOST:  # one connection for everything
            outcomes = send_to_domain(claim.mail_from, claim.recipients, data, "")
        else:
            for domain, rcpts in by_domain.items():
                outcomes += send_to_domain(claim.mail_from, rcpts, data, domain)
    except Exception:
        log.exception("delivery attempt for queue %s crashed", message_id)
        done = {o.rcpt_id for o in outcomes}
        outcomes += [
            queue.Outcome(rid, 451, "4.3.0", "Local error during delivery")
            for rid, _ in claim.recipients
            if rid not in done
        ]
    queue.record(message_id, outcomes, now=now)
    for o in outcomes:
        log.info("queue %s: rcpt %s -> %s", message_id, o.rcpt_id, o.reply)
    return outcomes
