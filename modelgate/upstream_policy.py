"""Which upstream base URLs an endpoint may point at.

Link-local and cloud-metadata addresses are denied by default (a classic way to steal a
gateway's cloud credentials); the instance adds its own allow and deny lists of hosts.
Loopback and private ranges stay allowed: self-hosted models live there.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from modelgate.errors import BadRequest

__all__ = ["check_base_url"]

_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data", "instance-data.ec2.internal"})


def check_base_url(url: str, *, allow: list[str], deny: list[str]) -> str:
    """Return the normalised URL, or raise BadRequest saying exactly what is wrong."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest("base_url must be an absolute http:// or https:// URL, e.g. https://api.openai.com/v1.",
                         param="base_url")  # fmt: skip
    if parts.username or parts.password:
        raise BadRequest("base_url must not contain credentials; store them as a vendor credential.",
                         param="base_url")  # fmt: skip
    if parts.query or parts.fragment:
        raise BadRequest("base_url must not contain a query string or fragment.", param="base_url")
    host = parts.hostname.lower()
    if allow and host not in {h.lower() for h in allow}:
        raise BadRequest(f"Upstream host '{host}' is not in this instance's allow list.", param="base_url")
    if host in {h.lower() for h in deny} or host in _METADATA_HOSTS:
        raise BadRequest(f"Upstream host '{host}' is denied by this instance's policy.", param="base_url")
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        ip = None
    if ip is not None and (ip.is_link_local or ip.is_multicast or ip.is_unspecified or str(ip) == "fd00:ec2::254"):
        raise BadRequest(f"Upstream address {ip} is link-local, multicast or a cloud metadata address; denied.",
                         param="base_url")  # fmt: skip
    return url.rstrip("/")
