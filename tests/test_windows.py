"""Send windows: their form, when they open and close, and the clock changes (DST) on their
boundaries, in America/New_York and Europe/Berlin, as a person in the zone reads the clock."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from batcher.domain.windows import parse_window

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def wall(zone: ZoneInfo, *parts: int, fold: int = 0) -> float:
    return datetime(*parts, tzinfo=zone, fold=fold).timestamp()  # type: ignore[misc]


def hours(span: tuple[float, float]) -> float:
    return (span[1] - span[0]) / 3600


def test_a_weekday_window_opens_at_nine_and_closes_at_five_half_open() -> None:
    """Mon-Fri 09:00-17:00: open at 09:00 and at 16:59:59, closed at 17:00; a Friday evening
    waits for Monday 09:00."""
    window = parse_window("Mon-Fri 09:00-17:00 America/New_York")
    monday_nine = wall(NEW_YORK, 2026, 6, 1, 9, 0)
    assert window.open_at(monday_nine) == monday_nine
    assert window.closes_at(monday_nine) == wall(NEW_YORK, 2026, 6, 1, 17, 0)
    assert window.closes_at(wall(NEW_YORK, 2026, 6, 1, 16, 59, 59)) is not None
    assert window.closes_at(wall(NEW_YORK, 2026, 6, 1, 17, 0)) is None
    assert window.open_at(wall(NEW_YORK, 2026, 6, 5, 18, 0)) == wall(NEW_YORK, 2026, 6, 8, 9, 0)


def test_several_ranges_day_lists_and_every_day() -> None:
    """Ranges follow the days before them; a range with no days holds every day; Sat,Sun is a
    list and Fri-Mon wraps the week."""
    window = parse_window("Mon-Fri 09:00-12:00 13:00-17:00 Sat,Sun 10:00-14:00 Europe/Berlin")
    assert window.open_at(wall(BERLIN, 2026, 6, 1, 12, 30)) == wall(BERLIN, 2026, 6, 1, 13, 0)
    assert window.open_at(wall(BERLIN, 2026, 6, 6, 8, 0)) == wall(BERLIN, 2026, 6, 6, 10, 0)
    daily = parse_window("07:00-08:00 UTC")
    assert daily.open_at(wall(ZoneInfo("UTC"), 2026, 6, 6, 9, 0)) == wall(
        ZoneInfo("UTC"), 2026, 6, 7, 7, 0
    )
    wrapped = parse_window("Fri-Mon 10:00-11:00 UTC")
    tuesday = wall(ZoneInfo("UTC"), 2026, 6, 2, 12, 0)
    assert wrapped.open_at(tuesday) == wall(ZoneInfo("UTC"), 2026, 6, 5, 10, 0)
    monday = wall(ZoneInfo("UTC"), 2026, 6, 8, 9, 0)
    assert wrapped.open_at(monday) == wall(ZoneInfo("UTC"), 2026, 6, 8, 10, 0)


def test_a_window_over_midnight_runs_into_the_next_day() -> None:
    """Fri 22:00-06:00 is Friday 22:00 to Saturday 06:00, and Saturday 05:00 is inside it."""
    window = parse_window("Fri 22:00-06:00 UTC")
    utc = ZoneInfo("UTC")
    assert window.closes_at(wall(utc, 2026, 6, 6, 5, 0)) == wall(utc, 2026, 6, 6, 6, 0)
    assert window.open_at(wall(utc, 2026, 6, 6, 7, 0)) == wall(utc, 2026, 6, 12, 22, 0)


@pytest.mark.parametrize(
    ("zone", "night", "length"),
    [
        # Spring forward: the night is an hour shorter; fall back: an hour longer.
        ("America/New_York", (2026, 3, 7), 7.0),
        ("America/New_York", (2026, 10, 31), 9.0),
        ("Europe/Berlin", (2026, 3, 28), 7.0),
        ("Europe/Berlin", (2026, 10, 24), 9.0),
    ],
)
def test_a_night_window_over_a_clock_change_keeps_its_wall_clock_boundaries(
    zone: str, night: tuple[int, int, int], length: float
) -> None:
    """22:00-06:00 over the night the clocks change opens at 22:00 and closes at 06:00 on the
    wall clock: 7 real hours in spring, 9 in autumn."""
    window = parse_window(f"22:00-06:00 {zone}")
    tz = ZoneInfo(zone)
    span = window.spans(wall(tz, *night, 12, 0))[0]
    assert span[0] == wall(tz, *night, 22, 0)
    assert datetime.fromtimestamp(span[1], tz).strftime("%H:%M") == "06:00"
    assert hours(span) == length


@pytest.mark.parametrize(
    ("zone", "day", "opens"),
    [
        ("America/New_York", (2026, 3, 8), "03:00"),
        ("Europe/Berlin", (2026, 3, 29), "03:00"),
    ],
)
def test_a_boundary_in_the_skipped_hour_is_the_moment_the_clock_jumps(
    zone: str, day: tuple[int, int, int], opens: str
) -> None:
    """Sun 02:30-04:00 on a spring-forward Sunday (02:00 jumps to 03:00) opens at 03:00, and
    the next Sunday at 02:30 as usual."""
    window = parse_window(f"Sun 02:30-04:00 {zone}")
    tz = ZoneInfo(zone)
    first, second = window.spans(wall(tz, *day, 0, 0))[:2]
    assert datetime.fromtimestamp(first[0], tz).strftime("%Y-%m-%d %H:%M") == (
        f"{day[0]}-{day[1]:02}-{day[2]:02} {opens}"
    )
    assert hours(first) == 1.0
    assert datetime.fromtimestamp(second[0], tz).strftime("%H:%M") == "02:30"


@pytest.mark.parametrize(
    ("zone", "day", "boundary"),
    [
        ("America/New_York", (2026, 11, 1), (1, 30)),
        ("Europe/Berlin", (2026, 10, 25), (2, 30)),
    ],
)
def test_a_boundary_in_the_repeated_hour_is_its_first_occurrence(
    zone: str, day: tuple[int, int, int], boundary: tuple[int, int]
) -> None:
    """On a fall-back Sunday the wall time inside the repeated hour happens twice: a window
    ending there closes at the first, and one starting there opens at the first."""
    tz = ZoneInfo(zone)
    hour, minute = boundary
    first = wall(tz, *day, hour, minute, fold=0)
    assert wall(tz, *day, hour, minute, fold=1) - first == 3600  # it does repeat
    ending = parse_window(f"Sun 00:00-{hour:02}:{minute:02} {zone}")
    assert ending.spans(wall(tz, *day, 0, 0))[0][1] == first
    starting = parse_window(f"Sun {hour:02}:{minute:02}-05:00 {zone}")
    assert starting.open_at(wall(tz, *day, 0, 0)) == first


def test_a_weekday_window_on_clock_change_days_opens_at_nine_local() -> None:
    """Monday 09:00-17:00 the day after a spring-forward or a fall-back Sunday is 09:00 to 17:00
    local time, 8 real hours."""
    window = parse_window("Mon-Fri 09:00-17:00 America/New_York")
    for monday in ((2026, 3, 9), (2026, 11, 2)):
        span = window.spans(wall(NEW_YORK, *monday, 0, 0))[0]
        assert span == (wall(NEW_YORK, *monday, 9, 0), wall(NEW_YORK, *monday, 17, 0))


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("Mon-Fri 09:00-17:00", "IANA time zone"),
        ("Mon-Fri 09:00-17:00 Mars/Olympus", "IANA time zone"),
        ("Mon-Fry 09:00-17:00 UTC", "not a day"),
        ("Mon-Fri 09:00-25:00 UTC", "not a time range"),
        ("Mon-Fri UTC", "no time range"),
        ("UTC", "expected days"),
    ],
)
def test_a_wrong_window_says_what_is_wrong(text: str, says: str) -> None:
    """Each malformed window is refused with a message naming the part that is wrong."""
    with pytest.raises(ValueError, match=says):
        parse_window(text)


def test_describe_reads_the_zone_abbreviation() -> None:
    """Instants are shown as a person in the zone reads them."""
    window = parse_window("Mon-Fri 09:00-17:00 Europe/Berlin")
    assert window.describe(wall(BERLIN, 2026, 6, 1, 9, 0)) == "Mon 2026-06-01 09:00 CEST"


def test_open_time_runs_across_closed_hours() -> None:
    """Two hours of sending from Monday 16:00 in a 09:00-17:00 window: one hour on Monday, the
    other from Tuesday 09:00, ending at 10:00."""
    window = parse_window("Mon-Fri 09:00-17:00 America/New_York")
    assert window.after(wall(NEW_YORK, 2026, 6, 1, 16, 0), 7200) == wall(
        NEW_YORK, 2026, 6, 2, 10, 0
    )
    assert window.after(wall(NEW_YORK, 2026, 6, 1, 7, 0), 60) == wall(NEW_YORK, 2026, 6, 1, 9, 1)
    # Ending exactly at the close is that day's, not the next opening.
    assert window.after(wall(NEW_YORK, 2026, 6, 1, 16, 0), 3600) == wall(
        NEW_YORK, 2026, 6, 1, 17, 0
    )


def test_touching_and_overlapping_ranges_are_one_span() -> None:
    """09:00-12:00 and 12:00-17:00 are open from 09:00 to 17:00 without a gap; a range inside
    another changes nothing."""
    utc = ZoneInfo("UTC")
    monday = (2026, 6, 1)
    for text in ("09:00-12:00 12:00-17:00 UTC", "09:00-17:00 10:00-12:00 UTC"):
        window = parse_window(text)
        assert window.closes_at(wall(utc, *monday, 10, 0)) == wall(utc, *monday, 17, 0)


@pytest.mark.parametrize(
    ("text", "opens", "closes"),
    [
        ("Mon 00:00-24:00 UTC", (2026, 6, 1, 0, 0), (2026, 6, 2, 0, 0)),
        ("Mon 23:59-24:00 UTC", (2026, 6, 1, 23, 59), (2026, 6, 2, 0, 0)),
        ("Mon 09:00-09:00 UTC", (2026, 6, 1, 9, 0), (2026, 6, 2, 9, 0)),
    ],
)
def test_midnight_at_the_end_and_a_whole_day(
    text: str, opens: tuple[int, ...], closes: tuple[int, ...]
) -> None:
    """24:00 is the day's end; a range that ends where it starts is a whole day."""
    utc = ZoneInfo("UTC")
    window = parse_window(text)
    span = window.spans(wall(utc, 2026, 6, 1, 0, 0))[0]
    assert span == (wall(utc, *opens), wall(utc, *closes))


@pytest.mark.parametrize(
    "text",
    ["24:00-25:00 UTC", "24:00-01:00 UTC", "09:60-10:00 UTC", "09:00-10:60 UTC", "09:00-24:01 UTC"],
)
def test_times_past_the_clock_are_refused(text: str) -> None:
    """Hours past 23 (24:00 only as an end), minutes past 59."""
    with pytest.raises(ValueError, match="not a time range"):
        parse_window(text)


def test_the_last_minute_of_an_hour_is_a_time() -> None:
    """23:59 and xx:59 are times like any other."""
    utc = ZoneInfo("UTC")
    window = parse_window("Mon 23:00-23:59 UTC")
    assert window.closes_at(wall(utc, 2026, 6, 1, 23, 30)) == wall(utc, 2026, 6, 1, 23, 59)


def test_a_range_wholly_in_the_skipped_hour_does_not_open_that_night() -> None:
    """Sun 02:00-02:30 does not exist on the spring-forward Sunday: the window opens the next
    Sunday at 02:00."""
    window = parse_window("Sun 02:00-02:30 America/New_York")
    assert window.open_at(wall(NEW_YORK, 2026, 3, 8, 0, 0)) == wall(NEW_YORK, 2026, 3, 15, 2, 0)
