"""Errors the store raises. Each protocol maps them to its replies in one table."""


class StoreError(Exception):
    """Base class; `str(e)` is a sentence fit for a protocol reply."""


class AccountNotFound(StoreError):
    pass


class MailboxNotFound(StoreError):
    pass


class MailboxExists(StoreError):
    pass


class InvalidMailboxName(StoreError):
    pass


class HasChildren(StoreError):
    pass


class CannotDelete(StoreError):
    """E.g. INBOX: RFC 3501 §6.3.4 says deleting it is an error."""


class MessageTooLarge(StoreError):
    pass


class OverQuota(StoreError):
    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class NoSuchUser(StoreError):
    pass


class NotLocal(StoreError):
    """The address is in a domain we do not accept mail for."""


class ForwardingUnavailable(StoreError):
    """An alias points outside our domains and no outbound queue is installed."""
