"""GET /healthz: database, data directory and listeners, as JSON (200 ok, 503 not)."""

from __future__ import annotations

import os
import tempfile

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

from . import listeners


def _database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True, "vendor": connection.vendor}
    except Exception as e:
        return {"ok": False, "error": str(e)}


def _data_dir() -> dict:
    path = settings.BUZON_DATA_DIR
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".health-"):
            pass
        stat = os.statvfs(path)
        return {"ok": True, "path": str(path), "free_bytes": stat.f_bavail * stat.f_frsize}
    except OSError as e:
        return {"ok": False, "path": str(path), "error": e.strerror}


def healthz(request: HttpRequest) -> JsonResponse:
    db, data = _database(), _data_dir()
    body = {
        "ok": db["ok"] and data["ok"],
        "database": db,
        "data_dir": data,
        "listeners": [
            {"name": item.name, "host": item.host, "port": item.port}
            for item in listeners.running()
        ],
    }
    return JsonResponse(body, status=200 if body["ok"] else 503)
