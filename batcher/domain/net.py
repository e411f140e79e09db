"""Whether a host is this machine: the one answer every part of batcher gives.

Loopback (SPEC "Security": plain http and a page without a password are allowed there only):
the name `localhost` and any name under it (`app.localhost`, RFC 6761 section 6.3: resolvers
must answer them with loopback), each also written fully qualified with a final dot; the
addresses 127.0.0.0/8 and ::1, an IPv4 loopback address written IPv4-mapped
(`::ffff:127.0.0.1`), and an IPv6 address in brackets as URLs and Host headers write it. Any
other name may resolve to anything, so it is not loopback. The sandbox (`batcher.sandbox`, which
imports nothing of batcher) keeps a copy of this function; tests/test_net.py holds both to one
table.
"""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, bracketed or not, any case) is this machine."""
    name = host.lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    name = name.removesuffix(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
