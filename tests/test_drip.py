"""The drip: its form, the batch sizes that fit it, the contacts budget (sliding, from
completion, remembered across runs), the window's stop, the schedule, and its settings."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from batcher.domain.config import drip_of, settings_from, window_of
from batcher.domain.drip import Drip, Due, Schedule, last_due, parse_drip
from batcher.domain.errors import ConfigError
from batcher.domain.windows import parse_window
from batcher.sending.pacing import ContactBudget

NEW_YORK = ZoneInfo("America/New_York")
HOUR = 3600.0


def ny(*parts: int) -> float:
    return datetime(*parts, tzinfo=NEW_YORK).timestamp()  # type: ignore[misc]


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("text", "drip"),
    [
        ("500/15m", Drip(500, 900)),
        ("1000/1h", Drip(1000, 3600)),
        ("1000/h", Drip(1000, 3600)),
        ("10000/1d", Drip(10000, 86400)),
        (" 20 / 30s ", Drip(20, 30)),
        ("1/1s", Drip(1, 1)),
    ],
)
def test_drip_forms(text: str, drip: Drip) -> None:
    """N/PERIOD with s, m, h or d, the count before the unit optional."""
    assert parse_drip(text) == drip


@pytest.mark.parametrize("text", ["500", "500/15", "0/1h", "500/0m", "500/1w", "-5/1h"])
def test_wrong_drips_are_refused(text: str) -> None:
    """A drip that is not N/PERIOD with both at least 1 is a ValueError."""
    with pytest.raises(ValueError, match=r"N/PERIOD|at least 1"):
        parse_drip(text)


@pytest.mark.parametrize(
    ("contacts", "size", "batch"),
    [
        (1000, 500, 500),
        (100, 500, 100),
        (700, 500, 350),
        (701, 500, 350),
        (1, 500, 1),
        (5000, 200, 200),
    ],
)
def test_batches_are_the_fewest_that_carry_the_budget(contacts: int, size: int, batch: int) -> None:
    """A batch holds N // ceil(N / size): never over the budget, the fewest requests for it."""
    assert Drip(contacts, HOUR).batch_size(size) == batch


def test_the_budget_slides_and_counts_from_completion() -> None:
    """1,000 an hour in 500s: two batches, then the third waits until an hour after the first
    completed (not started); in flight, a batch holds its contacts until it completes."""
    clock = Clock(0.0)
    budget = ContactBudget(Drip(1000, HOUR), None, clock)
    assert budget.delay("loc", 500) == 0
    budget.take("loc", 500)
    assert budget.delay("loc", 500) == 0
    budget.take("loc", 500)
    assert budget.delay("loc", 500) is None  # only a completion makes room
    clock.now = 10.0
    budget.done("loc", 500)
    clock.now = 20.0
    budget.done("loc", 500)
    assert budget.delay("loc", 500) == pytest.approx(HOUR + 10 - 20)
    clock.now = HOUR + 10
    assert budget.delay("loc", 500) == 0
    assert budget.delay("loc", 501) == pytest.approx(10)
    assert budget.delay("other", 500) == 0  # each location has its own


def test_a_rerun_within_the_period_remembers_what_was_sent() -> None:
    """The completions kept by `on_sent` and handed back as `history` hold the next run back."""
    kept: list[tuple[str, float, int]] = []
    clock = Clock(100.0)
    first = ContactBudget(Drip(500, HOUR), None, clock, on_sent=lambda *sent: kept.append(sent))
    first.take("loc", 500)
    first.done("loc", 500)
    assert kept == [("loc", 100.0, 500)]
    clock.now = 1000.0
    second = ContactBudget(Drip(500, HOUR), None, clock, history={"loc": [(100.0, 500)]})
    assert second.delay("loc", 500) == pytest.approx(HOUR + 100 - 1000)


def test_outside_the_window_a_batch_waits_for_it_to_open() -> None:
    """Without --until-window-end the wait runs to the window's next opening."""
    window = parse_window("Mon-Fri 09:00-17:00 America/New_York")
    clock = Clock(ny(2026, 6, 1, 8, 0))
    budget = ContactBudget(None, window, clock)
    assert budget.delay("loc", 10) == pytest.approx(HOUR)
    assert budget.stopped() == {}


