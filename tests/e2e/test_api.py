"""The Python API end to end (SPEC "The Python API"): rows in memory sent to the sandbox, one
result per row given, read from the run's ledger; resume, plan and undo as the CLI does them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import batcher
from batcher.domain.config import RetrySettings, Settings
from batcher.sandbox import EXAMPLE_LOCATION
from tests.e2e.conftest import LOCATION, SandboxFactory, contact_ids, fast_settings

IDS = contact_ids(4, seed=13)
# One row of each kind: sent, invalid (a short id), a second contact, its duplicate.
ROWS: list[dict[str, Any]] = [
    {"contact_id": IDS[0], "email": "ann@example.com", "Score": 7},
    {"contact_id": "short", "email": "bob@example.com", "Score": None},
    {"contact_id": IDS[1], "email": "cy@example.com", "Score": 3.5},
    {"contact_id": IDS[1], "email": "cy@example.com", "Score": 3.5},
]


def _check_rows(results: batcher.Results, scores: list[str]) -> None:
    rows = list(results)
    assert [r["row"] for r in rows] == [1, 2, 3, 4]
    assert [r["status"] for r in rows] == ["success", "invalid", "success", "duplicate"]
    assert [r["contact_id"] for r in rows] == [x["contact_id"] for x in ROWS]
    assert rows[0]["tags"] == ["vip", "spring"]
    assert sorted(rows[0]["tags_added"]) == ["spring", "vip"]
    assert rows[0]["old_tags"] == []
    assert rows[0]["tags_removed"] == []
    assert rows[1]["tags_added"] is None
    assert "does not match" in rows[1]["message"]
    assert rows[3]["message"] == "duplicate of row 3"
    assert all(r["uncertain"] is False for r in rows)
    assert rows[0]["http_status"] == 201
    assert rows[0]["attempts"] == 1
    # The rows' own columns, kept as text (a clash with a result field gets `input_`).
    assert [r["email"] for r in rows] == [x["email"] for x in ROWS]
    assert [r["Score"] for r in rows] == scores
    assert rows[0]["input_contact_id"] == IDS[0]
    assert results.counts == {"success": 2, "invalid": 1, "duplicate": 1}
    assert results.stopped is None
    assert results.exit_code == 0


def test_a_list_of_dicts_gives_each_rows_result_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`apply` on a list of dicts against the embedded sandbox returns one mapping per row, in
    order, with the report's fields (lists as lists, `uncertain` a bool) and the rows' own
    columns, and writes no report file unless asked."""
    monkeypatch.chdir(tmp_path)
    results = batcher.apply(
        ROWS, action="add", tags=["vip", "spring"], location_id=LOCATION, sandbox=True
    )
    _check_rows(results, ["7", "", "3.5", "3.5"])
    assert results.report_path is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [".batcher"]
    assert len(results) == 4
    assert results[2]["contact_id"] == IDS[1]


def test_a_dataframe_runs_as_its_rows_and_comes_back_as_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DataFrame is taken as its rows (its index is no column; NaN is empty), and the
    results turn back into a DataFrame with the same columns, one line per row."""
    monkeypatch.chdir(tmp_path)
    frame = pd.DataFrame(ROWS, index=[10, 11, 12, 13])
    results = batcher.apply(
        frame, action="add", tags="vip,spring", location_id=LOCATION, sandbox=True
    )
    _check_rows(results, ["7.0", "", "3.5", "3.5"])  # the column is float in the frame
    out = results.to_frame()
    assert list(out.columns) == list(results.columns)
    assert out["status"].tolist() == ["success", "invalid", "success", "duplicate"]
    assert out["email"].tolist() == frame["email"].tolist()


async def test_the_token_and_target_given_are_used_not_the_environment(
    tmp_path: Path, make_sandbox: SandboxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no token in the environment, `token=` and `base_url=` given to `apply_async` send to
    that API with that token; the token appears in no result."""
    async with make_sandbox() as sandbox:
        monkeypatch.delenv("BATCHER_TOKEN")
        settings = fast_settings(tmp_path, "https://unused.example.com")
        results = await batcher.apply_async(
            ROWS[:1],
            action="add",
            tags=["vip"],
            base_url=sandbox.url,
            token=sandbox.token,
            config=settings,
        )
        assert results.counts == {"success": 1}
        assert len(sandbox.stats.applied) == 1
        assert sandbox.universe.tags(IDS[0]) == ("vip",)
        assert sandbox.token not in json.dumps(list(results))


