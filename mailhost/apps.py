from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _sqlite_pragmas(sender, connection, **kwargs) -> None:
    if connection.vendor != "sqlite":
        return
    from django.conf import settings

    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before we acknowledge (250 after DATA, APPEND OK).
        cursor.execute(f"PRAGMA synchronous={settings.BUZON_SQLITE_SYNCHRONOUS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")


class MailhostConfig(AppConfig):
    name = "mailhost"
    verbose_name = "Buzón"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        connection_created.connect(_sqlite_pragmas)
