"""Nothing acknowledged is lost: SIGKILL a delivering process at random points."""

import hashlib
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from mailhost import store
from mailhost.models import Content, Message
from mailhost.store import blobs
from tests.processes import REPO, child_env


def run_and_kill(seed: int, after: float) -> list[tuple[int, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.crash_child", str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
        cwd=REPO,
    )
    acks: list[tuple[int, str]] = []

    def reader():
        for line in proc.stdout:
            parts = line.decode().split()
            if len(parts) == 3 and parts[0] == "ACK":
                acks.append((int(parts[1]), parts[2]))

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    time.sleep(after)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    t.join(timeout=5)
    return acks


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sigkill_during_deliveries_loses_no_acknowledged_message(alice):
    rng = random.Random(7)
    acked: list[tuple[int, str]] = []
    for round_ in range(6):
        # Start-up takes ~1 s; kill somewhere in the middle of the delivery loop.
        acked += run_and_kill(round_, 1.5 + rng.random() * 2.0)
    assert len(acked) > 10, "the child delivered too little to prove anything"
    box = store.lookup_mailbox(alice.id, "INBOX")
    for uid, sha in acked:
        raw = store.read_message(alice.id, box.id, uid)
        assert hashlib.sha256(raw).hexdigest() == sha
    # No half-written row or blob: every row's file is whole and matches its name.
    for content in Content.objects.all():
        data = blobs.read(content.sha256)
        assert hashlib.sha256(data).hexdigest() == content.sha256
        assert len(data) == content.size
    assert Message.objects.filter(mailbox=box.id).count() >= len(acked)
    # Files of killed, uncommitted deliveries are orphans: the collector removes them.
    store.collect_orphans(grace_seconds=0)
    names = {name for name, _, _ in blobs.iter_files()}
    assert names == set(Content.objects.values_list("sha256", flat=True))
