"""Step 16 end to end on the sandbox: a migration file of emails, no contact ids."""

from __future__ import annotations

import asyncio
import csv
import json
import math
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from batcher.app.execute import execute
from batcher.app.jobs import Job
from batcher.app.undo import undo
from batcher.cli.output import plan_lines
from batcher.domain.config import BatchSettings, LimitSettings, LookupSettings
from batcher.loading import InputOptions
from batcher.sandbox import RateConfig, Sandbox, SandboxConfig

from .conftest import LOCATION, SandboxFactory, contact_ids, fast_settings
from .helpers import (
    SECRET,
    Gate,
    batcher_argv,
    finish,
    reap_children,  # noqa: F401 - an autouse fixture: imported to take effect here
    start,
    write_config,
)

ADD_VIP = InputOptions(action="add", tags=("vip",), default_location_id=LOCATION)
PER_SEARCH = 25
# The sandbox's limit, and the client's: 100 requests per second (HighLevel's 100 per 10 s,
# ten times faster, so that the test takes seconds).
RATE = RateConfig(max=100, interval_ms=1000)


class Account:
    """A location's contacts with emails: 9,000 known addresses, 100 held by two contacts each
    (an account that allows duplicates), 300 addresses nobody has."""

    def __init__(self) -> None:
        ids = contact_ids(9_200, seed=16)
        self.known = {f"person{i}@example.com": ids[i] for i in range(9_000)}
        self.twins = {
            f"twin{i}@example.com": (ids[9_000 + 2 * i], ids[9_001 + 2 * i]) for i in range(100)
        }
        self.unknown = [f"nobody{i}@example.com" for i in range(300)]

    def fixture(self, path: Path) -> Path:
        emails = {contact: email for email, contact in self.known.items()}
        for email, pair in self.twins.items():
            emails.update({contact: email.upper() for contact in pair})
        document = {"locations": {LOCATION: {contact: [] for contact in emails}}, "emails": emails}
        path.write_text(json.dumps(document), encoding="utf-8")
        return path

    def rows(self) -> list[str]:
        """10,000 rows: every known address (some in capitals, some with spaces), the twins,
        the unknown ones, and 600 rows repeating a known address."""
        known = list(self.known)
        rows = [(f"  {email.upper()} " if i % 7 == 0 else email) for i, email in enumerate(known)]
        rows += list(self.twins) + self.unknown + known[:600]
        assert len(rows) == 10_000
        return rows


