"""Directory: which addresses an account may send as."""

import pytest

from mailhost.directory import add_alias, owned_addresses

pytestmark = pytest.mark.django_db


def test_owned_addresses_follow_alias_chains_but_not_catch_alls(alice, carol):
    add_alias("sales@example.test", ["alice@example.test", "carol@example.test"])
    add_alias("info@example.test", ["sales@example.test"])
    add_alias("@example.test", ["alice@example.test"])
    add_alias("carols@example.test", ["carol@example.test"])
    assert owned_addresses(alice.id) == {
        "alice@example.test",
        "sales@example.test",
        "info@example.test",
    }


def test_alias_loops_end(alice):
    add_alias("a@example.test", ["b@example.test", "alice@example.test"])
    add_alias("b@example.test", ["a@example.test"])
    assert owned_addresses(alice.id) == {"alice@example.test", "a@example.test", "b@example.test"}
