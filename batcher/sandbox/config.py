"""SandboxConfig: what the emulator serves, built from Python, a TOML file or CLI option strings.

The three sources meet in one set of converters so that a key means the same everywhere and a bad
value is refused with the same one-line `ValueError` naming the option or TOML key. TOML shape::

    [sandbox]
    host = "127.0.0.1"               # anything but loopback needs allow_public = true
    allow_public = false
    port = 8765                      # 0: an ephemeral port
    token = "sandbox-token"
    locations = ["sandboxLocation00001", "asdrwHvLUxlfw5SqKVCN"]   # what `token` may reach
    agency_token = ""                # an agency OAuth token, good only at /oauth/locationToken
    company_id = "sandboxCompany000001"
    agency_locations = []            # the locations it may exchange for (empty: `locations`)
    location_token_ttl_s = 86399     # an exchanged token's lifetime (the service's expires_in)
    fixture = "sandbox-fixture.json"   # relative to the TOML file
    strict_unknown = false
    record_requests = true
    seed = 7                         # alias of [sandbox.faults] seed
    rate = "off"                     # or a string like --rate, or the table below

    [sandbox.rate]
    max = 100
    interval_ms = 10000
    daily = 200000
    retry_after = true
    window = "sliding"               # or "fixed": counted in windows floor(now / interval)

    [sandbox.faults]
    error_rate = 0.1
    fail_first = 3
    fail_first_status = 503
    drop_before = 0.05
    drop_after = 0.05
    slow = 0.01
    malformed = 0.02
    latency_ms = [5, 50]             # MIN, MAX
    seed = 7

    [sandbox.tokens]                 # more sub-account tokens, each bound to its locations
    "token-of-main-street" = ["mainStreetLocation01"]

    [sandbox.revoke_after]           # a token refused (401 "Invalid JWT") after N requests
    "token-of-main-street" = 40

Option strings: `--rate "100/10000"`, `"100/10000,daily=200000,retry_after=true,window=fixed"`
or `"off"`;
`--faults "error_rate=0.1,fail_first=3,latency_ms=5-50,seed=7"` (the keys of [sandbox.faults]).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

DEFAULT_TOKEN = "sandbox-token"
DEFAULT_LOCATION = "sandboxLocation00001"
# The location id of the API documentation's own example (bulk-tags-endpoint.seed.txt), so that
# the first curl a newcomer copies from it works as written.
EXAMPLE_LOCATION = "asdrwHvLUxlfw5SqKVCN"

# What "off" shows in the X-RateLimit-* headers: limits no client run will ever reach.
UNTHROTTLED_MAX = 1_000_000_000

# How the burst limit counts: "sliding" (any `interval_ms` span holds at most `max`) or "fixed"
# (windows that reset every `interval_ms`, as some servers count).
WINDOWS = ("sliding", "fixed")

_FRACTIONS = ("error_rate", "drop_before", "drop_after", "slow", "malformed")


@dataclass(frozen=True)
class RateConfig:
    """Per-location limits; the defaults are HighLevel's (API-NOTES.md, "Rate limits")."""

    max: int = 100
    interval_ms: int = 10_000
    daily: int = 200_000
    # Undocumented whether the real API sends Retry-After (API-NOTES.md): off unless asked for.
    retry_after: bool = False
    window: str = "sliding"

    def __post_init__(self) -> None:
        for name in ("max", "interval_ms", "daily"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.window not in WINDOWS:
            raise ValueError(f"window must be 'sliding' or 'fixed', got {self.window!r}")


UNTHROTTLED = RateConfig(max=UNTHROTTLED_MAX, daily=UNTHROTTLED_MAX)


@dataclass(frozen=True)
class FaultConfig:
    """Injected failures. The fractions are exclusive shares of the valid requests' answers."""

    error_rate: float = 0.0  # a 500, 502 or 503
    fail_first: int = 0  # the first N valid requests answer `fail_first_status`
    fail_first_status: int = 503
    drop_before: float = 0.0  # connection closed, change NOT applied
    drop_after: float = 0.0  # connection closed, change applied
    slow: float = 0.0  # no answer until the sandbox stops
    malformed: float = 0.0  # 201 (change applied) with a truncated JSON body
    latency_ms: tuple[int, int] = (0, 0)  # added to every answer, drawn uniformly
    seed: int = 0

    def __post_init__(self) -> None:
        for name in _FRACTIONS:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if sum(getattr(self, name) for name in _FRACTIONS) > 1.0:
            raise ValueError(f"the fractions {', '.join(_FRACTIONS)} add up to more than 1")
        if self.fail_first < 0:
            raise ValueError(f"fail_first must be at least 0, got {self.fail_first}")
        if not 400 <= self.fail_first_status <= 599:
            raise ValueError(
                f"fail_first_status must be a 4xx or 5xx, got {self.fail_first_status}"
            )
        low, high = self.latency_ms
        if not 0 <= low <= high:
            raise ValueError(f"latency_ms must be MIN-MAX with 0 <= MIN <= MAX, got {low}-{high}")


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine: `localhost` and the names under it (RFC 6761), also
    with a final dot; 127.0.0.0/8, ::1, an IPv4-mapped loopback address, bracketed or not.

    The sandbox imports nothing of batcher: this is a copy of `batcher.domain.net.is_loopback`,
    and tests/test_net.py holds both to one table."""
    name = host.lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    name = name.removesuffix(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False  # any other name may resolve to anything
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


@dataclass(frozen=True)
class SandboxConfig:
    """Everything one sandbox needs. `rate=None` is unthrottled (benchmarks).

    `host` must be a loopback address unless `allow_public` is set: the sandbox accepts a token
    that is printed in the docs, and changes no real contact, so nobody else should reach it.
    """

    host: str = "127.0.0.1"
    allow_public: bool = False
    port: int = 0
    token: str = DEFAULT_TOKEN
    # The reference's own example location too, so the documentation's curl works as written.
    locations: frozenset[str] = frozenset({DEFAULT_LOCATION, EXAMPLE_LOCATION})
    fixture: Path | None = None
    # True: a well-formed id missing from the fixture "does not belong to account" instead of
    # being a tagless contact of the request's location.
    strict_unknown: bool = False
    # False: keep no copy of accepted bodies (a 1,000,000-contact benchmark).
    record_requests: bool = True
    # More sub-account tokens (Private Integration Tokens), each bound to the locations it may
    # reach; `token` reaches `locations`. One location's token does not open another
    # (API-NOTES.md, "Credentials across locations").
    tokens: dict[str, frozenset[str]] = field(default_factory=dict)
    # A token refused (401 "Invalid JWT") once it has made this many bulk requests: a token
    # revoked while a run goes on, reached deterministically.
    revoke_after: dict[str, int] = field(default_factory=dict)
    # An agency OAuth token: refused at the bulk endpoint, exchanged at /oauth/locationToken
    # for a location token of `company_id`'s locations (`agency_locations`, else `locations`
    # and every location of `tokens`), which expires after `location_token_ttl_s` seconds
    # (HighLevel's expires_in is 86399: oauth.openapi.json).
    agency_token: str = ""
    company_id: str = "sandboxCompany000001"
    agency_locations: frozenset[str] = frozenset()
    location_token_ttl_s: float = 86_399.0
    rate: RateConfig | None = field(default_factory=RateConfig)
    faults: FaultConfig = field(default_factory=FaultConfig)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {self.port}")
        if not self.token:
            raise ValueError("token must not be empty")
        if self.location_token_ttl_s <= 0:
            raise ValueError(
                f"location_token_ttl_s must be above 0, got {self.location_token_ttl_s}"
            )
        if any(not token for token in self.tokens):
            raise ValueError("tokens: a token must not be empty")
        unknown = set(self.revoke_after) - set(self.tokens) - {self.token}
        if unknown:
            raise ValueError(f"revoke_after names tokens not served: {', '.join(sorted(unknown))}")
        if not self.allow_public and not is_loopback(self.host):
            raise ValueError(
                f"sandbox.host {self.host!r} is not a loopback address (127.0.0.0/8, ::1, "
                "localhost): other machines could reach the sandbox; set sandbox.allow_public "
                "= true (batcher sandbox --public) to listen there anyway"
            )

    @property
    def default_location(self) -> str:
        """The location for rows that name none: DEFAULT_LOCATION if served, else the first."""
        return DEFAULT_LOCATION if DEFAULT_LOCATION in self.locations else min(self.locations)

    def reach(self, token: str) -> frozenset[str] | None:
        """The locations a sub-account token may reach, or None for a token not served."""
        if token in self.tokens:
            return self.tokens[token]
        return self.locations if token == self.token else None

    @property
    def served_locations(self) -> frozenset[str]:
        """Every location some token reaches."""
        return self.locations.union(*self.tokens.values())

    @property
    def exchangeable(self) -> frozenset[str]:
        """The locations the agency token may obtain a location token for."""
        return self.agency_locations or self.served_locations

    @property
    def is_public(self) -> bool:
        """True when the sandbox listens beyond loopback (then it warns when it starts)."""
        return not is_loopback(self.host)


_C = TypeVar("_C")


def _convert(where: str, kind: Any, value: object, *, from_text: bool) -> object:
    """One key's value, from TOML (typed) or option text, to the dataclass field's type.

    Option text is parsed ("10", "true", "5-50"); TOML values must already have the right type.
    """
    text = value.strip() if from_text and isinstance(value, str) else None
    if kind is bool:
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise ValueError(f"{where} must be true or false, got {value!r}")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if text is not None and text.lstrip("-").isdigit():
            return int(text)
        raise ValueError(f"{where} must be an integer, got {value!r}")
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if text is not None:
            try:
                return float(text)
            except ValueError:
                pass
        raise ValueError(f"{where} must be a number, got {value!r}")
    if kind is str:
        if isinstance(value, str) and value:
            return value
        raise ValueError(f"{where} must be a non-empty string, got {value!r}")
    if kind == tuple[int, int]:
        parts = text.split("-") if text is not None else value
        if isinstance(parts, list) and len(parts) in (1, 2):
            numbers = [_convert(where, int, part, from_text=from_text) for part in parts]
            return (numbers[0], numbers[-1])
        raise ValueError(f"{where} must be MIN-MAX (e.g. 5-50), got {value!r}")
    if kind == frozenset[str]:
        if (
            isinstance(value, list)
            and all(isinstance(v, str) and v for v in value)
            and (value or where.endswith("agency_locations"))
        ):
            return frozenset(value)
        raise ValueError(f"{where} must be a non-empty list of strings, got {value!r}")
    if kind == dict[str, frozenset[str]] and isinstance(value, dict):
        return {
            key: _convert(f"{where}.{key}", frozenset[str], item, from_text=from_text)
            for key, item in value.items()
        }
    if kind == dict[str, int] and isinstance(value, dict):
        return {
            key: _convert(f"{where}.{key}", int, item, from_text=from_text)
            for key, item in value.items()
        }
    if kind == Path | None:
        return Path(_convert(where, str, value, from_text=from_text))  # type: ignore[arg-type]
    raise AssertionError(f"no converter for {kind}")  # a new field type needs one here


def _replace(base: _C, items: Mapping[str, object], where: str, *, from_text: bool) -> _C:
    """`base` with `items` applied; unknown keys and bad values raise ValueError naming the key."""
    assert dataclasses.is_dataclass(base)
    hints = get_type_hints(type(base))
    changes: dict[str, object] = {}
    for key, value in items.items():
        if key not in hints:
            known = ", ".join(hints)
            raise ValueError(f"{where}: unknown key {key!r} (known: {known})")
        name = f"{where} {key}" if where.startswith("--") else f"{where}.{key}"
        changes[key] = _convert(name, hints[key], value, from_text=from_text)
    try:
        return dataclasses.replace(base, **changes)  # type: ignore[type-var]
    except ValueError as exc:
        message = str(exc)  # a message that names its key in full is left as it is
        if not message.startswith(f"{where}."):
            message = f"{where}: {message}"
        raise ValueError(message) from None


def _pairs(text: str, where: str) -> dict[str, str]:
    """`"a=1,b=2"` → {"a": "1", "b": "2"}; empty parts are ignored."""
    pairs: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"{where}: expected KEY=VALUE, got {part!r}")
        pairs[key.strip()] = value
    return pairs


def parse_rate(text: str, base: RateConfig | None = None) -> RateConfig | None:
    """`--rate`: "MAX/INTERVAL_MS[,daily=N][,retry_after=true][,window=fixed]" or "off" (None:
    unthrottled).

    Keys not given keep `base`'s values (the config file's, else the defaults).
    """
    head, _, rest = text.strip().partition(",")
    if head.strip().lower() == "off":
        if rest.strip():
            raise ValueError(f"--rate: 'off' takes no other settings, got {text!r}")
        return None
    items: dict[str, object] = dict(_pairs(rest, "--rate"))
    if "/" in head:
        items["max"], _, items["interval_ms"] = head.partition("/")
    else:
        items.update(_pairs(head, "--rate"))
    return _replace(base or RateConfig(), items, "--rate", from_text=True)


def parse_faults(text: str, base: FaultConfig | None = None) -> FaultConfig:
    """`--faults`: "KEY=VALUE,..." with the keys of FaultConfig; others keep `base`'s values."""
    return _replace(base or FaultConfig(), _pairs(text, "--faults"), "--faults", from_text=True)


