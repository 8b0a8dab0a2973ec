"""SSRF guard: a table of URLs that must be refused, and what must pass."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from cmdgate.ssrf import HostUnresolvable, UrlNotAllowed, blocked_reason, check_url

NO_ALLOWLIST: frozenset[str] = frozenset()


class FakeDNS:
    """A resolver answering getaddrinfo-style from `table`; records the names it was asked."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    def __call__(self, host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        self.asked.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        family = {True: socket.AF_INET6, False: socket.AF_INET}
        return [(family[":" in a], socket.SOCK_STREAM, 6, "", (a, port)) for a in self.table[host]]


fake_dns = FakeDNS


DNS = fake_dns(
    {
        "example.com": ["93.184.215.14"],
        "localhost": ["127.0.0.1", "::1"],
        "internal.corp.example": ["10.1.2.3"],
        "rebind.attacker.example": ["93.184.215.14", "169.254.169.254"],
        "metadata.attacker.example": ["169.254.169.254"],
        "v6.example.com": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
        "mapped.attacker.example": ["::ffff:10.0.0.1"],
        "api.partner.example": ["10.9.9.9"],
    }
)

REFUSED = [
    ("http://127.0.0.1/", 403, "loopback"),
    ("http://127.0.0.1:9001/2018-06-01/runtime/invocation/next", 403, "loopback"),  # the Lambda Runtime API
    ("http://localhost/", 403, "loopback"),
    ("http://LOCALHOST./", 403, "loopback"),
    ("http://[::1]/", 403, "loopback"),
    ("http://10.0.0.1/", 403, "private"),
    ("http://172.16.5.4/", 403, "private"),
    ("http://172.31.255.255/", 403, "private"),
    ("http://192.168.1.1/", 403, "private"),
    ("http://100.64.0.1/", 403, "non-global"),  # carrier-grade NAT
    ("http://169.254.169.254/latest/meta-data/", 403, "metadata"),
    ("http://169.254.170.2/v2/credentials", 403, "metadata"),
    ("http://[fd00:ec2::254]/latest/meta-data/", 403, "metadata"),
    ("http://[fe80::1]/", 403, "link-local"),
    ("http://[fc00::1]/", 403, "private"),
    ("http://0.0.0.0/", 403, "unspecified"),
    ("http://[::]/", 403, "unspecified"),
    ("http://224.0.0.1/", 403, "multicast"),
    ("http://[ff02::1]/", 403, "multicast"),
    ("http://240.0.0.1/", 403, "reserved"),
    ("http://255.255.255.255/", 403, "reserved"),
    ("http://[::ffff:127.0.0.1]/", 403, "loopback"),
    ("http://[::ffff:7f00:1]/", 403, "loopback"),
    ("http://[::ffff:169.254.169.254]/", 403, "metadata"),
    ("http://[64:ff9b::a9fe:a9fe]/", 403, "metadata"),  # NAT64 of 169.254.169.254
    ("http://[64:ff9b::a00:1]/", 403, "private"),  # NAT64 of 10.0.0.1
    ("http://[2002:7f00:1::]/", 403, "loopback"),  # 6to4 of 127.0.0.1
    ("http://2130706433/", 403, "non-canonical"),  # 127.0.0.1 as one decimal number
    ("http://0x7f000001/", 403, "non-canonical"),
    ("http://0x7f.1/", 403, "non-canonical"),
    ("http://127.1/", 403, "non-canonical"),
    ("http://0177.0.0.1/", 403, "malformed"),  # octal: httpx refuses to parse it
    ("http://internal.corp.example/", 403, "private"),  # a name that resolves to a private address
    ("http://rebind.attacker.example/", 403, "metadata"),  # any bad address refuses the host
    ("http://mapped.attacker.example/", 403, "private"),
    ("http://user:pass@example.com/", 403, "credentials"),
    ("http://user@example.com/", 403, "credentials"),
    ("ftp://example.com/file", 403, "http and https"),
    ("file:///etc/passwd", 403, "http and https"),
    ("gopher://example.com:70/", 403, "http and https"),
    ("http:///path-only", 403, "host"),
    ("http://[fe80::1%25eth0]/", 403, "zone"),
    ("http://" + "a" * 2100 + ".com/", 403, "2048"),
]


@pytest.mark.parametrize(("url", "status", "reason"), REFUSED)
def test_refused(url: str, status: int, reason: str) -> None:
    with pytest.raises(UrlNotAllowed) as refused:
        check_url(url, NO_ALLOWLIST, resolver=DNS)
    assert refused.value.code == "URL_NOT_ALLOWED"
    assert refused.value.status == status
    assert reason in refused.value.detail


@pytest.mark.parametrize("url", ["http://2130706433/", "http://127.1/", "http://0x7f000001/"])
def test_numeric_forms_really_are_loopback_to_the_system_resolver(url: str) -> None:
    import httpx

    host = httpx.URL(url).host
    assert socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)[0][4][0] == "127.0.0.1"
    with pytest.raises(UrlNotAllowed):
        check_url(url, frozenset({"127.0.0.1"}))  # even with loopback allowlisted


def test_public_hosts_pass_and_are_pinned() -> None:
    checked = check_url("https://Example.COM./a/b?c=d", NO_ALLOWLIST, resolver=DNS)
    assert checked.host == "example.com"
    assert checked.port == 443
    assert checked.addresses == (ipaddress.ip_address("93.184.215.14"),)
    assert str(checked.pinned_url) == "https://93.184.215.14/a/b?c=d"
    assert checked.host_header == "example.com"
    assert not checked.allowlisted


