"""The IMAP4rev1 + IMAP4rev2 server (RFC 3501, RFC 9051) and its extensions.

parser.py turns bytes into command values (no sockets, no Django); session.py holds the
connection state and dispatches to handlers/; selected.py keeps the seq <-> UID view.
Every mailbox operation goes through mailhost.store on the DB pool (run_db): this package
never runs SQL and never parses MIME (the store keeps ENVELOPE, BODYSTRUCTURE and section
offsets ready).
"""
