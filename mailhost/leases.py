"""Take, renew and release named leases (mailhost.models.Lease) across processes."""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import Lease


def acquire(name: str, owner: str, seconds: float) -> bool:
    """Take `name` for `owner` unless someone else holds an unexpired lease on it."""
    now = timezone.now()
    expires = now + timedelta(seconds=seconds)
    with transaction.atomic():
        lease = Lease.objects.select_for_update().filter(name=name).first()
        if lease is None:
            try:
                with transaction.atomic():
                    Lease.objects.create(name=name, owner=owner, expires_at=expires)
                return True
            except IntegrityError:  # another process created it first
                return False
        if lease.owner != owner and lease.expires_at > now:
            return False
        lease.owner, lease.expires_at = owner, expires
        lease.save(update_fields=["owner", "expires_at"])
        return True


def renew(name: str, owner: str, seconds: float) -> bool:
    expires = timezone.now() + timedelta(seconds=seconds)
    return bool(Lease.objects.filter(name=name, owner=owner).update(expires_at=expires))


def release(name: str, owner: str) -> None:
    Lease.objects.filter(name=name, owner=owner).delete()
