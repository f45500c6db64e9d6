"""The outbound queue: what waits to leave, per recipient, in rows (never only in a broker).

A QueuedMessage's bytes live in the queue spool (mailhost.queue_spool), written and fsync'ed
before the row commits. Each QueuedRecipient moves queued -> sending (claimed by one worker
until `lease_until`) -> delivered | failed; a 4xx puts it back to queued with a later
`next_attempt`. A claim that outlives its lease (a killed worker) is due again.
"""

from django.db import models
from django.utils import timezone

from .accounts import Account


class QueuedMessage(models.Model):
    KINDS = [
        ("submission", "submission"),
        ("forward", "forward"),
        ("dsn", "dsn"),
        ("notice", "notice"),
    ]

    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.BigIntegerField()
    mail_from = models.CharField(max_length=320, blank=True)  # "" = null sender: never bounced
    kind = models.CharField(max_length=16, choices=KINDS, default="submission")
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.SET_NULL)
    created = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    held = models.BooleanField(default=False)
    warned = models.BooleanField(default=False)  # delay warning (RFC 3464 Action: delayed) sent

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return f"queue {self.id} from <{self.mail_from}>"


class QueuedRecipient(models.Model):
    QUEUED, SENDING, DELIVERED, FAILED = "queued", "sending", "delivered", "failed"
    STATES = [(s, s) for s in (QUEUED, SENDING, DELIVERED, FAILED)]

    message = models.ForeignKey(QueuedMessage, on_delete=models.CASCADE, related_name="recipients")
    address = models.CharField(max_length=320)
    state = models.CharField(max_length=12, choices=STATES, default=QUEUED)
    attempts = models.IntegerField(default=0)
    next_attempt = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_attempt = models.DateTimeField(null=True, blank=True)
    last_reply = models.TextField(blank=True)
    status = models.CharField(max_length=16, blank=True)  # enhanced code, e.g. 5.1.1
    remote_mta = models.CharField(max_length=255, blank=True)
    reported = models.BooleanField(default=False)  # a failure DSN covered this recipient

    class Meta:
        indexes = [models.Index(fields=["state", "next_attempt"])]
        ordering = ["message", "id"]

    def __str__(self) -> str:
        return f"{self.address} ({self.state})"
