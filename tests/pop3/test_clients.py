"""Real clients from Debian against the real server: fetchmail, getmail6, curl."""

import os
import shutil
import subprocess

import pytest

from tests.conftest import PASSWORD

from .conftest import ALICE, inbox_uids, make_message, put

pytestmark = pytest.mark.django_db(transaction=True)


def need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.fail(f"{program} is not installed: run `bash .ci/apt-install` (as root)")
    return path


def run(args: list[str], home, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(home), "FETCHMAILHOME": str(home)}
    return subprocess.run(args, capture_output=True, timeout=timeout, env=env, text=True)


def fetchmail(tmp_path, port: int, ca_path, *, keep: bool, implicit_tls: bool):
    fetchmail_bin = need("fetchmail")
    out = tmp_path / "fetched.mbox"
    tls = "ssl" if implicit_tls else 'sslproto "tls1.2+"'  # tls1.2+ on 110 means STLS
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        "set no syslog\n"
        f"poll localhost via 127.0.0.1 with proto POP3 port {port}\n"
        f'  user "{ALICE}" there with password "{PASSWORD}" is "me" here\n'
        f"  options {'keep' if keep else 'no keep'} fetchall {tls}\n"
        f'  sslcertck sslcertfile "{ca_path}" sslcommonname "localhost"\n'
        f'  mda "cat >> {out}"\n'
    )
    rc.chmod(0o600)
    result = run(
        [fetchmail_bin, "-f", str(rc), "--pidfile", str(tmp_path / "pid"), "-N", "-v"], tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out.read_bytes(), result.stdout + result.stderr


def test_fetchmail_keep_over_stls(pop3_server, tls_ca, tmp_path, alice):
    uids = put(alice, make_message(1, b".dot line\r\nbody\r\n"), make_message(2))
    mbox, log = fetchmail(tmp_path, pop3_server.port, tls_ca.path, keep=True, implicit_tls=False)
    assert b"Subject: message 1" in mbox and b"Subject: message 2" in mbox
    assert b"\n.dot line\n" in mbox  # un-stuffed by the client
    assert "STLS" in log
    assert inbox_uids(alice) == uids


def test_fetchmail_no_keep_over_pop3s_deletes(pop3s_server, tls_ca, tmp_path, alice):
    put(alice, make_message(1), make_message(2), make_message(3))
    mbox, _ = fetchmail(tmp_path, pop3s_server.port, tls_ca.path, keep=False, implicit_tls=True)
    assert mbox.count(b"Subject: message ") == 3
    assert inbox_uids(alice) == []


def getmail(tmp_path, port: int, ca_path, *, delete: bool, read_all: bool) -> bytes:
    getmail_bin = need("getmail")
    out = tmp_path / "getmail.mbox"
    rc = tmp_path / "getmailrc"
    rc.write_text(
        "[retriever]\n"
        "type = SimplePOP3SSLRetriever\n"
        f"server = 127.0.0.1\nport = {port}\n"
        f"username = {ALICE}\npassword = {PASSWORD}\nca_certs = {ca_path}\n"
        "[destination]\n"
        "type = MDA_external\npath = /bin/sh\n"
        f'arguments = ("-c", "cat >> {out}")\n'
        "allow_root_commands = true\n"  # CI may run as root; getmail refuses that otherwise
        "[options]\n"
        f"delete = {str(delete).lower()}\nread_all = {str(read_all).lower()}\nverbose = 1\n"
    )
    result = run([getmail_bin, "--rcfile", str(rc), "--getmaildir", str(tmp_path)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    return out.read_bytes() if out.exists() else b""


def test_getmail_remembers_uidl_then_deletes(pop3s_server, tls_ca, tmp_path, alice):
    """getmail keeps the UIDLs it has seen: a second run finds nothing new (stable UIDL)."""
    put(alice, make_message(1), make_message(2))
    first = getmail(tmp_path, pop3s_server.port, tls_ca.path, delete=False, read_all=False)
    assert first.count(b"Subject: message ") == 2
    put(alice, make_message(3))
    second = getmail(tmp_path, pop3s_server.port, tls_ca.path, delete=False, read_all=False)
    assert second.count(b"Subject: message ") == 3  # only message 3 was added
    assert len(inbox_uids(alice)) == 3
    getmail(tmp_path, pop3s_server.port, tls_ca.path, delete=True, read_all=True)
    assert inbox_uids(alice) == []


def curl(*args: str, ca_path) -> subprocess.CompletedProcess:
    curl_bin = need("curl")
    return subprocess.run(
        [curl_bin, "-sS", "--cacert", str(ca_path), "-u", f"{ALICE}:{PASSWORD}", *args],
        capture_output=True,
        timeout=30,
    )


def test_curl_pop3_with_stls_lists_retrieves_and_deletes(pop3_server, tls_ca, alice):
    raw = make_message(1, b"curl body\r\n")
    uids = put(alice, raw, make_message(2))
    url = f"pop3://127.0.0.1:{pop3_server.port}/"
    listing = curl("--ssl-reqd", url, ca_path=tls_ca.path)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.split(b"\r\n")[:2] == [
        f"1 {len(raw)}".encode(),
        f"2 {len(make_message(2))}".encode(),
    ]
    retr = curl("--ssl-reqd", url + "1", ca_path=tls_ca.path)
    assert retr.returncode == 0 and retr.stdout == raw
    dele = curl("--ssl-reqd", "-X", "DELE 1", "-I", url, ca_path=tls_ca.path)
    assert dele.returncode == 0, dele.stderr
    assert inbox_uids(alice) == [uids[1]]


def test_curl_refuses_without_tls_and_pop3s_works(pop3_server, pop3s_server, tls_ca, alice):
    raw = make_message(7)
    put(alice, raw)
    plain = curl(f"pop3://127.0.0.1:{pop3_server.port}/1", ca_path=tls_ca.path)
    assert plain.returncode != 0  # no password over plaintext
    implicit = curl(f"pop3s://127.0.0.1:{pop3s_server.port}/1", ca_path=tls_ca.path)
    assert implicit.returncode == 0, implicit.stderr
    assert implicit.stdout == raw
