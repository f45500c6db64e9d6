from imapd.imap import server
from mailhost.daemon_command import DaemonCommand


class Command(DaemonCommand):
    help = "Run the IMAP listeners (STARTTLS and implicit TLS)."
    ports = [("imap", "BUZON_IMAP_PORT"), ("imaps", "BUZON_IMAPS_PORT")]

    def listener_specs(self, bind, ports):
        return server.listener_specs(bind, port_overrides=ports)
