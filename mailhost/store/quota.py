"""Quota figures for QUOTA (RFC 9208) and the admin."""

from __future__ import annotations

from ..models import Account
from .errors import AccountNotFound


def quota(account_id: int) -> tuple[int, int]:
    """Return (bytes used, limit in bytes; 0 = unlimited)."""
    row = Account.objects.filter(id=account_id).values_list("used_bytes", "quota_bytes").first()
    if row is None:
        raise AccountNotFound(f"No account {account_id}")
    return row
