"""Loading the settings of a run (SPEC "Configuration"): the config file, trusted first."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from batcher.domain.config import Settings, config_path, read_config_file, settings_from
from batcher.domain.errors import ConfigError, UsageError
from batcher.support.files import check_trusted

__all__ = ["load_settings"]


def _ignore(message: str) -> None:
    """The default `warn`: a library caller that passes none hears nothing."""


def load_settings(
    config_file: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
    warn: Callable[[str], None] = _ignore,
) -> Settings:
    """Build the one Settings object of a run.

    `config_file` None means `./batcher.toml` if it exists. `overrides` maps key paths such as
    "api.base_url" to values from command-line options (None values are ignored); an unknown
    one is a ConfigError naming it and the known ones. `environ` (default `os.environ`) gives
    the BATCHER_* variables and the token (`api.token_env`): a script can hand its own.
    Sections other than batcher's own (e.g. `[sandbox]`) are left to their readers.
    A config file that others may write is refused (it decides where the token goes);
    `warn` hears about one that its group may write.
    """
    source = config_path(None if config_file is None else Path(config_file))
    data: dict[str, Any] = {}
    if source is not None:
        try:
            check_trusted(source, "config file", warn)
        except UsageError as exc:
            raise ConfigError(str(exc)) from None
        data = read_config_file(source)
    return settings_from(data, os.environ if environ is None else environ, overrides)
