"""SSRF guard for URLs a caller asks us to fetch.

`check_url` refuses (CommandError, code URL_NOT_ALLOWED, always 403 whatever the
reason, so the status tells a caller nothing the detail does not):

- anything but http and https, URLs with userinfo (`user:pass@`), malformed
  URLs and IPv6 zone ids;
- non-canonical IPv4 spellings (`2130706433`, `0x7f.1`, `127.1`, `0177.0.0.1`),
  which resolvers read as addresses, whatever the allowlist says;
- hosts that resolve to ANY loopback, link-local (cloud metadata 169.254.169.254
  and fd00:ec2::254 included), private, shared (100.64/10), unspecified,
  multicast, reserved or otherwise non-global address, looking through
  IPv4-mapped, NAT64 (64:ff9b::/96) and 6to4 IPv6 forms, and refusing Teredo
  and local-use NAT64 outright — unless the host (and port) is allowlisted.

The allowlist is a `cmdgate.hosts.HostAllowlist`: exact hosts (`api.example.com`,
`10.0.0.5`, `::1`) and suffix patterns (`*.example.com`, which matches subdomains,
not the bare domain), each optionally limited to one port (`10.0.0.5:8080`); IDN
hosts are matched in their ASCII (punycode) form. An allowlisted host may resolve
to private addresses, but a host NAME never reaches the cloud metadata addresses:
those need the literal address itself in the allowlist.

DNS rebinding: the URL is parsed with httpx's own parser (so the guard and the
client cannot disagree about the host) and resolved once; `check_url` returns
every address it checked, and a caller that connects to `CheckedUrl.pinned_url`
(the first address, with `Host` and TLS SNI set to the original host) cannot
be sent elsewhere by a second, different DNS answer. What is left to the
caller: it must connect to the pinned address (connecting by name re-resolves),
must not use a proxy (an HTTP proxy resolves the name itself), and gets no
fallback to the other checked addresses if the first is down.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cmdgate.commands import CommandError
from cmdgate.hosts import HostAllowlist, ipaddress_or_none, looks_numeric

if TYPE_CHECKING:
    import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # EC2 instance metadata (IMDS)
        "fd00:ec2::254",  # IMDS over IPv6
        "169.254.170.2",  # ECS task credentials
        "169.254.170.23",  # EKS pod identity
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


class UrlNotAllowed(CommandError):
    """The URL may not be fetched (malformed, another scheme, or a refused destination): always 403."""

    STATUS = 403

    def __init__(self, detail: str) -> None:
        super().__init__(detail, status=self.STATUS, code="URL_NOT_ALLOWED")


class HostUnresolvable(CommandError):
    """The host has no address (DNS failure or NXDOMAIN): 502."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, status=502, code="HOST_UNRESOLVABLE")


@dataclass(frozen=True)
class CheckedUrl:
    """A URL that passed the guard, with the addresses it was checked against."""

    url: httpx.URL
    host: str  # lower-case ASCII, no trailing dot
    port: int
    addresses: tuple[IPAddress, ...]
    allowlisted: bool

    @property
    def pinned_address(self) -> IPAddress:
        """The address to connect to."""
        return self.addresses[0]

    @property
    def pinned_url(self) -> httpx.URL:
        """The URL with its host replaced by the pinned address (send `host_header` and SNI `host` with it)."""
        return self.url.copy_with(host=str(self.pinned_address))

    @property
    def host_header(self) -> str:
        """The `Host` header the original URL implies."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.url.scheme] else f"{host}:{self.port}"


def check_url(
    url: str, allowed_hosts: HostAllowlist | Iterable[str], resolver: Resolver = socket.getaddrinfo
) -> CheckedUrl:
    """Raise `UrlNotAllowed` unless `url` is http(s) to a public or allowlisted destination.

    `allowed_hosts` is the parsed setting; entries as strings are parsed here (tests, tools).
    """
    parsed = _parse(url)
    host = parsed.raw_host.decode("ascii").lower().rstrip(".")
    if not host:
        raise UrlNotAllowed("The URL has no host.")
    if "%" in host:
        raise UrlNotAllowed("IPv6 zone identifiers are not allowed.")
    literal = ipaddress_or_none(host)
    if literal is None and looks_numeric(host):
        raise UrlNotAllowed("The host is an IP address in a non-canonical form.")
    if literal is not None:
        host = str(literal)
    port = parsed.port or DEFAULT_PORTS[parsed.scheme]
    allowlist = allowed_hosts if isinstance(allowed_hosts, HostAllowlist) else HostAllowlist.parse(allowed_hosts)
    allowlisted = allowlist.matches(host, port)
    addresses = (literal,) if literal is not None else _resolve(host, port, resolver)
    for address in addresses:
        if _is_metadata(address) and not (literal is not None and allowlisted):
            raise UrlNotAllowed("The host resolves to a cloud metadata address.")
        if not allowlisted:
            reason = blocked_reason(address)
            if reason is not None:
                raise UrlNotAllowed(f"The host resolves to a {reason} address.")
    return CheckedUrl(parsed, host, port, addresses, allowlisted)


def blocked_reason(address: IPAddress) -> str | None:
    """Why `address` is not a public destination, or None if it is one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = blocked_reason(embedded)
            return f"{reason} (embedded in IPv6)" if reason else None
        if address in _NAT64_LOCAL:
            return "local-use NAT64"
        if address.teredo is not None:
            return "Teredo"
        if address.is_site_local:
            return "site-local"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("non-global", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def _parse(url: str) -> httpx.URL:
    # httpx loads with the first URL checked: the api function imports this module for the rare
    # `Callback-Url` and need not pay for httpx at init.
    import httpx

    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        raise UrlNotAllowed(f"The URL must be a string of at most {MAX_URL_LENGTH} characters.")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, UnicodeError):
        raise UrlNotAllowed("The URL is malformed.") from None
    if parsed.scheme not in DEFAULT_PORTS:
        raise UrlNotAllowed("Only http and https URLs are allowed.")
    if parsed.userinfo:
        raise UrlNotAllowed("URLs with credentials (user:password@) are not allowed.")
    return parsed


def _resolve(host: str, port: int, resolver: Resolver) -> tuple[IPAddress, ...]:
    try:
        infos = resolver(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise HostUnresolvable("The host could not be resolved.") from None
    addresses: list[IPAddress] = []
    for info in infos:
        raw = str(info[4][0]).split("%", 1)[0]
        address = ipaddress_or_none(raw)
        if address is None:
            raise UrlNotAllowed("The host resolved to something that is not an IP address.")
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise HostUnresolvable("The host has no addresses.")
    return tuple(addresses)


def _is_metadata(address: IPAddress) -> bool:
    if address in METADATA_ADDRESSES:
        return True
    embedded = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    return embedded is not None and embedded in METADATA_ADDRESSES


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour
