"""What the send stage did (`Sent`): what a run's result is assembled from, and a plan's too
(which sends nothing). Apart from the stage itself, so that a plan does not import the HTTP
client: aiohttp and its TLS context are a fifth of a second of a plan's start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from batcher.domain.errors import BatcherError
from batcher.sending.stops import (
    credentials_refused,
    quota_message,
    quota_reached,
    window_message,
    window_reached,
)
from batcher.support.stopping import Stop

__all__ = ["Sent"]


@dataclass(frozen=True)
class Sent:
    """What sending did: requests made, retried, refused with 429; the error that stopped it
    (a breaker, a credential every location shares refused, the state file), the locations
    whose daily quota was reached or that the send window stopped, with why, and those whose
    own credential was refused, with that credential's name and their rows' message (their
    rows stay pending)."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    stopped: BatcherError | None = None
    quota: Mapping[str, str] = field(default_factory=dict)
    refused: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    windowed: Mapping[str, str] = field(default_factory=dict)

    def outcome(self, stop: Stop) -> tuple[BatcherError | None, dict[str, str]]:
        """Why the run stopped, if it did (this stage's error, else a stop asked for, else a
        refused credential, else the daily quota, else the send window), and the pending
        message of each location stopped by its credential, its quota or the window."""
        stopped = self.stopped
        if stop.requested and stopped is None:
            stopped = stop.error()
        if self.refused and stopped is None:
            stopped = credentials_refused({k: label for k, (label, _) in self.refused.items()})
        if self.quota and stopped is None:
            stopped = quota_reached(self.quota)
        if self.windowed and stopped is None:
            stopped = window_reached(self.windowed)
        pending = {location: window_message(why) for location, why in self.windowed.items()}
        pending.update({location: quota_message(why) for location, why in self.quota.items()})
        pending.update({location: message for location, (_, message) in self.refused.items()})
        return stopped, pending
