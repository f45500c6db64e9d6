"""SEARCH from the view's cached flags (imapd/imap/flagsearch.py) answers as the store does.

RFC 9051 §6.4.4: a session in sync with its mailbox answers flag, UID, sequence-set and
MODSEQ keys (under AND/OR/NOT) from the flags it already holds; random trees must give the
UIDs mailhost.store.search gives, and over a socket no store search runs for them until
another session's change makes the view stale.
"""

from __future__ import annotations

import random
import re

import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from imapd.imap import flagsearch
from imapd.imap.selected import Selected
from mailhost import store
from mailhost.models import Message
from mailhost.store import imapview
from mailhost.store import search as store_search
from mailhost.store.search import And, Key, Not, Or
from tests.imapd.conftest import connect
from tests.search_trees import trees_of

FLAGS = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"]
# Case variants, LIKE metacharacters, a prefix of another keyword, a keyword with a space.
KEYWORDS = [
    [],
    ["work"],
    ["homework"],
    ["Work", "$Label1"],
    ["WORK", "x"],
    ["to_do"],
    ["100%", "a"],
    ["back\\slash"],
    ["x", "work", "z"],
    ["$Forwarded", "$label1"],
    ["a b"],
]
NEEDLES = [
    "work", "WORK", "wOrK", "wor_", "w%", "%", "_", "to_do", "to%do", "100%", "back\\slash",
    "$label1", "$LABEL1", "a", "b", "x", "homework", "ome", "", "a b", "a\tb", "\\Seen",
    "\\seen", "$Forwarded",
]  # fmt: skip


def K(name: str, *args) -> Key:
    return Key(name, tuple(args))


class View:
    """Alice's INBOX in the store, and a session's view of it as SELECT builds one, then
    brought up to date with other sessions' flag changes and expunges as IDLE does."""

    def __init__(self, account) -> None:
        rng = random.Random(9051)
        self.account_id = account.id
        self.box_id = store.lookup_mailbox(account.id, "INBOX").id
        for i in range(40):
            flags = [f for f in FLAGS if rng.random() < 0.35] + rng.choice(KEYWORDS)
            raw = b"Subject: m%d\r\nFrom: b@example.org\r\n\r\nbody\r\n" % i
            store.append(account.id, "INBOX", raw, flags=flags)
        uids = list(store_search.search(account.id, self.box_id, K("ALL")))
        store.set_flags(account.id, self.box_id, rng.sample(uids, 8), ["\\Seen", "later"])
        opened = imapview.open_mailbox(account.id, "INBOX", want_unseen=False, with_flags=True)
        self.sel = Selected(
            info=opened.info,
            uids=opened.uids,
            readonly=False,
            highestmodseq=opened.info.highestmodseq,
            uidnext=opened.info.uidnext,
            flags=opened.flags or {},
        )
        # Other sessions: flag changes, a replace, and expunges not yet reported (the view
        # keeps those UIDs, in pending_expunged, and the store has them no more).
        store.set_flags(account.id, self.box_id, rng.sample(uids, 6), ["\\Flagged", "WORK"])
        store.set_flags(account.id, self.box_id, uids[3:5], ["$Label1"], mode="replace")
        store.set_flags(account.id, self.box_id, uids[:6:2], ["\\Seen"], mode="remove")
        self.gone = uids[10:13]
        store.expunge(account.id, self.box_id, self.gone, only_deleted=False)
        self.sel.absorb(store.changes_since(account.id, self.box_id, self.sel.highestmodseq))
        assert self.sel.pending_expunged == set(self.gone)
        self.uids = uids
        self.modseqs = sorted({modseq for _, modseq in self.sel.flags.values()})

    def from_store(self, tree, recent_from_uid: int | None) -> list[int]:
        """What run_search answers through the store: its UIDs that the view knows."""
        found = store_search.search(
            self.account_id, self.box_id, tree, recent_from_uid=recent_from_uid
        )
        return sorted(set(found).intersection(self.sel.uids))


