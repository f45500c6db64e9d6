"""Addresses: splitting, normalising (IDNA domains, lower-case), plus-addressing."""

from __future__ import annotations

PLUS = "+"


def split(address: str) -> tuple[str, str]:
    """`Local@Domain` -> (`Local`, `domain`). The domain is lower-cased and IDNA-encoded."""
    local, sep, domain = address.strip().strip("<>").rpartition("@")
    if not sep:
        return address.strip(), ""
    return local, normalize_domain(domain)


def normalize_domain(domain: str) -> str:
    domain = domain.strip().rstrip(".").lower()
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


def normalize(address: str) -> str:
    """The form we key accounts and aliases by: lower-case local part, A-label domain."""
    local, domain = split(address)
    return f"{local.lower()}@{domain}" if domain else local.lower()


def strip_tag(address: str) -> str | None:
    """`user+tag@d` -> `user@d` (plus-addressing); None when there is no tag."""
    local, domain = split(address)
    base, sep, _tag = local.partition(PLUS)
    if not sep or not base:
        return None
    return f"{base.lower()}@{domain}"
