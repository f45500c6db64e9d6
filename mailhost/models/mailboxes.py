from django.db import models

from .accounts import Account

# RFC 6154 special-use attributes, and the folders every new account gets.
SPECIAL_USES = {
    "INBOX": "",
    "Sent": "\\Sent",
    "Drafts": "\\Drafts",
    "Trash": "\\Trash",
    "Junk": "\\Junk",
    "Archive": "\\Archive",
}


class Mailbox(models.Model):
    """A folder. `name` is the full path with `/` as the hierarchy delimiter, in UTF-8."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="mailboxes")
    name = models.CharField(max_length=1000)
    uidvalidity = models.BigIntegerField()
    uidnext = models.BigIntegerField(default=1)
    highestmodseq = models.BigIntegerField(default=1)
    # UIDs at or above this are \Recent for the next session that claims them (RFC 3501 §2.3.2).
    recent_uid = models.BigIntegerField(default=1)
    special_use = models.CharField(max_length=20, blank=True)
    subscribed = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="mailbox_name_unique")
        ]
        ordering = ["account", "name"]
        verbose_name_plural = "mailboxes"

    def __str__(self) -> str:
        return f"{self.account_id}:{self.name}"
