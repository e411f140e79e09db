"""A run's identity, worked out in one place: its key, its target, its state file.

A run is the input's content, the operation asked and where it goes: same all → same run (SPEC
"Runs and resuming"). The runner, `status`, `undo` and the page all find a run through
`identify`; the state file's name is the state directory's (`batcher.state.run_file`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from batcher.app.jobs import Job
from batcher.domain.config import Settings
from batcher.loading import InputOptions
from batcher.state import run_file

__all__ = ["RunIdentity", "identify", "run_target"]


@dataclass(frozen=True)
class RunIdentity:
    """Which run a job means: `key` names it, `target` is where its requests go (the API's
    base URL, or "sandbox")."""

    key: str
    target: str

    def state_file(self, state_dir: Path) -> Path:
        """Where the run keeps its state (finished or not)."""
        return run_file(state_dir, self.key)


def run_target(settings: Settings, job: Job) -> str:
    """Where a job's requests go, as part of its run's identity."""
    return "sandbox" if job.sandbox is not None else settings.api.base_url.rstrip("/")


def identify(settings: Settings, job: Job, options: InputOptions) -> RunIdentity:
    """The run of `job`, reading its input with `options` (`batcher.app.jobs.input_options`).

    The target (API base URL, or the sandbox) is part of it so that rows settled against the
    sandbox are never taken as settled against the real service; so is the shard, so that two
    shards (or a shard and a whole run) never share a run; and, for an undo, the run it takes
    back, so that an undo of each run is its own run.
    """
    target = run_target(settings, job)
    digest = hashlib.sha256()
    with job.input_path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    operation = asdict(options)
    operation.pop("chunk_rows", None)
    operation.pop("caps", None)  # how much is read before refusing: the same rows either way
    for named in ("email_column", "tags_column", "action_column", "location_column"):
        if operation.get(named) is None:
            # Not named (detected, or none): the key of a run started before the option was
            # there (Step 16's email column, the mapped columns) stays its key.
            operation.pop(named, None)
    operation["target"] = target
    if job.shard is not None:
        operation["shard"] = str(job.shard)
    if job.undoes is not None:
        operation["undoes"] = job.undoes
    digest.update(json.dumps(operation, sort_keys=True, default=str).encode())
    return RunIdentity(digest.hexdigest()[:20], target)
