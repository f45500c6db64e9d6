"""Debian's mbsync (isync) syncing an account both ways over STARTTLS: new mail, flags,
moves and deletions on both sides."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import trustme

from mailhost import store, tls
from tests.conftest import PASSWORD


@pytest.fixture(autouse=True)
def _mbsync_installed():
    if shutil.which("mbsync") is None:
        pytest.fail("mbsync is not installed: run `bash .ci/apt-install` (as root)")


pytestmark = [
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def tls_files(tmp_path, settings):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost", common_name="127.0.0.1")  # mbsync wants a CN
    cert_path, key_path, ca_path = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    ca.cert_pem.write_to_path(str(ca_path))
    settings.BUZON_TLS_CERT, settings.BUZON_TLS_KEY = str(cert_path), str(key_path)
    settings.BUZON_ALLOW_PLAINTEXT_AUTH = False
    tls.reset()
    yield ca_path
    tls.reset()


def msg(subject: str) -> bytes:
    head = f"From: bob@example.org\r\nSubject: {subject}\r\nMessage-ID: <{subject}@x>\r\n"
    return f"{head}\r\n{subject} body\r\n".encode()


def write_config(tmp_path: Path, port: int, ca_path: Path) -> Path:
    local = tmp_path / "Mail"
    local.mkdir()
    config = tmp_path / "mbsyncrc"
    config.write_text(
        f"""IMAPAccount buzon
Host 127.0.0.1
Port {port}
User alice@example.test
Pass "{PASSWORD}"
SSLType STARTTLS
CertificateFile {ca_path}
AuthMechs LOGIN

IMAPStore remote
Account buzon

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns INBOX Archive
Create Both
Expunge Both
SyncState *
"""
    )
    return config


def run_mbsync(config: Path) -> str:
    result = subprocess.run(
        ["mbsync", "-c", str(config), "-a"], capture_output=True, timeout=60, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def local_messages(folder: Path) -> dict[str, tuple[Path, str]]:
    """Subject -> (file, maildir flags)."""
    out = {}
    for sub in ("cur", "new"):
        for path in (folder / sub).glob("*"):
            subject = re.search(rb"Subject: (\S+)", path.read_bytes()).group(1).decode()
            flags = path.name.split(":2,")[1] if ":2," in path.name else ""
            out[subject] = (path, flags)
    return out


def server_messages(account_id: int, mailbox: str) -> dict[str, tuple[str, ...]]:
    box = store.lookup_mailbox(account_id, mailbox)
    out = {}
    for mf in store.flags_of(account_id, box.id):
        raw = store.read_message(account_id, box.id, mf.uid)
        subject = re.search(rb"Subject: (\S+)", raw).group(1).decode()
        out[subject] = mf.flags
    return out


def test_mbsync_syncs_both_ways(imap_server, alice, tls_files, tmp_path):
    for name in ("m1", "m2", "m3", "m4", "m5", "m6"):
        store.append(alice.id, "INBOX", msg(name), flags=["\\Seen"] if name == "m1" else [])
    config = write_config(tmp_path, imap_server.port, tls_files)
    run_mbsync(config)
    inbox = tmp_path / "Mail" / "INBOX"
    archive = tmp_path / "Mail" / "Archive"
    local = local_messages(inbox)
    assert set(local) == {"m1", "m2", "m3", "m4", "m5", "m6"}
    assert "S" in local["m1"][1]

    # Local changes: delete m1, flag m2, move m3 to Archive, a new message L1.
    local["m1"][0].unlink()
    path, flags = local["m2"]
    path.rename(path.with_name(path.name.split(":2,")[0] + ":2," + "".join(sorted(flags + "F"))))
    path = local["m3"][0]
    path.rename(archive / "cur" / re.sub(r",U=\d+", "", path.name))
    (inbox / "new" / "1700000000.1_1.local").write_bytes(msg("L1"))
    # Server changes: a new message S1, \Answered on m4, m5 moved to Archive, m6 deleted.
    store.append(alice.id, "INBOX", msg("S1"))
    box = store.lookup_mailbox(alice.id, "INBOX")
    uid_of = {
        re.search(rb"Subject: (\S+)", store.read_message(alice.id, box.id, u)).group(1).decode(): u
        for u in store.message_uids(alice.id, box.id)
    }
    store.set_flags(alice.id, box.id, [uid_of["m4"]], ["\\Answered"])
    store.move(alice.id, box.id, [uid_of["m5"]], "Archive")
    store.set_flags(alice.id, box.id, [uid_of["m6"]], ["\\Deleted"])
    store.expunge(alice.id, box.id, [uid_of["m6"]])

    run_mbsync(config)
    run_mbsync(config)  # a second run changes nothing and must not fail

    server_inbox = server_messages(alice.id, "INBOX")
    assert set(server_inbox) == {"m2", "m4", "S1", "L1"}
    assert "\\Flagged" in server_inbox["m2"] and "\\Answered" in server_inbox["m4"]
    assert set(server_messages(alice.id, "Archive")) == {"m3", "m5"}
    local = local_messages(inbox)
    assert set(local) == {"m2", "m4", "S1", "L1"}
    assert "R" in local["m4"][1] and "F" in local["m2"][1]
    assert set(local_messages(archive)) == {"m3", "m5"}
