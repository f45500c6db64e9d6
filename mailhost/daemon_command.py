"""The one shape of every daemon command (smtpd, imapd, pop3d): ports, workers, serve."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Awaitable, Callable

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from . import daemon, tls
from .daemon import ListenerSpec


class DaemonCommand(BaseCommand, metaclass=ABCMeta):
    """Subclasses name their listeners' ports and how to build the listener specs."""

    # (listener name, settings attribute of its default port)
    ports: list[tuple[str, str]] = []

    @abstractmethod
    def listener_specs(self, bind: str, ports: dict[str, str | int]) -> list[ListenerSpec]:
        """The listeners to run, with these ports (numbers, 'auto' or 0)."""

    def add_arguments(self, parser) -> None:
        parser.add_argument("--bind", default=settings.BUZON_BIND)
        for name, setting in self.ports:
            parser.add_argument(
                f"--{name}-port",
                dest=f"{name}_port",
                default=getattr(settings, setting),
                help="a port number, 'auto' = any free port, 0 = off",
            )
        parser.add_argument(
            "--workers",
            type=int,
            default=1,
            help="worker processes on the same ports (> 1 needs PostgreSQL and REDIS_URL)",
        )

    def extra_tasks(self, workers: int, options: dict) -> list[Callable[[], Awaitable[None]]]:
        """Background coroutines to run beside the listeners (e.g. the queue sweep)."""
        return []

    def handle(self, *, bind, workers, **options) -> None:
        ports = {name: options[f"{name}_port"] for name, _ in self.ports}
        for name, value in ports.items():
            if value != "auto" and not str(value).isdigit():
                raise CommandError(f"--{name}-port is a number or 'auto', not {value!r}")
        try:
            daemon.check_workers(workers)
        except daemon.WorkersError as e:
            raise CommandError(str(e)) from e
        tls.ensure_certificate()
        specs = self.listener_specs(bind, ports)
        try:
            status = daemon.run(
                specs, self.announce, workers=workers, extra=self.extra_tasks(workers, options)
            )
        except OSError as e:
            raise CommandError(f"cannot listen on {bind}: {e.strerror}") from e
        finally:
            self.stopped(options)
        if status:
            raise CommandError("worker processes kept exiting; stopped (see the log)")

    def stopped(self, options: dict) -> None:
        """Called once the listeners are closed."""

    def announce(self, name: str, host: str, port: int) -> None:
        self.stdout.write(f"{name} listening on {host}:{port}")
        self.stdout.flush()
