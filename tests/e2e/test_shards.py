"""Shards end to end: N shard runs and a merge give the one-process report, row by row; a shard
killed mid-run leaves its rows unreported (merge says which) until it is run again."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from batcher.app.execute import execute
from batcher.app.jobs import Job, build_job
from batcher.app.merging import IncompleteMergeError, merge_reports
from batcher.app.sharding import Shard, bucket
from batcher.cli import main
from batcher.domain.config import Settings, StateSettings
from batcher.domain.errors import UsageError
from batcher.sandbox import Sandbox, SandboxConfig

from .conftest import SandboxFactory, contact_ids, fast_settings, write_csv
from .helpers import (
    SECRET,
    Gate,
    batcher_argv,
    child_env,
    finish,
    read_csv,
    reap_children,  # noqa: F401 - an autouse fixture: imported to take effect here
    start,
    write_config,
)

LOCATIONS = [f"shardLocation{i:07d}" for i in range(10)]
ROWS = 240


def write_input(path: Path) -> Path:
    """Rows over 10 locations, some invalid, some contacts twice (rounds and duplicates)."""
    ids = contact_ids(ROWS, seed=11)
    ids[7] = "not-an-id"
    ids[100] = ids[3]  # the same contact again: a duplicate of row 4
    locations = [LOCATIONS[(n * 7) % len(LOCATIONS)] for n in range(ROWS)]
    locations[100] = locations[3]
    return write_csv(path, ids, location_id=locations)


def job_of(settings: Settings, source: Path, **options: Any) -> Job:
    return build_job(settings, source, action="add", tags="vip", **options)


def shard_of_rows(source: Path, count: int) -> Counter[int]:
    rows = read_csv(source)
    return Counter(bucket(row["location_id"], count) for row in rows)


async def test_shard_runs_merged_equal_one_run_row_by_row(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    source = write_input(tmp_path / "in.csv")
    whole = tmp_path / "whole.csv"
    async with make_sandbox(locations=frozenset(LOCATIONS)) as sandbox:
        settings = fast_settings(tmp_path, sandbox.url)
        result = await execute(settings, job_of(settings, source, report_path=whole))
        assert result.exit_code == 0
    # A fresh sandbox (the same contacts, untagged) for the shards, as for the whole run.
    async with make_sandbox(locations=frozenset(LOCATIONS)) as sandbox:
        reports = []
        for k in range(3):
            state = StateSettings(dir=str(tmp_path / f"state-{k}"))
            settings = fast_settings(tmp_path, sandbox.url, state=state)
            report = tmp_path / f"shard-{k}.csv"
            job = job_of(settings, source, report_path=report, shard=f"{k}/3")
            shard = await execute(settings, job)
            assert shard.exit_code == 0
            assert shard.shard == Shard(k, 3)
            lines = read_csv(report)
            assert len(lines) == shard_of_rows(source, 3)[k]
            assert {bucket(line["location_id"], 3) for line in lines} <= {k}
            reports.append(report)
    merged = merge_reports(reports, tmp_path / "merged.csv", shards=3)
    assert merged.rows == ROWS
    assert (tmp_path / "merged.csv").read_bytes() == whole.read_bytes()


async def test_a_shard_with_no_row_is_nothing_to_do_and_merges(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """A shard whose bucket holds no location writes a header-only report (exit 0), even though
    the input's rows are all valid (they are only not its own)."""
    source = write_csv(tmp_path / "in.csv", contact_ids(20), location_id=[LOCATIONS[0]] * 20)
    empty = 1 - bucket(LOCATIONS[0], 2)
    async with make_sandbox(locations=frozenset(LOCATIONS)) as sandbox:
        settings = fast_settings(tmp_path, sandbox.url)
        report = tmp_path / "empty.csv"
        result = await execute(
            settings, job_of(settings, source, report_path=report, shard=f"{empty}/2")
        )
        assert result.exit_code == 0
        assert sum(result.counts.values()) == 0
        assert read_csv(report) == []
        assert not sandbox.stats.applied


