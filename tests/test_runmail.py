"""`manage.py runmail` as a user runs it: first start, listeners, /healthz, SIGTERM."""

import imaplib
import json
import re
import signal
import smtplib
import ssl
import time
import urllib.request

import pytest

from tests.processes import popen_manage


def read_until(proc, pattern: str, timeout: float = 60) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if not line:
            break
        lines.append(line)
        if re.search(pattern, line):
            return lines
    raise AssertionError(f"never saw {pattern!r}; output:\n{''.join(lines)}")


@pytest.mark.django_db(transaction=True)
def test_runmail_first_start_serves_and_stops_cleanly(data_dir):
    proc = popen_manage("runmail", "--auto-ports")
    try:
        out = read_until(proc, r"^web listening on")
        text = "".join(out)
        password = re.search(r"demo@example\.test\s+password (\S+)", text).group(1)
        ports = dict(re.findall(r"^(\w+) listening on 127\.0\.0\.1:(\d+)", text, re.M))
        assert {
            "smtp",
            "submission",
            "submissions",
            "lmtp",
            "imap",
            "imaps",
            "pop3",
            "pop3s",
            "web",
        } <= set(ports)
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['web']}/healthz", timeout=10) as r:
            health = json.load(r)
        assert health["ok"] and health["database"]["ok"] and health["data_dir"]["ok"]
        assert {item["name"] for item in health["listeners"]} >= {"lmtp", "web"}
        with smtplib.LMTP("127.0.0.1", int(ports["lmtp"]), timeout=10) as client:
            raw = b"Subject: x\r\n\r\ny\r\n"
            assert client.sendmail("b@example.org", ["demo@example.test"], raw) == {}
        # The self-signed certificate made on first start verifies for 127.0.0.1.
        ctx = ssl.create_default_context(cafile=str(data_dir / "tls" / "cert.pem"))
        with imaplib.IMAP4_SSL("127.0.0.1", int(ports["imaps"]), ssl_context=ctx) as imap:
            imap.login("demo@example.test", password)
            assert imap.select("INBOX") == ("OK", [b"1"])
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, rest
    assert "stopped" in rest
