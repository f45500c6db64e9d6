"""SORT and THREAD on plain rows (RFC 5256, RFC 5957): no database."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.imap.threading import (
    SortRow,
    ThreadRow,
    base_subject,
    format_threads,
    map_threads,
    normalize_message_id,
    sort_uids,
    thread,
)
from mailhost.mail.parse import base_subject as parse_base_subject

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def trow(
    uid: int,
    mid: str | None = None,
    refs: tuple[str, ...] = (),
    *,
    subject: str = "",
    minute: int | None = None,
    in_reply_to: str = "",
    date: datetime | None | str = "auto",
) -> ThreadRow:
    """A ThreadRow whose Message-ID is <uid@x> unless given; dated by `minute` (else uid)."""
    base, is_reply = base_subject(subject)
    when = at(uid if minute is None else minute)
    return ThreadRow(
        uid=uid,
        message_id=f"<{mid or uid}@x>" if mid != "" else "",
        in_reply_to=in_reply_to,
        references=[f"<{r}@x>" for r in refs],
        base_subject=base,
        date=when if date == "auto" else date,
        arrival=when,
        subject_is_reply=is_reply,
    )


def srow(uid: int, **kw) -> SortRow:
    values = dict(
        uid=uid,
        arrival=at(uid),
        cc="",
        date=at(uid),
        from_="",
        size=100,
        subject="",
        to="",
        display_from="",
        display_to="",
    )
    values.update(kw)
    return SortRow(**values)


def threads(rows, algorithm="REFERENCES") -> bytes:
    return format_threads(thread(rows, algorithm))


def uids_in(tree) -> list[int]:
    out = []
    map_threads(tree, lambda u: out.append(u) or u)
    return out


# format_threads -----------------------------------------------------------------------------


def test_format_threads_matches_the_rfc_example():
    """RFC 5256 §4: (2)(3 6 (4 23)(44 7 96))."""
    tree = [[2], [3, 6, [4, 23], [44, 7, 96]]]
    assert format_threads(tree) == b"(2)(3 6 (4 23)(44 7 96))"


def test_format_threads_of_a_dummy_root_is_nested_lists_only():
    """RFC 5256 §4: ((3)(5)) when 3 and 5 share a parent that is not in the results."""
    assert format_threads([[[3], [5]]]) == b"((3)(5))"
    assert format_threads([]) == b""


def test_map_threads_turns_uids_into_sequence_numbers():
    seq = {10: 1, 20: 2, 30: 3}
    assert map_threads([[10, [20], [30]]], seq.__getitem__) == [[1, [2], [3]]]


# REFERENCES ---------------------------------------------------------------------------------


def test_references_rebuilds_the_rfc_example_tree():
    """RFC 5256 §4's example: later messages may be parents of earlier ones."""
    rows = [
        trow(2, minute=1),
        trow(3, minute=2),
        trow(6, refs=("3",), minute=3),
        trow(4, refs=("3", "6"), minute=4),
        trow(23, refs=("3", "6", "4"), minute=5),
        trow(44, refs=("3", "6"), minute=6),
        trow(7, refs=("3", "6", "44"), minute=7),
        trow(96, refs=("3", "6", "44", "7"), minute=8),
    ]
    assert threads(rows) == b"(2)(3 6 (4 23)(44 7 96))"


def test_siblings_with_a_missing_parent_stay_under_a_dummy():
    """Step 3: a dummy with several children is kept at the root: ((3)(5))."""
    rows = [trow(3, refs=("gone",)), trow(5, refs=("gone",))]
    assert threads(rows) == b"((3)(5))"


def test_a_single_child_of_a_missing_parent_is_promoted_to_the_root():
    rows = [trow(1), trow(2, refs=("gone",), subject="other")]
    assert threads(rows) == b"(1)(2)"


def test_missing_intermediate_messages_are_spliced_out():
    """Step 3: a dummy that is not at the root gives its children to its parent."""
    rows = [trow(1), trow(2, refs=("1", "gone")), trow(3, refs=("1", "gone2"))]
    assert threads(rows) == b"(1 (2)(3))"


def test_in_reply_to_is_used_only_without_references():
    rows = [
        trow(1),
        trow(2, in_reply_to="<1@x> (sent by Bob)"),
        trow(3, refs=("2",), in_reply_to="<1@x>"),
    ]
    assert threads(rows) == b"(1 2 3)"