def test_ipv6_destinations_are_pinned_with_brackets() -> None:
    checked = check_url("http://v6.example.com:8080/", NO_ALLOWLIST, resolver=DNS)
    assert str(checked.pinned_url) == "http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:8080/"
    assert checked.host_header == "v6.example.com:8080"


def test_ip_literals_are_not_sent_to_the_resolver() -> None:
    resolver = fake_dns({})
    check_url("http://93.184.215.14/", NO_ALLOWLIST, resolver=resolver)
    assert resolver.asked == []


@pytest.mark.parametrize(
    ("url", "allowlist"),
    [
        ("http://127.0.0.1:8080/", {"127.0.0.1"}),
        ("http://[::1]/", {"[::1]"}),
        ("http://internal.corp.example/", {"internal.corp.example"}),
        ("http://api.partner.example/", {"*.partner.example"}),
        ("http://api.partner.example/", {" API.Partner.Example. "}),
        ("http://169.254.169.254/", {"169.254.169.254"}),  # only the literal address unlocks metadata
        ("http://127.0.0.1:8080/", {"127.0.0.1:8080"}),  # host:port allows that port
        ("http://[::1]:8443/", {"[::1]:8443"}),
        ("https://api.partner.example/", {"*.partner.example:443"}),  # the URL's default port counts
    ],
)
def test_allowlisted_hosts_pass(url: str, allowlist: set[str]) -> None:
    checked = check_url(url, frozenset(allowlist), resolver=DNS)
    assert checked.allowlisted


@pytest.mark.parametrize(
    ("url", "allowlist"),
    [
        ("http://partner.example.evil.com/", {"*.partner.example"}),
        ("http://localhost/", {"127.0.0.1"}),  # the allowlist names hosts, not addresses
        ("http://10.0.0.2/", {"10.0.0.1"}),
        ("http://metadata.attacker.example/", {"metadata.attacker.example"}),  # a name never reaches metadata
        ("http://mapped-metadata.example/", {"mapped-metadata.example"}),
        ("http://127.0.0.1:8081/", {"127.0.0.1:8080"}),  # host:port allows no other port
        ("http://127.0.0.1/", {"127.0.0.1:8080"}),  # ... nor the default one
        ("http://api.partner.example/", {"*.partner.example:443"}),
    ],
)
def test_allowlist_is_exact(url: str, allowlist: set[str]) -> None:
    resolver = fake_dns(
        {
            "partner.example.evil.com": ["10.0.0.9"],
            "localhost": ["127.0.0.1"],
            "metadata.attacker.example": ["169.254.169.254"],
            "mapped-metadata.example": ["::ffff:169.254.169.254"],
            "api.partner.example": ["10.9.9.9"],
        }
    )
    with pytest.raises(UrlNotAllowed):
        check_url(url, frozenset(allowlist), resolver=resolver)


def test_the_bare_domain_does_not_match_a_wildcard() -> None:
    with pytest.raises(UrlNotAllowed):
        check_url(
            "http://partner.example/",
            frozenset({"*.partner.example"}),
            resolver=fake_dns({"partner.example": ["10.0.0.1"]}),
        )


def test_unresolvable_hosts_are_reported_as_such() -> None:
    with pytest.raises(HostUnresolvable) as failed:
        check_url("http://nowhere.invalid/", NO_ALLOWLIST, resolver=DNS)
    assert failed.value.status == 502


def test_blocked_reason_of_public_addresses_is_none() -> None:
    assert blocked_reason(ipaddress.ip_address("8.8.8.8")) is None
    assert blocked_reason(ipaddress.ip_address("2001:4860:4860::8888")) is None
    assert blocked_reason(ipaddress.ip_address("::ffff:8.8.8.8")) is None


# The local stack allowlists the literal 127.0.0.1; tests/security/test_ssrf_forms.py drives a sample
# of these through http.request and callbacks, this covers every spelling.
LOOPBACK_IN_DISGUISE = [
    "http://2130706433:8080/",
    "http://0x7f000001:8080/",
    "http://0x7f.0.0.1:8080/",
    "http://0177.0.0.1:8080/",
    "http://127.1:8080/",
    "http://017700000001:8080/",
    "http://[::ffff:127.0.0.1]:8080/",
    "http://[::ffff:7f00:1]:8080/",
    "http://[::1]:8080/",
    "http://localhost:8080/",
    "http://localhost.:8080/",
    "http://LocalHost:8080/",
    "http://127.0.0.2:8080/",
    "http://0.0.0.0:8080/",
    "http://[::]:8080/",
    "http://127.0.0.1:8080@10.0.0.1/",
    "http://user:pw@127.0.0.1:8080/",
    "http://127.0.0.1%2f@127.0.0.2:8080/",
    "gopher://127.0.0.1:8080/",
    "http://[fe80::1%25lo]:8080/",
]


@pytest.mark.parametrize("url", LOOPBACK_IN_DISGUISE)
def test_only_the_allowlisted_spelling_of_loopback_passes(url: str) -> None:
    allowlist = frozenset({"127.0.0.1"})
    assert check_url("http://127.0.0.1:8080/", allowlist, resolver=DNS).allowlisted
    with pytest.raises(UrlNotAllowed):
        check_url(url, allowlist, resolver=DNS)