@pytest.fixture
def view(alice):
    return View(alice)


ARGUMENTS = {"KEYWORD", "UNKEYWORD", "UID", "SEQSET", "MODSEQ"}


def keys(view: View):
    uids = view.uids
    uid_sets = st.frozensets(st.sampled_from([*uids, 0, uids[-1] + 1, 10**6]), max_size=10) | (
        st.builds(
            lambda a, n: frozenset(range(a, a + n)), st.sampled_from(uids), st.integers(0, 20)
        )
    )
    modseqs = st.builds(
        lambda m, d: max(0, m + d), st.sampled_from(view.modseqs), st.integers(-1, 1)
    )
    return st.one_of(
        st.sampled_from(sorted(flagsearch.KEYS - ARGUMENTS)).map(K),
        st.tuples(st.sampled_from(["KEYWORD", "UNKEYWORD"]), st.sampled_from(NEEDLES)).map(
            lambda a: K(*a)
        ),
        st.tuples(st.sampled_from(["UID", "SEQSET"]), uid_sets).map(lambda a: K(*a)),
        (modseqs | st.sampled_from([2**63 - 1, 2**63, 2**64 - 1])).map(lambda m: K("MODSEQ", m)),
    )


def trees(view: View):
    return trees_of(keys(view))


@pytest.mark.django_db
@hypothesis.settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_flag_trees_answer_from_the_cache_as_the_store_does(view, data):
    """RFC 9051 §6.4.4 (and RFC 7162 §3.1.5 MODSEQ) keys nested with NOT/OR/AND; \\Recent
    from a UID on, nothing (IMAP4rev2) or beyond every UID, as run_search passes it."""
    tree = data.draw(trees(view), label="tree")
    recent = data.draw(
        st.none() | st.sampled_from([*view.uids, view.sel.uidnext + 10**9]), label="recent"
    )
    assert flagsearch.decidable(tree)
    cached = flagsearch.search(view.sel, tree, recent_from_uid=recent)
    assert cached is not None
    assert cached == view.from_store(tree, recent)
    if cached:  # the (MODSEQ n) of the answer, RFC 7162 §3.1.5
        best = store_search.max_modseq(view.account_id, view.box_id, cached)
        assert flagsearch.max_modseq(view.sel, cached) == best


@pytest.mark.django_db
@pytest.mark.parametrize("needle", NEEDLES)
def test_keywords_match_whole_words_ignoring_ascii_case(view, needle):
    for name in ("KEYWORD", "UNKEYWORD"):
        tree = K(name, needle)
        assert flagsearch.search(view.sel, tree, recent_from_uid=None) == view.from_store(
            tree, None
        )


@pytest.mark.django_db
def test_own_store_results_match_the_stored_keyword_list(view, alice):
    """The flags a STORE reports (and the session caches) are the stored keyword list's
    words: "a b" is stored as the keywords "a" and "b"."""
    result = store.set_flags(alice.id, view.box_id, view.uids[20:23], ["a b", "Zed"])
    for mf in result.changed:  # as the STORE handler takes in its own change
        view.sel.note_flags(mf.uid, mf.flags, mf.modseq)
    view.sel.note_own(result.changed[0].modseq)
    assert all({"a", "b"} <= set(view.sel.flags[u][0]) for u in view.uids[20:23])
    for needle in ("a", "b", "A", "zed", "a b"):
        for name in ("KEYWORD", "UNKEYWORD"):
            tree = K(name, needle)
            assert flagsearch.search(view.sel, tree, recent_from_uid=None) == view.from_store(
                tree, None
            ), tree


