"""Test settings: Buzón's settings with a throw-away data dir, a fast hasher, no delays."""

import os
import tempfile

os.environ.setdefault("BUZON_DATA_DIR", tempfile.mkdtemp(prefix="buzon-test-"))
os.environ.setdefault("BUZON_FAST_HASHER", "1")
os.environ.setdefault("BUZON_AUTH_FAILURE_DELAY", "0")
os.environ.setdefault("BUZON_HOSTNAME", "mx.example.test")
os.environ.setdefault("BUZON_LOG_LEVEL", "WARNING")

from mailhost.settings import *  # noqa: E402, F403
