"""mbox reading and writing (RFC 4155, mboxrd/mboxo): pure functions on bytes and files."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.mailfiles import Folder, Problem, Record, count, read
from mailhost.mailfiles.mbox import (
    MboxWriter,
    envelope_sender,
    header_flags,
    mailbox_path,
    postmark,
    postmark_date,
    quote_from,
    read_mbox,
    read_mbox_tree,
    unquote_from,
)
from tests.conftest import corpus_dir

WHEN = datetime(2025, 9, 26, 10, 18, 40, tzinfo=UTC)


def records(items) -> list[Record]:
    return [i for i in items if isinstance(i, Record)]


def problems(items) -> list[Problem]:
    return [i for i in items if isinstance(i, Problem)]


@pytest.mark.parametrize(
    "line, expected",
    [
        (b"From a@b Thu Sep 26 10:18:40 2025\n", WHEN),
        (
            b"From MAILER-DAEMON Fri Jul  8 12:08:34 2011\n",
            datetime(2011, 7, 8, 12, 8, 34, tzinfo=UTC),
        ),
        (b"From a@b Thu Sep 26 10:18 2025\n", WHEN.replace(second=0)),
        (
            b"From a@b Thu Sep 26 10:18:40 +0200 2025\n",
            WHEN.replace(tzinfo=timezone(timedelta(hours=2))),
        ),
        (
            b"From a@b Thu Sep 26 10:18:40 2025 -0700\n",
            WHEN.replace(tzinfo=timezone(timedelta(hours=-7))),
        ),
        (b"From a@b Thu Sep 26 10:18:40 PDT 2025 remote from x\n", WHEN),
        (b"From -\n", None),
        (b"From Russia with love\n", None),
        (b"From a@b Thu Feb 30 10:18:40 2025\n", None),
    ],
    ids=[
        "asctime",
        "padded-day",
        "no-seconds",
        "zone-before-year",
        "zone-after",
        "zone-name",
        "dash",
        "prose",
        "bad-day",
    ],
)
def test_postmark_dates_are_read_from_asctime_and_its_variants(line, expected):
    assert postmark_date(line) == expected


def test_postmark_is_written_in_utc_asctime_with_a_padded_day():
    when = datetime(2011, 7, 8, 14, 8, 34, tzinfo=timezone(timedelta(hours=2)))
    assert postmark("a@b", when) == b"From a@b Fri Jul  8 12:08:34 2011\n"
    assert postmark("", when).startswith(b"From MAILER-DAEMON ")
    assert postmark_date(postmark("x", when)) == when


def test_envelope_sender_prefers_return_path_then_from():
    assert (
        envelope_sender(b"Return-Path: <bounce@x.org>\nFrom: A <a@x.org>\n\nhi\n") == "bounce@x.org"
    )
    assert envelope_sender(b"From: A\n <a@x.org>\n\nReturn-Path: <no@x>\n") == "a@x.org"
    assert envelope_sender(b"Subject: none\n\nFrom: body@x\n") == "MAILER-DAEMON"


@pytest.mark.parametrize(
    "raw, quoted",
    [
        (b"a\nFrom here\n", b"a\n>From here\n"),
        (b"From start\n", b">From start\n"),
        (b"a\n>From x\n>>From y\n", b"a\n>>From x\n>>>From y\n"),
        (b"a\r\nFrom here\r\n", b"a\r\n>From here\r\n"),
        (b"a\n From no\nFrom: hdr\n>From", b"a\n From no\nFrom: hdr\n>From"),
        (b"no quoting\n", b"no quoting\n"),
    ],
    ids=["body", "first-line", "already-quoted", "crlf", "not-at-line-start", "none"],
)
def test_mboxrd_quoting_adds_one_level_and_unquoting_removes_it(raw, quoted):
    assert quote_from(raw) == quoted
    assert unquote_from(quoted) == raw


@given(
    st.lists(st.sampled_from([b"From ", b">From ", b">>From x", b"From:", b"\n", b"\r\n", b"a"]))
)
def test_mboxrd_quoting_round_trips_any_mix_of_from_lines(parts):
    raw = b"".join(parts)
    assert unquote_from(quote_from(raw)) == raw


def write_mbox(tmp_path, messages, name="box.mbox"):
    with MboxWriter(tmp_path / "out") as writer:
        writer.folder("INBOX")
        for raw, when in messages:
            writer.write("INBOX", raw, (), when)
    return tmp_path / "out" / "INBOX.mbox"


@given(
    st.lists(
        st.lists(
            st.sampled_from(
                [b"From x", b">From y", b">>From z", b"From: a", b"", b" ", b"body", b"\r"]
            ),
            min_size=1,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_any_message_ending_in_a_line_break_round_trips_through_an_mbox_file(
    tmp_path_factory, bodies
):
    tmp_path = tmp_path_factory.mktemp("mbox")
    messages = [(b"Subject: s\n\n" + b"\n".join(lines) + b"\n", WHEN) for lines in bodies]
    path = write_mbox(tmp_path, messages)
    got = records(read_mbox(path))
    assert [r.raw for r in got] == [raw for raw, _ in messages]
    assert all(r.internaldate == WHEN for r in got)
    assert count(path) == len(messages)


def test_a_message_without_a_final_line_break_gains_one_in_mbox(tmp_path):
    path = write_mbox(
        tmp_path, [(b"Subject: s\n\nno newline", WHEN), (b"Subject: t\r\n\r\nx\r\n", WHEN)]
    )
    got = records(read_mbox(path))
    assert [r.raw for r in got] == [b"Subject: s\n\nno newline\n", b"Subject: t\r\n\r\nx\r\n"]


def test_mboxo_keeps_quoted_lines_and_mboxrd_unquotes_them(tmp_path):
    path = tmp_path / "m"
    path.write_bytes(b"From a Thu Sep 26 10:18:40 2025\nSubject: s\n\n>From x\n>>From y\n\n")
    assert (
        records(read_mbox(path, mbox_format="mboxrd"))[0].raw == b"Subject: s\n\nFrom x\n>From y\n"
    )
    assert (
        records(read_mbox(path, mbox_format="mboxo"))[0].raw == b"Subject: s\n\n>From x\n>>From y\n"
    )


def test_status_headers_become_flags_and_stay_in_the_bytes(tmp_path):
    raw = (
        b"Subject: s\nStatus: RO\nX-Status: AFT\nX-Keywords: $Label1 work\n"
        b"\nStatus: D\n"  # in the body: not a header
    )
    path = tmp_path / "m"
    path.write_bytes(b"From a Thu Sep 26 10:18:40 2025\n" + raw + b"\n")
    [record] = records(read_mbox(path))
    assert record.raw == raw
    assert record.flags == ("$Label1", "\\Answered", "\\Draft", "\\Flagged", "\\Seen", "work")


def test_thunderbird_status_bits_become_flags():
    assert header_flags({b"x-mozilla-status:": b"1009"}) == ("$Forwarded", "\\Deleted", "\\Seen")
    assert header_flags({b"x-status:": b"D"}) == ("\\Deleted",)


def test_without_a_postmark_date_the_date_header_is_the_internaldate(tmp_path):
    path = tmp_path / "m"
    path.write_bytes(b"From -\nDate: Fri, 23 Aug 2002 2:32:53 -0400\n\nx\n")
    [record] = records(read_mbox(path))
    assert record.internaldate == datetime(2002, 8, 23, 6, 32, 53, tzinfo=UTC)


@pytest.mark.parametrize(
    "name, messages, first_start",
    [
        ("issue1189.mbox.txt", 4, b"MIME-Version: 1.0\nDate: Fri, 26 Sep 2025 10:18:40 -0700\n"),
        ("simple.mbox.txt", 3, b"From: fejj@gnome.org\n"),
        ("unmunged.mbox.txt", 4, b"From: Jeffrey Stedfast"),
    ],
    ids=["issue1189", "simple-no-blank-lines", "unmunged-with-bom"],
)
def test_corpus_mbox_files_split_like_mimekit(name, messages, first_start):
    """mimekit's tests expect these counts; every unquoted `From ` line is a separator."""
    path = corpus_dir() / "mimekit" / "mbox" / name
    items = list(read_mbox(path))
    assert items[0] == Folder("INBOX")
    assert not problems(items)
    got = records(items)
    assert len(got) == messages == count(path)
    assert got[0].raw.startswith(first_start)
    # Separator blank lines are dropped, a message's own last line break is kept.
    assert all(r.raw.endswith(b"\n") and not r.raw.endswith(b"\n\n") for r in got)