def test_quoting_in_message_ids_does_not_matter():
    """RFC 5256: <"01KF8JCEOCBS0045PS"@xxx.yyy.com> is <01KF8JCEOCBS0045PS@xxx.yyy.com>."""
    assert normalize_message_id('<"01KF8JCEOCBS0045PS"@xxx.yyy.com>') == (
        normalize_message_id("<01KF8JCEOCBS0045PS@xxx.yyy.com>")
    )
    parent = ThreadRow(1, '<"ab"@x>', "", [], "", T0, T0, False)
    child = ThreadRow(2, "<c@x>", "<ab@x>", [], "", at(1), at(1), True)
    assert threads([parent, child]) == b"(1 2)"


def test_a_loop_in_references_does_not_hang_or_lose_messages():
    """Step 1A: no link that would create a loop."""
    rows = [
        trow(1, refs=("2", "3")),
        trow(2, refs=("3", "1")),
        trow(3, refs=("1", "2")),
    ]
    tree = thread(rows, "REFERENCES")
    assert sorted(uids_in(tree)) == [1, 2, 3]


def test_a_message_that_references_itself_is_a_root():
    rows = [trow(1, refs=("1",)), trow(2, refs=("1",))]
    assert threads(rows) == b"(1 2)"


def test_duplicate_message_ids_keep_the_first_and_make_the_rest_unique():
    """Step 1A: only the lowest-numbered message keeps a duplicated Message-ID."""
    rows = [
        trow(1, mid="same", subject="a"),
        trow(2, mid="same", subject="b"),
        trow(3, refs=("same",), subject="Re: a"),
    ]
    assert threads(rows) == b"(1 3)(2)"


def test_messages_without_message_id_still_thread_as_roots():
    rows = [trow(1, mid="", subject="x"), trow(2, mid="", subject="y")]
    assert threads(rows) == b"(1)(2)"


def test_a_truncated_references_header_is_fixed_by_the_last_reference():
    """Step 1B: the last reference is the parent even if 1A linked it elsewhere."""
    rows = [
        trow(1),
        trow(2, refs=("1",)),
        trow(3, refs=("1", "2")),
        trow(4, refs=("3",)),  # truncated: 3 is still the parent
    ]
    assert threads(rows) == b"(1 2 3 4)"


def test_threads_are_ordered_by_sent_date_of_their_first_message():
    """Step 4 and 6; a dummy sorts by its first child."""
    rows = [
        trow(1, minute=50, subject="late"),
        trow(2, refs=("gone",), minute=10, subject="q"),
        trow(3, refs=("gone",), minute=5, subject="q"),
        trow(4, minute=30, subject="middle"),
    ]
    assert threads(rows) == b"((3)(2))(4)(1)"


def test_sent_date_falls_back_to_arrival_and_ties_go_to_mailbox_order():
    rows = [
        trow(1, minute=9, date=None, subject="a"),
        trow(2, minute=5, subject="b"),
        trow(3, minute=5, subject="c"),
    ]
    assert threads(rows) == b"(2)(3)(1)"


def test_same_subject_threads_merge_reply_under_original():
    """Step 5C: a reply's thread goes under the thread of the non-reply."""
    rows = [trow(1, subject="Lunch?"), trow(2, subject="Re: lunch?")]
    assert threads(rows) == b"(1 2)"


def test_same_subject_non_replies_are_grouped_under_a_dummy():
    """Step 5C, otherwise-branch: neither is a reply: siblings under a new dummy."""
    rows = [trow(1, subject="Status"), trow(2, subject="status")]
    assert threads(rows) == b"((1)(2))"


def test_subject_grouping_joins_a_dummy_thread():
    rows = [
        trow(1, refs=("gone",), subject="Re: plan"),
        trow(2, refs=("gone",), subject="Re: plan"),
        trow(3, subject="plan", minute=100),
        trow(4, subject="Re: plan", minute=101),
    ]
    assert threads(rows) == b"((1)(2)(3)(4))"


def test_empty_subjects_are_never_grouped():
    rows = [trow(1, subject=""), trow(2, subject="Re:")]
    assert threads(rows) == b"(1)(2)"


