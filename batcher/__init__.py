"""batcher: apply tag changes to large CRM contact lists through the bulk contact-tags API.

The Python API (README "From Python"; SPEC "The Python API"). Rows in memory:

    import batcher

    results = batcher.apply(rows, action="add", tags=["vip"], location_id="...", token=token)
    for row in results:                         # one mapping per row, in order: the report's
        print(row["status"], row["tags_added"])  # fields, then the row's own columns
    results.counts, results.stopped, results.exit_code
    batcher.plan(rows, ...)                     # nothing sent; batcher.undo(results) takes it back

(`apply_async`, `plan_async`, `undo_async` from a running event loop.) Files, as the CLI runs
them (what `batcher run`/`plan` and the web page call):

    settings = batcher.load_settings()          # ./batcher.toml if present, BATCHER_* variables
    job = batcher.build_job(settings, "contacts.csv", action="add", tags=["vip", "newsletter"],
                            report_path="contacts-report.csv")   # the CLI's defaults
    stop = batcher.Stop()                       # stop.request("why"): the graceful stop
    result = asyncio.run(batcher.execute(settings, job, on_progress=print, stop=stop))
    print(result.counts, result.exit_code)      # execute(..., dry_run=True): the plan only

Every refusal is a `batcher.BatcherError` with a one-line message and its `exit_code` (wrong
arguments: `batcher.UsageError` and its subclasses); `batcher.runs_in(state_dir)` lists the runs
kept in a state directory. The names are imported on first use, so that `import batcher` stays
quick (the CLI installs its signal handlers first).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the module that defines it
_API = {
    "BatcherError": "batcher.domain.errors",
    "ConfigError": "batcher.domain.errors",
    "InputError": "batcher.domain.errors",
    "Job": "batcher.app.jobs",
    "Preview": "batcher.app.result",
    "RunInfo": "batcher.state",
    "Results": "batcher.app.api",
    "RunResult": "batcher.app.result",
    "Settings": "batcher.domain.config",
    "StateLockedError": "batcher.domain.errors",
    "Status": "batcher.domain.models",
    "Stop": "batcher.support.stopping",
    "UsageError": "batcher.domain.errors",
    "apply": "batcher.app.api",
    "apply_async": "batcher.app.api",
    "build_job": "batcher.app.jobs",
    "execute": "batcher.app.execute",
    "load_settings": "batcher.app.settings",
    "plan": "batcher.app.api",
    "plan_async": "batcher.app.api",
    "runs_in": "batcher.state",
    "undo": "batcher.app.api",
    "undo_async": "batcher.app.api",
}

__all__ = [
    "BatcherError",
    "ConfigError",
    "InputError",
    "Job",
    "Preview",
    "Results",
    "RunInfo",
    "RunResult",
    "Settings",
    "StateLockedError",
    "Status",
    "Stop",
    "UsageError",
    "__version__",
    "apply",
    "apply_async",
    "build_job",
    "execute",
    "load_settings",
    "plan",
    "plan_async",
    "runs_in",
    "undo",
    "undo_async",
]

if TYPE_CHECKING:
    from batcher.app.api import Results, apply, apply_async, plan, plan_async, undo, undo_async
    from batcher.app.execute import execute
    from batcher.app.jobs import Job, build_job
    from batcher.app.result import Preview, RunResult
    from batcher.app.settings import load_settings
    from batcher.domain.config import Settings
    from batcher.domain.errors import (
        BatcherError,
        ConfigError,
        InputError,
        StateLockedError,
        UsageError,
    )
    from batcher.domain.models import Status
    from batcher.state import RunInfo, runs_in
    from batcher.support.stopping import Stop


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'batcher' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
