"""`batcher status INPUT`: the run that the same `run` command would continue, end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from batcher.app.sharding import bucket
from batcher.cli import main
from batcher.sandbox import FaultConfig, Sandbox, SandboxConfig

from .conftest import LOCATION, ThreadedSandbox, contact_ids, write_csv
from .helpers import write_config


@pytest.fixture
def failing_once(monkeypatch: pytest.MonkeyPatch, sandboxes: list[Sandbox]) -> Iterator[Sandbox]:
    """A sandbox whose first request fails (503)."""
    config = SandboxConfig(rate=None, faults=FaultConfig(fail_first=1))
    with ThreadedSandbox(config) as sandbox:
        sandboxes.append(sandbox)
        monkeypatch.setenv("BATCHER_TOKEN", sandbox.token)
        yield sandbox


def test_status_input_shows_the_unfinished_run_and_what_it_still_has_to_send(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_once: Sandbox
) -> None:
    monkeypatch.chdir(tmp_path)
    # One attempt per request: the first request's 10 rows end `failed` (exit 1, unfinished).
    write_config(
        tmp_path,
        api={"location_id": LOCATION},
        batch={"size": 10},
        retry={"attempts": 1, "initial_backoff_s": 0.0, "max_backoff_s": 0.0},
    )
    write_csv(tmp_path / "in.csv", contact_ids(35, seed=9))
    cli = CliRunner()
    operation = ["--action", "add", "--tags", "vip", "--base-url", failing_once.url]
    run = cli.invoke(main, ["run", "in.csv", *operation, "--yes"])
    assert run.exit_code == 1, run.output

    shown = cli.invoke(main, ["status", "in.csv", *operation])
    assert shown.exit_code == 0, shown.output
    assert "batcher: status of in.csv" in shown.output
    assert 'operation  add ["vip"] at location ' + LOCATION in shown.output
    assert "an unfinished run, started " in shown.output
    assert "`batcher run` with the same options continues it" in shown.output
    assert "rows       25 success, 10 failed" in shown.output
    assert "to send    10 rows (pending and failed)" in shown.output

    listed = cli.invoke(main, ["status"])
    assert listed.exit_code == 0, listed.output
    assert "batcher: 1 run in .batcher" in listed.output
    assert f"input      {tmp_path / 'in.csv'}" in listed.output
    assert "unfinished: 10 rows still to send" in listed.output

    # Another operation is another run: none yet; the unfinished one is pointed out.
    other = cli.invoke(main, ["status", "in.csv", "--action", "remove", "--tags", "vip"])
    assert other.exit_code == 0, other.output
    assert "no run of this input with this operation and target" in other.output
    assert "note: an unfinished run of this file with another" in other.output

    again = cli.invoke(main, ["run", "in.csv", *operation, "--yes"])
    assert again.exit_code == 0, again.output
    assert "continued an unfinished run" in again.output
    done = cli.invoke(main, ["status", "in.csv", *operation])
    assert "its last run finished (started " in done.output
    assert "rows       35 success" in done.output
    assert list((tmp_path / ".batcher").glob("run-*.sqlite")) != []


def test_status_input_with_a_shard_finds_the_shard_s_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_once: Sandbox
) -> None:
    """The issue's reproduction: `status INPUT --shard K/N` (or `--shards N` with the
    scheduler's index) finds the unfinished run of `run INPUT --shard K/N`; without the shard it
    is another run, and `--shards N` with no index names none (exit 2, as `run` refuses)."""
    for name in ("BATCHER_SHARD", "JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("CLOUD_RUN_TASK_INDEX", raising=False)
    monkeypatch.chdir(tmp_path)
    # One attempt per request: the first request's 10 rows end `failed` (exit 1, unfinished).
    write_config(
        tmp_path,
        api={"location_id": LOCATION},
        batch={"size": 10},
        retry={"attempts": 1, "initial_backoff_s": 0.0, "max_backoff_s": 0.0},
    )
    write_csv(tmp_path / "in.csv", contact_ids(35, seed=9))
    shard = f"{bucket(LOCATION, 2)}/2"  # the shard that holds the file's one location
    operation = ["--action", "add", "--tags", "vip", "--base-url", failing_once.url]
    cli = CliRunner()
    run = cli.invoke(main, ["run", "in.csv", *operation, "--shard", shard, "--yes"])
    assert run.exit_code == 1, run.output

    shown = cli.invoke(main, ["status", "in.csv", *operation, "--shard", shard])
    assert shown.exit_code == 0, shown.output
    assert f'operation  add ["vip"] at location {LOCATION}, shard {shard}' in shown.output
    assert "an unfinished run, started " in shown.output
    assert "to send    10 rows (pending and failed)" in shown.output

    monkeypatch.setenv("JOB_COMPLETION_INDEX", shard.split("/")[0])
    indexed = cli.invoke(main, ["status", "in.csv", *operation, "--shards", "2"])
    assert indexed.exit_code == 0, indexed.output
    assert indexed.output == shown.output
    monkeypatch.delenv("JOB_COMPLETION_INDEX")

    whole = cli.invoke(main, ["status", "in.csv", *operation])
    assert whole.exit_code == 0, whole.output
    assert "no run of this input with this operation and target" in whole.output

    unindexed = cli.invoke(main, ["status", "in.csv", *operation, "--shards", "2"])
    assert unindexed.exit_code == 2
    assert "--shards 2 needs this process's shard index" in unindexed.output