def test_until_window_end_stops_a_location_that_cannot_send_before_the_end() -> None:
    """Closed now, or the drip's next batch due after the window's end: the location stops,
    and the reason names when the next batch is due."""
    window = parse_window("Mon-Fri 09:00-17:00 America/New_York")
    clock = Clock(ny(2026, 6, 1, 16, 30))
    budget = ContactBudget(
        Drip(500, HOUR),
        window,
        clock,
        history={"a": [(ny(2026, 6, 1, 16, 0), 500)]},
        until_window_end=True,
    )
    assert budget.delay("b", 500) == 0  # b has room now
    assert budget.delay("a", 500) == math.inf
    assert "next one is due at Tue 2026-06-02 09:00 EDT" in budget.stopped()["a"]
    clock.now = ny(2026, 6, 1, 18, 0)
    assert budget.delay("b", 500) == math.inf
    assert "is closed; the next batch is due at Tue 2026-06-02 09:00 EDT" in budget.stopped()["b"]


def test_the_schedule_follows_the_same_rule() -> None:
    """20 batches of 500 at 1,000 an hour from Monday 08:30 in a 09:00-17:00 window: 16 on
    Monday (09:00 to 16:00), the last at Tuesday 10:00; without a window, nine hours after the
    start; with neither, everything at once."""
    window = parse_window("Mon-Fri 09:00-17:00 America/New_York")
    start = ny(2026, 6, 1, 8, 30)
    drip = Drip(1000, HOUR)
    assert last_due([500] * 20, drip, window, start) == ny(2026, 6, 2, 10, 0)
    assert last_due([500] * 20, drip, None, start) == start + 9 * HOUR
    assert last_due([500] * 20, None, None, start) == start
    assert last_due([], drip, window, start) is None
    # Batches that do not fill the budget: each waits for the oldest completion to age out.
    small = Drip(2, HOUR)
    assert last_due([1, 1, 1, 1], small, None, 0.0, [(-1800.0, 1)]) == 1800.0 + HOUR
    # What an earlier invocation sent within the hour holds the first batch back.
    assert last_due([500], drip, None, start, [(start - 10, 1000)]) == start - 10 + HOUR


def test_settings_give_the_drip_and_the_window_and_refuse_wrong_ones() -> None:
    """limits.drip wins over limits.contacts_per_hour; wrong values name their key."""
    settings = settings_from({"limits": {"contacts_per_hour": 1000}}, {})
    assert drip_of(settings) == Drip(1000, HOUR)
    assert drip_of(settings_from({"limits": {"contacts_per_hour": 1000, "drip": "5/1m"}}, {})) == (
        Drip(5, 60)
    )
    assert drip_of(settings_from({}, {})) is None
    assert window_of(settings_from({}, {})) is None
    window = window_of(settings_from({}, {"BATCHER_RUN_WINDOW": "Sat 10:00-12:00 UTC"}))
    assert window is not None
    assert window.text == "Sat 10:00-12:00 UTC"
    for data, key in (
        ({"limits": {"drip": "lots"}}, "limits.drip"),
        ({"limits": {"contacts_per_hour": -1}}, "limits.contacts_per_hour"),
        ({"run": {"window": "always"}}, "run.window"),
        ({"run": {"until_window_end": True}}, "run.until_window_end"),
    ):
        with pytest.raises(ConfigError, match=key):
            settings_from(data, {})


@pytest.mark.parametrize(
    ("period", "said"),
    [
        (86400, "per day"),
        (2 * 86400, "per 2 d"),
        (3600, "per hour"),
        (7200, "per 2 h"),
        (60, "per minute"),
        (900, "per 15 min"),
        (90, "per 90 s"),
    ],
)
def test_a_drip_is_said_as_a_person_says_it(period: int, said: str) -> None:
    """The plan names the period in the largest whole unit."""
    assert Drip(1500, period).describe() == f"1,500 contacts {said}"


def test_the_schedule_warns_only_a_large_run_without_a_drip() -> None:
    """More than 1,000 contacts and no drip: the warning; at 1,000, or with a drip: none. The
    run's last request is its busiest location's; a window alone also shapes a run."""
    one = (Due("a", 600, 2, 10.0), Due("b", 401, 1, 30.0), Due("c", 0, 0, None))
    assert Schedule(None, None, 500, 0.0, one).warn
    assert not Schedule(Drip(10, HOUR), None, 10, 0.0, one).warn
    assert not Schedule(None, None, 500, 0.0, (*one[:1], Due("b", 400, 1, 30.0))).warn
    assert Schedule(None, None, 500, 0.0, one).last == 30.0
    assert not Schedule(None, None, 500, 0.0, one).paced
    window = parse_window("Mon 09:00-10:00 Europe/Berlin")
    assert Schedule(None, window, 500, 0.0, one).paced
    assert Schedule(Drip(10, HOUR), None, 10, 0.0, one).paced
    assert Schedule(None, window, 500, 0.0, one).when(0.0) == "Thu 1970-01-01 01:00 CET"
    assert Schedule(None, None, 500, 0.0, one).when(0.0) == "Thu 1970-01-01 00:00 UTC"
