"""One answer to "is this host this machine?" (batcher.domain.net.is_loopback), and the
sandbox's own copy of it (it imports nothing of batcher) giving the same one."""

from __future__ import annotations

import pytest

from batcher.domain import net
from batcher.sandbox import config as sandbox_config

# (host, whether it is loopback): names, names under localhost (RFC 6761), final dots, case,
# IPv4 and IPv6 loopback, IPv4-mapped, brackets; and what is not.
TABLE = [
    ("localhost", True),
    ("LOCALHOST", True),
    ("localhost.", True),
    ("app.localhost", True),
    ("App.LocalHost.", True),
    ("a.b.localhost", True),
    ("127.0.0.1", True),
    ("127.1.2.3", True),
    ("127.255.255.254", True),
    ("::1", True),
    ("[::1]", True),
    ("0:0:0:0:0:0:0:1", True),
    ("::ffff:127.0.0.1", True),
    ("[::ffff:127.0.0.1]", True),
    ("::FFFF:7f00:1", True),
    ("", False),
    ("localhost.example.com", False),
    ("notlocalhost", False),
    ("localhostx", False),
    ("example.com", False),
    ("128.0.0.1", False),
    ("10.0.0.1", False),
    ("0.0.0.0", False),
    ("::", False),
    ("::ffff:10.0.0.1", False),
    ("[::ffff:10.0.0.1]", False),
    ("2001:db8::1", False),
    ("[2001:db8::1]", False),
    ("127.1", False),
]


@pytest.mark.parametrize(("host", "loopback"), TABLE)
def test_batcher_and_the_sandbox_agree_on_what_is_loopback(host: str, loopback: bool) -> None:
    """Each host of the table is loopback, or not, alike for batcher and for the sandbox."""
    assert net.is_loopback(host) is loopback
    assert sandbox_config.is_loopback(host) is loopback
