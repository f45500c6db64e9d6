"""IMAP SEARCH through the store (RFC 9051 §6.4.4, RFC 3501 §6.4.4, RFC 7162 §3.1.5)."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime

import pytest

from mailhost import store
from mailhost.store import blobs
from mailhost.store import search as s
from mailhost.store.search import And, Key, Not, Or, SearchError

pytestmark = pytest.mark.django_db


def raw(
    subject="Hello",
    body="Plain body text.\r\n",
    *,
    from_="Bob Smith <bob@example.org>",
    to="Alice <alice@example.test>",
    cc=None,
    bcc=None,
    date_="Fri, 01 Mar 2024 10:00:00 +0000",
    headers=(),
    content_type=None,
) -> bytes:
    lines = [f"From: {from_}", f"To: {to}", f"Subject: {subject}"]
    if cc:
        lines.append(f"Cc: {cc}")
    if bcc:
        lines.append(f"Bcc: {bcc}")
    if date_:
        lines.append(f"Date: {date_}")
    lines.extend(headers)
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (
        body.encode() if isinstance(body, str) else body
    )


class Box:
    """Alice's INBOX, with helpers to add messages and search."""

    def __init__(self, account):
        self.account = account
        self.id = store.lookup_mailbox(account.id, "INBOX").id

    def add(self, message: bytes, flags=(), internaldate=None) -> int:
        return store.append(
            self.account.id, "INBOX", message, flags=flags, internaldate=internaldate
        ).uid

    def search(self, *keys, **kw) -> list[int]:
        criteria = keys[0] if len(keys) == 1 else And(tuple(keys))
        return s.search(self.account.id, self.id, criteria, **kw)


@pytest.fixture
def box(alice):
    return Box(alice)


def K(name, *args):
    return Key(name, tuple(args))


# Flags, keywords, sizes ---------------------------------------------------------------------


def test_all_matches_every_message_and_an_empty_mailbox_matches_nothing(box):
    assert box.search(K("ALL")) == []
    uids = [box.add(raw(subject=f"m{i}")) for i in range(3)]
    assert box.search(K("ALL")) == uids


@pytest.mark.parametrize(
    ("flag", "key", "unkey"),
    [
        ("\\Seen", "SEEN", "UNSEEN"),
        ("\\Answered", "ANSWERED", "UNANSWERED"),
        ("\\Flagged", "FLAGGED", "UNFLAGGED"),
        ("\\Deleted", "DELETED", "UNDELETED"),
        ("\\Draft", "DRAFT", "UNDRAFT"),
    ],
    ids=["seen", "answered", "flagged", "deleted", "draft"],
)
def test_system_flag_keys_and_their_negations(box, flag, key, unkey):
    plain = box.add(raw(subject="a"), flags=["\\Seen"] if flag != "\\Seen" else [])
    marked = box.add(raw(subject="b"), flags=[flag, "\\Recent"])
    assert box.search(K(key)) == [marked]
    assert box.search(K(unkey)) == [plain]


def test_keyword_matches_whole_words_only_and_ignores_case(box):
    """RFC 9051 §6.4.4 KEYWORD: the flag, not a substring of another flag."""
    work = box.add(raw(subject="1"), flags=["work", "$Label1"])
    home = box.add(raw(subject="2"), flags=["homework"])
    both = box.add(raw(subject="3"), flags=["a", "work", "z"])
    last = box.add(raw(subject="4"), flags=["a", "WORK"])
    none = box.add(raw(subject="5"))
    assert box.search(K("KEYWORD", "work")) == [work, both, last]
    assert box.search(K("KEYWORD", "Work")) == [work, both, last]
    assert box.search(K("KEYWORD", "homework")) == [home]
    assert box.search(K("UNKEYWORD", "work")) == [home, none]
    assert box.search(K("KEYWORD", "$label1")) == [work]
    assert box.search(K("KEYWORD", "wor_")) == []
    assert box.search(K("KEYWORD", "w%")) == []
    assert box.search(K("KEYWORD", "")) == []
    assert box.search(K("UNKEYWORD", "a z")) == [work, home, both, last, none]


