"""Keeping secrets out of everything batcher stores or prints, and server text harmless.

Two tools, used wherever text from outside (the API's answers, exception messages) is kept or
shown:

- `Scrubber(token, others=..., names=..., tokens=...).scrub(text)` replaces every piece of the
  token (and of each of `tokens`: every location's) of `MIN_PIECE` or more characters, in any
  case, with `[token]`, and every such piece of the other
  secrets (a proxy's password, the page's start secret and password) with `[secret]`; user names
  (a proxy's) are replaced as whole words, so that a short one does not eat ordinary words; and
  the userinfo of any URL (`http://user:password@host`) is dropped. A server or a proxy that
  echoes a credential back (whole, upper-cased, or cut, or in a 407's reason phrase) must not get
  it into a report, a state file, a log, a crash file or a terminal. `Scrubber.for_environment`
  also learns the proxy credentials the API client may use (`proxy_credentials`).
- `sanitize(text)` replaces lone surrogates (they cannot be encoded to UTF-8: SQLite and every
  file writer would fail on them) and control characters (a terminal runs escape sequences; a
  report cell with a line feed breaks naive readers) with U+FFFD.
"""

from __future__ import annotations

import contextlib
import netrc
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = [
    "MIN_PIECE",
    "REDACTED",
    "SECRET",
    "Scrubber",
    "proxy_credentials",
    "sanitize",
    "strip_userinfo",
]

# A piece of the token this long is as good as the token to anyone guessing the rest: eight
# characters of a random token carry about 48 bits. Shorter pieces match ordinary words.
MIN_PIECE = 8
# Up to this many pieces, `Scrubber.found_in` searches the text for each (a 25,000-character
# text: 0.08 ms for 6 pieces, 0.32 ms for 33, where the runs of characters took 0.26 ms).
_SEARCHED_PIECES = 24
REDACTED = "[token]"
SECRET = "[secret]"

# The userinfo of a URL (RFC 3986 3.2.1: `user:password@` after `scheme://`), to be dropped.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@\[\]]*@")
# The environment variables aiohttp (as urllib) takes proxies from, in any case.
_PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "ws_proxy", "wss_proxy", "all_proxy"})

# Unicode's controls (category Cc: C0, DEL, C1) and surrogates (Cs), mapped to U+FFFD.
_RANGES = ((0x00, 0x1F), (0x7F, 0x9F), (0xD800, 0xDFFF))
_HARMFUL = {code: "\ufffd" for low, high in _RANGES for code in range(low, high + 1)}
_HARMFUL_RE = re.compile(
    "[" + "".join(f"\\U{low:08x}-\\U{high:08x}" for low, high in _RANGES) + "]"
)


def sanitize(text: str) -> str:
    """`text` with control characters and lone surrogates replaced by U+FFFD."""
    if _HARMFUL_RE.search(text) is None:  # the common case: nothing to copy
        return text
    return text.translate(_HARMFUL)


def strip_userinfo(text: str) -> str:
    """`text` with the `user:password@` of every URL in it removed."""
    if "://" not in text:  # the common case
        return text
    return _USERINFO.sub(r"\1", text)


def proxy_credentials(environ: Mapping[str, str] | None = None) -> tuple[list[str], list[str]]:
    """The passwords and the user names of every proxy the environment names: in the proxy
    variables' URLs (as given and percent-decoded), or in the .netrc entry of a proxy's host
    (`$NETRC`, else `~/.netrc`), as aiohttp's `trust_env` reads them."""
    env = os.environ if environ is None else environ
    passwords: list[str] = []
    users: list[str] = []
    for name, value in env.items():
        if name.lower() not in _PROXY_VARIABLES or not value:
            continue
        try:
            url = urlsplit(value if "://" in value else f"http://{value}")
            user, password, host = url.username, url.password, url.hostname
        except ValueError:  # not a URL aiohttp would use either
            continue
        if user is None and host:
            user, password = _netrc_login(env, host)
        for found, into in ((password, passwords), (user, users)):
            if found:
                into.extend({found, unquote(found)})
    return passwords, users


def _netrc_login(env: Mapping[str, str], host: str) -> tuple[str | None, str | None]:
    path = env.get("NETRC") or str(Path.home() / ".netrc")
    with contextlib.suppress(OSError, netrc.NetrcParseError):
        entry = netrc.netrc(path).authenticators(host)
        if entry is not None:
            return entry[0] or None, entry[2] or None
    return None, None


@dataclass(frozen=True)
class _Secret:
    """One secret, case-folded, and every MIN_PIECE-long piece of it."""

    folded: str
    pieces: frozenset[str]
    label: str

    @classmethod
    def of(cls, text: str, label: str) -> _Secret:
        folded = text.casefold()
        pieces = (
            {folded[i : i + MIN_PIECE] for i in range(len(folded) - MIN_PIECE + 1)}
            if len(folded) >= MIN_PIECE
            else {folded}
        )
        return cls(folded, frozenset(pieces), label)