async def test_run_with_a_shard_count_and_no_index_sends_nothing(
    tmp_path: Path, make_sandbox: SandboxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX", "CLOUD_RUN_TASK_INDEX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("BATCHER_SHARD", raising=False)
    source = write_input(tmp_path / "in.csv")
    async with make_sandbox(locations=frozenset(LOCATIONS)) as sandbox:
        settings = fast_settings(tmp_path, sandbox.url)
        with pytest.raises(UsageError, match="--shards 3 needs this process's shard index"):
            await execute(settings, job_of(settings, source, shards="3"))
        monkeypatch.setenv("JOB_COMPLETION_INDEX", "2")
        job = job_of(settings, source, shards="3", report_path=tmp_path / "r.csv")
        assert job.shard == Shard(2, 3)
        assert (await execute(settings, job)).exit_code == 0


async def test_a_killed_shard_is_named_by_merge_then_resumed_and_merged(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """Kill shard 1/2 mid-run (SIGKILL, an answer held): merge refuses, naming its rows; the same
    command resumes it; merge then gives every row once, equal to one whole run."""
    source = write_input(tmp_path / "in.csv")
    write_config(
        tmp_path,
        batch={"size": 10},
        limits={"concurrency": 1, "requests_per_interval": 1000, "interval_ms": 1000},
        retry={"attempts": 3, "initial_backoff_s": 0.0, "max_backoff_s": 0.0},
    )
    gate = Gate(open_for=2)
    config = SandboxConfig(token=SECRET, rate=None, locations=frozenset(LOCATIONS))
    async with Sandbox(config, sleep=gate) as sandbox:
        # The one-process run for comparison, and shard 0 in this process, each against a
        # sandbox of its own (the same contacts, untagged: shards share no contact).
        whole = tmp_path / "whole.csv"
        for report, shard in ((whole, None), (tmp_path / "r0.csv", "0/2")):
            async with make_sandbox(locations=frozenset(LOCATIONS)) as other:
                state = StateSettings(dir=str(tmp_path / f"state-{shard is None}"))
                settings = fast_settings(tmp_path, other.url, state=state)
                job = job_of(settings, source, report_path=report, shard=shard)
                assert (await execute(settings, job)).exit_code == 0

        argv = [*batcher_argv("run", source, sandbox.url, tmp_path / "r1.csv"), "--shard", "1/2"]
        env = {**child_env(), "BATCHER_STATE_DIR": str(tmp_path / "state-1")}
        process = await start(tmp_path, argv, env)
        await gate.held(3)  # two batches answered and recorded, the third held
        process.send_signal(signal.SIGKILL)
        await finish(process, [])
        assert not (tmp_path / "r1.csv").exists()

        with pytest.raises(IncompleteMergeError, match="rows are in no report"):
            merge_reports([tmp_path / "r0.csv"], tmp_path / "merged.csv", shards=2)
        done = CliRunner().invoke(
            main, ["merge", str(tmp_path / "r0.csv"), "--shards", "2", "--report", "m.csv"]
        )
        assert done.exit_code == 1
        assert "a shard has not run yet" in done.stderr

        await gate.open()
        applied_before = len(sandbox.stats.applied)
        process = await start(tmp_path, argv, env)
        stdout, stderr, code = await finish(process, [])
        assert code == 0, stderr
        assert "(continued an unfinished run)" in stdout
        resent = [c for r in sandbox.stats.applied[applied_before:] for c in r.update.contacts]
        first = [c for r in sandbox.stats.applied[:2] for c in r.update.contacts]
        assert not set(first) & set(resent)  # the recorded batches are not sent again

    merged = merge_reports(
        [tmp_path / "r1.csv", tmp_path / "r0.csv"], tmp_path / "merged.csv", shards=2
    )
    assert merged.rows == ROWS
    # Row by row as the whole run, but for the answers to the request in flight at the kill:
    # the sandbox had applied it, so its resend finds the tags already there.
    fields = ("row", "line", "contact_id", "location_id", "status", "email")

    def rows(path: Path) -> list[tuple[str, ...]]:
        return [tuple(line[f] for f in fields) for line in read_csv(path)]

    assert rows(tmp_path / "merged.csv") == rows(whole)


def test_plan_shows_the_spread_over_n_shards_and_warns_of_a_dominant_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX", "CLOUD_RUN_TASK_INDEX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("BATCHER_SHARD", raising=False)
    monkeypatch.chdir(tmp_path)
    ids = contact_ids(300, seed=5)
    locations = [LOCATIONS[0] if n % 3 else LOCATIONS[1 + n % 9] for n in range(300)]
    source = write_csv(tmp_path / "in.csv", ids, location_id=locations)
    (tmp_path / "batcher.toml").write_text("[batch]\nsize = 10\n", encoding="utf-8")
    argv = ["plan", str(source), "--action", "add", "--tags", "vip", "--base-url"]
    argv += ["http://127.0.0.1:9", "--shards", "4"]
    done = CliRunner().invoke(main, argv)
    assert done.exit_code == 0, done.output
    out = done.stdout
    assert "over 4 shards (--shard K/4, K from 0 to 3):" in out
    per_shard = Counter(bucket(loc, 4) for loc in locations)
    for k in range(4):
        assert f"    {k}/4  {per_shard[k]:>9,}" in out
    assert f"warning: location {LOCATIONS[0]} needs 20 of the " in done.stderr
    assert "a location is never split" in done.stderr

    done = CliRunner().invoke(main, [*argv[:-2], "--shard", "4/4"])
    assert done.exit_code == 2
    assert done.stderr == (
        "batcher: error: --shard '4/4': K counts from 0 to 3 (0/4 ... 3/4), as "
        "JOB_COMPLETION_INDEX does\n"
    )
