"""The SSRF policy as pure functions: which addresses and host names a URL may reach."""

from __future__ import annotations

import ipaddress

import pytest

from wan_worker.media.addresses import address_allowed, classify_address, host_problem


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("1.1.1.1", "public"),
        ("2606:4700:4700::1111", "public"),
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.0.1", "private"),
        ("100.64.0.1", "private"),
        ("100.127.255.254", "private"),
        ("fd12:3456::1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.170.2", "metadata"),
        ("100.100.100.200", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.10", "reserved"),
        ("198.18.0.1", "reserved"),
        ("2001:db8::1", "reserved"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "metadata"),
        ("64:ff9b::a00:1", "private"),
        ("64:ff9b::a9fe:a9fe", "metadata"),
        ("2002:7f00:1::1", "loopback"),
        ("2002:a00:1::1", "private"),
    ],
)
def test_addresses_are_classified_by_what_they_reach(address: str, expected: str) -> None:
    assert classify_address(ipaddress.ip_address(address)) == expected


@pytest.mark.parametrize(
    ("address", "strict", "trusted"),
    [
        ("1.1.1.1", True, True),
        ("127.0.0.1", False, True),
        ("10.0.0.5", False, True),
        ("fe80::1", False, True),
        ("169.254.169.254", False, False),
        ("fd00:ec2::254", False, False),
        ("0.0.0.0", False, False),
        ("224.0.0.1", False, False),
        ("240.0.0.1", False, False),
    ],
)
def test_private_networks_open_only_private_classes(
    address: str, strict: bool, trusted: bool
) -> None:
    ip = ipaddress.ip_address(address)
    assert address_allowed(ip, allow_private_networks=False) is strict
    assert address_allowed(ip, allow_private_networks=True) is trusted


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("2130706433", "numeric"),
        ("0x7f.1", "numeric"),
        ("127.1", "numeric"),
        ("0177.0.0.1", "numeric"),
        ("localhost", "local"),
        ("LOCALHOST.", "local"),
        ("api.localhost", "local"),
        ("db.internal", "local"),
        ("printer.local", "local"),
        ("metadata.google.internal", "metadata"),
        ("metadata", "metadata"),
        ("a b", "valid host name"),
        ("exa$mple.com", "valid host name"),
    ],
)
def test_suspicious_host_names_are_refused_before_any_lookup(host: str, reason: str) -> None:
    problem = host_problem(host, allow_private_networks=False)
    assert problem is not None
    assert reason in problem


@pytest.mark.parametrize(
    "host", ["example.com", "files.test", "cdn-1.example.co.uk", "xn--r8jz45g.jp"]
)
def test_ordinary_host_names_pass_to_resolution(host: str) -> None:
    assert host_problem(host, allow_private_networks=False) is None


def test_private_networks_allow_local_names_but_never_metadata_names() -> None:
    assert host_problem("db.internal", allow_private_networks=True) is None
    assert host_problem("localhost", allow_private_networks=True) is None
    assert host_problem("metadata.google.internal", allow_private_networks=True) is not None
