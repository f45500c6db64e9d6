"""The Celery app. With no CELERY_BROKER_URL, tasks run in-process (see mailhost.jobs)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhost.settings")

app = Celery("buzon")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["mailhost"])