@pytest.mark.django_db
def test_new_is_recent_unseen_and_old_is_not_recent(view):
    """RFC 3501 §6.4.4: NEW = RECENT UNSEEN, OLD = NOT RECENT; no \\Recent in IMAP4rev2."""
    first = view.uids[20]
    for recent in (first, None):
        new = flagsearch.search(view.sel, K("NEW"), recent_from_uid=recent)
        both = flagsearch.search(view.sel, And((K("RECENT"), K("UNSEEN"))), recent_from_uid=recent)
        old = flagsearch.search(view.sel, K("OLD"), recent_from_uid=recent)
        assert new == both == view.from_store(K("NEW"), recent)
        assert old == view.from_store(K("OLD"), recent)
    assert flagsearch.search(view.sel, K("RECENT"), recent_from_uid=None) == []
    recent = flagsearch.search(view.sel, K("RECENT"), recent_from_uid=first)
    assert recent == [u for u in view.sel.uids if u >= first and u not in view.gone]


@pytest.mark.django_db
def test_the_store_answers_what_the_cache_cannot_decide(view):
    sel = view.sel
    for tree in (
        K("SUBJECT", "m1"),
        And((K("UNSEEN"), K("LARGER", 10))),
        Or(K("SEEN"), K("BODY", "x")),
        K("UID", {1, 2}),  # a set, not the frozenset convert makes
        K("KEYWORD", "Straße"),  # the database folds non-ASCII case, not us
        K("COLOUR"),
    ):
        assert flagsearch.search(sel, tree, recent_from_uid=None) is None, tree
    deep = K("SEEN")
    for _ in range(store_search.MAX_DEPTH):
        deep = Not(deep)  # the store refuses it (LIMIT): the store must say so
    assert not flagsearch.decidable(deep)
    assert flagsearch.decidable(Not(Not(K("SEEN"))))
    # A message whose flags the view has not read.
    del sel.flags[view.uids[0]]
    assert flagsearch.search(sel, K("UNSEEN"), recent_from_uid=None) is None
    assert flagsearch.max_modseq(sel, [view.uids[0]]) is None


@pytest.mark.django_db
def test_a_non_ascii_keyword_in_the_mailbox_sends_keyword_keys_to_the_store(view, alice):
    """PostgreSQL's UPPER() may fold a non-ASCII letter to ASCII (ı -> I): not ours to say."""
    uid = view.uids[0]
    store.set_flags(alice.id, view.box_id, [uid], ["ınbox"])
    view.sel.absorb(store.changes_since(alice.id, view.box_id, view.sel.highestmodseq))
    assert flagsearch.search(view.sel, K("KEYWORD", "INBOX"), recent_from_uid=None) is None
    unseen = flagsearch.search(view.sel, K("UNSEEN"), recent_from_uid=None)
    assert unseen == view.from_store(K("UNSEEN"), None)


# Over a socket --------------------------------------------------------------------------------


def put(alice, n: int, flags=()) -> int:
    raw = b"From: Bob <bob@example.org>\r\nSubject: m%d\r\n\r\nbody %d\r\n" % (n, n)
    return store.append(alice.id, "INBOX", raw, flags=flags).uid


@pytest.fixture
def searches(monkeypatch):
    """Every call of the store's search and max_modseq (the server runs in this process)."""
    calls: list[str] = []

    def counted(name, real):
        def call(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)

        return call

    for name in ("search", "max_modseq"):
        monkeypatch.setattr(store_search, name, counted(name, getattr(store_search, name)))
    return calls


def numbers(response) -> list[int]:
    typ, data = response
    assert typ == "OK", data
    return [int(n) for n in re.sub(rb"\(MODSEQ \d+\)", b"", data[0]).split()]


