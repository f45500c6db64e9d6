"""Domains, accounts and aliases: what the admin commands, panel and API change."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.db import transaction

from .mail import address as addr
from .models import Account, Alias, AliasTarget, Domain
from .store import mailboxes


class DirectoryError(Exception):
    pass


def add_domain(name: str) -> Domain:
    name = addr.normalize_domain(name)
    if not name or "@" in name or " " in name:
        raise DirectoryError(f"Invalid domain name {name!r}")
    domain, created = Domain.objects.get_or_create(name=name)
    if not created:
        raise DirectoryError(f"Domain {name} already exists")
    return domain


def add_account(
    address: str,
    password: str,
    *,
    quota: int | None = None,
    display_name: str = "",
) -> Account:
    """Create an account with INBOX, Sent, Drafts, Trash, Junk and Archive."""
    normalized = addr.normalize(address)
    local, domain_name = addr.split(normalized)
    if not local or not domain_name:
        raise DirectoryError(f"Invalid address {address!r}")
    if not password:
        raise DirectoryError("A password is required")
    with transaction.atomic():
        domain = Domain.objects.filter(name=domain_name).first()
        if domain is None:
            raise DirectoryError(f"Domain {domain_name} does not exist; add it first")
        if Account.objects.filter(address=normalized).exists():
            raise DirectoryError(f"Account {normalized} already exists")
        account = Account(
            domain=domain,
            local_part=local.lower(),
            address=normalized,
            display_name=display_name,
            quota_bytes=settings.BUZON_DEFAULT_QUOTA if quota is None else quota,
        )
        account.set_password(password)
        account.save()
        mailboxes.create_defaults(account.id)
    return account


def add_alias(source: str, destinations: Iterable[str]) -> Alias:
    """`source` is `local@domain` or `@domain` (catch-all); destinations may be anywhere."""
    source = source.strip()
    if source.startswith("@"):
        domain_name = addr.normalize_domain(source[1:])
        source = f"@{domain_name}"
    else:
        source = addr.normalize(source)
        domain_name = addr.split(source)[1]
    targets = [addr.normalize(d) for d in destinations if d.strip()]
    if not targets or any("@" not in t for t in targets):
        raise DirectoryError("An alias needs at least one destination address (local@domain)")
    with transaction.atomic():
        domain = Domain.objects.filter(name=domain_name).first()
        if domain is None:
            raise DirectoryError(f"Domain {domain_name} does not exist; add it first")
        alias, _ = Alias.objects.get_or_create(source=source, defaults={"domain": domain})
        for target in targets:
            AliasTarget.objects.get_or_create(alias=alias, address=target)
    return alias


def owned_addresses(account_id: int) -> set[str]:
    """The account's own address and every alias that delivers to it (submission check).

    Walks aliases backwards from the address, so the cost follows the aliases that lead to
    this account, not the number of aliases on the server. A catch-all is never "owned":
    it would let the account send as anyone in the domain.
    """
    account = Account.objects.get(id=account_id)
    owned = {account.address}
    frontier = {account.address}
    for _depth in range(10):
        sources = set(
            AliasTarget.objects.filter(address__in=frontier, alias__active=True).values_list(
                "alias__source", flat=True
            )
        )
        frontier = {s for s in sources if not s.startswith("@")} - owned
        if not frontier:
            break
        owned |= frontier
    return owned
