"""The emulator as the faces start it (`batcher sandbox`, and a run's `--sandbox`): the one
module above `batcher.sandbox` that imports it, so that the sandbox stays a judge that shares
nothing with the client but the spec."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from batcher.domain.config import config_path
from batcher.domain.errors import ConfigError, UsageError
from batcher.sandbox import SandboxConfig, config_from_options, load_config

if TYPE_CHECKING:
    from batcher.sandbox import Sandbox

__all__ = [
    "SANDBOX_FIXTURE_NAME",
    "SandboxConfig",
    "embedded",
    "emulator_config",
    "sandbox_config",
    "serve_emulator",
    "serve_fixture",
]

SANDBOX_FIXTURE_NAME = "sandbox-fixture.json"


def sandbox_config(
    config_file: Path | None, input_path: Path, *, fixture: Path | None = None
) -> SandboxConfig:
    """The embedded emulator of a run: the config's [sandbox] table, and the input's fixture.

    The fixture: `fixture` when given (`serve --fixture`, or the one `serve_fixture` found), else
    the config's `[sandbox] fixture`, else a `sandbox-fixture.json` beside the input (as in
    samples/). It gives the contacts their state, so the demo shows every kind of outcome;
    without one every well-formed id exists, untagged.
    """
    source = config_path(config_file)
    try:
        config = load_config(source) if source is not None else SandboxConfig()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if fixture is not None:
        return dataclasses.replace(config, fixture=fixture)
    beside = input_path.parent / SANDBOX_FIXTURE_NAME
    if config.fixture is None and beside.is_file():
        config = dataclasses.replace(config, fixture=beside)
    return config


def serve_fixture(
    config_file: Path | None, given: Path | None, folder: Path | None = None
) -> Path | None:
    """The fixture of the page's sandbox (`serve --sandbox`), whose uploads live in the state
    directory, away from the folder they came from: `given` (`--fixture`, which must exist),
    else the config's `[sandbox] fixture` (None here: `sandbox_config` reads it), else a
    `sandbox-fixture.json` in `folder` (the working directory) or in its `samples/` (serving
    from the repository: the samples' own, so the page shows the CLI's counts for them)."""
    if given is not None:
        if not given.is_file():
            raise UsageError(f"--fixture {given}: no such file; give the sandbox's fixture (JSON)")
        return given
    source = config_path(config_file)
    try:
        if source is not None and load_config(source).fixture is not None:
            return None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    here = Path.cwd() if folder is None else folder
    for candidate in (here / SANDBOX_FIXTURE_NAME, here / "samples" / SANDBOX_FIXTURE_NAME):
        if candidate.is_file():
            return candidate
    return None


def emulator_config(
    *,
    config_file: Path | None,
    port: int | None,
    token: str | None,
    rate: str | None,
    faults: str | None,
    fixture: Path | None,
    public: bool | None,
) -> SandboxConfig:
    """What `batcher sandbox` serves: its options (None: not given) over the config's
    [sandbox] table; UsageError (exit 2) for a wrong one."""
    try:
        return config_from_options(
            config_file=config_file,
            port=port,
            token=token,
            rate=rate,
            faults=faults,
            fixture=fixture,
            public=public,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def embedded(config: SandboxConfig) -> Sandbox:
    """The emulator inside this process, as a run's `--sandbox` starts it (an async context)."""
    # The server is imported when one is started (see `batcher.sandbox`), here and below.
    from batcher.sandbox import Sandbox

    return Sandbox(config)


async def serve_emulator(
    config: SandboxConfig, announce: Callable[[str], None], *, warn: Callable[[str], None]
) -> None:
    """Serve the emulator until cancelled; `announce(url)` once it listens."""
    from batcher.sandbox import serve

    await serve(config, announce, warn=warn)