def test_larger_and_smaller_compare_rfc822_size_strictly(box):
    small = box.add(raw(body="x"))
    big = box.add(raw(body="x" * 1000))
    size = len(raw(body="x"))
    assert box.search(K("LARGER", size)) == [big]
    assert box.search(K("LARGER", size - 1)) == [small, big]
    assert box.search(K("SMALLER", size)) == []
    assert box.search(K("SMALLER", size + 1)) == [small]


def test_modseq_matches_equal_or_greater(box):
    """RFC 7162 §3.1.5."""
    first = store.append(box.account.id, "INBOX", raw(subject="1"))
    second = store.append(box.account.id, "INBOX", raw(subject="2"))
    assert box.search(K("MODSEQ", second.modseq)) == [second.uid]
    assert box.search(K("MODSEQ", first.modseq)) == [first.uid, second.uid]
    assert box.search(K("MODSEQ", "/flags/\\draft", "all", second.modseq)) == [second.uid]
    changed = store.set_flags(box.account.id, box.id, [first.uid], ["\\Seen"])
    assert box.search(K("MODSEQ", changed.changed[0].modseq)) == [first.uid]
    assert s.max_modseq(box.account.id, box.id, [1, 2]) == changed.changed[0].modseq
    assert s.max_modseq(box.account.id, box.id, [2]) == second.modseq
    assert s.max_modseq(box.account.id, box.id, []) == 0


def test_recent_new_and_old_follow_the_sessions_recent_uid(box):
    """RFC 3501 §6.4.4: NEW is RECENT UNSEEN; IMAP4rev2 (None) has no \\Recent."""
    old = box.add(raw(subject="1"))
    seen = box.add(raw(subject="2"), flags=["\\Seen"])
    new = box.add(raw(subject="3"))
    assert box.search(K("RECENT"), recent_from_uid=seen) == [seen, new]
    assert box.search(K("NEW"), recent_from_uid=seen) == [new]
    assert box.search(K("OLD"), recent_from_uid=seen) == [old]
    assert box.search(K("RECENT")) == []
    assert box.search(K("NEW")) == []
    assert box.search(K("OLD")) == [old, seen, new]


# UID and sequence sets ----------------------------------------------------------------------


def test_uid_and_seqset_keys_take_sets_of_uids(box):
    uids = [box.add(raw(subject=str(i))) for i in range(6)]
    assert box.search(K("UID", frozenset({uids[1], uids[3], 999}))) == [uids[1], uids[3]]
    assert box.search(K("SEQSET", frozenset(uids[2:5]))) == uids[2:5]
    assert box.search(K("UID", frozenset())) == []
    assert box.search(Not(K("UID", frozenset(uids[:2])))) == uids[2:]


def test_scattered_uid_sets_are_answered_without_giant_sql(box):
    """More ranges than MAX_SQL_RANGES: gaps with no message are merged, else Python."""
    uids = [box.add(raw(subject=str(i))) for i in range(2 * s.MAX_SQL_RANGES + 10)]
    odd = frozenset(uids[1::2])
    assert box.search(K("UID", odd)) == sorted(odd)
    assert box.search(Not(K("UID", odd))) == uids[0::2]
    assert box.search(Or(K("UID", odd), K("UID", frozenset({uids[0]})))) == [uids[0], *sorted(odd)]
    # After expunging the even ones, the odd UIDs are one range of existing messages.
    store.set_flags(box.account.id, box.id, uids[0::2], ["\\Deleted"])
    store.expunge(box.account.id, box.id)
    many = frozenset(odd | {10_000_000 + 2 * i for i in range(500)})
    assert box.search(K("UID", many)) == sorted(odd)


# Dates --------------------------------------------------------------------------------------


