"""DKIM signing (RFC 6376) of mail that leaves through the queue, per From: domain.

Keys live in BUZON_DATA_DIR/dkim/<domain>.json (mode 0600): selector, algorithm and private
key. `manage.py dkim_key DOMAIN` makes one (RSA 2048 by default, or Ed25519 per RFC 8463)
and prints the TXT record to publish at <selector>._domainkey.<domain>.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from pathlib import Path

import dkim
from django.conf import settings

from .mail import address as addr

log = logging.getLogger(__name__)
RSA, ED25519 = "rsa-sha256", "ed25519-sha256"
# RFC 6376 §5.4.1: the fields worth protecting; listed twice where an attacker could add one.
SIGNED_HEADERS = [
    b"from", b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"reply-to",
    b"in-reply-to", b"references", b"mime-version", b"content-type",
    b"content-transfer-encoding", b"list-unsubscribe",
]  # fmt: skip


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    algorithm: str
    private_key: str  # PEM (RSA) or base64 seed (Ed25519)
    public_txt: str


def key_dir() -> Path:
    return Path(settings.BUZON_DATA_DIR) / "dkim"


def key_path(domain: str) -> Path:
    return key_dir() / f"{addr.normalize_domain(domain)}.json"


def generate(domain: str, selector: str = "buzon", *, ed25519: bool = False) -> DkimKey:
    """Make a key pair for `domain`, store it (replacing any old one) and return it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519 as ed
    from cryptography.hazmat.primitives.asymmetric import rsa

    domain = addr.normalize_domain(domain)
    if ed25519:
        key = ed.Ed25519PrivateKey.generate()
        seed = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        pub = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        private, algorithm = base64.b64encode(seed).decode(), ED25519
        txt = f"v=DKIM1; k=ed25519; p={base64.b64encode(pub).decode()}"
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        algorithm = RSA
        txt = f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"
    result = DkimKey(domain, selector, algorithm, private, txt)
    path = key_path(domain)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(result.__dict__, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return result


def load(domain: str) -> DkimKey | None:
    try:
        data = json.loads(key_path(domain).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return DkimKey(**data)


def txt_record(key: DkimKey) -> str:
    """The zone-file line to publish."""
    value = key.public_txt
    chunks = " ".join(f'"{value[i : i + 250]}"' for i in range(0, len(value), 250))
    return f"{key.selector}._domainkey.{key.domain}. IN TXT ( {chunks} )"


def from_domain(raw: bytes) -> str:
    """The domain of the (first) From: address, or ""."""
    end = raw.find(b"\r\n\r\n")
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw if end < 0 else raw[: end + 4])
    values = [str(v) for v in headers.get_all("From", [])]
    for _name, address in getaddresses(values):
        if "@" in address:
            return addr.split(address)[1]
    return ""


def sign(raw: bytes) -> bytes:
    """Prepend a DKIM-Signature when the From: domain has a key; else return `raw` as is."""
    domain = from_domain(raw)
    key = load(domain) if domain else None
    if key is None:
        return raw
    try:
        header = dkim.sign(
            raw,
            key.selector.encode(),
            key.domain.encode(),
            key.private_key.encode(),
            signature_algorithm=key.algorithm.encode(),
            include_headers=SIGNED_HEADERS,
        )
    except dkim.DKIMException:
        log.exception("DKIM signing failed for %s", domain)
        return raw
    return header + raw
