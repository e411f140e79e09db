"""A script using batcher as a downstream project would: type-checked with `mypy --strict` by
tests/test_typed.py against the installed package (its `py.typed`), never run."""

from __future__ import annotations

import batcher


def tag_new_customers(rows: list[dict[str, str]], token: str) -> dict[str, int]:
    """Tag the rows' contacts `customer`; the rows by status."""
    results: batcher.Results = batcher.apply(
        rows, action="add", tags=["customer"], location_id="asdrwHvLUxlfw5SqKVCN", token=token
    )
    failed: list[str] = [str(row["contact_id"]) for row in results if row["status"] == "failed"]
    if results.stopped is not None:
        reason: batcher.BatcherError = results.stopped
        print(f"stopped: {reason} (exit {reason.exit_code})")
    for contact in failed:
        print("failed:", contact)
    counts: dict[str, int] = dict(results.counts)
    code: int = results.exit_code
    print(code)
    return counts


def preview(rows: list[dict[str, str]]) -> int:
    """The requests a run of the rows would make."""
    planned = batcher.plan(rows, action="remove", tags="lead")
    return planned.run.plan.requests


def take_back(results: batcher.Results) -> int:
    """Undo a run; how many of its rows were undone."""
    undone = batcher.undo(results, uncertain="leave")
    return undone.counts["success"]


async def from_async_code(rows: list[dict[str, str]]) -> batcher.Results:
    """The same from a running event loop."""
    return await batcher.apply_async(rows, action="add", tags="vip", sandbox=True)


def settings_with_a_token(token: str) -> batcher.Settings:
    """Settings whose token comes from a mapping, not the process's environment."""
    return batcher.load_settings(environ={"BATCHER_TOKEN": token})