def test_internaldate_keys_compare_the_date_in_the_servers_time_zone(box, settings):
    """RFC 3501 §6.4.4 BEFORE/ON/SINCE disregard time; the server's zone decides the day."""
    late = box.add(raw(subject="1"), internaldate=datetime(2024, 3, 1, 23, 59, tzinfo=UTC))
    next_ = box.add(raw(subject="2"), internaldate=datetime(2024, 3, 2, 0, 0, tzinfo=UTC))
    day = date(2024, 3, 2)
    assert box.search(K("ON", day)) == [next_]
    assert box.search(K("BEFORE", day)) == [late]
    assert box.search(K("SINCE", day)) == [next_]
    assert box.search(K("SINCE", date(2024, 3, 1))) == [late, next_]
    assert box.search(K("ON", date.max)) == []
    assert box.search(K("BEFORE", date.max)) == [late, next_]
    assert box.search(K("SINCE", date.min)) == [late, next_]
    settings.TIME_ZONE = "America/New_York"  # both are on 1 March there
    assert box.search(K("ON", date(2024, 3, 1))) == [late, next_]
    assert box.search(K("ON", day)) == []


def test_sent_keys_use_the_date_header_own_day_not_utc(box):
    """RFC 3501 §6.4.4 SENT*: the Date: field's date, disregarding time and zone."""
    west = box.add(raw(subject="w", date_="Fri, 01 Mar 2024 23:30:00 -0800"))  # 2 Mar UTC
    east = box.add(raw(subject="e", date_="Sat, 02 Mar 2024 00:30:00 +0900"))  # 1 Mar UTC
    far = box.add(raw(subject="f", date_="Mon, 01 Jan 2024 12:00:00 +0000"))
    undated = box.add(raw(subject="n", date_=None))
    assert box.search(K("SENTON", date(2024, 3, 1))) == [west]
    assert box.search(K("SENTON", date(2024, 3, 2))) == [east]
    assert box.search(K("SENTBEFORE", date(2024, 3, 2))) == [west, far]
    assert box.search(K("SENTSINCE", date(2024, 3, 2))) == [east]
    assert box.search(K("SENTSINCE", date(2024, 1, 1))) == [west, east, far]
    assert box.search(Not(K("SENTON", date(2024, 3, 1)))) == [east, far, undated]
    assert box.search(Or(K("SENTON", date(2024, 3, 2)), K("SENTBEFORE", date(2024, 2, 1)))) == [
        east,
        far,
    ]


# Envelope strings ---------------------------------------------------------------------------


def test_envelope_string_keys_are_case_insensitive_substrings(box):
    one = box.add(
        raw(
            subject="Quarterly REPORT",
            from_='"Smith, Bob" <bob@example.org>',
            to="Carol <carol@example.net>, dave@example.net",
            cc="Erin <erin@example.com>",
            bcc="frank@example.com",
        )
    )
    two = box.add(raw(subject="Lunch", from_="zoe@example.org", to="alice@example.test"))
    assert box.search(K("SUBJECT", "report")) == [one]
    assert box.search(K("FROM", "smith")) == [one]
    assert box.search(K("FROM", "BOB@EXAMPLE")) == [one]
    assert box.search(K("FROM", "example.org")) == [one, two]
    assert box.search(K("TO", "dave@")) == [one]
    assert box.search(K("TO", "carol")) == [one]
    assert box.search(K("CC", "erin")) == [one]
    assert box.search(K("BCC", "FRANK")) == [one]
    assert box.search(K("CC", "")) == [one, two]  # the empty string is a substring of all
    assert box.search(K("SUBJECT", b"lunch")) == [two]


def test_like_wildcards_in_the_needle_are_literal(box):
    percent = box.add(raw(subject="100% done"))
    box.add(raw(subject="1000 done"))
    under = box.add(raw(subject="snake_case"))
    box.add(raw(subject="snakeXcase"))
    assert box.search(K("SUBJECT", "100%")) == [percent]
    assert box.search(K("SUBJECT", "e_c")) == [under]
    assert box.search(K("SUBJECT", "\\")) == []


