"""Jobs run in-process without a broker, and on a real Celery worker with one."""

import os
import subprocess
import sys
import time

import pytest

from mailhost import jobs, store, tasks
from mailhost.models import Content
from tests.processes import REPO, child_env, manage


def make_orphan(account) -> None:
    appended = store.append(account.id, "INBOX", b"Subject: orphan\r\n\r\nx\r\n")
    store.expunge(account.id, appended.mailbox_id, [appended.uid], only_deleted=False)
    assert Content.objects.filter(refcount=0).count() == 1


@pytest.mark.django_db(transaction=True)
def test_in_process_worker_runs_a_task(alice, settings):
    settings.BUZON_ORPHAN_GRACE_SECONDS = 0
    make_orphan(alice)
    jobs.enqueue(tasks.collect_orphans)
    jobs.drain()
    assert not Content.objects.exists()


@pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="needs a broker: CI's PostgreSQL + Redis run has one"
)
@pytest.mark.django_db(transaction=True)
def test_celery_worker_runs_a_task_sent_through_the_broker(alice):
    broker = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/15"
    env = child_env(CELERY_BROKER_URL=broker, BUZON_ORPHAN_GRACE_SECONDS="0")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "mailhost",
            "worker",
            "--pool=solo",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=WARNING",
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        make_orphan(alice)
        sent = manage(
            "shell",
            "-c",
            "from mailhost import jobs, tasks; jobs.enqueue(tasks.collect_orphans)",
            CELERY_BROKER_URL=broker,
        )
        assert sent.returncode == 0, sent.stderr
        deadline = time.monotonic() + 30
        while Content.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not Content.objects.exists(), "the Celery worker did not run the task"
    finally:
        worker.terminate()
        worker.wait(timeout=20)
