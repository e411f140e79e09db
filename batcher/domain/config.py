"""Settings: defaults, then the TOML file, then BATCHER_* environment variables, then options
(`settings_from`; `batcher.app.settings.load_settings` reads the file, once it trusts it).

Every key lives at a path `section.key` (as in `config.example.toml`); its environment variable is
`BATCHER_<SECTION>_<KEY>` in capitals, e.g. `BATCHER_LIMITS_CONCURRENCY`. A wrong key or value
raises ConfigError naming that path. The token itself is never a setting: only the *name* of the
environment variable that holds it is (`api.token_env`; a location's own, `api.location_tokens`;
an agency's, `api.agency_token_env`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit

from batcher.domain.drip import Drip, parse_drip
from batcher.domain.errors import ConfigError
from batcher.domain.models import MAX_CONTACTS_PER_REQUEST
from batcher.domain.net import is_loopback
from batcher.domain.windows import Window, parse_window

DEFAULT_CONFIG_FILE = "batcher.toml"

# The `Version` values HighLevel's versioning page lists (API-NOTES.md, "Tags and what a change
# sets off"). The endpoint's own spec lists 2021-07-28 (and v3 in the v3 file): whether it
# accepts 2021-04-15 or 2023-02-21 (the official Node SDK's default) is not documented.
VERSIONS = ("2021-07-28", "2021-04-15", "2023-02-21", "v3")
# What an environment variable's name may look like (POSIX): a value that is not one is
# more likely a token pasted where its variable's name belongs, and is never echoed back.
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class ApiSettings:
    base_url: str = "https://services.leadconnectorhq.com"
    version: str = "2021-07-28"
    token_env: str = "BATCHER_TOKEN"
    # Location id -> the name of the environment variable holding that sub-account's token
    # (`[api.location_tokens]`); locations not listed use the agency exchange, else token_env.
    location_tokens: dict[str, str] = field(default_factory=dict)
    # An agency OAuth token's variable, and the agency's company id: each location's token is
    # obtained from POST /oauth/locationToken (oauth.openapi.json) and kept in memory only.
    agency_token_env: str = ""
    company_id: str = ""
    location_id: str = ""
    timeout_s: float = 30.0
    # The token travels in a header: over plain HTTP anyone on the path reads it. Loopback (the
    # sandbox) is exempt; anything else needs https unless this is set on purpose.
    allow_insecure: bool = False


@dataclass(frozen=True)
class BatchSettings:
    size: int = MAX_CONTACTS_PER_REQUEST


@dataclass(frozen=True)
class LimitSettings:
    # The API's burst limit: 100 requests per 10 s per location (API-NOTES.md, "Rate limits").
    concurrency: int = 8
    requests_per_interval: int = 100
    interval_ms: int = 10_000
    # The API's daily budget per location (API-NOTES.md, "Rate limits"), until
    # X-RateLimit-Limit-Daily says otherwise; `daily_reserve` requests are left for the CRM's
    # other integrations.
    daily_requests: int = 200_000
    daily_reserve: int = 0
    # The drip (SPEC "Drip"): contacts changed per location per hour, 0 = only the API's rate
    # limit; `drip` ("500/15m", `--drip`) says it with another period and wins when set.
    contacts_per_hour: int = 0
    drip: str = ""


@dataclass(frozen=True)
class RetrySettings:
    attempts: int = 6
    initial_backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    # Batches that end `failed` one after another before the run gives up (exit 3).
    max_consecutive_failures: int = 10


@dataclass(frozen=True)
class InputSettings:
    id_pattern: str = r"^[A-Za-z0-9]{20}$"
    # Empty: UTF-8 (with or without BOM), UTF-16 with a BOM, or an 8-bit code page only when
    # the cells sent read the same in every likely one (else the run stops showing them).
    encoding: str = ""
    # HighLevel documents no limit; a longer "tag" is nearly always a wrong cell (a note pasted
    # into the tags column), and the rows carrying one are `invalid` rather than sent.
    max_tag_length: int = 255
    # Bounded input (SPEC "Input"): a cell (KiB of text; Excel's own limit is 32,767
    # characters), a line (KiB: a sheet's row or shared string, its XML) and how many times its
    # own size a compressed file may inflate, a workbook's part included (0: no limit; gzip's
    # best is about 1,030x, a contact list 2-10x).
    max_cell_kb: int = 4096
    max_line_kb: int = 16384
    max_inflate_ratio: int = 100


@dataclass(frozen=True)
class StateSettings:
    dir: str = ".batcher"
    # Finished runs' state files older than this many days are deleted when a run starts.
    keep_days: int = 30


@dataclass(frozen=True)
class RunSettings:
    # The canary and the error-rate breaker (SPEC "Exit status", 3): a run stops when more than
    # this share of the contacts of a location's first request, or of the last `error_window`
    # answered requests, come back `error` (a wrong location or a wrong file). 1 turns both off.
    max_error_rate: float = 0.5
    error_window: int = 20
    # When a run may send: e.g. "Mon-Fri 09:00-17:00 America/New_York" (batcher.domain.windows);
    # empty: any time. Outside it a run waits, or with `until_window_end` (--until-window-end,
    # for cron) stops (exit 3) when nothing more can go before the window's end.
    window: str = ""
    until_window_end: bool = False


# The most values one search may carry: `pageLimit` is documented up to 500 (LOOKUP-NOTES.md,
# from a mirror of HighLevel's docs; UNVERIFIED against the official spec, which documents no body).
MAX_SEARCH_PAGE = 500
# Nothing documents how many filters one search may carry: more than this is not allowed, so
# that a user who raises lookup.emails_per_search stays within one request's page of answers.
MAX_EMAILS_PER_SEARCH = 100


@dataclass(frozen=True)
class LookupSettings:
    # Step 16: the addresses one `POST /contacts/search` asks for, as an OR group of `eq`
    # filters. No limit on the filters of a search is documented (LOOKUP-NOTES.md): 25 keeps a
    # body small (under 2 kB), far from any limit an API gateway is likely to set, and still
    # resolves 250 addresses per second at the burst limit of 100 requests per 10 s.
    emails_per_search: int = 25
    # Contacts per answer (`pageLimit`, at most 500); a full page is followed by the next one
    # (`searchAfter`).
    page_limit: int = MAX_SEARCH_PAGE


@dataclass(frozen=True)
class ServeSettings:
    # The environment variable holding the page's password (at least 16 characters): needed
    # beyond loopback (the page can send to the API with the server's token); when none is
    # named there, `batcher serve` makes one at each start and prints it once.
    password_env: str = ""
    # The largest upload the page accepts, in MiB (1 MiB = 1,048,576 bytes).
    max_upload_mb: int = 200
    # The most the page keeps in uploads at once, in MiB: an upload past it is refused (413);
    # uploads and the page's reports go after state.keep_days.
    max_total_upload_mb: int = 1000
    # A connection must send a whole request line and headers within this many seconds of
    # opening, or of starting the request (nginx's client_header_timeout is 60 s; a browser
    # needs milliseconds).
    header_timeout_s: float = 10.0
    # A request's body may pause this long between two pieces (nginx's client_body_timeout).
    body_timeout_s: float = 60.0
    # A connection with no request in progress is closed after this many seconds (keep-alive).
    idle_timeout_s: float = 60.0
    # Connections one client address may hold at once (a browser opens six per server, and
    # one more for the progress stream); more are refused.
    max_connections_per_client: int = 32


@dataclass(frozen=True)
class Settings:
    api: ApiSettings = field(default_factory=ApiSettings)
    batch: BatchSettings = field(default_factory=BatchSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    input: InputSettings = field(default_factory=InputSettings)
    state: StateSettings = field(default_factory=StateSettings)
    run: RunSettings = field(default_factory=RunSettings)
    serve: ServeSettings = field(default_factory=ServeSettings)
    lookup: LookupSettings = field(default_factory=LookupSettings)
    # Where the tokens are read from (`read_token`): the environment the settings were loaded
    # with (None: `os.environ`), so that a Python caller can hand its own. Not a section; never
    # shown (it holds secrets).
    environ: Mapping[str, str] | None = field(
        default=None, repr=False, compare=False, metadata={"section": False}
    )


def _section_types() -> dict[str, type[Any]]:
    hints = get_type_hints(Settings)
    return {
        f.name: hints[f.name]
        for f in dataclasses.fields(Settings)
        if f.metadata.get("section", True)
    }


def _key_types(section_type: type[Any]) -> dict[str, type[Any]]:
    hints = get_type_hints(section_type)
    return {f.name: hints[f.name] for f in dataclasses.fields(section_type)}


def _coerce(path: str, kind: type[Any], value: object, *, from_text: bool) -> object:
    """Turn a TOML value (or environment text) into the key's type, or name the key and the fix.

    TOML values must have the key's type (an int is accepted where a float is due); environment
    text is parsed. A bool is never taken for a number.
    """
    if kind is str and isinstance(value, str):
        return value
    if kind == dict[str, str]:
        return _variables(path, value, from_text=from_text)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if from_text and isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ConfigError(f"{path}: expected true or false, got {value!r}")
    if kind in (int, float):
        number: object = None
        if from_text and isinstance(value, str):
            with contextlib.suppress(ValueError):
                number = kind(value.strip())
        elif isinstance(value, int if kind is int else int | float) and not isinstance(value, bool):
            number = kind(value)
        if isinstance(number, float) and not math.isfinite(number):
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
        if number is not None:
            return number
    raise ConfigError(f"{path}: expected {kind.__name__}, got {value!r}")


def _variables(path: str, value: object, *, from_text: bool) -> dict[str, str]:
    """`[api.location_tokens]`: location ids to variable names (environment text:
    `LOCATION=VARIABLE,...`). A value that is no variable's name is refused without being
    shown: it may be the token itself."""
    if from_text and isinstance(value, str):
        pairs = [part.partition("=") for part in value.split(",") if part.strip()]
        if any(not sep for _, sep, _ in pairs):
            raise ConfigError(f"{path}: expected LOCATION=VARIABLE, separated by commas")
        value = {key.strip(): name.strip() for key, _, name in pairs}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected a table of location id = variable name")
    for location, name in value.items():
        if not location:
            raise ConfigError(f"{path}: a location id must not be empty")
        if not isinstance(name, str) or _VARIABLE.fullmatch(name) is None:
            raise ConfigError(
                f"{path}.{location}: must be the NAME of an environment variable (letters, "
                "digits, _), never the token itself; export the token in that variable"
            )
    return dict(value)


def _check(settings: Settings) -> None:
    """Range checks that the types alone do not express."""

    def need(ok: bool, path: str, what: str) -> None:
        if not ok:
            raise ConfigError(f"{path}: {what}")

    need(
        1 <= settings.batch.size <= MAX_CONTACTS_PER_REQUEST,
        "batch.size",
        f"must be between 1 and {MAX_CONTACTS_PER_REQUEST} (the API's limit per request)",
    )
    need(settings.limits.concurrency >= 1, "limits.concurrency", "must be at least 1")
    need(
        settings.limits.requests_per_interval >= 1,
        "limits.requests_per_interval",
        "must be at least 1",
    )
    need(settings.limits.interval_ms >= 1, "limits.interval_ms", "must be at least 1")
    need(settings.retry.attempts >= 1, "retry.attempts", "must be at least 1")
    need(settings.retry.initial_backoff_s >= 0, "retry.initial_backoff_s", "must be >= 0")
    need(
        settings.retry.max_backoff_s >= settings.retry.initial_backoff_s,
        "retry.max_backoff_s",
        "must be >= retry.initial_backoff_s",
    )
    need(
        settings.retry.max_consecutive_failures >= 1,
        "retry.max_consecutive_failures",
        "must be at least 1",
    )
    need(0 < settings.api.timeout_s <= 3600, "api.timeout_s", "must be between 0 and 3600 seconds")
    need(
        settings.api.base_url.startswith(("http://", "https://")),
        "api.base_url",
        "must start with http:// or https://",
    )
    need(
        settings.api.base_url.startswith("https://")
        or is_loopback(urlsplit(settings.api.base_url).hostname or "")
        or settings.api.allow_insecure,
        "api.base_url",
        f"{settings.api.base_url} is plain http to another machine: the token would travel in "
        "clear; use https (or set api.allow_insecure = true if you really mean it)",
    )
    need(settings.limits.daily_requests >= 1, "limits.daily_requests", "must be at least 1")
    need(
        0 <= settings.limits.daily_reserve < settings.limits.daily_requests,
        "limits.daily_reserve",
        "must be at least 0 and below limits.daily_requests",
    )
    need(settings.input.max_tag_length >= 1, "input.max_tag_length", "must be at least 1")
    need(settings.input.max_cell_kb >= 1, "input.max_cell_kb", "must be at least 1")
    need(
        settings.input.max_line_kb >= settings.input.max_cell_kb,
        "input.max_line_kb",
        "must be at least input.max_cell_kb",
    )
    need(settings.input.max_inflate_ratio >= 0, "input.max_inflate_ratio", "must be at least 0")
    need(
        0 <= settings.run.max_error_rate <= 1,
        "run.max_error_rate",
        "must be between 0 and 1 (1 turns the canary and the error-rate breaker off)",
    )
    need(settings.run.error_window >= 1, "run.error_window", "must be at least 1")
    need(
        1 <= settings.lookup.emails_per_search <= MAX_EMAILS_PER_SEARCH,
        "lookup.emails_per_search",
        f"must be between 1 and {MAX_EMAILS_PER_SEARCH}",
    )
    need(
        1 <= settings.lookup.page_limit <= MAX_SEARCH_PAGE,
        "lookup.page_limit",
        f"must be between 1 and {MAX_SEARCH_PAGE} (the documented pageLimit)",
    )
    need(settings.limits.contacts_per_hour >= 0, "limits.contacts_per_hour", "must be at least 0")
    for path, parse in (("limits.drip", drip_of), ("run.window", window_of)):
        try:
            parse(settings)
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    need(
        window_of(settings) is not None or not settings.run.until_window_end,
        "run.until_window_end",
        "needs a send window (run.window)",
    )
    need(settings.state.keep_days >= 0, "state.keep_days", "must be at least 0")
    need(settings.serve.max_upload_mb >= 1, "serve.max_upload_mb", "must be at least 1")
    need(
        settings.serve.max_total_upload_mb >= settings.serve.max_upload_mb,
        "serve.max_total_upload_mb",
        "must be at least serve.max_upload_mb",
    )
    for key in ("header_timeout_s", "body_timeout_s", "idle_timeout_s"):
        need(
            0 < getattr(settings.serve, key) <= 3600,
            f"serve.{key}",
            "must be above 0, at most 3600",
        )
    need(
        settings.serve.max_connections_per_client >= 1,
        "serve.max_connections_per_client",
        "must be at least 1",
    )
    need(
        settings.api.version in VERSIONS,
        "api.version",
        "must be one of " + ", ".join(f'"{v}"' for v in VERSIONS),
    )
    need(bool(settings.api.token_env), "api.token_env", "must name an environment variable")
    for key in ("token_env", "agency_token_env"):
        name = getattr(settings.api, key)
        need(
            not name or _VARIABLE.fullmatch(name) is not None,
            f"api.{key}",
            "must be the NAME of an environment variable (letters, digits, _), never a token",
        )
    need(
        bool(settings.api.agency_token_env) == bool(settings.api.company_id),
        "api.company_id" if settings.api.agency_token_env else "api.agency_token_env",
        "api.agency_token_env and api.company_id go together (the agency's token, and its "
        "company id for POST /oauth/locationToken)",
    )
    need(bool(settings.state.dir), "state.dir", "must not be empty")
    try:
        re.compile(settings.input.id_pattern)
    except re.error as exc:
        raise ConfigError(f"input.id_pattern: not a valid regular expression ({exc})") from None
    if settings.input.encoding:
        try:
            "".encode(settings.input.encoding)
        except LookupError:
            raise ConfigError(
                f"input.encoding: unknown encoding {settings.input.encoding!r}"
            ) from None


def drip_of(settings: Settings) -> Drip | None:
    """The run's drip: `limits.drip`, else `limits.contacts_per_hour`; None when neither is set."""
    limits = settings.limits
    if limits.drip:
        return parse_drip(limits.drip)
    return Drip(limits.contacts_per_hour, 3600) if limits.contacts_per_hour else None


