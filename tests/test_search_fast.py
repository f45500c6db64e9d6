"""SEARCH's plain-SQL path answers exactly as the general ORM path (RFC 9051 §6.4.4).

search() runs a tree of keys that SQL decides alone (flags, keywords, sizes, internal
dates, MODSEQ, UID sets, envelope strings) as one hand-written statement, and anything
else through the ORM compiler. Random trees over a mailbox filled from the corpus, plus
messages made to trip LIKE and GLOB escaping, must give the same UIDs both ways.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from unittest import mock

import hypothesis
import pytest
from django.db import connection
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from mailhost import store
from mailhost.store import search as s
from mailhost.store.search import And, Key, Not, Or, SearchError
from tests.conftest import corpus_files
from tests.search_trees import trees_of

pytestmark = pytest.mark.django_db

# Subjects and addresses with LIKE/GLOB metacharacters, non-ASCII letters and backslashes.
TRICKY = [
    ("100% done", "Percy <percent%sign@example.org>"),
    ("1000 done", "plain@example.org"),
    ("snake_case", "under_score@example.org"),
    ("snakeXcase", "Xavier <x@example.org>"),
    ("back\\slash and \\%", '"Back\\\\Slash" <bs@example.org>'),
    ("Отпуск в июле", "Юрий <yuri@example.ru>"),
    ("Ferien [*] ÄRGER?", "Jürgen <j@example.de>"),
    ("straße STRASSE", "Straße <s@example.de>"),
    ("İstanbul ıi", "ilk@example.tr"),
    ("", "empty-subject@example.org"),
]
KEYWORDS = [
    [],
    ["work"],
    ["homework"],
    ["Work", "$Label1"],
    ["to_do"],
    ["100%", "a"],
    ["back\\slash"],
    ["x", "work", "z"],
]
FLAGS = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"]
BASE = datetime(2024, 3, 1, tzinfo=UTC)


def _raw(subject: str, sender: str, i: int) -> bytes:
    head = (
        f"From: {sender}\r\nTo: Alice <alice@example.test>, t{i}_x@example.net\r\n"
        f"Cc: cc{i % 3}@example.com\r\nBcc: hidden{i % 2}%@example.com\r\n"
        f"Subject: {subject}\r\nDate: Fri, 01 Mar 2024 10:00:00 +0000\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    return head.encode() + b"body\r\n"


class Box:
    """Alice's INBOX filled once per test; what random keys draw their arguments from."""

    def __init__(self, account) -> None:
        rng = random.Random(9051)
        self.account_id = account.id
        self.id = store.lookup_mailbox(account.id, "INBOX").id
        messages = [path.read_bytes() for path in corpus_files()[::8]]
        messages += [_raw(subj, sender, i) for i, (subj, sender) in enumerate(TRICKY)]
        self.uids, self.sizes, self.modseqs = [], [], []
        for raw in messages:
            flags = [f for f in FLAGS if rng.random() < 0.3] + rng.choice(KEYWORDS)
            # Around midnight UTC and midnight in New York, over a few days.
            when = BASE + timedelta(days=rng.randint(-2, 2), hours=rng.choice([0, 5, 23]))
            when += timedelta(minutes=rng.choice([-1, 0, 1]))
            appended = store.append(account.id, "INBOX", raw, flags=flags, internaldate=when)
            self.uids.append(appended.uid)
            self.sizes.append(len(raw))
            self.modseqs.append(appended.modseq)
        # Some flag changes, so MODSEQs are not just the UID order.
        changed = rng.sample(self.uids, 10)
        store.set_flags(account.id, self.id, changed, ["\\Seen", "later"], mode="add")
        self.modseqs.append(store.lookup_mailbox(account.id, "INBOX").highestmodseq)

    def search(self, tree, recent_from_uid=None) -> list[int]:
        return s.search(self.account_id, self.id, tree, recent_from_uid=recent_from_uid)


@contextmanager
def general_path():
    with mock.patch.object(s, "_FAST_PATH", False):
        yield


def both_paths(box: Box, tree, recent_from_uid=None) -> tuple[list[int] | None, list[int]]:
    """(the fast path's UIDs, or None when it declines the tree; the general path's)."""
    fast = s._fast_search(box.account_id, box.id, tree, recent_from_uid)
    with general_path():
        return fast, box.search(tree, recent_from_uid)


@pytest.fixture
def box(alice):
    return Box(alice)


def K(name, *args):
    return Key(name, tuple(args))


