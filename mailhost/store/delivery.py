"""Local delivery (MDA): recipients -> mailboxes, through aliases, catch-alls and tags.

Resolution follows Postfix's order: an exact alias, then an account, then the address
without its `+tag`, then the domain's catch-all. Aliases expand recursively with a depth
limit and a visited set, so loops end and fan-out never delivers twice to one account.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import F, Q

from ..mail import address as addr
from ..models import Account, Domain
from . import sql, tx
from .errors import MessageTooLarge, OverQuota, StoreError
from .messages import Prepared, deliver_prepared, prepare
from .values import Delivered, RecipientResult

log = logging.getLogger(__name__)
MAX_ALIAS_DEPTH = 10
LOCAL_ERROR = "Local error in processing; try again later"

# The outbound queue installs itself here (smtpd); until then external targets are refused.
Forwarder = Callable[[bytes, str, list[str]], None]
_forwarder: Forwarder | None = None


def set_forwarder(fn: Forwarder | None) -> None:
    global _forwarder
    _forwarder = fn


@dataclass
class Resolution:
    accounts: set[int] = field(default_factory=set)
    external: set[str] = field(default_factory=set)

    @property
    def empty(self) -> bool:
        return not self.accounts and not self.external


def is_local_domain(domain: str) -> bool:
    return Domain.objects.filter(name=addr.normalize_domain(domain), active=True).exists()


def resolve(address: str) -> Resolution:
    """Return where mail for `address` goes; empty when nobody here takes it."""
    result = Resolution()
    _expand(addr.normalize(address), result, set(), 0, top=True)
    return result


def _expand(address: str, result: Resolution, visited: set[str], depth: int, top: bool) -> None:
    local, domain = addr.split(address)
    if not domain:
        return
    if address in visited or depth > MAX_ALIAS_DEPTH:
        # A loop (or an alias that keeps a copy for its own account): the account, if any.
        if (account := sql.lookup_address(address)[1]) is not None:
            result.accounts.add(account)
        return
    visited.add(address)
    candidates = [address]
    if (untagged := addr.strip_tag(address)) is not None:
        candidates.append(untagged)
    for candidate in candidates:
        targets, account = sql.lookup_address(candidate)
        if targets is not None:
            for target in targets:
                _expand(addr.normalize(target), result, visited, depth + 1, top=False)
            return
        if account is not None:
            result.accounts.add(account)
            return
    targets, _ = sql.lookup_address(f"@{domain}")
    if targets is not None:  # catch-all
        for target in targets:
            _expand(addr.normalize(target), result, visited, depth + 1, top=False)
        return
    # Nothing here matched: an address outside our domains is forwarded (when it came from
    # an alias) or refused (when a client asked for it directly: we are not a relay).
    if not top and not is_local_domain(domain):
        result.external.add(address)


def check_recipient(address: str, size: int = 0) -> RecipientResult | None:
    """The RCPT-time check: None when mail for `address` (of about `size` bytes) would be
    taken, else the refusal. A recipient whose every mailbox is full is refused here (452
    4.2.2, or 552 5.2.2 with BUZON_QUOTA_PERMANENT), as Dovecot's quota-status service does
    for Postfix, so the sending MTA keeps the message for that recipient alone instead of
    our having to bounce it after DATA."""
    res = resolve(address)
    if res.empty:
        return RecipientResult(address, 550, "5.1.1", "No such user here")
    if res.external:
        if _forwarder is None:
            return RecipientResult(
                address, 550, "5.3.0", "Alias forwards outside this server; not enabled"
            )
        return None
    fits = Q(quota_bytes=0) | Q(used_bytes__lte=F("quota_bytes") - max(size, 1))
    if Account.objects.filter(fits, id__in=res.accounts).exists():
        return None
    if settings.BUZON_QUOTA_PERMANENT:
        return RecipientResult(address, 552, "5.2.2", "Mailbox is full")
    return RecipientResult(address, 452, "4.2.2", "Mailbox is full; try again later")


@dataclass
class DeliveryPlan:
    """A message parsed and on disk, its recipients resolved: all a delivery does before its
    write transaction (so a daemon can run this part on its read pool)."""

    prep: Prepared | None
    plans: list[tuple[str, Resolution | RecipientResult]]


def plan_delivery(raw: bytes, rcpt_to: Iterable[str]) -> DeliveryPlan:
    """Parse and write the blob once, and resolve each recipient (no transaction)."""
    rcpts = list(rcpt_to)
    try:
        prep = prepare(raw)
    except MessageTooLarge as e:
        return DeliveryPlan(None, [(r, RecipientResult(r, 552, "5.3.4", str(e))) for r in rcpts])
    plans: list[tuple[str, Resolution | RecipientResult]] = []
    for rcpt in rcpts:
        res = resolve(rcpt)
        if res.empty:
            plans.append((rcpt, RecipientResult(rcpt, 550, "5.1.1", "No such user here")))
        elif res.external and _forwarder is None:
            refused = RecipientResult(
                rcpt, 550, "5.3.0", "Alias forwards outside this server; not enabled"
            )
            plans.append((rcpt, refused))
        else:
            plans.append((rcpt, res))
    return DeliveryPlan(prep, plans)


def execute_delivery(
    plan: DeliveryPlan, *, mail_from: str, folder: str = "INBOX"
) -> list[RecipientResult]:
    """Commit a planned delivery in one write transaction; one result per recipient."""
    plans, prep = plan.plans, plan.prep
    accounts = {a for _, p in plans if isinstance(p, Resolution) for a in p.accounts}
    external = sorted({t for _, p in plans if isinstance(p, Resolution) for t in p.external})
    per_account: dict[int, Delivered | StoreError] = {}
    if prep is not None and (accounts or external):
        try:
            with tx.write():
                per_account = _deliver_accounts(prep, accounts, folder)
                if external and _forwarder is not None:
                    # In the same transaction as the local copies: a failure to queue the
                    # forward rolls everything back, so a client's retry duplicates nothing.
                    _forwarder(prep.raw, mail_from, external)
        except Exception:
            log.exception("delivery to %s failed", ", ".join(r for r, _ in plans))
            return [
                p
                if isinstance(p, RecipientResult)
                else RecipientResult(r, 451, "4.3.0", LOCAL_ERROR)
                for r, p in plans
            ]
    return [p if isinstance(p, RecipientResult) else _outcome(r, p, per_account) for r, p in plans]


def deliver(
    raw: bytes,
    *,
    mail_from: str,
    rcpt_to: Iterable[str],
    folder: str = "INBOX",
) -> list[RecipientResult]:
    """Deliver one message to each envelope recipient; one result (and reply) per recipient.

    The bytes are written once, whatever the number of recipients, and each account gets one
    copy even when several recipients lead to it. A result is 2xx only once committed.
    """
    return execute_delivery(plan_delivery(raw, rcpt_to), mail_from=mail_from, folder=folder)


def _outcome(
    rcpt: str, plan: Resolution, per_account: dict[int, Delivered | StoreError]
) -> RecipientResult:
    delivered = [d for a in plan.accounts if isinstance(d := per_account[a], Delivered)]
    errors = [e for a in plan.accounts if isinstance(e := per_account[a], StoreError)]
    if errors and not delivered and not plan.external:
        err = errors[0]
        if isinstance(err, OverQuota):
            if err.permanent:
                return RecipientResult(rcpt, 552, "5.2.2", str(err))
            return RecipientResult(rcpt, 452, "4.2.2", str(err))
        return RecipientResult(rcpt, 451, "4.3.0", str(err))
    return RecipientResult(
        rcpt, 250, "2.0.0", "Delivered", delivered=delivered, forwarded=sorted(plan.external)
    )


def _deliver_accounts(
    prep: Prepared, account_ids: set[int], folder: str
) -> dict[int, Delivered | StoreError]:
    """Deliver to each account inside the caller's transaction; an account over quota does
    not stop the others."""
    outcome: dict[int, Delivered | StoreError] = {}
    for account_id in sorted(account_ids):  # a fixed order: no lock-order deadlocks
        try:
            mailbox_id, uid = deliver_prepared(account_id, folder, prep)
            outcome[account_id] = Delivered(account_id, mailbox_id, uid)
        except StoreError as e:
            outcome[account_id] = e
    return outcome
