"""POP3 (RFC 1939) with CAPA (RFC 2449), SASL PLAIN (RFC 5034) and STLS (RFC 2595).

- `parser.py` turns one command line into a command value; it never imports Django.
- `wire.py` turns stored bytes into what RETR and TOP send (CRLF, byte-stuffing), in
  bounded chunks; it never imports Django either.
- `maildrop.py` is the INBOX snapshot taken at login, with the deletion marks.
- `session.py` holds the state (AUTHORIZATION -> TRANSACTION -> UPDATE) and the handlers;
  every database call goes through mailhost.dbpool.run_db.
- `server.py` starts listeners with imapd.net (shared with IMAP).

Invariants: messages are deleted only at QUIT in the TRANSACTION state, through one
store.expunge call; a dropped connection deletes nothing. One session per maildrop at a
time, across processes, through a database lease (RFC 1939 §8: "-ERR [IN-USE]").
"""
