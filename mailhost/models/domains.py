from django.db import models


class Domain(models.Model):
    """A mail domain we accept mail for (stored lower-case, IDNA A-label)."""

    name = models.CharField(max_length=253, unique=True)
    active = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
