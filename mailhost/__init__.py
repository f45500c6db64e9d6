"""Buzón's Django project and shared core.

`mailhost.store` is the one path for mail: every front end (SMTP, LMTP, `deliver`,
IMAP, POP3, webmail, admin, API) stores and reads messages through it. `mailhost.mail`
is pure Python (bytes in, values out) and never imports Django.
"""

from .celery import app as celery_app

__all__ = ["celery_app"]