def test_encoded_words_are_decoded_and_non_ascii_folds_case(box):
    """RFC 9051 §6.4.4: MIME-encoded headers are decoded before comparing (example A285)."""
    word = "=?UTF-8?B?" + base64.b64encode("Отпуск в июле".encode()).decode() + "?="
    vacation = box.add(raw(subject=word, from_="=?UTF-8?Q?J=C3=BCrgen?= <j@example.de>"))
    other = box.add(raw(subject="Ferien [*] ÄRGER?"))
    assert box.search(K("SUBJECT", "отпуск")) == [vacation]
    assert box.search(K("SUBJECT", "ОТПУСК")) == [vacation]
    assert box.search(K("SUBJECT", "В ИЮЛЕ")) == [vacation]
    assert box.search(K("FROM", "JÜRGEN")) == [vacation]
    assert box.search(K("SUBJECT", "[*] ärger?")) == [other]
    assert box.search(K("SUBJECT", "ä*")) == []


# HEADER, BODY, TEXT -------------------------------------------------------------------------


def test_header_matches_any_field_of_that_name_and_empty_means_present(box):
    """RFC 9051 §6.4.4 HEADER: substring of the field text; "" tests presence."""
    tagged = box.add(
        raw(
            headers=[
                "X-Mailer: Mutt 2.0",
                "X-Tag: first",
                "x-tag: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=",
                "Message-ID: <abc.123@example.org>",
            ]
        )
    )
    plain = box.add(raw(subject="no extras"))
    assert box.search(K("HEADER", "X-Mailer", "mutt")) == [tagged]
    assert box.search(K("HEADER", "x-mailer", "")) == [tagged]
    assert box.search(K("HEADER", "X-TAG", "GRÜSSE")) == []  # no full case folding (ß)
    assert box.search(K("HEADER", "X-TAG", "grü")) == [tagged]
    assert box.search(K("HEADER", "X-Tag", "first")) == [tagged]
    assert box.search(K("HEADER", "Message-ID", "<abc.123@example.org>")) == [tagged]
    assert box.search(K("HEADER", "Subject", "extras")) == [plain]
    assert box.search(K("HEADER", "X-Absent", "")) == []
    assert box.search(Not(K("HEADER", "X-Mailer", ""))) == [plain]


MULTIPART = (
    b"From: bob@example.org\r\nTo: alice@example.test\r\nSubject: parts\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XYZ\r\n\r\n"
    b"preamble\r\n--XYZ\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    + base64.b64encode("Grüße aus Köln, der Kuchen ist fertig.".encode())
    + b"\r\n--XYZ\r\nContent-Type: text/html; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"<p>Caf=E9 cr=E8me</p>\r\n--XYZ\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    + base64.b64encode(b"secret attachment words")
    + b"\r\n--XYZ\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: inner@example.com\r\nSubject: forwarded thing\r\n\r\nInner body says banana.\r\n"
    b"--XYZ--\r\n"
)


def test_body_decodes_transfer_encodings_and_charsets_of_text_parts(box):
    """RFC 9051 §6.4.4: CTEs are decoded; non-text leaves may be skipped."""
    uid = box.add(MULTIPART)
    other = box.add(raw(body="nothing to see\r\n"))
    assert box.search(K("BODY", "KUCHEN")) == [uid]
    assert box.search(K("BODY", "grüße aus köln")) == [uid]
    assert box.search(K("BODY", "café crème")) == [uid]
    assert box.search(K("BODY", "banana")) == [uid]  # an attached message's text
    assert box.search(K("BODY", "forwarded thing")) == [uid]  # and its header
    assert box.search(K("BODY", "secret attachment")) == []
    assert box.search(K("BODY", "parts")) == []  # the top-level header is not body
    assert box.search(K("BODY", "nothing")) == [other]
    assert box.search(K("BODY", "")) == [uid, other]


def test_text_matches_header_or_body(box):
    uid = box.add(MULTIPART)
    other = box.add(raw(subject="Nothing", body="to see\r\n", headers=["X-Colour: teal"]))
    assert box.search(K("TEXT", "parts")) == [uid]
    assert box.search(K("TEXT", "kuchen")) == [uid]
    assert box.search(K("TEXT", "x-colour: TEAL")) == [other]
    assert box.search(K("TEXT", "to see")) == [other]
    assert box.search(K("TEXT", "absent everywhere")) == []