async def test_a_refused_token_stops_the_run_and_the_same_call_resumes_it(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """A 401 stops the run without raising: `stopped` says why, every row is pending, exit code
    3; the same call again continues that run (same run id) and settles every row."""
    rows = [{"contact_id": contact} for contact in contact_ids(30, seed=5)]
    async with make_sandbox(faults={"fail_first": 1, "fail_first_status": 401}) as sandbox:
        settings = fast_settings(tmp_path, sandbox.url)
        first = await batcher.apply_async(rows, action="add", tags=["vip"], config=settings)
        assert first.stopped is not None
        assert "token" in str(first.stopped)
        assert first.exit_code == 3
        assert first.counts == {"pending": 30}
        assert all(r["status"] == "pending" and r["message"].startswith("not sent") for r in first)
        second = await batcher.apply_async(rows, action="add", tags=["vip"], config=settings)
        assert second.run.resumed
        assert second.run_id == first.run_id
        assert second.counts == {"success": 30}
        assert second.exit_code == 0
        assert [r["contact_id"] for r in second] == [r["contact_id"] for r in rows]


async def test_a_change_that_may_have_landed_unanswered_is_uncertain(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """When every attempt's connection drops after the sandbox applied the change, the rows
    are `failed` with `uncertain` True (a bool) and the exit code is 1."""
    async with make_sandbox(faults={"drop_after": 1.0}) as sandbox:
        settings = fast_settings(
            tmp_path,
            sandbox.url,
            retry=RetrySettings(attempts=2, initial_backoff_s=0.0, max_backoff_s=0.0),
        )
        results = await batcher.apply_async(ROWS[:1], action="add", tags=["vip"], config=settings)
        (row,) = results
        assert row["status"] == "failed"
        assert row["uncertain"] is True
        assert row["attempts"] == 2
        assert results.exit_code == 1
        assert sandbox.universe.tags(IDS[0]) == ("vip",)  # it did land


async def test_plan_sends_nothing_and_keeps_no_run(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """`plan_async` reads and checks the rows as `apply` would, sends nothing and keeps no run:
    rows to send are `pending` ("would be sent"), the others as the run would report them."""
    async with make_sandbox() as sandbox:
        settings = fast_settings(tmp_path, sandbox.url)
        planned = await batcher.plan_async(ROWS, action="add", tags=["vip"], config=settings)
        assert sandbox.stats.applied == []
        assert [r["status"] for r in planned] == ["pending", "invalid", "pending", "duplicate"]
        assert planned[0]["message"] == "would be sent"
        assert planned.run.plan.requests == 1
        assert planned.run_id == ""
        assert batcher.runs_in(Path(settings.state.dir)) == []
        with pytest.raises(batcher.UsageError, match="plan"):
            await batcher.undo_async(planned, config=settings)


async def test_undo_takes_the_run_back_from_its_results(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """`undo_async(results)` removes exactly the tags the run added, reports each operation
    (rows with nothing to undo say so), and refuses a second undo without `again`; the state
    directory names the run's rows and the undo that took it back."""
    async with make_sandbox() as sandbox:
        settings = fast_settings(tmp_path, sandbox.url)
        results = await batcher.apply_async(ROWS, action="add", tags=["vip"], config=settings)
        assert sandbox.universe.tags(IDS[0]) == ("vip",)
        undone = await batcher.undo_async(results, config=settings)
        assert sandbox.universe.tags(IDS[0]) == ()
        assert sandbox.universe.tags(IDS[1]) == ()
        assert [r["status"] for r in undone] == [
            "success",
            "nothing_to_undo",
            "success",
            "nothing_to_undo",
        ]
        assert [r["undoes_row"] for r in undone] == ["1", "2", "3", "4"]
        assert undone[0]["action"] == "remove"
        assert undone[0]["tags"] == ["vip"]
        assert undone.exit_code == 0
        with pytest.raises(batcher.UsageError, match="again"):
            await batcher.undo_async(results, config=settings)
        # The state directory names the run's input and its undo in words.
        run = next(
            i for i in batcher.runs_in(Path(settings.state.dir)) if i.run_id == results.run_id
        )
        assert run.input == "rows given in Python"
        assert run.undone is not None
        assert run.undone.by == f"undo run {undone.run_id} (which wrote no report file)"


async def test_a_report_is_written_when_asked(tmp_path: Path, make_sandbox: SandboxFactory) -> None:
    """`report=` writes the report file too (one line per row, as the CLI's), and the results
    name it."""
    async with make_sandbox() as sandbox:
        settings = fast_settings(tmp_path, sandbox.url)
        out = tmp_path / "out.jsonl"
        results = await batcher.apply_async(
            ROWS, action="add", tags=["vip"], config=settings, report=out
        )
        assert results.report_path == out
        lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert [line["status"] for line in lines] == [r["status"] for r in results]


async def test_the_blocking_calls_refuse_a_running_loop(tmp_path: Path) -> None:
    """`apply`, `plan` and `undo` called from async code raise UsageError naming the `_async`
    call to await instead (asyncio.run cannot nest)."""
    settings = Settings()
    with pytest.raises(batcher.UsageError, match="apply_async"):
        batcher.apply(ROWS, action="add", tags="vip", config=settings)
    with pytest.raises(batcher.UsageError, match="plan_async"):
        batcher.plan(ROWS, action="add", tags="vip", config=settings)
    with pytest.raises(batcher.UsageError, match="undo_async"):
        batcher.undo(tmp_path / "report.csv", config=settings)


async def test_a_token_per_location_sends_each_location_with_its_own(
    tmp_path: Path, make_sandbox: SandboxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`token={location: token}` sends each location's rows with that location's token (a
    token bound to one sub-account): the right ones settle every row; a token given to a
    location it cannot reach stops that location only, and no token shows in a result."""
    other_token = "tok-other-location-5d1e"
    rows = [
        {"contact_id": IDS[0], "location_id": LOCATION},
        {"contact_id": IDS[1], "location_id": EXAMPLE_LOCATION},
    ]
    async with make_sandbox(tokens={other_token: frozenset({EXAMPLE_LOCATION})}) as sandbox:
        monkeypatch.delenv("BATCHER_TOKEN")
        settings = fast_settings(tmp_path, sandbox.url)
        tokens = {LOCATION: sandbox.token, EXAMPLE_LOCATION: other_token}
        results = await batcher.apply_async(
            rows, action="add", tags=["vip"], config=settings, token=tokens
        )
        assert results.counts == {"success": 2}
        assert sandbox.universe.tags(IDS[1]) == ("vip",)
        swapped = {LOCATION: other_token, EXAMPLE_LOCATION: sandbox.token}
        refused = await batcher.apply_async(
            rows, action="add", tags=["new"], config=settings, token=swapped
        )
        assert refused.stopped is not None
        assert [r["status"] for r in refused] == ["pending", "success"]
        shown = json.dumps(list(refused)) + str(refused.stopped)
        assert other_token not in shown
        assert sandbox.token not in shown
