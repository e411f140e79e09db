"""The ETA a run's progress gives (RunProgress.eta_s): never less than the rate limit allows
for the requests left, the busiest location's; with a drip or a window, the schedule's."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from batcher.app.result import RunProgress
from batcher.app.settings import load_settings
from batcher.app.stages.plan import Planned
from batcher.app.stages.send import _Progress
from batcher.domain.drip import Schedule
from batcher.domain.planning import PlanStats
from batcher.sending.sender import Counters


def progress(**changes: Any) -> RunProgress:
    values: dict[str, Any] = {
        "rows_done": 500,
        "rows_total": 1000,
        "requests_done": 1,
        "requests_total": 2,
        "retries": 0,
        "rate_limited": 0,
        "elapsed_s": 1.0,
    }
    return RunProgress(**{**values, **changes})


def test_the_eta_is_the_pace_so_far_when_the_limit_allows_it() -> None:
    """500 rows in 1 s with 500 left: 1 s, when the limit allows the rest in 0.5 s."""
    assert progress(least_left_s=0.5).eta_s == 1.0


def test_the_eta_is_never_less_than_the_rate_limit_allows() -> None:
    """A fast start (the first window's requests go at once) promises 1 s; the limit needs
    110 s for the requests left, and the ETA says 110 s (the issue's "55 s left")."""
    assert progress(least_left_s=110.0).eta_s == 110.0


def test_before_any_pace_the_limit_still_gives_an_eta() -> None:
    """Nothing settled yet: the ETA is the limit's least time, or None when there is none."""
    assert progress(rows_done=0, least_left_s=30.0).eta_s == 30.0
    assert progress(rows_done=0).eta_s is None


def test_a_drip_or_a_window_gives_the_schedules_eta() -> None:
    """With a drip or a window the ETA is when the schedule's last request is due (2 h), not
    the pace so far (1 s), and never less than the rate limit allows for the requests left."""
    assert progress(least_left_s=0.5, due_in_s=7200.0).eta_s == 7200.0
    assert progress(rows_done=0, due_in_s=0.0, least_left_s=30.0).eta_s == 30.0


def settle(tracker: _Progress, location: str) -> None:
    batch = SimpleNamespace(location_id=location, part=1, rows=())
    tracker.settled(SimpleNamespace(batch=batch), Counters())  # type: ignore[arg-type]


def test_the_least_time_left_follows_the_busiest_location(tmp_path: Path) -> None:
    """At 1 request a second, locations a (3 requests) and b (2) side by side: 2 s least at
    first (a's 3 requests: now, +1 s, +2 s), 1 s once a has sent one (a and b hold 2 each),
    still 1 s after b sends one (a holds 2), 0 s when a's last but one goes."""
    settings = load_settings(
        environ={},
        overrides={
            "state.dir": str(tmp_path),
            "limits.requests_per_interval": 1,
            "limits.interval_ms": 1000,
        },
    )
    planned = Planned(
        work=(),
        stats=PlanStats(groups=2, requests=5),
        rounds=1,
        per_location=(("a", 3), ("b", 2)),
        least_seconds=2.0,
        operations=(),
        operation_count=0,
        schedule=Schedule(None, None, 500, 0.0, ()),
    )
    ticks: list[RunProgress] = []
    tracker = _Progress(planned, settings, None, ticks.append, clock=lambda: 0.0)
    assert tracker.least_left_s() == 2.0
    for location, least in (("a", 1.0), ("b", 1.0), ("a", 0.0), ("b", 0.0), ("a", 0.0)):
        settle(tracker, location)
        assert ticks[-1].least_left_s == least, (location, ticks[-1])
    settle(tracker, "a")  # more than planned (never happens): no count below zero
    assert ticks[-1].least_left_s == 0.0