class Scrubber:
    """Removes secrets from text: the token, or any piece of it of MIN_PIECE+ characters, in any
    case (`[token]`); the same for each of `others` (`[secret]`); each of `names` as a whole word,
    any case (`[secret]`); and the userinfo of every URL."""

    def __init__(
        self,
        token: str | None,
        *,
        others: Iterable[str] = (),
        names: Iterable[str] = (),
        tokens: Iterable[str] = (),
    ) -> None:
        self._args = (token, tuple(others), tuple(names), tuple(tokens))
        labelled = ((token or "", REDACTED), *((t, REDACTED) for t in tokens))
        self._secrets = tuple(
            _Secret.of(text, label)
            for text, label in dict.fromkeys((*labelled, *((o, SECRET) for o in others)))
            if text
        )
        # Every piece of every secret, flat: `found_in` runs on every answer of a run. A few
        # pieces (a short token's) are each searched for in the text, at C speed. More would make
        # that slow (a JWT-sized token's 990 pieces: 10 ms for an answer's 25,000 characters of
        # tags; 20 location tokens are 14,000 pieces), so then only the runs of MIN_PIECE+
        # characters that occur in pieces, found by a regular expression, are looked at, a set
        # lookup per window of each distinct run (0.4 ms); a secret shorter than MIN_PIECE is
        # searched for whole.
        self._pieces = frozenset(piece for secret in self._secrets for piece in secret.pieces)
        self._short = tuple(piece for piece in self._pieces if len(piece) < MIN_PIECE)
        alphabet = sorted({char for piece in self._pieces - set(self._short) for char in piece})
        self._runs = (
            re.compile("[" + "".join(map(re.escape, alphabet)) + f"]{{{MIN_PIECE},}}")
            if alphabet and len(self._pieces) > _SEARCHED_PIECES
            else None
        )
        words = sorted({n for n in names if n}, key=len, reverse=True)
        self._names = (
            re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, words)) + r")(?!\w)", re.IGNORECASE)
            if words
            else None
        )

    @classmethod
    def for_environment(
        cls,
        token: str | None,
        *,
        others: Iterable[str] = (),
        names: Iterable[str] = (),
        tokens: Iterable[str] = (),
        environ: Mapping[str, str] | None = None,
    ) -> Scrubber:
        """A scrubber of `token` and `tokens` (every location's, `[token]`), `others`, `names`,
        and the proxy credentials the environment holds."""
        passwords, users = proxy_credentials(environ)
        return cls(token, others=[*others, *passwords], names=[*names, *users], tokens=tokens)

    def knowing(self, token: str) -> Scrubber:
        """This scrubber, also of `token` (a location token obtained while a run goes on)."""
        first, others, names, tokens = self._args
        return Scrubber(first, others=others, names=names, tokens=(*tokens, token))

    def __repr__(self) -> str:
        sizes = ", ".join(str(len(secret.folded)) for secret in self._secrets)
        return f"{type(self).__name__}(<secrets of {sizes or 'no'} characters>)"

    def found_in(self, text: str) -> bool:
        """Whether `text` holds a secret, a piece of one, or a URL's userinfo (a fast test for
        the common case)."""
        if self._pieces:
            folded = text.casefold()
            if self._runs is None:
                if any(piece in folded for piece in self._pieces):
                    return True
            else:
                pieces = self._pieces
                for run in set(self._runs.findall(folded)):
                    windows = range(len(run) - MIN_PIECE + 1)
                    if any(run[i : i + MIN_PIECE] in pieces for i in windows):
                        return True
                if any(piece in folded for piece in self._short):
                    return True
        if self._names is not None and self._names.search(text):
            return True
        return "://" in text and _USERINFO.search(text) is not None

    def scrub(self, text: str) -> str:
        """`text` with every run of characters that is a piece of a secret replaced, every user
        name replaced, and every URL's userinfo dropped."""
        if not self.found_in(text):
            return text
        text = strip_userinfo(text)  # first: what replaces a secret ends a URL's userinfo
        for secret in self._secrets:
            text = _scrub(text, secret)
        if self._names is not None:
            text = self._names.sub(SECRET, text)
        return text


def _scrub(text: str, secret: _Secret) -> str:
    """`text` with every run of characters that is a piece of `secret` replaced by its label."""
    folded = text.casefold()
    if not any(piece in folded for piece in secret.pieces):
        return text
    if len(folded) != len(text):  # casefold changed lengths (ß -> ss): mask conservatively
        return _scrub_aligned(text, [c.casefold() for c in text], secret)
    return _scrub_aligned(text, list(folded), secret)


def _scrub_aligned(text: str, folded: list[str], secret: _Secret) -> str:
    """Mark every position covered by a MIN_PIECE window that is a piece, then replace runs.

    `folded[i]` is the case-folded form of `text[i]` (one or more characters).
    """
    size = min(MIN_PIECE, len(secret.folded))
    covered = [False] * len(text)
    for start in range(len(text)):
        window = ""
        end = start
        while end < len(text) and len(window) < size:
            window += folded[end]
            end += 1
        if len(window) >= size and window[:size] in secret.pieces:
            for i in range(start, end):
                covered[i] = True
    out: list[str] = []
    i = 0
    while i < len(text):
        if covered[i]:
            out.append(secret.label)
            while i < len(text) and covered[i]:
                i += 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)