@pytest.mark.django_db(transaction=True)
def test_flag_searches_run_no_store_search_while_the_view_is_in_sync(imap_server, alice, searches):
    put(alice, 1, ["\\Seen"])
    u2 = put(alice, 2)
    put(alice, 3, ["\\Seen", "\\Flagged", "$Label1"])
    u4 = put(alice, 4, ["\\Deleted"])
    u5 = put(alice, 5, ["work"])
    a = connect(imap_server)
    try:
        assert a.select("INBOX") == ("OK", [b"5"])
        assert numbers(a.uid("SEARCH", "UNSEEN")) == [u2, u4, u5]
        assert numbers(a.search(None, "OR", "FLAGGED", "KEYWORD", "WORK")) == [3, 5]
        assert numbers(a.search(None, "NOT", "DELETED", "KEYWORD", "$label1")) == [3]
        assert numbers(a.uid("SEARCH", "UID", f"{u2}:*", "UNSEEN", "2:4")) == [u2, u4]
        # This rev1 session claimed \Recent for all five (RFC 3501 §2.3.2).
        assert numbers(a.search(None, "NEW")) == [2, 4, 5]
        assert numbers(a.search(None, "OLD")) == []
        assert numbers(a.search(None, "RECENT", "SEEN")) == [1, 3]
        # RFC 7162 §3.1.5: the highest MODSEQ of the matches comes from the cache too.
        typ, data = a.search(None, "MODSEQ", "1", "UNSEEN")
        box = store.lookup_mailbox(alice.id, "INBOX")
        rows = Message.objects.filter(mailbox_id=box.id, uid__in=[u2, u4, u5])
        best = max(rows.values_list("modseq", flat=True))
        assert typ == "OK" and data == [b"2 4 5 (MODSEQ %d)" % best]
        typ, data = a.uid("SORT", "(REVERSE ARRIVAL)", "UTF-8", "UNSEEN")
        assert typ == "OK" and data == [b"%d %d %d" % (u5, u4, u2)]
        assert searches == []
    finally:
        a.logout()


@pytest.mark.django_db(transaction=True)
def test_another_sessions_change_sends_the_search_to_the_store(imap_server, alice, searches):
    """The view is stale until this session takes in the change (after the command)."""
    u1, u2, u3 = put(alice, 1), put(alice, 2, ["\\Seen"]), put(alice, 3)
    a, b = connect(imap_server), connect(imap_server)
    try:
        a.select("INBOX")
        b.select("INBOX")
        assert numbers(a.uid("SEARCH", "UNSEEN")) == [u1, u3]
        assert searches == []
        assert b.uid("STORE", str(u1), "+FLAGS", "(\\Seen)")[0] == "OK"
        assert numbers(a.uid("SEARCH", "UNSEEN")) == [u3]
        assert searches == ["search"]
        assert numbers(a.uid("SEARCH", "UNSEEN")) == [u3]  # in sync again: the cache
        assert numbers(a.uid("SEARCH", "SEEN")) == [u1, u2]
        assert searches == ["search"]
        # Expunged by the other session, not yet reported to this one (RFC 9051 §7.5.1):
        # the message matches nothing, whichever path answers.
        b.uid("STORE", str(u3), "+FLAGS", "(\\Deleted)")
        b.expunge()
        assert numbers(a.search(None, "UNSEEN")) == []
        assert numbers(a.search(None, "ALL")) == [1, 2]
        assert searches == ["search", "search"]
    finally:
        a.logout()
        b.logout()


@pytest.mark.django_db(transaction=True)
def test_other_keys_still_search_the_store(imap_server, alice, searches):
    u1, u2 = put(alice, 1), put(alice, 2, ["\\Seen"])
    a = connect(imap_server)
    try:
        a.select("INBOX")
        assert numbers(a.uid("SEARCH", "SUBJECT", "m2")) == [u2]
        assert numbers(a.uid("SEARCH", "UNSEEN", "BODY", "body")) == [u1]
        assert numbers(a.uid("SEARCH", "SEEN", "LARGER", "1")) == [u2]
        assert searches == ["search", "search", "search"]
        typ, data = a.uid("THREAD", "REFERENCES", "UTF-8", "ALL")
        assert typ == "OK" and data == [b"(%d)(%d)" % (u1, u2)]
        assert searches == ["search", "search", "search"]  # THREAD's ALL: the cache
    finally:
        a.logout()
