"""check_credentials(): the one password check for IMAP, POP3, SMTP AUTH and webmail.

Failures are counted per remote IP and per account in Django's cache (local memory in one
process, Redis when REDIS_URL is set, so every process shares the lockout).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache

from .mail import address as addr
from .models import Account
from .store.values import AccountRef

log = logging.getLogger(__name__)


def _keys(address: str, remote_ip: str) -> list[str]:
    keys = [f"authfail:acct:{address}"]
    if remote_ip:
        keys.append(f"authfail:ip:{remote_ip}")
    return keys


def locked_out(address: str, remote_ip: str = "") -> bool:
    limit = settings.BUZON_AUTH_MAX_FAILURES
    if limit <= 0:
        return False
    return any((cache.get(k) or 0) >= limit for k in _keys(addr.normalize(address), remote_ip))


def _record_failure(address: str, remote_ip: str) -> None:
    for key in _keys(address, remote_ip):
        if not cache.add(key, 1, settings.BUZON_AUTH_LOCKOUT_SECONDS):
            try:
                cache.incr(key)
            except ValueError:
                cache.set(key, 1, settings.BUZON_AUTH_LOCKOUT_SECONDS)


def check_credentials(address: str, password: str, *, remote_ip: str = "") -> AccountRef | None:
    """Return the account for these credentials, or None (also while locked out)."""
    normalized = addr.normalize(address)
    if locked_out(normalized, remote_ip):
        log.warning("auth refused (locked out) for %s from %s", normalized, remote_ip)
        return None
    account = Account.objects.filter(address=normalized, active=True).first()
    if account is None or not account.check_password(password):
        if account is None:  # spend the same time as a real check: no user enumeration
            Account(password="").set_password(password)
        _record_failure(normalized, remote_ip)
        log.info("auth failed for %s from %s", normalized, remote_ip)
        return None
    for key in _keys(normalized, remote_ip)[:1]:
        cache.delete(key)
    return AccountRef(account.id, account.address, account.display_name)
