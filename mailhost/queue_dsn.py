"""Delivery Status Notifications (RFC 3464): multipart/report; report-type=delivery-status.

Sent from the null sender to the original envelope sender. The third part holds only the
original header (text/rfc822-headers, RFC 6522 §3), so a DSN stays small and does not carry
the original content onward.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, make_msgid

from django.conf import settings


@dataclass(frozen=True)
class RecipientStatus:
    address: str
    action: str  # failed | delayed (RFC 3464 §2.3.3)
    status: str  # enhanced code (RFC 3463)
    diagnostic: str = ""
    remote_mta: str = ""
    last_attempt: datetime | None = None
    retry_until: datetime | None = None


def _header_block(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    head = raw if end < 0 else raw[: end + 2]
    return head.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _clean(text: str) -> str:
    return " ".join(text.split())


def build(
    *,
    sender: str,
    arrival: datetime,
    original: bytes,
    recipients: list[RecipientStatus],
    now: datetime,
) -> bytes:
    host = settings.BUZON_HOSTNAME
    boundary = f"=_dsn_{secrets.token_hex(12)}"
    delayed = all(r.action == "delayed" for r in recipients)
    subject = "Delivery delayed: still trying" if delayed else "Undelivered Mail Returned to Sender"
    human = [
        f"This is the mail system at {host}.",
        "",
        (
            "Your message has not been delivered yet to the recipients below. We will keep"
            " trying; you do not need to send it again."
            if delayed
            else "Your message could not be delivered to the recipients below."
        ),
        "",
    ]
    for r in recipients:
        human.append(f"<{r.address}>: {_clean(r.diagnostic) or r.status}")
    per_message = [
        f"Reporting-MTA: dns; {host}",
        f"Arrival-Date: {format_datetime(arrival)}",
    ]
    blocks = []
    for r in recipients:
        fields = [
            f"Final-Recipient: rfc822; {r.address}",
            f"Action: {r.action}",
            f"Status: {r.status}",
        ]
        if r.remote_mta:
            fields.append(f"Remote-MTA: dns; {r.remote_mta}")
        if r.diagnostic:
            fields.append(f"Diagnostic-Code: smtp; {_clean(r.diagnostic)[:900]}")
        if r.last_attempt:
            fields.append(f"Last-Attempt-Date: {format_datetime(r.last_attempt)}")
        if r.retry_until:
            fields.append(f"Will-Retry-Until: {format_datetime(r.retry_until)}")
        blocks.append("\r\n".join(fields))
    status_body = "\r\n".join(per_message) + "\r\n\r\n" + "\r\n\r\n".join(blocks) + "\r\n"
    head = "\r\n".join(
        [
            f"From: Mail Delivery System <MAILER-DAEMON@{host}>",
            f"To: <{sender}>",
            f"Subject: {subject}",
            f"Date: {format_datetime(now)}",
            f"Message-ID: {make_msgid(domain=host)}",
            "Auto-Submitted: auto-replied",
            "MIME-Version: 1.0",
            f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        ]
    )
    parts = [
        head.encode() + b"\r\n\r\nThis is a MIME-encapsulated message.\r\n",
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n".encode()
        + "\r\n".join(human).encode()
        + b"\r\n",
        f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n".encode()
        + status_body.encode("utf-8"),
        f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n".encode()
        + _header_block(original),
        f"--{boundary}--\r\n".encode(),
    ]
    return b"".join(parts)