# Random trees -------------------------------------------------------------------------------

NEEDLE_CHARS = "aeoABC %_\\*?[]^-.@äÄОоtßİı0"
needles = st.sampled_from(
    ["", "%", "_", "\\", "\\%", "100%", "e_c", "[*]", "ä*", "ОТПУСК", "STRASSE", "example"]
) | st.text(NEEDLE_CHARS, max_size=5)
keywords = st.sampled_from(
    ["work", "WORK", "wor_", "w%", "to_do", "to%do", "100%", "back\\slash", "$label1", "", "a z"]
)
huge = st.sampled_from([2**31, 2**63 - 1, 2**63, 2**64])  # past BIGINT: the ORM's rule


def keys(box: Box):
    uids, sizes, modseqs = box.uids, box.sizes, box.modseqs
    near = st.integers(-1, 1)
    days = st.builds(
        lambda d: BASE.date() + timedelta(days=d), st.integers(-3, 3)
    ) | st.sampled_from([date.min, date.max])
    uid_sets = (
        st.frozensets(st.sampled_from([*uids, 0, 10**6]), max_size=12)
        | st.builds(
            lambda a, n: frozenset(range(a, a + n)), st.sampled_from(uids), st.integers(0, 30)
        )
        | st.frozensets(huge, max_size=2)
        | st.just(frozenset(range(uids[0], uids[0] + 4 * s.MAX_SQL_RANGES, 2)))  # too scattered
    )
    return st.one_of(
        st.sampled_from(sorted(s._NO_ARGS)).map(K),
        st.tuples(st.sampled_from(["KEYWORD", "UNKEYWORD"]), keywords).map(lambda a: K(*a)),
        st.tuples(
            st.sampled_from(["LARGER", "SMALLER"]),
            st.builds(lambda n, d: max(0, n + d), st.sampled_from(sizes), near) | huge,
        ).map(lambda a: K(*a)),
        st.builds(lambda n, d: K("MODSEQ", max(0, n + d)), st.sampled_from(modseqs), near),
        st.tuples(st.sampled_from(["BEFORE", "ON", "SINCE"]), days).map(lambda a: K(*a)),
        st.tuples(st.sampled_from(["UID", "SEQSET"]), uid_sets).map(lambda a: K(*a)),
        st.tuples(st.sampled_from(["FROM", "TO", "CC", "BCC", "SUBJECT"]), needles).map(
            lambda a: K(*a)
        ),
    )


def trees(box: Box):
    return trees_of(keys(box))


@pytest.mark.parametrize("tz", ["UTC", "America/New_York"])
@hypothesis.settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_exact_trees_answer_as_the_general_path(box, settings, tz, data):
    """RFC 9051 §6.4.4 keys, nested with NOT/OR/AND; the server's zone decides BEFORE/ON/SINCE."""
    settings.TIME_ZONE = tz
    tree = data.draw(trees(box), label="tree")
    recent = data.draw(
        st.none() | st.sampled_from([*box.uids, -(2**63) - 1]) | huge, label="recent_from_uid"
    )
    fast, general = both_paths(box, tree, recent)
    assert (fast is not None) == s.is_cheap(tree)
    if fast is not None:
        assert fast == general
    assert box.search(tree, recent) == general


# Chosen cases -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "needle",
    ["%", "_", "\\", "\\\\", "\\%", "100%", "e_c", "%sign", "[*]", "ä*", "?", "*", "ОТПУСК",
     "в ИЮЛЕ", "jÜrgen", "STRASSE", "straße", "İ", "ı", "", " "],
)  # fmt: skip
def test_envelope_needles_with_wildcards_and_non_ascii_letters(box, needle):
    for name in ("SUBJECT", "FROM", "BCC"):
        fast, general = both_paths(box, K(name, needle))
        assert fast == general, name
        fast, general = both_paths(box, Not(K(name, needle)))
        assert fast == general, name


def test_literal_wildcards_match_only_themselves(box):
    percent, thousand, under, snake_x, backslash, russian = box.uids[-10:-4]
    found = box.search(K("SUBJECT", "100%"))
    assert percent in found and thousand not in found
    found = box.search(K("SUBJECT", "e_c"))
    assert under in found and snake_x not in found
    assert backslash in box.search(K("SUBJECT", "h and \\%"))
    assert russian in box.search(K("SUBJECT", "ОТПУСК В"))


