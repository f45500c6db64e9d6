"""The whole server in one process: every listener, the web app and the job worker."""

from __future__ import annotations

import asyncio
import logging
import secrets

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from mailhost import daemon, daemons, jobs, tasks, tls
from mailhost.daemon import ListenerSpec
from mailhost.web import start_web

log = logging.getLogger(__name__)
DEMO_DOMAIN = "example.test"


class Command(BaseCommand):
    help = "Run Buzón: migrate, then every listener, the web app and the in-process worker."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default=settings.BUZON_BIND)
        parser.add_argument(
            "--auto-ports", action="store_true", help="listen on any free ports (tests)"
        )
        parser.add_argument("--no-demo", action="store_true", help="do not create demo data")

    def handle(self, *, bind, auto_ports, no_demo, **options):
        call_command("migrate", interactive=False, verbosity=0)
        cert, _key = tls.ensure_certificate()
        self.stdout.write(f"TLS certificate: {cert}")
        if not no_demo:
            self.create_demo()
        specs = daemons.all_specs(bind)
        specs.append(ListenerSpec("web", start_web, bind, settings.BUZON_WEB_PORT))
        if auto_ports:
            specs = [
                ListenerSpec(s.name, s.start, s.host, "auto", s.kwargs) if s.enabled else s
                for s in specs
            ]
        jobs.start_worker()
        try:
            daemon.run(specs, self.announce, extra=[self.sweeper])
        except OSError as e:
            raise CommandError(f"cannot listen on {bind}: {e.strerror}") from e
        finally:
            jobs.stop_worker()
        self.stdout.write("stopped")

    def announce(self, name, host, port):
        self.stdout.write(f"{name} listening on {host}:{port}")
        self.stdout.flush()

    async def sweeper(self) -> None:
        """Periodic jobs of the embedded set-up (Celery beat does this at scale)."""
        while True:
            jobs.enqueue(tasks.collect_orphans)
            for _minute in range(60):
                jobs.enqueue(tasks.sweep_queue)  # the outbound queue's due rows (SMTP)
                await asyncio.sleep(60)

    def create_demo(self) -> None:
        from django.contrib.auth import get_user_model

        from mailhost.directory import add_account, add_domain
        from mailhost.models import Domain

        if Domain.objects.exists():
            return
        add_domain(DEMO_DOMAIN)
        admin_password = secrets.token_urlsafe(12)
        demo_password = secrets.token_urlsafe(12)
        user_model = get_user_model()
        if not user_model.objects.filter(username="admin").exists():
            user_model.objects.create_superuser("admin", f"admin@{DEMO_DOMAIN}", admin_password)
        add_account(f"admin@{DEMO_DOMAIN}", admin_password, display_name="Administrator")
        add_account(f"demo@{DEMO_DOMAIN}", demo_password, display_name="Demo User")
        self.stdout.write(
            "\nFirst start: created the demo domain and accounts (shown only this once):\n"
            f"  admin (web and mail): admin / admin@{DEMO_DOMAIN}  password {admin_password}\n"
            f"  demo mail account:    demo@{DEMO_DOMAIN}  password {demo_password}\n"
        )
