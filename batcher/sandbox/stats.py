"""What the sandbox saw, for tests and benchmarks to assert on (Python, or GET /_sandbox/stats)."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from batcher.sandbox.universe import TagUpdate


@dataclass(frozen=True, slots=True)
class AppliedRequest:
    """A request whose change was applied: answered 201 (well-formed or not) or dropped after."""

    version: str
    update: TagUpdate
    # The JSON body as the client sent it (parsed), for checks against the published schema.
    body: object


@dataclass
class SandboxStats:
    """Counters, updated in place while the sandbox runs."""

    total_requests: int = 0
    # Requests to POST /oauth/locationToken (also counted in by_status).
    exchange_requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    # Injected faults by kind (faults.Fault values); drops and slow answers have no status.
    faults: Counter[str] = field(default_factory=Counter)
    # In arrival order; empty when the config says record_requests = false.
    applied: list[AppliedRequest] = field(default_factory=list)
    # Per contact: how many updates actually changed its tags (a retried add changes nothing).
    changes: Counter[str] = field(default_factory=Counter)
    # Per contact: how many of those changes were made by a request whose answer the client
    # never read (dropped after applying, or a truncated 201): what a report cannot show.
    lost_changes: Counter[str] = field(default_factory=Counter)
    # Per rate-limit bucket: the most requests ever counted in one window (never above max).
    max_window: dict[str, int] = field(default_factory=dict)
    # Bulk requests being answered now, and the most ever at once.
    in_flight: int = 0
    max_in_flight: int = 0
    # Step 16: searches received (`POST /contacts/search`), and those answered 200.
    searches: int = 0
    searches_answered: int = 0
    # Per location: the most contacts whose tags applied requests changed within any one hour
    # of the sandbox's wall clock (sliding: every hour, not only clock hours), for the drip.
    max_contacts_per_hour: dict[str, int] = field(default_factory=dict)
    _hour: dict[str, deque[tuple[float, int]]] = field(default_factory=dict, repr=False)
    _hour_total: Counter[str] = field(default_factory=Counter, repr=False)

    def note_contacts(self, location_id: str, contacts: int, at: float) -> None:
        """An applied request of `contacts` for `location_id` at `at` (epoch seconds)."""
        recent = self._hour.setdefault(location_id, deque())
        recent.append((at, contacts))
        self._hour_total[location_id] += contacts
        while recent[0][0] <= at - 3600:
            self._hour_total[location_id] -= recent.popleft()[1]
        total = self._hour_total[location_id]
        if total > self.max_contacts_per_hour.get(location_id, 0):
            self.max_contacts_per_hour[location_id] = total

    def note_window(self, key: str, count: int) -> None:
        if count > self.max_window.get(key, 0):
            self.max_window[key] = count

    def arrived(self) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def answered(self) -> None:
        self.in_flight -= 1

    def to_json(self) -> dict[str, object]:
        """The JSON of GET /_sandbox/stats (`changes` lists every changed contact: can be big;
        `lost_changes` those changed by a request whose answer was lost)."""
        return {
            "total_requests": self.total_requests,
            "exchange_requests": self.exchange_requests,
            "by_status": {str(status): n for status, n in sorted(self.by_status.items())},
            "faults": dict(sorted(self.faults.items())),
            "max_window": self.max_window,
            "max_in_flight": self.max_in_flight,
            "searches": self.searches,
            "searches_answered": self.searches_answered,
            "max_contacts_per_hour": self.max_contacts_per_hour,
            "applied": [
                {
                    "type": r.update.type,
                    "locationId": r.update.location_id,
                    "contacts": r.update.contacts,
                    "tags": r.update.tags,
                    "removeAllTags": r.update.remove_all_tags,
                    "version": r.version,
                }
                for r in self.applied
            ],
            "changes": self.changes,
            "lost_changes": self.lost_changes,
        }
