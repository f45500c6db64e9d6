from imapd.pop3 import server
from mailhost.daemon_command import DaemonCommand


class Command(DaemonCommand):
    help = "Run the POP3 listeners: POP3 with STLS and POP3S (implicit TLS)."
    ports = [("pop3", "BUZON_POP3_PORT"), ("pop3s", "BUZON_POP3S_PORT")]

    def listener_specs(self, bind, ports):
        return server.listener_specs(bind, port_overrides=ports)