def test_simple_mbox_messages_keep_their_last_line_without_a_blank_separator():
    path = corpus_dir() / "mimekit" / "mbox" / "simple.mbox.txt"
    first = records(read_mbox(path))[0].raw
    assert first.endswith(b"<-- You are here.\n")


def test_a_truncated_mbox_reports_its_last_message_and_keeps_the_others(tmp_path):
    path = tmp_path / "cut"
    path.write_bytes(b"From a\nSubject: 1\n\none\n\nFrom b\nSubject: 2\n\ntw")
    items = list(read_mbox(path))
    assert [r.raw for r in records(items)] == [b"Subject: 1\n\none\n"]
    [problem] = problems(items)
    assert "truncated" in problem.reason and problem.source.endswith(":6")


def test_a_file_that_is_not_an_mbox_is_reported(tmp_path):
    path = tmp_path / "junk"
    path.write_bytes(b"\x00\x01binary")
    [problem] = list(read_mbox(path))
    assert "not an mbox" in problem.reason


def test_an_oversized_message_is_reported_without_being_kept(tmp_path):
    path = tmp_path / "m"
    path.write_bytes(b"From a\nSubject: big\n\n" + b"x" * 100 + b"\n\nFrom b\nSubject: ok\n\ny\n")
    items = list(read_mbox(path, max_size=50))
    assert [r.raw for r in records(items)] == [b"Subject: ok\n\ny\n"]
    assert "larger than 50" in problems(items)[0].reason


