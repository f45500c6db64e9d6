"""TLS material: a self-signed certificate made on first start, or real ones by path."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path

from django.conf import settings


def cert_paths() -> tuple[Path, Path]:
    if settings.BUZON_TLS_CERT and settings.BUZON_TLS_KEY:
        return Path(settings.BUZON_TLS_CERT), Path(settings.BUZON_TLS_KEY)
    tls_dir = Path(settings.BUZON_DATA_DIR) / "tls"
    return tls_dir / "cert.pem", tls_dir / "key.pem"


def ensure_certificate() -> tuple[Path, Path]:
    """Return (cert, key); make a self-signed pair for BUZON_HOSTNAME if none exists."""
    cert_path, key_path = cert_paths()
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    host = settings.BUZON_HOSTNAME
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64])])
    now = datetime.datetime.now(datetime.UTC)
    alt = [x509.DNSName(host), x509.DNSName("localhost")]
    alt += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_key = key_path.with_suffix(".tmp")
    fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    os.replace(tmp_key, key_path)
    tmp_cert = cert_path.with_suffix(".tmp")
    tmp_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp_cert, cert_path)
    return cert_path, key_path


_context: ssl.SSLContext | None = None


def server_context() -> ssl.SSLContext:
    """The server-side TLS context every listener shares (TLS 1.2 or newer)."""
    global _context
    if _context is None:
        cert, key = ensure_certificate()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        _context = ctx
    return _context


def reset() -> None:
    """Forget the cached context (tests switch certificates)."""
    global _context
    _context = None
