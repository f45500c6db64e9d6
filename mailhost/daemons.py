"""Which listener sets exist: each module offers `listener_specs(host, port_overrides=)`.

`runmail` runs all of them in one process; each daemon command runs its own.
"""

from __future__ import annotations

import importlib

from .daemon import ListenerSpec

# The SMTP, IMAP and POP3 issues add their modules here as they land.
MODULES = ["smtpd.server", "imapd.imap.server", "imapd.pop3.server"]


def all_specs(host: str, port_overrides: dict | None = None) -> list[ListenerSpec]:
    specs: list[ListenerSpec] = []
    for name in MODULES:
        module = importlib.import_module(name)
        specs.extend(module.listener_specs(host, port_overrides=port_overrides))
    return specs
