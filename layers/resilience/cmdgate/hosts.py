"""The `HttpRequestAllowedHosts` grammar: comma-separated `host[:port]` entries, parsed once.

An entry is an exact host (`api.example.com`, `10.0.0.5`, `::1`, `[::1]`) or a suffix
pattern (`*.example.com`: subdomains, not the bare domain), optionally followed by `:port`.
Without a port an entry allows any port; with one (`127.0.0.1:8080`, `[::1]:8443`,
`*.corp.example:443`) only that port. Hosts are lower-case ASCII (IDN hosts in their
punycode form), without a trailing dot; IP literals are kept in canonical form. A
malformed entry is a `ValueError` when the settings are read, not a surprise at call time.

Standard library only: `cmdgate.config` imports this, and every function reads its config.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
MAX_HOST_LENGTH = 253


@dataclass(frozen=True)
class AllowedHost:
    """One entry: `host` exact or `*.suffix`; `port` None for any port."""

    host: str
    port: int | None = None

    def matches(self, host: str, port: int) -> bool:
        """Whether a normalized `host` and `port` fall under this entry."""
        if self.port is not None and self.port != port:
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:])
        return host == self.host

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


@dataclass(frozen=True)
class HostAllowlist:
    """The parsed allowlist; empty allows nothing beyond public destinations."""

    entries: tuple[AllowedHost, ...] = ()

    @classmethod
    def parse(cls, raw: str | Iterable[str]) -> HostAllowlist:
        """Parse `a.example.com, *.corp.example:443, [::1]:8080` (or a list of entries); `ValueError` if malformed."""
        items = raw.split(",") if isinstance(raw, str) else raw
        entries = [parse_entry(item) for item in items if item.strip()]
        return cls(tuple(dict.fromkeys(entries)))

    def matches(self, host: str, port: int) -> bool:
        """Whether the destination (host normalized as `cmdgate.ssrf` does) is allowlisted."""
        return any(entry.matches(host, port) for entry in self.entries)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __str__(self) -> str:
        return ",".join(str(entry) for entry in self.entries)


def parse_entry(raw: str) -> AllowedHost:
    """One `host[:port]` entry."""
    text = raw.strip().lower()
    host, port_text = _split_port(text, raw)
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"allowed host {raw.strip()!r}: the port must be a number from 1 to 65535")
        port = int(port_text)
    return AllowedHost(_normalize_host(host, raw), port)


def _split_port(text: str, raw: str) -> tuple[str, str | None]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"allowed host {raw.strip()!r}: unclosed '['")
        host, rest = text[1:end], text[end + 1 :]
        if ipaddress_or_none(host) is None or ":" not in host:
            raise ValueError(f"allowed host {raw.strip()!r}: brackets hold an IPv6 address")
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise ValueError(f"allowed host {raw.strip()!r}: expected ':port' after ']'")
        return host, rest[1:]
    if text.count(":") > 1:
        return text, None  # a bare IPv6 literal: write [addr]:port to name a port
    if ":" in text:
        host, _, port = text.partition(":")
        return host, port
    return text, None


def _normalize_host(host: str, raw: str) -> str:
    host = host.rstrip(".")
    if not host:
        raise ValueError(f"allowed host {raw.strip()!r} has no host")
    literal = ipaddress_or_none(host)
    if literal is not None:
        return str(literal)
    if ":" in host:
        raise ValueError(f"allowed host {raw.strip()!r} is not a valid IPv6 address")
    name = host[2:] if host.startswith("*.") else host
    if not name.isascii():
        raise ValueError(f"allowed host {raw.strip()!r}: write IDN hosts in their punycode (xn--) form")
    labels = name.split(".")
    if len(name) > MAX_HOST_LENGTH or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"allowed host {raw.strip()!r} is not a host name, *.suffix or IP address")
    if not host.startswith("*.") and looks_numeric(host):
        raise ValueError(f"allowed host {raw.strip()!r} is an IP address in a non-canonical form")
    return host


def looks_numeric(host: str) -> bool:
    """As the WHATWG URL standard: a host whose last label is a number is an IPv4 address."""
    return bool(_NUMERIC_LABEL.match(host.rsplit(".", 1)[-1]))


def ipaddress_or_none(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address `text` spells canonically, or None."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
