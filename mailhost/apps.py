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


def _prepared_statements(sender, connection, **kwargs) -> None:
    """PostgreSQL: let the store prepare its hot statements (mailhost/store/cursors.py).
    The threshold stays out of reach, so the ORM's client-bound queries are never prepared;
    the store's statements (a few hundred shapes: IN lists of several lengths) ask with
    prepare=True, and the cache is sized to keep them."""
    from django.conf import settings

    if connection.vendor != "postgresql" or not settings.BUZON_DB_PREPARE:
        return
    raw = connection.connection
    raw.prepare_threshold = 2**31 - 1
    raw.prepared_max = PREPARED_MAX


PREPARED_MAX = 512


class MailhostConfig(AppConfig):
    name = "mailhost"
    verbose_name = "Buzón"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        connection_created.connect(_sqlite_pragmas)
        connection_created.connect(_prepared_statements)
