from django.apps import AppConfig


class SmtpdConfig(AppConfig):
    """The SMTP side: MX, submission, LMTP listeners and the outbound delivery client."""

    name = "smtpd"
    verbose_name = "Buzón SMTP"

    def ready(self) -> None:
        # Alias targets outside our domains leave through the outbound queue (README: SMTP).
        from mailhost import queue
        from mailhost.store import set_forwarder

        set_forwarder(queue.forward)
