"""Contacts by email (Step 16) with a credential per location (Step 11), end to end on the
strict sandbox: each location's searches go with that location's own credential."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from batcher.app.execute import execute
from batcher.app.jobs import Job
from batcher.domain.config import ApiSettings
from batcher.domain.errors import ExchangeError, ForbiddenError
from batcher.loading import InputOptions
from batcher.sandbox import Sandbox, SandboxConfig

from .conftest import SandboxFactory, contact_ids
from .helpers import per_location_settings, read_csv, set_location_tokens

B, C = "mainStreetLocation01", "oakAvenueLocation001"
TOKENS = {"token-of-location-b-0001": frozenset({B}), "token-of-location-c-0001": frozenset({C})}
VARIABLES = {B: "BATCHER_TOKEN_B", C: "BATCHER_TOKEN_C"}
ADD_VIP = InputOptions(action="add", tags=("vip",))
AGENCY = "agency-oauth-token-5f2c9a17"
COMPANY = "sandboxCompany000001"
PER_LOCATION = 30


class Accounts:
    """Two sub-accounts, each with its own contacts; one address is a contact in each."""

    def __init__(self) -> None:
        ids = contact_ids(2 * PER_LOCATION, seed=1611)
        self.contacts = {
            location: {f"person{i}@example.com": ids[n * PER_LOCATION + i] for i in range(30)}
            for n, location in enumerate((B, C))
        }

    def fixture(self, path: Path) -> Path:
        document = {
            "locations": {
                location: {contact: [] for contact in found.values()}
                for location, found in self.contacts.items()
            },
            "emails": {
                contact: email
                for found in self.contacts.values()
                for email, contact in found.items()
            },
        }
        path.write_text(json.dumps(document), encoding="utf-8")
        return path

    def rows(self, path: Path) -> Path:
        """Every address of each location, by email alone, the locations interleaved."""
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["email", "location_id"])
            for i in range(PER_LOCATION):
                for location in (B, C):
                    writer.writerow([f"person{i}@example.com", location])
        return path


def tagged(sandbox: Sandbox) -> dict[str, set[str]]:
    """The contacts each location's tag requests named."""
    found: dict[str, set[str]] = {}
    for request in sandbox.stats.applied:
        found.setdefault(request.update.location_id, set()).update(request.update.contacts)
    return found


@pytest.fixture
def location_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    set_location_tokens(monkeypatch, VARIABLES, "bc")


async def test_a_run_by_email_with_a_token_per_location_resolves_and_tags_in_both(
    tmp_path: Path, make_sandbox: SandboxFactory, location_tokens: None
) -> None:
    """Two locations, each with its own token (the sandbox refuses a token anywhere else):
    every address is found in its own location (the same address is another contact in the
    other), and each location's contacts are tagged there; no request is refused."""
    accounts = Accounts()
    source = accounts.rows(tmp_path / "in.csv")
    job = Job(input_path=source, input=ADD_VIP, report_path=tmp_path / "report.csv")
    async with make_sandbox(tokens=TOKENS, fixture=accounts.fixture(tmp_path / "f.json")) as sb:
        result = await execute(per_location_settings(tmp_path, sb.url, VARIABLES), job)
    assert result.exit_code == 0, result.stopped
    rows = read_csv(tmp_path / "report.csv")
    assert Counter((row["status"], row["resolved_by"]) for row in rows) == {
        ("success", "email"): 2 * PER_LOCATION
    }
    for row in rows:
        assert row["contact_id"] == accounts.contacts[row["location_id"]][row["email"]]
    assert tagged(sb) == {
        location: set(found.values()) for location, found in accounts.contacts.items()
    }
    assert sb.stats.searches_answered >= 2  # each location searched
    assert set(sb.stats.by_status) <= {200, 201}  # no search nor tag request refused