def _rate_from_toml(value: object, where: str) -> RateConfig | None:
    if isinstance(value, str):
        try:
            return parse_rate(value)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    if isinstance(value, dict):
        return _replace(RateConfig(), value, where, from_text=False)
    raise ValueError(f"{where} must be a table or a string like '100/10000' or 'off'")


def load_config(path: Path, *, allow_public: bool | None = None) -> SandboxConfig:
    """The `[sandbox]` table of a TOML file (defaults if absent); `fixture` is file-relative.

    `allow_public`, when not None, overrides the file's (the `--public` option): it must be known
    before the file's `host` is checked.
    """
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read sandbox config {path}: {exc}") from None
    table = document.get("sandbox", {})
    if not isinstance(table, dict):
        raise ValueError(f"{path}: 'sandbox' must be a table")
    table = dict(table)
    faults = table.pop("faults", {})
    if not isinstance(faults, dict):
        raise ValueError(f"{path}: sandbox.faults must be a table")
    if "seed" in table:
        if "seed" in faults:
            raise ValueError(f"{path}: give sandbox.seed or sandbox.faults.seed, not both")
        faults = {**faults, "seed": table.pop("seed")}
    changes: dict[str, object] = {
        "faults": _replace(FaultConfig(), faults, "sandbox.faults", from_text=False)
    }
    if "rate" in table:
        changes["rate"] = _rate_from_toml(table.pop("rate"), "sandbox.rate")
    if allow_public is not None:
        table["allow_public"] = allow_public
    config = _replace(SandboxConfig(), table, "sandbox", from_text=False)
    if config.fixture is not None:
        changes["fixture"] = path.parent / config.fixture
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


def config_from_options(
    *,
    config_file: Path | None = None,
    port: int | None = None,
    token: str | None = None,
    rate: str | None = None,
    faults: str | None = None,
    fixture: Path | None = None,
    public: bool | None = None,
) -> SandboxConfig:
    """What `batcher sandbox` builds: options (None = not given) over the file over defaults.

    `public` is `--public`: sets `allow_public`, which a non-loopback `sandbox.host` needs.
    """
    if config_file is not None:
        config = load_config(config_file, allow_public=public)
    else:
        config = SandboxConfig(allow_public=bool(public))
    changes: dict[str, Any] = {}
    if port is not None:
        changes["port"] = port
    if token is not None:
        changes["token"] = token
    if rate is not None:
        changes["rate"] = parse_rate(rate, config.rate)
    if faults is not None:
        changes["faults"] = parse_faults(faults, config.faults)
    if fixture is not None:
        changes["fixture"] = fixture
    try:
        return dataclasses.replace(config, **changes)
    except ValueError as exc:
        raise ValueError(f"sandbox option: {exc}") from None
