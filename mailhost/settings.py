"""Django settings for Buzón, read from the environment (see README "Settings")."""

from __future__ import annotations

import socket
from pathlib import Path

import dj_database_url

from .config import env_bool, env_int, env_size, env_str, secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
BUZON_DATA_DIR = Path(env_str("BUZON_DATA_DIR", str(BASE_DIR / "data"))).resolve()

SECRET_KEY = secret_key(BUZON_DATA_DIR)
DEBUG = env_bool("BUZON_DEBUG", False)
ALLOWED_HOSTS = [h for h in env_str("BUZON_ALLOWED_HOSTS", "*").split(",") if h]

BUZON_HOSTNAME = env_str("BUZON_HOSTNAME", socket.getfqdn() or "localhost")
BUZON_BIND = env_str("BUZON_BIND", "127.0.0.1")
BUZON_SMTP_PORT = env_int("BUZON_SMTP_PORT", 2525)
BUZON_SUBMISSION_PORT = env_int("BUZON_SUBMISSION_PORT", 2587)
BUZON_SUBMISSIONS_PORT = env_int("BUZON_SUBMISSIONS_PORT", 2465)
BUZON_LMTP_PORT = env_int("BUZON_LMTP_PORT", 2424)
BUZON_IMAP_PORT = env_int("BUZON_IMAP_PORT", 1143)
BUZON_IMAPS_PORT = env_int("BUZON_IMAPS_PORT", 1993)
BUZON_POP3_PORT = env_int("BUZON_POP3_PORT", 1110)
BUZON_POP3S_PORT = env_int("BUZON_POP3S_PORT", 1995)
BUZON_WEB_PORT = env_int("BUZON_WEB_PORT", 8000)

BUZON_MAX_MESSAGE_SIZE = env_size("BUZON_MAX_MESSAGE_SIZE", 50 * 1024 * 1024)
BUZON_DEFAULT_QUOTA = env_size("BUZON_DEFAULT_QUOTA", 0)  # 0 = unlimited
BUZON_QUOTA_PERMANENT = env_bool("BUZON_QUOTA_PERMANENT", False)
BUZON_DB_THREADS = env_int("BUZON_DB_THREADS", 8)
# Short reads and the writes on the daemons' event-loop thread (mailhost/dbpool.py):
# auto = with SQLite, or PostgreSQL on this machine; yes; no (always the thread pools).
BUZON_DB_INLINE = env_str("BUZON_DB_INLINE", "auto")
# The store's hot statements prepared on PostgreSQL (mailhost/store/cursors.py); off behind a
# pooler that cannot keep prepared statements (PgBouncer in transaction mode before 1.21).
BUZON_DB_PREPARE = env_bool("BUZON_DB_PREPARE", True)
# What FETCH read of messages that never changes, kept per process (store/fetchcache.py).
BUZON_IMAP_FETCH_CACHE_MB = env_int("BUZON_IMAP_FETCH_CACHE_MB", 32)
BUZON_EVENT_LOOP = env_str("BUZON_EVENT_LOOP", "uvloop")  # uvloop | asyncio
# Without REDIS_URL: mailbox events between processes of this machine over Unix sockets.
BUZON_LOCAL_EVENTS = env_bool("BUZON_LOCAL_EVENTS", True)
BUZON_JOB_THREADS = env_int("BUZON_JOB_THREADS", 4)
BUZON_TLS_CERT = env_str("BUZON_TLS_CERT", "")
BUZON_TLS_KEY = env_str("BUZON_TLS_KEY", "")
BUZON_ALLOW_PLAINTEXT_AUTH = env_bool("BUZON_ALLOW_PLAINTEXT_AUTH", False)
BUZON_AUTH_MAX_FAILURES = env_int("BUZON_AUTH_MAX_FAILURES", 10)
BUZON_AUTH_LOCKOUT_SECONDS = env_int("BUZON_AUTH_LOCKOUT_SECONDS", 300)
BUZON_AUTH_FAILURE_DELAY = float(env_str("BUZON_AUTH_FAILURE_DELAY", "1.0"))
BUZON_ORPHAN_GRACE_SECONDS = env_int("BUZON_ORPHAN_GRACE_SECONDS", 3600)
BUZON_SQLITE_SYNCHRONOUS = env_str("BUZON_SQLITE_SYNCHRONOUS", "FULL")

REDIS_URL = env_str("REDIS_URL", "")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "channels",
    "mailhost",
    "imapd",  # IMAP and POP3: the imapd and pop3d management commands
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mailhost.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
ASGI_APPLICATION = "mailhost.asgi.application"
WSGI_APPLICATION = None


def _database() -> dict:
    url = env_str("DATABASE_URL", "")
    if not url:
        BUZON_DATA_DIR.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{BUZON_DATA_DIR / 'buzon.sqlite3'}"
    db = dj_database_url.parse(url, conn_max_age=600, conn_health_checks=True)
    if db["ENGINE"] == "django.db.backends.sqlite3":
        # Writers queue for the lock instead of failing with "database is locked";
        # WAL and the synchronous level are set per connection in mailhost/apps.py.
        db["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 30}
        db["CONN_MAX_AGE"] = 0 if env_bool("BUZON_SQLITE_NO_PERSIST", False) else 600
        db["TEST"] = {"NAME": str(BUZON_DATA_DIR / "test.sqlite3")}
    return db


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
if env_bool("BUZON_FAST_HASHER", False):  # tests only: argon2 is slow on purpose
    PASSWORD_HASHERS.insert(0, "django.contrib.auth.hashers.MD5PasswordHasher")

if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BUZON_DATA_DIR / "static"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("BUZON_LOG_LEVEL", "INFO")},
    "loggers": {"mail.log": {"level": "WARNING"}, "daphne": {"level": "WARNING"}},
}

