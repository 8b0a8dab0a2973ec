"""The HttpRequestAllowedHosts grammar (`host[:port]`), parsed once when the settings are read."""

from __future__ import annotations

import pytest

from cmdgate.config import Settings
from cmdgate.hosts import AllowedHost, HostAllowlist


def test_entries_with_and_without_ports() -> None:
    allowlist = HostAllowlist.parse(" API.example.com. , *.corp.example:443,10.0.0.5:8080 ,[::1]:8443, ::2 ,,")
    assert allowlist.entries == (
        AllowedHost("api.example.com"),
        AllowedHost("*.corp.example", 443),
        AllowedHost("10.0.0.5", 8080),
        AllowedHost("::1", 8443),
        AllowedHost("::2"),
    )
    assert str(allowlist) == "api.example.com,*.corp.example:443,10.0.0.5:8080,[::1]:8443,[::2]"


@pytest.mark.parametrize(
    ("host", "port", "allowed"),
    [
        ("api.example.com", 1, True),  # no port: any port
        ("api.example.com", 65535, True),
        ("db.corp.example", 443, True),
        ("db.corp.example", 80, False),
        ("corp.example", 443, False),  # a wildcard names subdomains only
        ("10.0.0.5", 8080, True),
        ("10.0.0.5", 80, False),
        ("::1", 8443, True),
        ("::1", 443, False),
        ("::2", 9, True),
    ],
)
def test_matching(host: str, port: int, allowed: bool) -> None:
    allowlist = HostAllowlist.parse("api.example.com,*.corp.example:443,10.0.0.5:8080,[::1]:8443,::2")
    assert allowlist.matches(host, port) is allowed


@pytest.mark.parametrize(
    "entry",
    [
        "api.example.com:0",
        "api.example.com:65536",
        "api.example.com:http",
        "api.example.com:",
        "[::1",
        "[api.example.com]:80",
        "[::1]8080",
        "127.1",  # non-canonical IPv4: never matches what check_url sees
        "2130706433",
        "bad host",
        "a..b",
        "*.",
        "ex\u00e4mple.com",  # IDN: punycode please
        "1:2:3",
        ":80",
    ],
)
def test_malformed_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="allowed host"):
        HostAllowlist.parse(entry)


def test_the_setting_is_parsed_and_validated_when_settings_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_REQUEST_ALLOWED_HOSTS", "127.0.0.1:8080, *.corp.example")
    assert Settings().http_request_allowed_hosts == HostAllowlist(
        (AllowedHost("127.0.0.1", 8080), AllowedHost("*.corp.example"))
    )
    monkeypatch.setenv("HTTP_REQUEST_ALLOWED_HOSTS", "")
    assert not Settings().http_request_allowed_hosts
    monkeypatch.setenv("HTTP_REQUEST_ALLOWED_HOSTS", "127.0.0.1:99999")
    with pytest.raises(ValueError, match="port"):
        Settings()
