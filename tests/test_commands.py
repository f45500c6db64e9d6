"""Admin commands and `deliver` (real pipes, sysexits codes)."""

import pytest
from django.core.management import CommandError, call_command

from mailhost import store
from mailhost.models import Account, Alias
from tests.processes import manage

RAW = b"From: bob@example.org\r\nSubject: piped\r\n\r\nvia stdin\r\n"


@pytest.mark.django_db
def test_add_domain_account_alias_commands():
    call_command("add_domain", "Example.TEST")
    call_command("add_account", "Dave@example.test", "--password", "pw", "--quota", "1M")
    call_command("add_alias", "sales@example.test", "dave@example.test", "x@elsewhere.example")
    dave = Account.objects.get(address="dave@example.test")
    assert dave.quota_bytes == 1024 * 1024 and dave.check_password("pw")
    assert sorted(Alias.objects.get().targets.values_list("address", flat=True)) == [
        "dave@example.test",
        "x@elsewhere.example",
    ]
    with pytest.raises(CommandError, match="already exists"):
        call_command("add_account", "dave@example.test", "--password", "pw")
    with pytest.raises(CommandError, match="does not exist"):
        call_command("add_account", "x@nowhere.example", "--password", "pw")


@pytest.mark.django_db(transaction=True)
def test_deliver_reads_stdin_and_exits_with_sysexits_codes(alice):
    ok = manage("deliver", "-r", "alice@example.test", "-f", "bob@example.org", stdin=RAW)
    assert ok.returncode == 0, ok.stderr
    unknown = manage("deliver", "-r", "ghost@example.test", stdin=RAW)
    assert unknown.returncode == 67  # EX_NOUSER
    Account.objects.filter(id=alice.id).update(quota_bytes=1)
    full = manage("deliver", "-r", "alice@example.test", stdin=RAW)
    assert full.returncode == 75  # EX_TEMPFAIL: Postfix retries later
    box = store.lookup_mailbox(alice.id, "INBOX")
    assert store.read_message(alice.id, box.id, 1) == RAW
