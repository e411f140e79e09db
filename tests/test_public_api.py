"""The public API (`import batcher`) is pinned: what the CLI, the page and a Python caller use."""

from __future__ import annotations

import batcher


def test_the_public_names_are_exactly_these() -> None:
    """`batcher.__all__` names the documented API, no more and no less, and each resolves."""
    assert batcher.__all__ == [
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
    for name in batcher.__all__:
        assert getattr(batcher, name) is not None, name
