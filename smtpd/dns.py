"""DNS for SMTP: one dnspython resolver, configurable (BUZON_DNS_SERVERS) so tests and
private set-ups use their own server. It is also installed as dnspython's default
resolver, which pyspf, dkimpy and authheaders use for SPF, DKIM and DMARC lookups.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import dns.exception
import dns.nameserver
import dns.resolver
from django.conf import settings

_lock = threading.Lock()
_cached: tuple[tuple, dns.resolver.Resolver] | None = None


def resolver() -> dns.resolver.Resolver:
    """The resolver for the current settings (made once per configuration)."""
    global _cached
    key = (settings.BUZON_DNS_SERVERS, settings.BUZON_DNS_TIMEOUT)
    with _lock:
        if _cached is not None and _cached[0] == key:
            return _cached[1]
        servers, timeout = key
        if servers:
            res = dns.resolver.Resolver(configure=False)
            res.nameservers = [_nameserver(s) for s in servers.split(",") if s.strip()]
        else:
            res = dns.resolver.Resolver()
        res.timeout = res.lifetime = timeout
        res.cache = dns.resolver.LRUCache(10_000)
        dns.resolver.default_resolver = res
        _cached = (key, res)
        return res


def _nameserver(spec: str) -> dns.nameserver.Nameserver:
    spec = spec.strip()
    host, port = spec, 53
    if spec.startswith("["):  # [::1]:5353
        host, _, rest = spec[1:].partition("]")
        port = int(rest.lstrip(":") or 53)
    elif spec.count(":") == 1:
        host, p = spec.split(":")
        port = int(p)
    return dns.nameserver.Do53Nameserver(host, port)


@dataclass
class DnsFailure(Exception):
    """A lookup that decides a recipient's fate: `code`/`enhanced` say how (RFC 3463)."""

    code: int
    enhanced: str
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.enhanced} {self.text}"


def mx_hosts(domain: str) -> list[str]:
    """Mail exchangers for `domain` in preference order (RFC 5321 §5.1).

    No MX records: the domain itself (implicit MX). A null MX (RFC 7505 §3) fails at once.
    """
    res = resolver()
    try:
        answer = res.resolve(domain, "MX")
    except dns.resolver.NXDOMAIN as e:
        raise DnsFailure(550, "5.1.2", f"Domain {domain} does not exist") from e
    except dns.resolver.NoAnswer:
        if not addresses(domain):
            raise DnsFailure(550, "5.1.2", f"Domain {domain} has no mail exchanger") from None
        return [domain]
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as e:
        raise DnsFailure(451, "4.4.3", f"DNS lookup for {domain} failed; will retry") from e
    records = sorted(answer, key=lambda r: r.preference)
    if any(str(r.exchange) == "." for r in records):
        raise DnsFailure(556, "5.1.10", f"Domain {domain} does not accept mail (null MX)")
    return [str(r.exchange).rstrip(".") for r in records]


def addresses(host: str) -> list[str]:
    """IPv4 then IPv6 addresses of `host`; [] when it has none."""
    if _is_ip(host):
        return [host]
    res = resolver()
    found: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            found += [r.address for r in res.resolve(host, rdtype)]
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except (dns.exception.Timeout, dns.resolver.NoNameservers):
            continue
    return found


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
