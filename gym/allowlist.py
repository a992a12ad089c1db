"""The egress allowlist of environment builds: which host:port a sandboxed build may reach.

RATCHET_ENV_ALLOWED_HOSTS names hosts, `*.domain` wildcards and exact `host:port` entries; by
default the package indexes pip and npm are configured with. The policy lives apart from the
proxy (gym/egress.py) that enforces it: the worker and the CLI build and check an allowlist at
start-up, long before any build needs a proxy. An address is internal when it is this machine's
or its networks' (loopback, private, link-local...): only an entry naming its exact port may
reach one.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass

from gym.indexes import default_allowed_hosts

DEFAULT_PORTS = (80, 443)  # what an entry without a port allows
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
_PORT = re.compile(r"[0-9]{1,5}")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class AllowedHost:
    host: str  # normalised (lower case, IPs in canonical form); for a wildcard, the parent domain
    port: int | None  # None: 80 and 443
    wildcard: bool = False

    @property
    def explicit(self) -> bool:
        """Names one host and one port: only such an entry may reach a private address."""
        return not self.wildcard and self.port is not None

    def matches(self, host: str, port: int) -> bool:
        if port not in ((self.port,) if self.port is not None else DEFAULT_PORTS):
            return False
        return host.endswith("." + self.host) if self.wildcard else host == self.host


@dataclass(frozen=True)
class Allowlist:
    hosts: tuple[AllowedHost, ...] = ()

    @classmethod
    def of(cls, *entries: str) -> Allowlist:
        """`Allowlist.of("pypi.org", "*.example.com", "127.0.0.1:8123")`."""
        return cls(tuple(_parse_entry(entry) for entry in entries))

    def match(self, host: str, port: int) -> AllowedHost | None:
        name = normal_host(host)
        found = [entry for entry in self.hosts if name is not None and entry.matches(name, port)]
        # Prefer the explicit entry: it is the one that may reach a private address.
        return max(found, key=lambda entry: entry.explicit, default=None)

    def allows(self, host: str, port: int) -> bool:
        return self.match(host, port) is not None


def parse_allowed_hosts(text: str) -> Allowlist:
    """RATCHET_ENV_ALLOWED_HOSTS: a JSON list of strings, or entries separated by commas/spaces."""
    stripped = text.strip()
    entries: list[str]
    # "[::1]:8123" also starts with "[", so only '["' or '[]' means JSON.
    if re.match(r'\[\s*["\]]', stripped):
        try:
            loaded = json.loads(stripped)
        except json.JSONDecodeError as err:
            raise ValueError(f"RATCHET_ENV_ALLOWED_HOSTS: not a valid JSON list: {err}") from None
        if not isinstance(loaded, list):
            raise ValueError("RATCHET_ENV_ALLOWED_HOSTS: expected a JSON list of strings")
        for item in loaded:
            if not isinstance(item, str):
                raise ValueError(f"RATCHET_ENV_ALLOWED_HOSTS: bad entry {item!r}: not a string")
        entries = loaded
    else:
        entries = [entry for entry in re.split(r"[\s,]+", stripped) if entry]
    return Allowlist.of(*entries)


def _parse_entry(entry: str) -> AllowedHost:
    parsed = split_host_port(entry.strip())
    host = parsed[0] if parsed is not None else ""
    wildcard = host.startswith("*.")
    name = normal_host(host[2:] if wildcard else host)
    # "*.com" would allow half the internet; a wildcard needs a registrable-looking parent.
    if parsed is None or name is None or (wildcard and (_ip(name) is not None or "." not in name)):
        raise ValueError(
            f"RATCHET_ENV_ALLOWED_HOSTS: bad entry {entry!r}: expected host, *.domain, "
            "host:port or [ipv6]:port"
        )
    return AllowedHost(name, parsed[1], wildcard)


def split_host_port(text: str) -> tuple[str, int | None] | None:
    """(host, port or None) from host, host:port, [v6]:port or a bare v6; None if malformed."""
    host, port_text = text.lower(), None
    if host.startswith("[") and "]" in host:
        host, _, rest = host.partition("]")
        if rest and not rest.startswith(":"):
            return None
        host, port_text = host + "]", rest[1:] if rest else None
    elif host.count(":") == 1:
        host, port_text = host.split(":")
    if port_text is None:
        return host, None
    if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
        return None
    return host, int(port_text)


def normal_host(host: str) -> str | None:
    """The canonical form of a hostname or IP literal (brackets optional), None if neither."""
    host = host.lower()
    if host.startswith("[") and host.endswith("]"):
        address = _ip(host[1:-1])
        return str(address) if isinstance(address, ipaddress.IPv6Address) else None
    if (address := _ip(host)) is not None:
        return str(address)
    host = host.removesuffix(".")
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    # An all-digit last label is an IP the resolver would read its own way ("127.1").
    return None if labels[-1].isdigit() else host


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


# Where this machine's own services and its networks live: loopback, RFC 1918 and carrier-grade
# NAT, link-local (cloud metadata at 169.254.169.254), "this network", multicast, 240/4, and
# their IPv6 counterparts. Other non-global ranges (the documentation nets) are not internal:
# an operator's /etc/hosts may point the package indexes at a mirror there.
_INTERNAL = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
        "::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8",
    )
)  # fmt: skip


def is_internal(address: IPAddress) -> bool:
    """Loopback, private, link-local, multicast, reserved or unspecified, also when an IPv6
    address only wraps such an IPv4 one (mapped, 6to4, NAT64)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is None and address in _NAT64:
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if inner is not None and is_internal(inner):
            return True
    return any(address in net for net in _INTERNAL if net.version == address.version)


def build_allowlist(configured: str | None) -> Allowlist:
    """The egress allowlist of environment builds: RATCHET_ENV_ALLOWED_HOSTS when set (a bad
    entry raises with its name), else the indexes pip and npm are configured with."""
    if configured is not None:
        return parse_allowed_hosts(configured)
    return Allowlist.of(*default_allowed_hosts())