def window_of(settings: Settings) -> Window | None:
    """The run's send window (`run.window`); None: any time."""
    return parse_window(settings.run.window) if settings.run.window.strip() else None


def read_config_file(path: Path) -> dict[str, Any]:
    """The TOML document of `path`: UTF-8, a BOM tolerated (Windows editors write one)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start + 1}, line {line}); save it as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def config_path(config_file: Path | None) -> Path | None:
    """The file settings come from: the one given, else `./batcher.toml` if present."""
    if config_file is not None:
        return config_file
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def settings_from(
    data: Mapping[str, Any],
    environ: Mapping[str, str],
    overrides: Mapping[str, object] | None = None,
) -> Settings:
    """The one Settings object of a run: defaults, then `data` (a config file's TOML document),
    then BATCHER_* variables of `environ`, then `overrides` (key paths such as "api.base_url"
    to values from command-line options; None values are ignored). Sections other than
    batcher's own (e.g. `[sandbox]`) are left to their readers."""
    sections = _section_types()
    values: dict[str, dict[str, object]] = {name: {} for name in sections}
    _from_file(data, sections, values)
    _from_environment(environ, sections, values)
    _from_overrides(overrides or {}, sections, values)
    settings = Settings(
        **{name: sections[name](**values[name]) for name in sections}, environ=environ
    )
    _check(settings)
    return settings


def overridden(settings: Settings, overrides: Mapping[str, object]) -> Settings:
    """`settings` with `overrides` (key paths to values, None ignored) applied and checked,
    as `settings_from` applies them."""
    sections = _section_types()
    values: dict[str, dict[str, object]] = {name: {} for name in sections}
    _from_overrides(overrides, sections, values)
    changed = dataclasses.replace(
        settings,
        **{
            name: dataclasses.replace(getattr(settings, name), **values[name])
            for name in sections
            if values[name]
        },
    )
    _check(changed)
    return changed


def _from_overrides(
    overrides: Mapping[str, object],
    sections: Mapping[str, type[Any]],
    values: dict[str, dict[str, object]],
) -> None:
    for path, value in overrides.items():
        if value is None:
            continue
        name, _, key = str(path).partition(".")
        keys = _key_types(sections[name]) if name in sections else {}
        if key not in keys:
            known = ", ".join(
                f"{section}.{k}" for section in sections for k in _key_types(sections[section])
            )
            raise ConfigError(
                f"{path}: unknown setting (give a key path such as api.base_url; known: {known})"
            )
        values[name][key] = _coerce(path, keys[key], value, from_text=False)


def _from_file(
    data: Mapping[str, Any],
    sections: Mapping[str, type[Any]],
    values: dict[str, dict[str, object]],
) -> None:
    for name, content in data.items():
        if name == "sandbox":  # read by batcher.sandbox, which keeps its own settings
            continue
        if name not in sections:
            raise ConfigError(f"{name}: unknown section (known: {', '.join(sections)})")
        if not isinstance(content, dict):
            raise ConfigError(f"{name}: expected a [{name}] table")
        keys = _key_types(sections[name])
        for key, value in content.items():
            if key not in keys:
                raise ConfigError(f"{name}.{key}: unknown key (known: {', '.join(keys)})")
            values[name][key] = _coerce(f"{name}.{key}", keys[key], value, from_text=False)


def _from_environment(
    environ: Mapping[str, str],
    sections: Mapping[str, type[Any]],
    values: dict[str, dict[str, object]],
) -> None:
    for name, section_type in sections.items():
        for key, kind in _key_types(section_type).items():
            var = f"BATCHER_{name}_{key}".upper()
            if var in environ:
                values[name][key] = _coerce(
                    f"{name}.{key} (from ${var})", kind, environ[var], from_text=True
                )


def read_token(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    """The bearer token from the environment (`environ`, else the one the settings were loaded
    with, else `os.environ`); the error names the variable, never a value."""
    if environ is None:
        environ = settings.environ
    env = os.environ if environ is None else environ
    token = env.get(settings.api.token_env, "").strip()
    if not token:
        raise ConfigError(
            f"api.token_env: environment variable {settings.api.token_env} is not set; "
            "export the API token there (or use --sandbox)"
        )
    return token


__all__ = [
    "VERSIONS",
    "Settings",
    "config_path",
    "drip_of",
    "overridden",
    "read_config_file",
    "read_token",
    "settings_from",
    "window_of",
]