def write_emails(path: Path, emails: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Email", "Name"])
        writer.writerows([email, f"Person {n}"] for n, email in enumerate(emails))
    return path


def settings_for(tmp_path: Path, sandbox: Sandbox) -> Any:
    return fast_settings(
        tmp_path,
        sandbox.url,
        batch=BatchSettings(size=500),
        limits=LimitSettings(concurrency=4, requests_per_interval=RATE.max, interval_ms=1000),
        lookup=LookupSettings(emails_per_search=PER_SEARCH),
    )


def read_report(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


# Distinct addresses of the file: the searches it takes, PER_SEARCH addresses each.
SEARCHES = math.ceil((9_000 + 100 + 300) / PER_SEARCH)


async def test_a_file_of_emails_tags_the_right_contacts_and_never_guesses(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """10,000 rows by email: each known contact is tagged once, an address nobody has is
    not_found, one two contacts share is ambiguous, neither is sent; a repeated address is
    searched once and its row is a duplicate; every search stays within the rate limit."""
    account = Account()
    source = write_emails(tmp_path / "migration.csv", account.rows())
    fixture = account.fixture(tmp_path / "fixture.json")
    async with make_sandbox(fixture=fixture, rate=RATE) as sandbox:
        result = await execute(
            settings_for(tmp_path, sandbox),
            Job(input_path=source, input=ADD_VIP, report_path=tmp_path / "report.csv"),
        )
    assert result.exit_code == 0
    lines = read_report(tmp_path / "report.csv")
    assert Counter(line["status"] for line in lines) == {
        "success": 9_000,
        "duplicate": 600,
        "ambiguous": 100,
        "not_found": 300,
    }
    tagged = [c for request in sandbox.stats.applied for c in request.update.contacts]
    assert sorted(tagged) == sorted(account.known.values())
    # Each address searched once, in as few searches as the configured size allows.
    assert sandbox.stats.searches == sandbox.stats.searches_answered == SEARCHES
    assert result.searches == SEARCHES
    # Within the rate limit, searches and tag requests together: never refused.
    assert 429 not in sandbox.stats.by_status
    assert sandbox.stats.max_window[LOCATION] <= RATE.max
    first = lines[0]
    assert (first["contact_id"], first["resolved_by"]) == (
        account.known["person0@example.com"],
        "email",
    )
    twin = lines[9_000]
    assert (twin["status"], twin["contact_id"], twin["resolved_by"]) == ("ambiguous", "", "")
    assert all(contact in twin["message"] for contact in account.twins["twin0@example.com"])
    assert lines[9_100]["status"] == "not_found"
    assert '"nobody0@example.com"' in lines[9_100]["message"]
    assert lines[9_400]["message"] == "duplicate of row 1"
    assert result.resolution is not None
    assert (
        sum(result.resolution.matched.values()),
        sum(result.resolution.not_found.values()),
        sum(result.resolution.ambiguous.values()),
    ) == (9_600, 300, 100)


async def test_a_killed_lookup_resumes_without_repeating_finished_searches(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """A run killed halfway through its searches keeps every answer it recorded: the next run
    asks only for the rest, then tags every contact."""
    account = Account()
    source = write_emails(tmp_path / "migration.csv", account.rows())
    fixture = account.fixture(tmp_path / "fixture.json")
    job = Job(input_path=source, input=ADD_VIP, report_path=tmp_path / "report.csv")
    async with make_sandbox(fixture=fixture, rate=RATE) as sandbox:
        settings = settings_for(tmp_path, sandbox)
        run = asyncio.ensure_future(execute(settings, job))
        search = sandbox.universe.search

        def killing(*args: Any) -> Any:
            if sandbox.stats.searches_answered == 100:
                run.cancel()  # the process dies: no report, no clean-up of its own
            return search(*args)

        sandbox.universe.search = killing  # type: ignore[method-assign,assignment]
        with pytest.raises(asyncio.CancelledError):
            await run
        killed_at = sandbox.stats.searches_answered
        assert not sandbox.stats.applied  # nothing was tagged before the contacts were known
        sandbox.universe.search = search  # type: ignore[method-assign]
        result = await execute(settings, job)
    assert result.resumed
    assert result.exit_code == 0
    # Only the answers the killed run never recorded (at most one per worker in flight) are
    # asked for again.
    assert SEARCHES <= sandbox.stats.searches_answered <= SEARCHES + 4
    assert result.searches == sandbox.stats.searches_answered - killed_at
    assert result.searches < SEARCHES
    tagged = [c for request in sandbox.stats.applied for c in request.update.contacts]
    assert sorted(tagged) == sorted(account.known.values())


async def test_plan_resolves_and_sends_no_tag_change(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """`plan` searches (read-only, counted) and shows matched / not found / ambiguous per
    location and the first matches, and sends no tag change."""
    account = Account()
    source = write_emails(tmp_path / "migration.csv", account.rows())
    fixture = account.fixture(tmp_path / "fixture.json")
    async with make_sandbox(fixture=fixture, rate=RATE) as sandbox:
        settings = settings_for(tmp_path, sandbox)
        result = await execute(
            settings, Job(input_path=source, input=ADD_VIP, report_path=None), dry_run=True
        )
    assert not sandbox.stats.applied
    assert sandbox.stats.total_requests == 0  # no tag request at all
    assert sandbox.stats.searches_answered == SEARCHES
    text = "\n".join(plan_lines(result, settings, None))
    assert f"{SEARCHES} searches (POST /contacts/search, read-only" in text
    assert f"location {LOCATION}: 9,600 matched, 300 not found, 100 ambiguous" in text
    assert f"person0@example.com -> {account.known['person0@example.com']}" in text
    assert "9,000 requests" not in text
    assert "ambiguous" in text
    assert not list((tmp_path / "state").glob("*.sqlite"))  # a plan leaves no state behind


async def test_a_refused_search_stops_the_run_before_any_tag_change(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """A search refused for its location (403) stops the run (exit 3) with nothing sent: the
    rows given by id wait too, so that no contact is changed out of input order."""
    ids = contact_ids(3, seed=5)
    source = tmp_path / "mixed.csv"
    source.write_text(
        f"contact_id,email\n{ids[0]},\n,ada@example.com\n{ids[1]},bob@example.com\n",
        encoding="utf-8",
    )
    options = InputOptions(action="add", tags=("vip",), default_location_id="elsewhere00000000001")
    async with make_sandbox(rate=RATE) as sandbox:
        result = await execute(
            settings_for(tmp_path, sandbox),
            Job(input_path=source, input=options, report_path=tmp_path / "report.csv"),
        )
    assert result.exit_code == 3
    assert "contacts.readonly" in str(result.stopped)
    assert sandbox.stats.total_requests == 0
    lines = read_report(tmp_path / "report.csv")
    assert [line["status"] for line in lines] == ["pending"] * 3
    assert [line["resolved_by"] for line in lines] == ["id", "", "id"]


async def test_undo_takes_back_rows_resolved_by_email(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """A run by email is undone like any other: each contact found by email loses the tag."""
    ids = contact_ids(3, seed=7)
    fixture = tmp_path / "fixture.json"
    emails = {ids[0]: "ada@example.com", ids[1]: "bob@example.com", ids[2]: "cy@example.com"}
    fixture.write_text(
        json.dumps({"locations": {LOCATION: {i: [] for i in ids}}, "emails": emails}),
        encoding="utf-8",
    )
    source = write_emails(tmp_path / "in.csv", ["Ada@Example.com", "bob@example.com", "x@y.org"])
    async with make_sandbox(fixture=fixture, rate=RATE) as sandbox:
        settings = settings_for(tmp_path, sandbox)
        run = await execute(
            settings, Job(input_path=source, input=ADD_VIP, report_path=tmp_path / "report.csv")
        )
        tagged = {i: sandbox.universe.tags(i) for i in ids}
        undone = await undo(settings, tmp_path / "report.csv", report_path=tmp_path / "undo.csv")
        after = {i: sandbox.universe.tags(i) for i in ids}
    assert run.exit_code == 0
    assert tagged == {ids[0]: ("vip",), ids[1]: ("vip",), ids[2]: ()}
    assert undone.exit_code == 0
    assert after == dict.fromkeys(ids, ())


async def test_a_sigkilled_lookup_resumes_without_repeating_answered_searches(
    tmp_path: Path, sandboxes: list[Sandbox]
) -> None:
    """`batcher run` killed (SIGKILL) while its 41st search is out: the same command then asks
    only for the 40 searches still unanswered, and tags every contact once."""
    ids = contact_ids(2_000, seed=41)
    emails = {contact: f"person{n}@example.com" for n, contact in enumerate(ids)}
    fixture = tmp_path / "fixture.json"
    fixture.write_text(
        json.dumps({"locations": {LOCATION: {i: [] for i in ids}}, "emails": emails}),
        encoding="utf-8",
    )
    source = write_emails(tmp_path / "migration.csv", list(emails.values()))
    write_config(
        tmp_path,
        api={"location_id": LOCATION},
        limits={"concurrency": 1},
        lookup={"emails_per_search": PER_SEARCH},
    )
    gate = Gate(open_for=40)  # the sandbox's answers: the 41st is held
    sandbox = Sandbox(SandboxConfig(token=SECRET, rate=None, fixture=fixture), sleep=gate)
    await sandbox.start()
    sandboxes.append(sandbox)
    try:
        argv = batcher_argv("run", source, sandbox.url, tmp_path / "report.csv")
        first = await start(tmp_path, argv)
        await gate.held(41)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        await gate.open()
        answered_then = sandbox.stats.searches_answered
        second = await start(tmp_path, argv)
        _, stderr, code = await finish(second, [])
    finally:
        await gate.open()
        await sandbox.stop()
    assert code == 0, stderr
    assert answered_then == 41
    # 2,000 addresses, 25 a search: 80 searches; the 40 answered and recorded are not repeated.
    assert sandbox.stats.searches_answered - answered_then == 40
    tagged = [c for request in sandbox.stats.applied for c in request.update.contacts]
    assert sorted(tagged) == sorted(ids)
    lines = read_report(tmp_path / "report.csv")
    assert {line["status"] for line in lines} == {"success"}
    assert {line["resolved_by"] for line in lines} == {"email"}
