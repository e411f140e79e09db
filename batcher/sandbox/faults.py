"""Deciding which requests fail, and how, reproducibly.

Every request draws its fate from one `random.Random(seed)` as it arrives, before its handler first
yields, and always the same three numbers: the same seed and the same arrival order give the same
faults, whatever the requests contain. Whether the fate is used depends on the request: only
requests that pass every check (authorised, within limits, valid, allowed location) can fail with
a fault; latency is added to every answer. The first `fail_first` such requests fail whatever
they drew.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from batcher.sandbox.config import FaultConfig

# A random server error is one of these (API-NOTES.md: 5xx are retried by the client).
ERROR_STATUSES = (500, 502, 503)


class Fault(StrEnum):
    NONE = "none"
    ERROR = "error"  # a 5xx answer, change not applied
    FAIL_FIRST = "fail_first"  # one of the first N valid requests, change not applied
    DROP_BEFORE = "drop_before"  # connection closed before the change is applied
    DROP_AFTER = "drop_after"  # connection closed after the change is applied
    SLOW = "slow"  # no answer until the sandbox stops
    MALFORMED = "malformed"  # change applied, 201 with a truncated JSON body


@dataclass(frozen=True, slots=True)
class Fate:
    latency_s: float
    fault: Fault
    error_status: int


class FaultPlan:
    """The seeded source of fates, and the count of requests that reached the fault stage."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self._random = random.Random(config.seed)
        self._reached = 0
        # Consecutive shares of [0, 1): a roll below the first bound is an error, and so on.
        bounds: list[tuple[float, Fault]] = []
        total = 0.0
        for fault, share in (
            (Fault.ERROR, config.error_rate),
            (Fault.DROP_BEFORE, config.drop_before),
            (Fault.DROP_AFTER, config.drop_after),
            (Fault.SLOW, config.slow),
            (Fault.MALFORMED, config.malformed),
        ):
            total += share
            bounds.append((total, fault))
        self._bounds = bounds

    def draw(self) -> Fate:
        """The next arriving request's fate (call once per request, before any await)."""
        low, high = self.config.latency_ms
        latency_s = self._random.uniform(low, high) / 1000
        roll = self._random.random()
        status = self._random.choice(ERROR_STATUSES)
        fault = next((f for bound, f in self._bounds if roll < bound), Fault.NONE)
        return Fate(latency_s, fault, status)

    def settle(self, fate: Fate) -> Fate:
        """The fate of a request that passed every check: fail-first overrides the draw."""
        self._reached += 1
        if self._reached <= self.config.fail_first:
            return Fate(fate.latency_s, Fault.FAIL_FIRST, self.config.fail_first_status)
        return fate
