"""The confirm stage: what is about to be sent, shown to the caller, who may decline."""

from __future__ import annotations

from collections.abc import Callable

from batcher.app.credentials import LocationCredential
from batcher.app.result import Preview
from batcher.app.stages.plan import Planned
from batcher.app.stages.prepare import Prepared
from batcher.domain.errors import UsageError

__all__ = ["confirm", "preview"]


def preview(
    prepared: Prepared, planned: Planned, credentials: tuple[LocationCredential, ...] = ()
) -> Preview:
    """What the run is about to send, and with which credentials."""
    return Preview(
        prepared.operation,
        planned.rows,
        planned.stats.requests,
        planned.locations,
        prepared.target_line,
        planned.least_seconds,
        prepared.reading,
        planned.operations,
        planned.operation_count,
        credentials,
        schedule=planned.schedule,
    )


def confirm(ask: Callable[[Preview], bool] | None, shown: Preview) -> None:
    """UsageError (nothing sent) when `ask`, shown what is about to be sent, declines."""
    if ask is not None and not ask(shown):
        raise UsageError("not confirmed: nothing was sent")
