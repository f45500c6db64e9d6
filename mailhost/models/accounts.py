from django.contrib.auth.hashers import check_password, make_password
from django.db import models

from .domains import Domain


class Account(models.Model):
    """A mail user: one address and one password for IMAP, POP3, SMTP AUTH and webmail."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="accounts")
    local_part = models.CharField(max_length=64)
    address = models.CharField(max_length=320, unique=True)  # lower-case local@domain
    password = models.CharField(max_length=256)
    display_name = models.CharField(max_length=200, blank=True)
    quota_bytes = models.BigIntegerField(default=0)  # 0 = unlimited
    used_bytes = models.BigIntegerField(default=0)  # kept by the store, in its transactions
    active = models.BooleanField(default=True)
    # The last UIDVALIDITY handed out, so a re-created mailbox never reuses one.
    last_uidvalidity = models.BigIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["address"]

    def __str__(self) -> str:
        return self.address

    def set_password(self, raw_password: str) -> None:
        self.password = make_password(raw_password)

    def check_password(self, raw_password: str) -> bool:
        def upgrade(raw: str) -> None:
            self.set_password(raw)
            Account.objects.filter(pk=self.pk).update(password=self.password)

        return check_password(raw_password, self.password, setter=upgrade)
