"""IMAP and POP3 access for external clients.

`net.py` is the listener plumbing both protocols share (TLS, STARTTLS/STLS, COMPRESS,
bounded line reads, per-IP connection caps). Protocol parsing stays apart from session
state, and session state apart from storage: every mailbox operation goes through
mailhost.store, run on the DB pool with mailhost.dbpool.run_db.
"""
