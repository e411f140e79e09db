"""A credential per location, and the agency exchange, end to end on the strict sandbox."""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

import pytest

from batcher.app.execute import execute
from batcher.app.jobs import Job
from batcher.cli.output import plan_lines
from batcher.domain.config import ApiSettings, Settings
from batcher.domain.errors import AuthError, ConfigError, CredentialsRefusedError, ExchangeError
from batcher.loading import InputOptions
from batcher.sandbox import Sandbox, SandboxConfig

from .conftest import LOCATION, SandboxFactory, contact_ids, fast_settings
from .helpers import (
    SECRET,
    batcher_lines,
    child_env,
    finish,
    per_location_settings,
    read_csv,
    set_location_tokens,
    start,
)

A, B, C = LOCATION, "mainStreetLocation01", "oakAvenueLocation001"
TOKENS = {
    "token-of-location-a-0001": frozenset({A}),
    "token-of-location-b-0001": frozenset({B}),
    "token-of-location-b-0002": frozenset({B}),
    "token-of-location-c-0001": frozenset({C}),
}
VARIABLES = {A: "BATCHER_TOKEN_A", B: "BATCHER_TOKEN_B", C: "BATCHER_TOKEN_C"}
ADD_VIP = InputOptions(action="add", tags=("vip",))
AGENCY = "agency-oauth-token-5f2c9a17"
COMPANY = "sandboxCompany000001"


def write_locations(path: Path, per_location: int, locations: tuple[str, ...]) -> Path:
    """`per_location` rows for each location, the locations interleaved."""
    ids = contact_ids(per_location * len(locations), seed=11)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["contact_id", "location_id"])
        for i, contact in enumerate(ids):
            writer.writerow([contact, locations[i % len(locations)]])
    return path


def by_location(rows: list[dict[str, str]]) -> dict[str, Counter[str]]:
    found: dict[str, Counter[str]] = {}
    for row in rows:
        found.setdefault(row["location_id"], Counter())[row["status"]] += 1
    return found


@pytest.fixture
def location_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    set_location_tokens(monkeypatch, VARIABLES, "abc")


async def test_three_locations_each_with_its_own_token_complete(
    tmp_path: Path, make_sandbox: SandboxFactory, location_tokens: None
) -> None:
    """Every location's batches go with its own token (the sandbox refuses any other): all
    rows succeed, and the default variable is never needed."""
    source = write_locations(tmp_path / "in.csv", 40, (A, B, C))
    job = Job(input_path=source, input=ADD_VIP, report_path=tmp_path / "report.csv")
    async with make_sandbox(tokens=TOKENS) as sandbox:
        result = await execute(per_location_settings(tmp_path, sandbox.url, VARIABLES), job)
    assert result.exit_code == 0, result.stopped
    assert by_location(read_csv(tmp_path / "report.csv")) == {
        location: Counter(success=40) for location in (A, B, C)
    }
    assert sandbox.stats.by_status.keys() == {201}


