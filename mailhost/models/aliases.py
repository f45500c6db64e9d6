from django.db import models

from .domains import Domain


class Alias(models.Model):
    """`source` is `local@domain`, or `@domain` for a catch-all."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="aliases")
    source = models.CharField(max_length=320, unique=True)
    active = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["source"]
        verbose_name_plural = "aliases"

    def __str__(self) -> str:
        return self.source

    @property
    def is_catchall(self) -> bool:
        return self.source.startswith("@")


class AliasTarget(models.Model):
    """One destination of an alias: a local account or alias address, or an external one."""

    alias = models.ForeignKey(Alias, on_delete=models.CASCADE, related_name="targets")
    address = models.CharField(max_length=320)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["alias", "address"], name="alias_target_unique")
        ]
        indexes = [models.Index(fields=["address"])]

    def __str__(self) -> str:
        return f"{self.alias.source} -> {self.address}"
