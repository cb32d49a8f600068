"""Who is on the other end of a request: the direct peer, or, when that peer is a proxy we were told to trust,
the client it says it forwards for.

Every per-client limit (request rate, open sockets, sessions) keys on this address, so it must be neither
spoofable nor collapsed: behind a load balancer every request comes from the balancer (one client for the
whole world) unless its ``X-Forwarded-For`` is read, and a client talking to us directly must not choose its own
address with that header. So the header is read only when the peer is in ``trusted_proxies``, and from the right:
the first address that is not a trusted proxy is the client (what a client wrote to the left of it is its own
claim). ``X-Forwarded-Proto`` from a trusted proxy sets the scheme, so cookies get ``Secure`` behind TLS.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """``["10.0.0.5", "172.28.0.0/16", "::1"]`` -> networks; a malformed entry is a settings error."""
    nets = []
    for value in values:
        value = value.strip()
        if not value:
            continue
        try:
            nets.append(ipaddress.ip_network(value, strict=False))
        except ValueError as e:
            raise ValueError(f"trusted_proxies: {value!r} is not an IP address or network") from e
    return tuple(nets)


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("["):  # [v6]:port
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


class ClientResolver:
    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self.trusted = parse_networks(trusted_proxies)

    def is_trusted(self, host: str) -> bool:
        ip = _ip(host)
        return ip is not None and any(ip in net for net in self.trusted)

    def resolve(self, scope: Scope) -> Scope:
        """``scope`` with ``client`` (and ``scheme``) as seen through trusted proxies; unchanged otherwise."""
        peer = scope.get("client")
        if not self.trusted or not peer or not self.is_trusted(str(peer[0])):
            return scope
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        scope = dict(scope)
        forwarded = headers.get(b"x-forwarded-for")
        if forwarded is not None:
            hops = [h.strip() for h in forwarded.decode("latin-1").split(",") if h.strip()]
            client = None
            for hop in reversed(hops):
                ip = _ip(hop)
                if ip is None:
                    break  # garbage: trust nothing further left
                client = str(ip)
                if not self.is_trusted(client):
                    break
            if client is not None:
                scope["client"] = (client, 0)
        proto = headers.get(b"x-forwarded-proto", b"").decode("latin-1").split(",")[0].strip().lower()
        if proto in ("http", "https"):
            secure = proto == "https"
            if scope["type"] == "websocket":
                scope["scheme"] = "wss" if secure else "ws"
            else:
                scope["scheme"] = proto
        return scope