async def test_a_token_revoked_mid_run_pauses_its_location_and_a_rerun_completes(
    tmp_path: Path,
    make_sandbox: SandboxFactory,
    location_tokens: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """B's token is refused after 3 requests: B's other rows stay pending with a message that
    names $BATCHER_TOKEN_B, A and C succeed, exit 3; with a new token in that variable the same
    run resumes and completes."""
    source = write_locations(tmp_path / "in.csv", 60, (A, B, C))
    job = Job(input_path=source, input=ADD_VIP, report_path=tmp_path / "report.csv")
    async with make_sandbox(tokens=TOKENS, revoke_after={"token-of-location-b-0001": 3}) as sandbox:
        settings = per_location_settings(tmp_path, sandbox.url, VARIABLES)
        first = await execute(settings, job)
        rows = read_csv(tmp_path / "report.csv")
        monkeypatch.setenv(VARIABLES[B], "token-of-location-b-0002")
        second = await execute(settings, job)

    assert first.exit_code == 3
    assert isinstance(first.stopped, CredentialsRefusedError)
    assert f"{B}: $BATCHER_TOKEN_B" in str(first.stopped)
    assert by_location(rows) == {
        A: Counter(success=60),
        B: Counter(success=30, pending=30),
        C: Counter(success=60),
    }
    pending = {row["message"] for row in rows if row["status"] == "pending"}
    assert len(pending) == 1
    (message,) = pending
    assert "$BATCHER_TOKEN_B" in message
    assert "Invalid JWT" in message
    assert message.count("run the same command again") == 1
    assert second.exit_code == 0
    assert second.resumed
    assert by_location(read_csv(tmp_path / "report.csv"))[B] == Counter(success=60)


async def test_a_location_without_a_credential_is_exit_2_before_any_request(
    tmp_path: Path,
    make_sandbox: SandboxFactory,
    location_tokens: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """$BATCHER_TOKEN_C unset: the run refuses with exit 2, naming the location and the
    variable, and the sandbox sees no request at all."""
    monkeypatch.delenv(VARIABLES[C])
    source = write_locations(tmp_path / "in.csv", 10, (A, B, C))
    job = Job(input_path=source, input=ADD_VIP, report_path=tmp_path / "report.csv")
    async with make_sandbox(tokens=TOKENS) as sandbox:
        with pytest.raises(ConfigError) as refused:
            await execute(per_location_settings(tmp_path, sandbox.url, VARIABLES), job)
    assert refused.value.exit_code == 2
    assert f"location {C}: $BATCHER_TOKEN_C is not set" in str(refused.value)
    assert sandbox.stats.total_requests == 0


async def test_plan_lists_each_location_s_credential_and_whether_it_is_set(
    tmp_path: Path,
    make_sandbox: SandboxFactory,
    location_tokens: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`plan` names each location's variable, set or NOT SET, and sends nothing."""
    monkeypatch.delenv(VARIABLES[C])
    source = write_locations(tmp_path / "in.csv", 10, (A, B, C))
    job = Job(input_path=source, input=ADD_VIP)
    async with make_sandbox(tokens=TOKENS) as sandbox:
        settings = per_location_settings(tmp_path, sandbox.url, VARIABLES)
        result = await execute(settings, job, dry_run=True)
    text = "\n".join(plan_lines(result, settings, None))
    assert f"{A}  $BATCHER_TOKEN_A (set)" in text
    assert f"{B}  $BATCHER_TOKEN_B (set)" in text
    assert f"{C}  $BATCHER_TOKEN_C (NOT SET)" in text
    assert sandbox.stats.total_requests == 0


def every_file(folder: Path) -> list[bytes]:
    """The bytes of every file under `folder` (report, summary, state, config, input)."""
    return [path.read_bytes() for path in folder.rglob("*") if path.is_file()]


class Ticking:
    """The sandbox's clock: a second passes each time it is read, so that its location tokens
    expire after a known number of reads, whatever the machine's speed."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


async def test_agency_mode_with_tokens_expiring_completes_and_shows_no_token(
    tmp_path: Path, sandboxes: list[Sandbox]
) -> None:
    """Every location's token comes from the agency exchange; they expire during the run (a
    401, a new token, the request again) and the run completes; no exchanged token, nor the
    agency's, is in the report, the summary, the state directory, stdout or stderr."""
    config = SandboxConfig(
        rate=None,
        agency_token=AGENCY,
        company_id=COMPANY,
        tokens={"unused-token-of-c-000001": frozenset({C})},
        location_token_ttl_s=40.0,
    )
    (tmp_path / "batcher.toml").write_text(
        "[api]\n"
        'agency_token_env = "AGENCY_TOKEN"\n'
        f'company_id = "{COMPANY}"\n'
        "[batch]\nsize = 5\n"
        "[limits]\nconcurrency = 2\n"
        "[retry]\ninitial_backoff_s = 0\nmax_backoff_s = 0\n",
        encoding="utf-8",
    )
    source = write_locations(tmp_path / "in.csv", 100, (A, C))
    report = tmp_path / "report.csv"
    async with Sandbox(config, clock=Ticking()) as sandbox:
        sandboxes.append(sandbox)
        argv = ["-m", "batcher", "run", str(source), "--action", "add", "--tags", "vip"]
        argv += ["--base-url", sandbox.url, "--report", str(report), "--yes"]
        env = {**child_env(), "AGENCY_TOKEN": AGENCY}
        process = await start(tmp_path, [sys.executable, *argv], env)
        stdout, stderr, code = await finish(process, [])
    assert code == 0, batcher_lines(stderr)
    assert by_location(read_csv(report)) == {A: Counter(success=100), C: Counter(success=100)}
    issued = sandbox.tokens.issued
    assert len(issued) > 2  # each location's token expired at least once on the way
    assert sandbox.stats.by_status[401] >= 1
    secrets = [*issued, AGENCY]
    texts = [stdout.encode(), stderr.encode()]
    texts += every_file(tmp_path)
    for secret in secrets:
        for text in texts:
            assert secret.encode() not in text
    assert SECRET.encode() not in b"".join(texts)


async def test_a_credential_every_location_shares_refused_stops_the_run_at_once(
    tmp_path: Path, make_sandbox: SandboxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two locations mapped to one variable whose token is unknown: the first 401 stops the
    whole run (the canary), every row pending, naming that variable."""
    monkeypatch.setenv("SHARED_TOKEN", "not-a-token-the-sandbox-knows")
    source = write_locations(tmp_path / "in.csv", 30, (A, B))
    job = Job(input_path=source, input=ADD_VIP, report_path=tmp_path / "report.csv")
    async with make_sandbox(tokens=TOKENS) as sandbox:
        settings = per_location_settings(tmp_path, sandbox.url, VARIABLES)
        api = ApiSettings(
            base_url=sandbox.url,
            timeout_s=10.0,
            location_tokens={A: "SHARED_TOKEN", B: "SHARED_TOKEN"},
        )
        result = await execute(Settings(**{**settings.__dict__, "api": api}), job)
    assert isinstance(result.stopped, AuthError)
    assert "$SHARED_TOKEN" in str(result.stopped)
    assert result.exit_code == 3
    assert by_location(read_csv(tmp_path / "report.csv")) == {
        A: Counter(pending=30),
        B: Counter(pending=30),
    }
    assert sandbox.stats.total_requests <= 2  # the canaries of both locations, at most


async def test_the_agency_refused_for_one_location_pauses_only_that_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandboxes: list[Sandbox]
) -> None:
    """Every location goes through the agency; the exchange refuses C (not the agency's): C's
    rows stay pending naming the agency exchange, A's succeed, exit 3. The agency token itself
    refused would stop the run at once instead."""
    monkeypatch.setenv("AGENCY_TOKEN", AGENCY)
    config = SandboxConfig(
        rate=None, agency_token=AGENCY, company_id=COMPANY, agency_locations=frozenset({A})
    )
    source = write_locations(tmp_path / "in.csv", 20, (A, C))
    job = Job(input_path=source, input=ADD_VIP, report_path=tmp_path / "report.csv")
    async with Sandbox(config) as sandbox:
        sandboxes.append(sandbox)
        settings = fast_settings(tmp_path, sandbox.url)
        api = ApiSettings(
            base_url=sandbox.url,
            timeout_s=10.0,
            agency_token_env="AGENCY_TOKEN",
            company_id=COMPANY,
        )
        result = await execute(Settings(**{**settings.__dict__, "api": api}), job)
        rows = read_csv(tmp_path / "report.csv")
        monkeypatch.setenv("AGENCY_TOKEN", "an-agency-token-revoked")
        stopped = await execute(Settings(**{**settings.__dict__, "api": api}), job)
    assert result.exit_code == 3
    assert isinstance(result.stopped, CredentialsRefusedError)
    assert f"{C}: agency exchange via $AGENCY_TOKEN" in str(result.stopped)
    assert by_location(rows) == {A: Counter(success=20), C: Counter(pending=20)}
    messages = {row["message"] for row in rows if row["status"] == "pending"}
    assert all("Location not found for this company" in message for message in messages)
    assert isinstance(stopped.stopped, ExchangeError)
    assert stopped.exit_code == 3