def test_an_empty_mbox_file_is_an_empty_mailbox(tmp_path):
    path = tmp_path / "Empty.mbox"
    path.write_bytes(b"")
    assert list(read(path, folder="Empty")) == [Folder("Empty")]


def test_folder_tree_names_map_to_mailbox_names(tmp_path):
    for rel in [
        "INBOX.mbox",
        "Lists.mbox",
        "Lists/python.mbox",
        "Archive.sbd/2020",
        "Apple.mbox/mbox",
        "Apple.mbox/Info.plist",
        "Inbox.msf",
        ".hidden",
        "100%25.mbox",
    ]:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"From a\nSubject: x\n\nbody\n")
    folders = [i.name for i in read_mbox_tree(tmp_path) if isinstance(i, Folder)]
    assert sorted(folders) == ["100%", "Apple", "Archive/2020", "INBOX", "Lists", "Lists/python"]


@pytest.mark.parametrize(
    "mailbox", ["INBOX", "Lists/python", ".dot", "a%b", "x.mbox/y", "Entwürfe", "a.sbd"]
)
def test_mailbox_paths_read_back_as_the_same_name(tmp_path, mailbox):
    with MboxWriter(tmp_path) as writer:
        writer.write(mailbox, b"Subject: s\n\nx\n", (), WHEN)
    assert mailbox_path(tmp_path, mailbox).is_file()
    assert [i.name for i in read_mbox_tree(tmp_path) if isinstance(i, Folder)] == [mailbox]


def test_long_lines_are_read_in_pieces_and_a_piece_is_never_a_separator(tmp_path, monkeypatch):
    from mailhost.mailfiles import mbox

    monkeypatch.setattr(mbox, "LINE_LIMIT", 8)
    raw = b"Subject: long line\n\n0123456From here is not a new message\n>From quoted\n"
    path = tmp_path / "m"
    path.write_bytes(b"From a\n" + quote_from(raw) + b"\n")
    assert [r.raw for r in records(read_mbox(path))] == [raw]
    assert [r.raw for r in records(read_mbox(path, max_size=20))] == []