def test_nested_or_and_not_mix_sql_and_blob_keys(box):
    a = box.add(raw(subject="alpha", body="needle here\r\n"), flags=["\\Flagged"])
    b = box.add(raw(subject="beta", body="needle too\r\n"))
    c = box.add(raw(subject="gamma", body="haystack\r\n"), flags=["\\Flagged", "\\Seen"])
    d = box.add(raw(subject="delta", body="haystack\r\n"))
    assert box.search(Or(K("FLAGGED"), K("BODY", "needle"))) == [a, b, c]
    assert box.search(K("FLAGGED"), K("BODY", "needle")) == [a]
    assert box.search(Not(K("BODY", "needle"))) == [c, d]
    assert box.search(Not(Or(K("BODY", "needle"), K("SUBJECT", "gamma")))) == [d]
    assert box.search(Or(And((K("UNSEEN"), K("BODY", "haystack"))), K("SUBJECT", "beta"))) == [
        b,
        d,
    ]
    assert box.search(Not(Not(K("BODY", "haystack")))) == [c, d]
    assert box.search(Or(Not(K("FLAGGED")), Not(K("BODY", "needle")))) == [b, c, d]
    assert box.search(And((K("ALL"),))) == [a, b, c, d]
    assert box.search([K("FLAGGED"), Not(K("SEEN"))]) == [a]
    assert box.search(Or(K("SUBJECT", "alpha"), Not(K("ALL")))) == [a]


def test_a_large_message_is_searched_only_up_to_the_per_message_cap(box, monkeypatch):
    monkeypatch.setattr(s, "MAX_MESSAGE_SCAN_BYTES", 1000)
    early = box.add(raw(body="early needle " + "x" * 5000 + " late haystack\r\n"))
    assert box.search(K("BODY", "needle")) == [early]
    assert box.search(K("BODY", "haystack")) == []


def test_a_search_that_would_read_too_much_fails_with_limit(box, settings):
    for i in range(5):
        box.add(raw(subject=str(i), body="y" * 2000 + "\r\n"))
    settings.BUZON_SEARCH_MAX_BYTES = 5000
    with pytest.raises(SearchError) as e:
        box.search(K("BODY", "zzz"))
    assert e.value.code == "LIMIT"
    assert box.search(K("SUBJECT", "3")) == [4]  # SQL-only keys are not limited


def test_a_search_that_runs_too_long_fails_with_limit(box, settings):
    box.add(raw())
    settings.BUZON_SEARCH_MAX_SECONDS = -1
    with pytest.raises(SearchError) as e:
        box.search(K("BODY", "zzz"))
    assert e.value.code == "LIMIT"


def test_a_missing_blob_matches_no_text_key_instead_of_failing(box):
    uid = box.add(raw(body="findme\r\n"))
    blobs.remove(store.message_sha(box.account.id, box.id, uid))
    assert box.search(K("BODY", "findme")) == []
    assert box.search(Not(K("HEADER", "Subject", ""))) == [uid]


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"no header separator at all",
        b"\r\n\r\nbody only",
        b"Subject: broken\r\nContent-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--\r\n",
        b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\n\xff\xfe needle",
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64 at all!!!",
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\n" + b"--a\r\n" * 3000,
        b"X: " + b"a" * 100_000 + b"\r\n\r\nneedle",
    ],
    ids=[
        "empty",
        "no-separator",
        "no-header",
        "bad-multipart",
        "bad-charset",
        "bad-base64",
        "many-parts",
        "long-header",
    ],
)
def test_malformed_messages_do_not_break_text_searches(box, message):
    uid = box.add(message)
    for key in ("BODY", "TEXT"):
        assert box.search(K(key, "needle")) in ([], [uid])
    assert box.search(K("HEADER", "Subject", "")) in ([], [uid])
    assert box.search(Not(K("TEXT", "needle"))) in ([], [uid])


