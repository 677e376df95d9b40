"""Which network destinations a user-supplied URL may reach (the SSRF policy).

A URL may reach only globally routable unicast addresses. Cloud metadata endpoints, multicast,
unspecified and reserved addresses are refused always; loopback, private (RFC 1918, CGNAT, ULA)
and link-local ones only when the deployment allows private networks.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from typing import Literal, Protocol

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

AddressClass = Literal[
    "public",
    "metadata",
    "unspecified",
    "multicast",
    "loopback",
    "link-local",
    "private",
    "reserved",
]

PRIVATE_CLASSES: frozenset[AddressClass] = frozenset({"loopback", "link-local", "private"})
"""The classes that ``allow_private_networks`` opens; the rest stay refused regardless."""

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.253",  # AWS DNS resolver
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::253",
    )
)

METADATA_HOSTNAMES = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "metadata.azure.com"}
)
LOCAL_HOSTNAME_SUFFIXES = (".localhost", ".internal", ".local", ".home.arpa")

_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
_NAT64_NETWORKS = tuple(ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48"))
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_-]+$")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address tunnels to (mapped, 6to4, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in net for net in _NAT64_NETWORKS):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def classify_address(address: IPAddress) -> AddressClass:
    """Say what kind of destination an address is; anything not plainly public is not public."""
    inner = embedded_ipv4(address)
    if inner is not None:
        return classify_address(inner)
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        address = ipaddress.IPv6Address(address.compressed.split("%")[0])
    if address in METADATA_ADDRESSES:
        return "metadata"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if any(address in net for net in _PRIVATE_NETWORKS if net.version == address.version):
        return "private"
    if address.is_global and not address.is_reserved and not address.is_private:
        return "public"
    return "reserved"


def address_allowed(address: IPAddress, *, allow_private_networks: bool) -> bool:
    """Whether a URL may connect to this address under the deployment's policy."""
    kind = classify_address(address)
    return kind == "public" or (allow_private_networks and kind in PRIVATE_CLASSES)


def parse_ip(host: str) -> IPAddress | None:
    """The address when ``host`` is an IP literal (brackets already removed), else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def host_problem(host: str, *, allow_private_networks: bool) -> str | None:
    """Why a host name (not an IP literal) is refused before any lookup, or None if it is not.

    Names whose last label is a number are IPv4 in disguise (``2130706433``, ``0x7f.1``); the
    URL standard reads them as addresses, so only the canonical dotted-quad form is accepted.
    """
    name = host.rstrip(".").lower()
    if not _HOSTNAME.match(name):
        return "is not a valid host name"
    last = name.rsplit(".", 1)[-1]
    if last.isdigit() or last.startswith("0x"):
        return "is a numeric host that is not a canonical IPv4 address"
    if name in METADATA_HOSTNAMES:
        return "names a cloud metadata service"
    if not allow_private_networks and (
        name == "localhost" or name.endswith(LOCAL_HOSTNAME_SUFFIXES)
    ):
        return "names a local or internal host"
    return None


class HostResolver(Protocol):
    """Turns a host name into the IP addresses a connection to it would use."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]: ...


class SystemResolver:
    """The operating system's resolver (getaddrinfo), asked once per hop."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        found: list[IPAddress] = []
        for info in infos:
            address = ipaddress.ip_address(info[4][0])
            if address not in found:
                found.append(address)
        return found
