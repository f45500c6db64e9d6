from django.db import models

from .mailboxes import Mailbox

HEADER_COLUMN_MAX = 64 * 1024


class Content(models.Model):
    """One stored message body (a blob), shared by every Message with the same bytes.

    The metadata is parsed once, on arrival (mailhost.mail.parse); front ends read these
    columns and open the blob only to serve bodies.
    """

    sha256 = models.CharField(max_length=64, unique=True)
    size = models.BigIntegerField()
    # Octets with every bare LF sent as CRLF (RFC 1939 §11: POP3 sizes count CRLF line ends);
    # null for rows stored before this column existed.
    crlf_size = models.BigIntegerField(null=True, blank=True)
    refcount = models.IntegerField(default=0)
    orphaned_at = models.DateTimeField(null=True, blank=True)
    header_end = models.IntegerField(default=0)
    # The header block as it arrived (raw[:header_end]), so FETCH of BODY[HEADER...] needs no
    # blob; null when longer than HEADER_COLUMN_MAX or stored before this column existed.
    header = models.BinaryField(null=True, blank=True)
    envelope = models.BinaryField()  # IMAP ENVELOPE, serialised
    body = models.BinaryField()  # IMAP BODY, serialised
    bodystructure = models.BinaryField()  # IMAP BODYSTRUCTURE, serialised
    parts = models.TextField()  # JSON: byte offsets of every section
    subject = models.TextField(blank=True)
    base_subject = models.TextField(blank=True)  # RFC 5256 §2.1, for SORT and THREAD
    from_display = models.TextField(blank=True)
    from_addr = models.CharField(max_length=320, blank=True)
    to = models.TextField(blank=True)
    cc = models.TextField(blank=True)
    bcc = models.TextField(blank=True)
    date = models.DateTimeField(null=True, blank=True)
    message_id = models.TextField(blank=True)
    in_reply_to = models.TextField(blank=True)
    references = models.TextField(blank=True)  # space-separated message-ids
    has_attachments = models.BooleanField(default=False)
    preview = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["refcount"])]

    def __str__(self) -> str:
        return self.sha256


class Message(models.Model):
    """A message in a mailbox. UID and MODSEQ are assigned only by mailhost.store."""

    SEEN, ANSWERED, FLAGGED, DELETED, DRAFT = 1, 2, 4, 8, 16

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="messages")
    uid = models.BigIntegerField()
    modseq = models.BigIntegerField()
    flags = models.IntegerField(default=0)  # bit set of the system flags above
    keywords = models.TextField(blank=True, default="")  # space-separated IMAP keywords
    internaldate = models.DateTimeField()
    size = models.BigIntegerField()
    content = models.ForeignKey(Content, on_delete=models.PROTECT, related_name="messages")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "uid"], name="message_uid_unique")
        ]
        indexes = [
            models.Index(fields=["mailbox", "modseq"]),
            models.Index(fields=["mailbox", "content"]),
        ]
        ordering = ["mailbox", "uid"]

    def __str__(self) -> str:
        return f"{self.mailbox_id}:{self.uid}"


class ExpungedMessage(models.Model):
    """A tombstone, so CONDSTORE/QRESYNC clients learn what vanished (RFC 7162 §3.2.10)."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="expunged")
    uid = models.BigIntegerField()
    modseq = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["mailbox", "modseq"])]

    def __str__(self) -> str:
        return f"{self.mailbox_id}:{self.uid} (expunged)"
