"""Who may use the page: the start secret, the password, sessions, and throttled failures.

The page can send to the API with the server's token, so only the operator may use it, on
loopback too (another user of the same machine can connect to 127.0.0.1):

- At each start the server makes a random secret (`START_SECRET_BYTES`) and prints the page's
  address once with it (`http://127.0.0.1:8765/?token=...`, as Jupyter does). A request carrying
  it gets a session cookie (HttpOnly, SameSite=Strict, Path=/; Secure over TLS) and a redirect to
  the same address without it, so that the secret leaves the address bar and the history. The
  cookie holds a random session value, not the secret: a cookie read from a browser profile
  names one session of this start, never the secret printed on the console. Every route but the
  login page (and the style sheet it uses) needs the cookie.
- Beyond loopback a password is needed too (`serve.password_env`, at least `MIN_PASSWORD`
  characters, or one made at the start and printed once); it is exchanged for the same cookie on
  the login page. HTTP Basic is gone: browsers keep its credentials with no way to log out, and
  one way in is one way to throttle.
- Failed attempts (a wrong secret or password) are throttled per client address and for the
  whole server (`Throttle`): after a few free failures each one locks further attempts out for
  a window that doubles, so that guessing a password is hopeless; the printed address with its
  secret still works during a lock-out, so that an attacker cannot lock the operator out.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from batcher.domain.config import Settings
from batcher.domain.errors import UsageError
from batcher.domain.net import is_loopback

__all__ = [
    "MIN_PASSWORD",
    "Access",
    "PagePassword",
    "Throttle",
    "check_bind",
]

# 32 random bytes, 256 bits (Jupyter's token is 24 bytes): never guessed, throttled or not.
START_SECRET_BYTES = 32
# NIST SP 800-63B asks for at least 8 characters of a memorised secret; a password that guards a
# token able to rewrite a whole CRM, reachable from a network, gets twice that.
MIN_PASSWORD = 16
# A password made at the start when none is configured: 18 bytes, 24 characters, 144 bits.
GENERATED_PASSWORD_BYTES = 18
# Sessions kept at once (each login makes one); the oldest goes first.
MAX_SESSIONS = 64


@dataclass(frozen=True)
class PagePassword:
    """The page's password; `generated` when the server made it (to be printed once)."""

    text: str
    generated: bool = False

    def __repr__(self) -> str:
        return f"PagePassword(<{len(self.text)} characters>, generated={self.generated})"


def check_bind(
    settings: Settings, host: str, environ: Mapping[str, str] | None = None
) -> PagePassword | None:
    """The page's password (None: the start secret alone, on loopback), or UsageError.

    Beyond loopback a password is needed: the variable `serve.password_env` names must hold one
    of at least MIN_PASSWORD characters; with no variable named, one is made (and printed once by
    `serve`). On loopback a configured password is used too, and checked the same way.
    """
    env = os.environ if environ is None else environ
    name = settings.serve.password_env
    loopback = is_loopback(host)
    if not name:
        if loopback:
            return None
        return PagePassword(secrets.token_urlsafe(GENERATED_PASSWORD_BYTES), generated=True)
    text = env.get(name, "")
    if not text:
        if loopback:
            return None
        raise UsageError(
            f"serve: binding {host} (not loopback) needs a password, and the environment "
            f"variable {name} is empty or not set; put one of at least {MIN_PASSWORD} characters "
            "there, unset serve.password_env to have one made, or bind 127.0.0.1"
        )
    if len(text) < MIN_PASSWORD:
        raise UsageError(
            f"serve: the password in {name} has {len(text)} characters, fewer than the "
            f"{MIN_PASSWORD} needed; use a longer one (or unset serve.password_env to have one "
            "made at each start)"
        )
    return PagePassword(text)


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    locked_until: float = 0.0


class Throttle:
    """Failed login attempts, per client address and for the whole server.

    Each key (a client address, and the server as a whole) may fail `free` times (`global_free`
    for the whole server) before it is locked out: for `first_s` after its `free`-th failure,
    doubling with each further failure up to `most_s` (OWASP's Authentication Cheat Sheet:
    exponential lock-out). A key's failures are forgotten `forget_s` after its last one, and a
    success forgets the client's. While locked out, attempts are refused without being checked.
    The clock is injected (tests pass their own; nothing here sleeps).
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        free: int = 5,
        global_free: int = 50,
        first_s: float = 1.0,
        most_s: float = 900.0,
        forget_s: float = 3600.0,
        max_clients: int = 10_000,
    ) -> None:
        self._clock = clock
        self._free = free
        self._global_free = global_free
        self._first_s = first_s
        self._most_s = most_s
        self._forget_s = forget_s
        self._max_clients = max_clients
        self._clients: OrderedDict[str, _Failures] = OrderedDict()
        self._server = _Failures()

    def wait_s(self, client: str) -> float:
        """How long `client` must wait before its next attempt is checked (0: now)."""
        now = self._clock()
        mine = self._clients.get(client)
        until = max(self._server.locked_until, mine.locked_until if mine else 0.0)
        return max(0.0, until - now)

    def failed(self, client: str) -> None:
        now = self._clock()
        mine = self._clients.pop(client, None) or _Failures()
        self._clients[client] = mine  # the most recent last
        self._count(mine, self._free, now)
        self._count(self._server, self._global_free, now)
        while len(self._clients) > self._max_clients:
            self._clients.popitem(last=False)  # the client whose last failure is oldest

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)

    def _count(self, failures: _Failures, free: int, now: float) -> None:
        if now - failures.last > self._forget_s:
            failures.count = 0
        failures.count += 1
        failures.last = now
        over = failures.count - free  # 0 at the `free`-th failure
        if over >= 0:
            lock = min(self._most_s, self._first_s * 2 ** min(over, 30))
            failures.locked_until = now + lock


class Access:
    """The start secret, the password, the sessions of one server, and its throttle."""

    def __init__(
        self,
        *,
        secret: str = "",
        password: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.secret = secret or secrets.token_urlsafe(START_SECRET_BYTES)
        self.password = password
        self.throttle = Throttle(clock)
        self._sessions: OrderedDict[str, None] = OrderedDict()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<secret>, password={'set' if self.password else 'none'})"

    def is_secret(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.secret.encode())

    def accepts(self, given: str) -> bool:
        """Whether `given` is the start secret, the page's address with it, or the password."""
        candidate = given.strip()
        if "token=" in candidate:  # the address, pasted whole
            try:
                tokens = parse_qs(urlsplit(candidate).query).get("token", [])
            except ValueError:
                tokens = []
            candidate = tokens[0] if tokens else candidate
        if self.is_secret(candidate):
            return True
        # The password as typed: spaces are part of it.
        return bool(self.password) and hmac.compare_digest(given.encode(), self.password.encode())

    def new_session(self) -> str:
        session = secrets.token_urlsafe(32)
        self._sessions[session] = None
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session

    def has_session(self, value: str | None) -> bool:
        if not value:
            return False
        # Constant time for each kept session: no timing tells how much of a guess was right.
        found = False
        for session in self._sessions:
            found |= hmac.compare_digest(value.encode(), session.encode())
        return found