def test_a_reply_root_yields_the_subject_table_to_a_later_original():
    """Step 5B(iv): the table prefers the non-reply, so the reply becomes its child."""
    rows = [trow(1, subject="Re: topic"), trow(2, subject="topic")]
    assert threads(rows) == b"(2 1)"


def test_a_very_long_reply_chain_does_not_recurse():
    n = 5000
    rows = [trow(1)] + [trow(i, refs=(str(i - 1),)) for i in range(2, n + 1)]
    out = threads(rows)
    assert out == b"(" + b" ".join(str(i).encode() for i in range(1, n + 1)) + b")"


def test_a_very_deep_branching_tree_does_not_recurse():
    # Each message has two replies, one of which continues: nesting depth ~ n.
    n = 3000
    rows = [trow(1)]
    for i in range(1, n):
        rows.append(trow(2 * i, refs=(str(2 * i - 1),)))
        rows.append(trow(2 * i + 1, refs=(str(2 * i - 1),)))
    tree = thread(rows, "REFERENCES")
    out = format_threads(tree)
    assert out.count(b"(") == out.count(b")")
    assert sorted(uids_in(tree)) == sorted(r.uid for r in rows)


def test_unknown_algorithm_is_an_error():
    with pytest.raises(ValueError):
        thread([], "FANCY")


# ORDEREDSUBJECT -----------------------------------------------------------------------------


def test_orderedsubject_groups_by_base_subject_with_no_grandchildren():
    """RFC 5256: the first message is the parent of all others; threads by first date."""
    rows = [
        trow(1, subject="b", minute=5),
        trow(2, subject="a", minute=3),
        trow(3, subject="Re: a", minute=4),
        trow(4, subject="Re: b", minute=1),
        trow(5, subject="Fwd: a", minute=6),
    ]
    assert threads(rows, "ORDEREDSUBJECT") == b"(4 1)(2 (3)(5))"


def test_orderedsubject_ignores_references():
    rows = [trow(1, subject="x"), trow(2, refs=("1",), subject="y")]
    assert threads(rows, "orderedsubject") == b"(1)(2)"


# Base subject -------------------------------------------------------------------------------

SUBJECTS = [
    ("Hello", "Hello", False),
    ("Re: Hello", "Hello", True),
    ("RE: re: Fwd: Hello", "Hello", True),
    ("Re[2]: Hello", "Hello", True),  # subj-refwd allows a blob before the colon
    ("Rex: Hello", "Rex: Hello", False),
    ("Re [2]: Hello", "Hello", True),
    ("[list] Re: Hello", "Hello", True),
    ("[list] Hello", "Hello", False),
    ("[just a blob]", "[just a blob]", False),
    ("Hello (fwd)", "Hello", True),
    ("[Fwd: Hello]", "Hello", True),
    ("[fwd: Re: [x] Hello (fwd)]  ", "Hello", True),
    ("  Hello \t  world  ", "Hello world", False),
    ("", "", False),
    ("Re:", "", True),
    ("Fw: Hi", "Hi", True),
]


@pytest.mark.parametrize(("subject", "base", "is_reply"), SUBJECTS, ids=[s for s, _, _ in SUBJECTS])
def test_base_subject_follows_rfc_5256_section_2_1(subject, base, is_reply):
    assert base_subject(subject) == (base, is_reply)


@pytest.mark.parametrize("subject", [s for s, _, _ in SUBJECTS], ids=[s for s, _, _ in SUBJECTS])
def test_base_subject_agrees_with_the_parser(subject):
    """THREAD uses the stored base subject and our reply flag: they must agree."""
    assert base_subject(subject)[0] == parse_base_subject(subject)


def test_base_subject_of_a_hostile_subject_is_bounded():
    subject = "Re: " * 20000 + "[a]" * 20000 + "x" + " (fwd)" * 20000
    base, is_reply = base_subject(subject)
    assert base == "x" and is_reply


# SORT ---------------------------------------------------------------------------------------


def test_sort_by_subject_then_reverse_date():
    """RFC 5256 §3 example: (SUBJECT REVERSE DATE)."""
    rows = [
        srow(1, subject="b", date=at(1)),
        srow(2, subject="a", date=at(2)),
        srow(3, subject="A", date=at(3)),
        srow(4, subject="b", date=at(4)),
    ]
    assert sort_uids(rows, [("SUBJECT", False), ("DATE", True)]) == [3, 2, 4, 1]


