"""Recipient resolution and local delivery (the MDA)."""

import pytest

from mailhost import store
from mailhost.directory import add_alias, add_domain
from mailhost.models import Account, Message

pytestmark = pytest.mark.django_db
RAW = b"From: bob@example.org\r\nSubject: hi\r\n\r\nhello\r\n"


def inbox_count(account):
    return Message.objects.filter(mailbox__account=account, mailbox__name="INBOX").count()


def test_deliver_to_account_with_plus_tag_and_any_case(alice):
    results = store.deliver(RAW, mail_from="bob@example.org", rcpt_to=["Alice+news@EXAMPLE.test"])
    assert [r.code for r in results] == [250]
    assert inbox_count(alice) == 1


def test_unknown_user_and_foreign_domain_are_refused(alice):
    results = store.deliver(RAW, mail_from="", rcpt_to=["nobody@example.test", "x@other.org"])
    assert [(r.code, r.enhanced) for r in results] == [(550, "5.1.1"), (550, "5.1.1")]


def test_alias_fan_out_delivers_once_per_account(alice, carol):
    add_alias("team@example.test", ["alice@example.test", "carol@example.test"])
    add_alias("all@example.test", ["team@example.test", "alice@example.test"])
    results = store.deliver(
        RAW, mail_from="", rcpt_to=["all@example.test", "team@example.test", "alice@example.test"]
    )
    assert all(r.ok for r in results)
    assert (inbox_count(alice), inbox_count(carol)) == (1, 1)


def test_alias_loops_end(alice):
    add_alias("a@example.test", ["b@example.test"])
    add_alias("b@example.test", ["a@example.test", "alice@example.test"])
    assert store.resolve("a@example.test").accounts == {alice.id}
    add_alias("c@example.test", ["d@example.test"])
    add_alias("d@example.test", ["c@example.test"])
    assert store.resolve("c@example.test").empty


def test_catch_all_takes_unknown_local_parts_only(alice, carol):
    add_alias("@example.test", ["carol@example.test"])
    store.deliver(RAW, mail_from="", rcpt_to=["whoever@example.test", "alice@example.test"])
    assert (inbox_count(alice), inbox_count(carol)) == (1, 1)


def test_external_alias_target_is_refused_without_an_outbound_queue(alice, monkeypatch):
    from mailhost.store import delivery

    monkeypatch.setattr(delivery, "_forwarder", None)
    add_alias("fwd@example.test", ["someone@elsewhere.example"])
    [result] = store.deliver(RAW, mail_from="", rcpt_to=["fwd@example.test"])
    assert (result.code, result.enhanced) == (550, "5.3.0")
    assert store.check_recipient("fwd@example.test").code == 550  # refused at RCPT too


def test_quota_gives_temporary_or_permanent_error(alice, carol, settings):
    Account.objects.filter(id=alice.id).update(quota_bytes=10)
    results = store.deliver(RAW, mail_from="", rcpt_to=["alice@example.test", "carol@example.test"])
    assert [(r.code, r.enhanced) for r in results] == [(452, "4.2.2"), (250, "2.0.0")]
    settings.BUZON_QUOTA_PERMANENT = True
    [result] = store.deliver(RAW, mail_from="", rcpt_to=["alice@example.test"])
    assert (result.code, result.enhanced) == (552, "5.2.2")


def test_second_domain_is_separate(alice):
    add_domain("example.net")
    [result] = store.deliver(RAW, mail_from="", rcpt_to=["alice@example.net"])
    assert result.code == 550


def test_deliver_into_a_folder_falls_back_to_inbox(alice):
    store.deliver(RAW, mail_from="", rcpt_to=["alice@example.test"], folder="Junk")
    store.deliver(RAW, mail_from="", rcpt_to=["alice@example.test"], folder="Nope")
    counts = {
        name: Message.objects.filter(mailbox__account=alice, mailbox__name=name).count()
        for name in ("Junk", "INBOX")
    }
    assert counts == {"Junk": 1, "INBOX": 1}


def test_external_alias_target_goes_to_the_installed_forwarder(alice, monkeypatch):
    from mailhost.store import delivery

    handed = []
    monkeypatch.setattr(delivery, "_forwarder", lambda raw, sender, rcpts: handed.append(rcpts))
    add_alias("fwd@example.test", ["someone@elsewhere.example", "alice@example.test"])
    [result] = store.deliver(RAW, mail_from="bob@example.org", rcpt_to=["fwd@example.test"])
    assert result.ok and result.forwarded == ["someone@elsewhere.example"]
    assert handed == [["someone@elsewhere.example"]]
    assert inbox_count(alice) == 1