def test_undecodable_charset_text_still_matches_its_ascii(box):
    uid = box.add(b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\n\xff\xfe needle\r\n")
    assert box.search(K("BODY", "needle")) == [uid]


# Charsets, bounds, bad input ----------------------------------------------------------------


@pytest.mark.parametrize("charset", ["UTF-8", "utf-8", "US-ASCII", "us-ascii", None, b"UTF-8"])
def test_utf8_and_us_ascii_are_supported(box, charset):
    uid = box.add(raw(subject="ok"))
    assert box.search(K("SUBJECT", "ok"), charset=charset) == [uid]


@pytest.mark.parametrize("charset", ["ISO-8859-1", "KOI8-R", "", "UTF-16", 42])
def test_other_charsets_fail_with_badcharset_listing_ours(box, charset):
    """RFC 9051 §6.4.4: NO [BADCHARSET (UTF-8 US-ASCII)]."""
    with pytest.raises(SearchError) as e:
        box.search(K("ALL"), charset=charset)
    assert e.value.code == "BADCHARSET"
    assert e.value.charsets == ("UTF-8", "US-ASCII")


def nested_not(depth: int):
    node = K("SEEN")
    for _ in range(depth):
        node = Not(node)
    return node


def test_criteria_nesting_is_bounded(box):
    uid = box.add(raw())
    assert box.search(nested_not(s.MAX_DEPTH - 1)) == [uid]  # 99 NOTs: NOT SEEN
    assert box.search(nested_not(s.MAX_DEPTH - 2)) == []
    for depth in (s.MAX_DEPTH, 100_000):
        with pytest.raises(SearchError) as e:
            box.search(nested_not(depth))
        assert e.value.code == "LIMIT"


def test_the_number_of_keys_is_bounded(box):
    uid = box.add(raw())
    keys = tuple(K("UNSEEN") for _ in range(s.MAX_NODES - 1))
    assert box.search(And(keys)) == [uid]
    with pytest.raises(SearchError) as e:
        box.search(And(keys + (K("ALL"),) * 2))
    assert e.value.code == "LIMIT"


def test_a_wide_or_of_many_keys_runs_in_sql(box):
    """A balanced OR of ~MAX_NODES keys stays within SQLite's expression limits."""
    uids = [box.add(raw(subject=f"s{i}")) for i in range(3)]
    level = [K("SUBJECT", "s0")] + [
        K("SUBJECT", f"nope{i}") if i % 2 else K("LARGER", 10**9) for i in range(127)
    ]
    while len(level) > 1:
        level = [Or(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    assert box.search(level[0]) == uids[:1]
    assert box.search(Not(level[0])) == uids[1:]


@pytest.mark.parametrize(
    ("criteria", "code"),
    [
        (K("COLOUR"), "BAD"),
        (K("SUBJECT"), "BAD"),
        (K("SUBJECT", 5), "BAD"),
        (K("LARGER", "big"), "BAD"),
        (K("LARGER", -1), "BAD"),
        (K("LARGER", True), "BAD"),
        (K("ON", "1-Jan-2024"), "BAD"),
        (K("UID", 5), "BAD"),
        (K("HEADER", "X"), "BAD"),
        (K("MODSEQ"), "BAD"),
        (K("SEEN", 1), "BAD"),
        (Key("SEEN", ["x"]), "BAD"),
        ("SEEN", "BAD"),
        (Or(K("SEEN"), None), "BAD"),
        (K("SUBJECT", "x" * (s.MAX_STRING + 1)), "LIMIT"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_malformed_criteria_raise_search_error(box, criteria, code):
    with pytest.raises(SearchError) as e:
        s.search(box.account.id, box.id, criteria)
    assert e.value.code == code


def test_another_accounts_mailbox_is_not_found(box, carol):
    with pytest.raises(store.MailboxNotFound):
        s.search(carol.id, box.id, K("ALL"))
    with pytest.raises(store.MailboxNotFound):
        s.sort_rows(carol.id, box.id, [1])


# SORT and THREAD rows -----------------------------------------------------------------------


def test_sort_rows_carry_what_rfc_5256_and_5957_sort_by(box):
    uid = box.add(
        raw(
            subject="Re: [list] Plans",
            from_='"Smith, Bob" <Bob.Smith@Example.org>',
            to='"Doe, Jane" <jane@example.net>, carl@example.net',
            cc="carl@example.net, Erin <erin@example.com>",
            date_="Fri, 01 Mar 2024 23:30:00 -0800",
        ),
        internaldate=datetime(2024, 3, 3, tzinfo=UTC),
    )
    bare = box.add(raw(subject="", from_="zoe@example.org", to="", date_=None))
    rows = s.sort_rows(box.account.id, box.id, [bare, uid, 999])
    assert [r.uid for r in rows] == [uid, bare]
    row = rows[0]
    assert row.subject == "Plans"
    assert row.from_ == "bob.smith"
    assert row.to == "jane"
    assert row.cc == "carl"
    assert row.display_from == "Smith, Bob"
    assert row.display_to == "Doe, Jane"
    assert row.date == datetime(2024, 3, 2, 7, 30, tzinfo=UTC)
    assert row.arrival == datetime(2024, 3, 3, tzinfo=UTC)
    assert row.size == len(rows and store.read_message(box.account.id, box.id, uid))
    assert (rows[1].to, rows[1].display_to, rows[1].date) == ("", "", None)
    assert rows[1].display_from == "zoe@example.org"


@pytest.mark.parametrize(
    ("display", "expected"),
    [
        ("", ("", "")),
        ("a@b", ("", "a@b")),
        ("a@b, Bob <c@d>", ("", "a@b")),
        ("Doe, John <j@x>, k@y", ("Doe, John", "j@x")),
        ("Bob <bob@x> , k@y", ("Bob", "bob@x")),
        ("bob@x.com <bob@x.com>", ("bob@x.com", "bob@x.com")),
        ("undisclosed", ("", "undisclosed")),
    ],
)
def test_first_address_of_a_display_list(display, expected):
    assert s.first_address(display) == expected


def test_thread_rows_feed_the_references_algorithm(box):
    from imapd.imap.threading import format_threads, thread

    root = box.add(raw(subject="Plans", headers=["Message-ID: <1@x>"]))
    reply = box.add(
        raw(
            subject="Re: Plans",
            headers=["Message-ID: <2@x>", "In-Reply-To: <1@x>", "References: <1@x>"],
            date_="Fri, 01 Mar 2024 11:00:00 +0000",
        )
    )
    loose = box.add(raw(subject="RE: plans", headers=["Message-ID: <3@x>"], date_=None))
    rows = s.thread_rows(box.account.id, box.id, [root, reply, loose])
    assert rows[1].references == ["<1@x>"]
    assert rows[1].subject_is_reply and not rows[0].subject_is_reply
    assert rows[2].date is None
    assert format_threads(thread(rows, "REFERENCES")) == b"(1 (2)(3))"
    assert format_threads(thread(rows, "ORDEREDSUBJECT")) == b"(1 (2)(3))"


def test_rows_for_many_uids_come_from_one_range_scan(box):
    uids = [box.add(raw(subject=str(i))) for i in range(5)]
    wanted = set(range(1, 4 * s.BATCH + 10)) - {uids[2]}
    assert [r.uid for r in s.thread_rows(box.account.id, box.id, wanted)] == [
        u for u in uids if u != uids[2]
    ]
    assert s.max_modseq(box.account.id, box.id, sorted(wanted)) > 0


def test_sql_only_criteria_run_as_one_query(box, django_assert_num_queries):
    """Flags, keywords, sizes, dates, envelope strings and UID sets: one SELECT, which
    also checks the mailbox's owner, and no per-message work."""
    uid = box.add(raw(subject="Budget"), flags=["\\Flagged", "work"])
    box.add(raw(subject="Budget"))
    criteria = And(
        (
            K("FLAGGED"),
            K("KEYWORD", "work"),
            K("SUBJECT", "budget"),
            K("SINCE", date(2000, 1, 1)),
            K("LARGER", 10),
            K("UID", frozenset({uid, uid + 5})),
            Or(K("FROM", "bob"), Not(K("TO", "nobody"))),
        )
    )
    with django_assert_num_queries(1):
        assert box.search(criteria) == [uid]
