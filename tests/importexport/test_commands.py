"""manage.py import_mail / export_mail: summaries, progress, errors, exit status."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from mailhost import store
from tests.conftest import corpus_dir
from tests.processes import manage

MBOX = corpus_dir() / "mimekit" / "mbox" / "issue1189.mbox.txt"


def run(*args, **options) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_import_prints_a_summary_and_a_rerun_only_skips(alice):
    out, err = run("import_mail", "alice@example.test", str(MBOX), "--folder", "Lists/mimekit")
    assert out.strip() == "imported 4, skipped duplicates 0, errors 0, folders created 1"
    assert err == ""  # not a terminal: no progress bar
    out, _ = run("import_mail", "alice@example.test", str(MBOX), "--folder", "Lists/mimekit")
    assert out.strip() == "imported 0, skipped duplicates 4, errors 0, folders created 0"
    assert store.mailbox_status(store.lookup_mailbox(alice.id, "Lists/mimekit").id).messages == 4


@pytest.mark.django_db
def test_progress_flag_shows_messages_rate_and_time_left_on_stderr(alice):
    _, err = run("import_mail", "alice@example.test", str(MBOX), "--progress")
    assert "4/4" in err and "msg/s" in err and "<00:00" in err


@pytest.mark.django_db
def test_skipped_files_are_reported_on_stderr_and_the_exit_is_clean(alice, tmp_path):
    tree = tmp_path / "mail"
    tree.mkdir()
    (tree / "Good.mbox").write_bytes(MBOX.read_bytes())
    (tree / "Bad.mbox").write_bytes(b"garbage\n")
    out, err = run("import_mail", "alice@example.test", str(tree))
    assert "imported 4, skipped duplicates 0, errors 1" in out
    assert f"skipped {tree / 'Bad.mbox'}: not an mbox file" in err


@pytest.mark.django_db
def test_export_then_import_through_the_commands(alice, carol, tmp_path):
    run("import_mail", "alice@example.test", str(MBOX))
    for fmt in ("maildir", "mbox"):
        out, _ = run("export_mail", "alice@example.test", "--format", fmt, str(tmp_path / fmt))
        assert out.strip() == "exported 4 messages from 6 mailboxes"
    assert (tmp_path / "mbox" / "INBOX.mbox").is_file()
    assert (tmp_path / "maildir" / ".Sent" / "cur").is_dir()
    out, _ = run("import_mail", "carol@example.test", str(tmp_path / "maildir"))
    assert out.startswith("imported 4, skipped duplicates 0, errors 0")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, message",
    [
        (["import_mail", "ghost@example.test", str(MBOX)], "no account ghost@example.test"),
        (["import_mail", "alice@example.test", "/nonexistent/mail"], "does not exist"),
        (["export_mail", "ghost@example.test", "--format", "mbox", "/nonexistent/x"], "no account"),
    ],
    ids=["unknown-account", "missing-path", "export-unknown-account"],
)
def test_fatal_errors_are_command_errors(alice, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


@pytest.mark.django_db(transaction=True)
def test_import_and_export_in_a_real_process(alice, tmp_path):
    done = manage("import_mail", "alice@example.test", str(MBOX))
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith("imported 4, skipped duplicates 0, errors 0")
    exported = manage("export_mail", "alice@example.test", "--format", "mbox", str(tmp_path / "x"))
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "x" / "INBOX.mbox").read_bytes().count(b"\nFrom ") == 3
    failed = manage("import_mail", "nobody@example.test", str(MBOX))
    assert failed.returncode == 1
    assert b"CommandError: import stopped: no account nobody@example.test" in failed.stderr
    assert b"Traceback" not in failed.stderr


@pytest.mark.django_db
def test_a_single_file_that_is_not_an_mbox_is_fatal(alice, tmp_path):
    path = tmp_path / "note.txt"
    path.write_text("Dear diary\n")
    with pytest.raises(CommandError, match="neither a Maildir nor an mbox file"):
        run("import_mail", "alice@example.test", str(path))
