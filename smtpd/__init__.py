"""SMTP side of Buzón: LMTP now; the MX, submission and outbound client join with the SMTP
issue. aiosmtpd owns the SMTP parser and state; our handlers only turn SMTP events into
store calls. Nothing here writes message files or rows itself: that is mailhost.store."""
