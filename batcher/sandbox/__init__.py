"""A strict local emulator of the bulk contact-tags endpoint, for tests, demos and benchmarks.

It is the judge, not a friend of the client: it imports nothing from `batcher` outside this
package and follows only the reference (shared/reference/). `Sandbox` runs it on loopback inside a
program; `serve` runs it until cancelled (the `batcher sandbox` command); `config_from_options`
and `load_config` build its SandboxConfig from CLI option strings and TOML.
"""

from batcher.sandbox.app import Sandbox, serve
from batcher.sandbox.config import (
    DEFAULT_LOCATION,
    DEFAULT_TOKEN,
    FaultConfig,
    RateConfig,
    SandboxConfig,
    config_from_options,
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
    "load_config",
    "parse_faults",
    "parse_rate",
    "serve",
]
