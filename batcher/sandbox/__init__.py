"""A strict local emulator of the bulk contact-tags endpoint, for tests, demos and benchmarks.

It is the judge, not a friend of the client: it imports nothing from `batcher` outside this
package and follows only the reference (shared/reference/). `Sandbox` runs it on loopback inside a
program; `serve` runs it until cancelled (the `batcher sandbox` command); `config_from_options`
and `load_config` build its SandboxConfig from CLI option strings and TOML.

Out of the box it accepts two locations: DEFAULT_LOCATION (`SandboxConfig.default_location`, for
rows that name none) and EXAMPLE_LOCATION, the one in the API documentation's own example. It
only listens on loopback unless `allow_public` is set, and then warns (`warn`, `public_warning`).
"""

from typing import TYPE_CHECKING, Any

from batcher.sandbox.config import (
    DEFAULT_LOCATION,
    DEFAULT_TOKEN,
    EXAMPLE_LOCATION,
    FaultConfig,
    RateConfig,
    SandboxConfig,
    config_from_options,
    is_loopback,
    load_config,
    parse_faults,
    parse_rate,
)
from batcher.sandbox.faults import Fault
from batcher.sandbox.stats import AppliedRequest, SandboxStats
from batcher.sandbox.universe import TagUpdate, Universe

__all__ = [
    "DEFAULT_LOCATION",
    "DEFAULT_TOKEN",
    "EXAMPLE_LOCATION",
    "AppliedRequest",
    "Fault",
    "FaultConfig",
    "RateConfig",
    "Sandbox",
    "SandboxConfig",
    "SandboxStats",
    "TagUpdate",
    "Universe",
    "config_from_options",
    "is_loopback",
    "load_config",
    "parse_faults",
    "parse_rate",
    "public_warning",
    "serve",
]

if TYPE_CHECKING:
    from batcher.sandbox.app import Sandbox, public_warning, serve

# The server (aiohttp's web framework) is imported when it is asked for: a command that only
# reads the sandbox's settings (every `batcher plan`, through the run's job) starts without it.
_SERVER = frozenset({"Sandbox", "public_warning", "serve"})


def __getattr__(name: str) -> Any:
    if name in _SERVER:
        from batcher.sandbox import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