# --- SMTP ---
# The smtpd app: its management commands (smtpd, mailq, dkim_key) and, at ready(), the
# outbound queue installed as the store's forwarder for alias targets outside our domains.
INSTALLED_APPS += ["smtpd.apps.SmtpdConfig"]
BUZON_SMTP_MAX_RECIPIENTS = env_int("BUZON_SMTP_MAX_RECIPIENTS", 100)
BUZON_SMTP_MAX_LINE_LENGTH = env_int("BUZON_SMTP_MAX_LINE_LENGTH", 8192)
BUZON_SMTP_TIMEOUT = env_int("BUZON_SMTP_TIMEOUT", 300)
BUZON_SMTP_DATA_TIMEOUT = env_int("BUZON_SMTP_DATA_TIMEOUT", 180)
BUZON_SMTP_MAX_CONNECTIONS_PER_IP = env_int("BUZON_SMTP_MAX_CONNECTIONS_PER_IP", 50)
BUZON_SMTP_MAX_ERRORS = env_int("BUZON_SMTP_MAX_ERRORS", 20)
BUZON_SMTP_VERIFY = env_bool("BUZON_SMTP_VERIFY", True)
BUZON_DNS_SERVERS = env_str("BUZON_DNS_SERVERS", "")
BUZON_DNS_TIMEOUT = float(env_str("BUZON_DNS_TIMEOUT", "5"))
BUZON_SEND_RATE_PER_HOUR = env_int("BUZON_SEND_RATE_PER_HOUR", 500)
BUZON_QUEUE_LIFETIME = env_int("BUZON_QUEUE_LIFETIME", 5 * 24 * 3600)
BUZON_QUEUE_BACKOFF_MIN = env_int("BUZON_QUEUE_BACKOFF_MIN", 300)
BUZON_QUEUE_BACKOFF_MAX = env_int("BUZON_QUEUE_BACKOFF_MAX", 4 * 3600)
BUZON_QUEUE_DELAY_WARNING = env_int("BUZON_QUEUE_DELAY_WARNING", 4 * 3600)
BUZON_REMOTE_SMTP_PORT = env_int("BUZON_REMOTE_SMTP_PORT", 25)
BUZON_OUTBOUND_TIMEOUT = env_int("BUZON_OUTBOUND_TIMEOUT", 60)
BUZON_RELAY_HOST = env_str("BUZON_RELAY_HOST", "")
BUZON_RELAY_PORT = env_int("BUZON_RELAY_PORT", 587)
BUZON_RELAY_TLS = env_str("BUZON_RELAY_TLS", "starttls")
BUZON_RELAY_USER = env_str("BUZON_RELAY_USER", "")
BUZON_RELAY_PASSWORD = env_str("BUZON_RELAY_PASSWORD", "")

# --- POP3 ---
# CAPA EXPIRE (RFC 2449 §6.7): days mail is kept after download, or NEVER. Buzón deletes
# nothing on its own; set a number only if a site policy outside Buzón enforces it.
BUZON_POP3_EXPIRE = env_str("BUZON_POP3_EXPIRE", "NEVER").strip().upper()
BUZON_POP3_LOGIN_DELAY = env_int("BUZON_POP3_LOGIN_DELAY", 0)  # seconds; 0 = none
BUZON_POP3_CONNECTIONS_PER_IP = env_int("BUZON_POP3_CONNECTIONS_PER_IP", 20)  # 0 = no cap
BUZON_POP3_IDLE_TIMEOUT = env_int("BUZON_POP3_IDLE_TIMEOUT", 600)  # RFC 1939 §3: >= 10 min
BUZON_POP3_LOCK_SECONDS = env_int("BUZON_POP3_LOCK_SECONDS", 60)  # a dead process's lock lasts

# --- IMAP ---
BUZON_IMAP_MAX_LINE = env_int("BUZON_IMAP_MAX_LINE", 64 * 1024)  # one command line, octets
BUZON_IMAP_TIMEOUT = env_int("BUZON_IMAP_TIMEOUT", 30 * 60)  # autologout (RFC 9051 §5.4)
BUZON_IMAP_LOGIN_TIMEOUT = env_int("BUZON_IMAP_LOGIN_TIMEOUT", 120)  # before authentication
BUZON_IMAP_IDLE_TIMEOUT = env_int("BUZON_IMAP_IDLE_TIMEOUT", 29 * 60)  # RFC 2177 §3
BUZON_IMAP_CONNECTIONS_PER_IP = env_int("BUZON_IMAP_CONNECTIONS_PER_IP", 50)  # 0 = no cap
BUZON_IMAP_COMMANDS_PER_SECOND = env_int("BUZON_IMAP_COMMANDS_PER_SECOND", 500)  # per session
BUZON_IMAP_MAX_AUTH_FAILURES = env_int("BUZON_IMAP_MAX_AUTH_FAILURES", 5)  # per connection