def test_reverse_does_not_reverse_the_implicit_sequence_order():
    """RFC 5256 §3: REVERSE SUBJECT is not the reverse of SUBJECT for equal subjects."""
    rows = [srow(1, subject="a"), srow(2, subject="a"), srow(3, subject="b")]
    assert sort_uids(rows, [("SUBJECT", True)]) == [3, 1, 2]


def test_date_falls_back_to_arrival_and_empty_strings_sort_first():
    rows = [
        srow(1, date=None, arrival=at(50), from_="zed"),
        srow(2, date=at(10), from_=""),
        srow(3, date=at(30), from_="Amy"),
    ]
    assert sort_uids(rows, [("DATE", False)]) == [2, 3, 1]
    assert sort_uids(rows, [("FROM", False)]) == [2, 3, 1]


def test_sort_by_size_arrival_and_addresses():
    rows = [
        srow(1, size=300, arrival=at(3), to="bob", cc="x", display_to="Zoe"),
        srow(2, size=100, arrival=at(1), to="alice", cc="", display_to="ann"),
        srow(3, size=200, arrival=at(2), to="Carl", cc="y", display_to="Bob"),
    ]
    assert sort_uids(rows, [("SIZE", False)]) == [2, 3, 1]
    assert sort_uids(rows, [("ARRIVAL", True)]) == [1, 3, 2]
    assert sort_uids(rows, [("TO", False)]) == [2, 1, 3]
    assert sort_uids(rows, [("CC", False)]) == [2, 1, 3]
    assert sort_uids(rows, [("DISPLAYTO", False)]) == [2, 3, 1]


def test_display_from_collates_case_insensitively_across_scripts():
    """RFC 5957 with i;unicode-casemap (RFC 5051): case does not matter; É decomposes to
    E + U+0301, which sorts after the ASCII letters (no accent stripping)."""
    rows = [
        srow(1, display_from="émile"),
        srow(2, display_from="Eve"),
        srow(3, display_from="ÉLISE"),
        srow(4, display_from="eva"),
    ]
    assert sort_uids(rows, [("DISPLAYFROM", False)]) == [4, 2, 3, 1]


def test_naive_and_aware_datetimes_compare():
    rows = [srow(1, date=datetime(2024, 1, 2)), srow(2, date=datetime(2024, 1, 1, tzinfo=UTC))]
    assert sort_uids(rows, [("DATE", False)]) == [2, 1]


def test_unknown_sort_key_is_an_error():
    with pytest.raises(ValueError):
        sort_uids([srow(1)], [("COLOUR", False)])


# Properties ---------------------------------------------------------------------------------

_THREAD_SYNTAX = re.compile(rb"^[()0-9 ]*$")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 12),  # message-id (duplicates likely)
            st.lists(st.integers(0, 15), max_size=5),  # references (missing ids likely)
            st.sampled_from(["", "a", "Re: a", "b", "Fwd: b", "[x] c"]),
            st.integers(0, 5),  # minute: many ties
            st.booleans(),  # has a date
        ),
        max_size=25,
    ),
    st.sampled_from(["REFERENCES", "ORDEREDSUBJECT"]),
)
def test_every_message_appears_exactly_once_in_a_well_formed_response(specs, algorithm):
    rows = []
    for uid, (mid, refs, subject, minute, dated) in enumerate(specs, start=1):
        base, is_reply = base_subject(subject)
        rows.append(
            ThreadRow(
                uid=uid,
                message_id=f"<{mid}@x>",
                in_reply_to="",
                references=[f"<{r}@x>" for r in refs],
                base_subject=base,
                date=at(minute) if dated else None,
                arrival=at(minute),
                subject_is_reply=is_reply,
            )
        )
    tree = thread(rows, algorithm)
    assert sorted(uids_in(tree)) == list(range(1, len(rows) + 1))
    out = format_threads(tree)
    assert _THREAD_SYNTAX.match(out)
    assert b"()" not in out
    depth = 0
    for ch in out:
        depth += {40: 1, 41: -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