async def test_a_search_refused_for_one_location_s_token_stops_the_run_before_any_tag(
    tmp_path: Path,
    make_sandbox: SandboxFactory,
    location_tokens: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """$BATCHER_TOKEN_C holds B's token: C's search is refused (403), and the whole run stops
    with exit 3 before any tag request, naming C and $BATCHER_TOKEN_C, every row pending;
    with C's own token the same command resumes and tags both locations."""
    monkeypatch.setenv(VARIABLES[C], "token-of-location-b-0001")
    accounts = Accounts()
    source = accounts.rows(tmp_path / "in.csv")
    job = Job(input_path=source, input=ADD_VIP, report_path=tmp_path / "report.csv")
    async with make_sandbox(tokens=TOKENS, fixture=accounts.fixture(tmp_path / "f.json")) as sb:
        settings = per_location_settings(tmp_path, sb.url, VARIABLES)
        first = await execute(settings, job)
        refused_rows = read_csv(tmp_path / "report.csv")
        tag_requests = sb.stats.total_requests
        monkeypatch.setenv(VARIABLES[C], "token-of-location-c-0001")
        second = await execute(settings, job)
    assert first.exit_code == 3
    assert isinstance(first.stopped, ForbiddenError)
    message = str(first.stopped)
    assert f"$BATCHER_TOKEN_C for location {C}" in message
    assert "no tag was changed" in message
    assert message.count("run the same command again") == 1
    assert "token-of-location" not in message
    assert tag_requests == 0
    assert Counter(row["status"] for row in refused_rows) == {"pending": 2 * PER_LOCATION}
    assert second.exit_code == 0, second.stopped
    assert second.resumed
    assert Counter(row["status"] for row in read_csv(tmp_path / "report.csv")) == {
        "success": 2 * PER_LOCATION
    }
    assert tagged(sb) == {
        location: set(found.values()) for location, found in accounts.contacts.items()
    }


async def test_searches_through_the_agency_use_exchanged_tokens_and_one_refused_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandboxes: list[Sandbox]
) -> None:
    """Every location through the agency exchange: the searches go with each location's
    exchanged token and the run completes; when the exchange refuses C, the lookup stops
    (exit 3, an ExchangeError naming C and the agency exchange) before any tag request."""
    monkeypatch.setenv("AGENCY_TOKEN", AGENCY)
    accounts = Accounts()
    source = accounts.rows(tmp_path / "in.csv")
    fixture = accounts.fixture(tmp_path / "f.json")
    results = []
    for allowed, folder in ((frozenset({B, C}), "both"), (frozenset({B}), "only-b")):
        (tmp_path / folder).mkdir()
        config = SandboxConfig(
            rate=None,
            agency_token=AGENCY,
            company_id=COMPANY,
            fixture=fixture,
            tokens=TOKENS,
            agency_locations=allowed,
        )
        async with Sandbox(config) as sandbox:
            sandboxes.append(sandbox)
            api = ApiSettings(
                base_url=sandbox.url,
                timeout_s=10.0,
                agency_token_env="AGENCY_TOKEN",
                company_id=COMPANY,
            )
            settings = per_location_settings(tmp_path / folder, sandbox.url, VARIABLES, api)
            report = tmp_path / folder / "report.csv"
            job = Job(input_path=source, input=ADD_VIP, report_path=report)
            results.append((await execute(settings, job), sandbox, read_csv(report)))
    (done, done_sandbox, done_rows), (stopped, stopped_sandbox, stopped_rows) = results
    assert done.exit_code == 0, done.stopped
    assert Counter(row["status"] for row in done_rows) == {"success": 2 * PER_LOCATION}
    assert done_sandbox.tokens.exchanges >= 2
    assert set(done_sandbox.stats.by_status) <= {200, 201}
    assert stopped.exit_code == 3
    assert isinstance(stopped.stopped, ExchangeError)
    assert f"agency exchange via $AGENCY_TOKEN failed for location {C}" in str(stopped.stopped)
    assert stopped_sandbox.stats.total_requests == 0
    assert Counter(row["status"] for row in stopped_rows) == {"pending": 2 * PER_LOCATION}
    for secret in (AGENCY, *done_sandbox.tokens.issued, *stopped_sandbox.tokens.issued):
        assert secret not in (tmp_path / "both" / "report.csv").read_text(encoding="utf-8")
        assert secret not in str(stopped.stopped)
