from django.db import models


class Lease(models.Model):
    """A named, expiring lock shared by every process through the database.

    Used where a lock must outlive one transaction and hold across processes: the POP3
    maildrop lock (RFC 1939 §8), a queue runner's claim on a message.
    """

    name = models.CharField(max_length=200, unique=True)
    owner = models.CharField(max_length=200)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} ({self.owner})"