def test_keywords_match_whole_words_both_ways(box):
    for keyword in ("work", "WORK", "wor_", "w%", "to_do", "to%do", "100%", "back\\slash", "a"):
        for name in ("KEYWORD", "UNKEYWORD"):
            fast, general = both_paths(box, K(name, keyword))
            assert fast == general, (name, keyword)


def test_out_of_range_numbers_follow_the_orms_rule(box):
    """LARGER 2^64 matches nothing and SMALLER 2^64 everything, as the ORM decides."""
    assert box.search(K("LARGER", 2**64)) == []
    assert box.search(K("SMALLER", 2**64)) == box.uids
    assert box.search(K("MODSEQ", 2**63)) == []
    assert box.search(K("RECENT"), recent_from_uid=2**63) == []
    assert box.search(K("OLD"), recent_from_uid=-(2**64)) == []
    for tree in (K("UID", frozenset({2**64, box.uids[0]})), Not(K("SMALLER", 2**63))):
        fast, general = both_paths(box, tree)
        assert fast == general


def test_deep_and_wide_trees_stay_within_sqlites_parser_limits(box):
    deep = K("SEEN")
    for _ in range(s.MAX_DEPTH - 1):
        deep = Not(deep)
    wide = And(tuple(K("SUBJECT", f"x{i}") if i % 2 else K("UNDRAFT") for i in range(498)))
    level = [K("LARGER", box.sizes[i % len(box.sizes)]) for i in range(128)]
    while len(level) > 1:
        level = [Or(level[i], Not(level[i + 1])) for i in range(0, len(level), 2)]
    nested = K("FLAGGED")
    for i in range(40):  # AND in OR in AND ...: a parenthesis a level (43 overflow both ways)
        nested = And((Or(nested, K("SUBJECT", str(i))), K("UNDRAFT")))
    for tree in (deep, wide, level[0], Not(wide), nested):
        fast, general = both_paths(box, tree)
        assert fast is not None and fast == general


def test_an_empty_mailbox_and_empty_sets(alice):
    box_id = store.lookup_mailbox(alice.id, "INBOX").id
    for tree in (K("ALL"), K("UID", frozenset()), Not(K("ALL")), And(())):
        assert s.search(alice.id, box_id, tree) == []


def test_a_foreign_or_missing_mailbox_is_not_found(box, carol):
    for account_id, mailbox_id in ((carol.id, box.id), (box.account_id, 10**9)):
        for tree in (K("ALL"), Not(K("ALL")), K("SUBJECT", "x")):
            with pytest.raises(store.MailboxNotFound):
                s.search(account_id, mailbox_id, tree)


def test_an_overlong_glob_needle_reports_a_foreign_mailbox_first(box, carol, monkeypatch):
    needle = "𐐀" * s.MAX_STRING  # [𐐀𐐨] a letter: past SQLite's GLOB pattern limit
    for fast in (True, False):
        monkeypatch.setattr(s, "_FAST_PATH", fast)
        with pytest.raises(store.MailboxNotFound):
            s.search(carol.id, box.id, K("SUBJECT", needle))
        if connection.vendor == "sqlite":
            with pytest.raises(SearchError) as e:
                box.search(K("SUBJECT", needle))
            assert e.value.code == "LIMIT"
        else:
            assert box.search(K("SUBJECT", needle)) == []


# is_cheap -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tree",
    [
        K("BODY", "x"),
        K("TEXT", "x"),
        K("HEADER", "X-Mailer", ""),
        K("SENTBEFORE", date(2024, 3, 1)),
        K("SENTON", date(2024, 3, 1)),
        K("SENTSINCE", date(2024, 3, 1)),
        Not(Or(K("SEEN"), And((K("UNSEEN"), K("BODY", "x"))))),
        K("UID", frozenset(range(1, 2 * s.MAX_SQL_RANGES + 3, 2))),
        K("COLOUR"),
        Or(K("SEEN"), None),
    ],
)
def test_is_cheap_is_false_for_blob_keys_scattered_sets_and_bad_criteria(tree):
    assert not s.is_cheap(tree)


@pytest.mark.parametrize(
    "tree",
    [
        K("UNSEEN"),
        K("SUBJECT", "message"),
        [K("FLAGGED"), Not(K("KEYWORD", "work"))],
        Or(K("ON", date(2024, 3, 1)), K("UID", frozenset(range(1, 1000)))),
        And(()),
    ],
)
def test_is_cheap_is_true_for_keys_sql_decides(tree):
    assert s.is_cheap(tree)
