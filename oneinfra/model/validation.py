"""Checks on what people type: names, labels, addresses, networks, endpoints.

Each raises DomainError with a message that says what is wrong and what is
expected.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from ..errors import DomainError, shown

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?)$")

NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")  # Kubernetes': a DNS subdomain

# Names end up inside container, pod and certificate names with suffixes.
MAX_NAME_LENGTH = 40

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def name(kind: str, value: str) -> str:
    if not value:
        raise DomainError(f"{kind} name must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise DomainError(
            f"{kind} name {shown(value)} is {len(value)} characters long; "
            f"the limit is {MAX_NAME_LENGTH}"
        )
    if not DNS1123_LABEL.match(value):
        raise DomainError(
            f"{kind} name {shown(value)} is not a DNS-1123 label: use lower-case letters, "
            "digits and '-', starting and ending with a letter or digit"
        )
    return value


def node_name(value: str) -> str:
    if NODE_NAME.fullmatch(value) is None:
        raise DomainError(f"a node's name is a DNS subdomain, not {shown(value)}")
    return value


MAX_LABELS = 64  # labels a hypervisor carries, or a command sets or removes


def label_keys(keys: Iterable[str]) -> None:
    """Kubernetes label key syntax: [prefix/]name."""
    keys = list(keys)
    if len(keys) > MAX_LABELS:
        raise DomainError(f"{len(keys)} labels; the limit is {MAX_LABELS}")
    for key in keys:
        prefix, _, label_name = key.rpartition("/")
        if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
            raise DomainError(f"label {shown(key)}: prefix {shown(prefix)} is not a DNS subdomain")
        if not label_name or len(label_name) > 63 or not LABEL_NAME.match(label_name):
            raise DomainError(
                f"label {shown(key)}: the name must be 1-63 letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit"
            )


def labels(values: dict[str, str]) -> dict[str, str]:
    """Kubernetes label syntax: [prefix/]name=value."""
    label_keys(values)
    for key, value in values.items():
        if len(value) > 63 or not LABEL_VALUE.match(value):
            raise DomainError(
                f"label {key}={shown(value)}: the value must be at most 63 letters, digits, "
                "'-', '_' or '.', starting and ending with a letter or digit"
            )
    return values


def ip_address(value: str, what: str = "IP address") -> IPAddress:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise DomainError(f"{what} {shown(value)} is not an IPv4 or IPv6 address") from None


def network(value: str, what: str) -> IPNetwork:
    try:
        parsed = ipaddress.ip_network(value, strict=True)
    except ValueError as error:
        raise DomainError(f"{what} {shown(value)} is not a valid CIDR: {error}") from None
    return parsed


def disjoint(networks: dict[str, IPNetwork]) -> None:
    """Refuse any two of the named networks that overlap."""
    items = list(networks.items())
    for index, (first_name, first) in enumerate(items):
        for second_name, second in items[index + 1 :]:
            if first.version == second.version and first.overlaps(second):
                raise DomainError(
                    f"{first_name} {first} overlaps {second_name} {second}; they must be disjoint"
                )


def subject_alternative_name(value: str) -> str:
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if len(value) > 253 or not DNS1123_SUBDOMAIN.match(value.removeprefix("*.")):
        raise DomainError(f"extra SAN {shown(value)} is neither an IP address nor a DNS name")
    return value


def port_range(low: int, high: int) -> tuple[int, int]:
    if not 1 <= low <= high <= 65535:
        raise DomainError(
            f"port range {low}-{high} is invalid: "
            "it must be LOW-HIGH with 1 <= LOW <= HIGH <= 65535"
        )
    return low, high


def endpoint(value: str, has_tls: bool) -> str:
    """unix:///absolute/path, or tcp://host:port which needs mutual TLS."""
    parsed = urlsplit(value)
    if parsed.scheme == "unix":
        if parsed.netloc or not parsed.path.startswith("/"):
            raise DomainError(
                f"endpoint {shown(value)}: a unix endpoint is unix:///absolute/path/to/socket"
            )
        if has_tls:
            raise DomainError(f"endpoint {shown(value)}: TLS files are only for tcp:// endpoints")
        return value
    if parsed.scheme == "tcp":
        try:
            port = parsed.port
        except ValueError:
            port = None
        if not parsed.hostname or port is None or parsed.path not in ("", "/"):
            raise DomainError(f"endpoint {shown(value)}: a tcp endpoint is tcp://host:port")
        if not has_tls:
            raise DomainError(
                f"endpoint {shown(value)}: a tcp endpoint needs mutual TLS "
                "(a CA certificate, a client certificate and a client key)"
            )
        return value
    raise DomainError(f"endpoint {shown(value)}: use unix:///path or tcp://host:port")


SAFE_PATH = re.compile(r"^(/[A-Za-z0-9._-]+)+$")


def absolute_path(value: str, what: str) -> str:
    """A plain absolute path: files are written under it through a shell."""
    path = value.rstrip("/")
    if not SAFE_PATH.match(path) or ".." in path.split("/"):
        raise DomainError(
            f"{what} {shown(value)} must be an absolute path of letters, digits, '.', '_' and '-'"
        )
    return path
