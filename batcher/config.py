"""Settings: defaults, then the TOML file, then BATCHER_* environment variables, then options.

Every key lives at a path `section.key` (as in `config.example.toml`); its environment variable is
`BATCHER_<SECTION>_<KEY>` in capitals, e.g. `BATCHER_LIMITS_CONCURRENCY`. A wrong key or value
raises ConfigError naming that path. The token itself is never a setting: only the *name* of the
environment variable that holds it is (`api.token_env`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from batcher.errors import ConfigError
from batcher.models import MAX_CONTACTS_PER_REQUEST

DEFAULT_CONFIG_FILE = "batcher.toml"


@dataclass(frozen=True)
class ApiSettings:
    base_url: str = "https://services.leadconnectorhq.com"
    version: str = "2021-07-28"
    token_env: str = "BATCHER_TOKEN"
    location_id: str = ""
    timeout_s: float = 30.0


@dataclass(frozen=True)
class BatchSettings:
    size: int = MAX_CONTACTS_PER_REQUEST


@dataclass(frozen=True)
class LimitSettings:
    # The API's burst limit: 100 requests per 10 s per location (API-NOTES.md, "Rate limits").
    concurrency: int = 8
    requests_per_interval: int = 100
    interval_ms: int = 10_000


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
    # Empty: UTF-8 (with or without BOM), falling back to cp1252 where a file is not UTF-8.
    encoding: str = ""


@dataclass(frozen=True)
class StateSettings:
    dir: str = ".batcher"


@dataclass(frozen=True)
class Settings:
    api: ApiSettings = field(default_factory=ApiSettings)
    batch: BatchSettings = field(default_factory=BatchSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    input: InputSettings = field(default_factory=InputSettings)
    state: StateSettings = field(default_factory=StateSettings)


def _section_types() -> dict[str, type[Any]]:
    hints = get_type_hints(Settings)
    return {f.name: hints[f.name] for f in dataclasses.fields(Settings)}


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
    if kind in (int, float):
        if from_text and isinstance(value, str):
            try:
                return kind(value.strip())
            except ValueError:
                pass
        elif isinstance(value, int if kind is int else int | float) and not isinstance(value, bool):
            return kind(value)
    raise ConfigError(f"{path}: expected {kind.__name__}, got {value!r}")


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
    need(settings.api.timeout_s > 0, "api.timeout_s", "must be greater than 0")
    need(
        settings.api.base_url.startswith(("http://", "https://")),
        "api.base_url",
        "must start with http:// or https://",
    )
    need(
        settings.api.version in ("2021-07-28", "v3"), "api.version", 'must be "2021-07-28" or "v3"'
    )
    need(bool(settings.api.token_env), "api.token_env", "must name an environment variable")
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


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None


def load_settings(
    config_file: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Settings:
    """Build the one Settings object of a run.

    `config_file` None means `./batcher.toml` if it exists. `overrides` maps key paths such as
    "api.base_url" to values from command-line options (None values are ignored).
    Sections other than batcher's own (e.g. `[sandbox]`) are left to their readers.
    """
    env = os.environ if environ is None else environ
    if config_file is None:
        default = Path(DEFAULT_CONFIG_FILE)
        data = read_config_file(default) if default.is_file() else {}
    else:
        data = read_config_file(config_file)

    sections = _section_types()
    values: dict[str, dict[str, object]] = {name: {} for name in sections}
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

    for name, section_type in sections.items():
        for key, kind in _key_types(section_type).items():
            var = f"BATCHER_{name}_{key}".upper()
            if var in env:
                values[name][key] = _coerce(
                    f"{name}.{key} (from ${var})", kind, env[var], from_text=True
                )

    for path, value in (overrides or {}).items():
        if value is None:
            continue
        name, _, key = path.partition(".")
        kind = _key_types(sections[name])[key]
        values[name][key] = _coerce(path, kind, value, from_text=False)

    settings = Settings(**{name: sections[name](**values[name]) for name in sections})
    _check(settings)
    return settings


def read_token(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    """The bearer token from the environment; the error names the variable, never a value."""
    env = os.environ if environ is None else environ
    token = env.get(settings.api.token_env, "").strip()
    if not token:
        raise ConfigError(
            f"api.token_env: environment variable {settings.api.token_env} is not set; "
            "export the API token there (or use --sandbox)"
        )
    return token


__all__ = ["Settings", "load_settings", "read_token"]
