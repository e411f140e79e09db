"""`batcher status`: the runs in the state directory, counted as they are, changing nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from batcher.app.status import list_runs
from batcher.cli import main
from batcher.domain.errors import StateLockedError
from batcher.domain.models import Action, Batch, BatchOutcome, Chunk, ContactOutcome, Row, Status
from batcher.state import Ledger, StateLock

ROOT = Path(__file__).resolve().parents[1]
LOC = "L" * 20


def rows(count: int) -> list[Row]:
    """`count` rows adding vip, the last one invalid."""
    made = [
        Row(n, f"C{n:019d}", LOC, "add", ("vip",), False, extra=(f"p{n}@example.com",), line=n + 1)
        for n in range(1, count)
    ]
    made.append(
        Row(count, "bad", LOC, "add", ("vip",), False, Status.INVALID, "contact id is bad", ("x",))
    )
    return made


def answer(*numbers: int, status: Status = Status.SUCCESS) -> BatchOutcome:
    batch = Batch(
        LOC,
        Action.ADD,
        ("vip",),
        False,
        0,
        tuple(numbers),
        tuple(f"C{n:019d}" for n in numbers),
    )
    outcome = ContactOutcome(status, "Tags updated", (), ("vip",), ())
    return BatchOutcome(batch, tuple(outcome for _ in numbers), 201, 1)


def open_run(state: Path, key: str, name: str) -> Ledger:
    about = {
        "input": f"/data/{name}",
        "operation": 'add ["vip"] at location ' + LOC,
        "target": "https://api.example",
        "report": f"/data/{name}-report.csv",
    }
    ledger = Ledger.open(state, key, about=about)
    ledger.load(["email"], [Chunk.of_rows(rows(6), 1)])
    return ledger


def files(state: Path) -> dict[str, tuple[bytes, int]]:
    """The state directory's files with their content and modification time; SQLite's own -wal
    and -shm left out (any reader of a WAL database may create them; they hold no run data)."""
    return {
        path.name: (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(state.iterdir())
        if not path.name.endswith(("-wal", "-shm"))
    }


def test_a_missing_state_directory_has_no_runs_and_is_not_created(tmp_path: Path) -> None:
    assert list_runs(tmp_path / "nowhere") == []
    assert not (tmp_path / "nowhere").exists()


def test_an_unfinished_run_is_counted_as_it_is_now(tmp_path: Path) -> None:
    """While a run records answers, status sees each one (not the counts of its last stop)."""
    state = tmp_path / "state"
    with open_run(state, "k1", "in.csv") as ledger:
        (run,) = list_runs(state)
        assert run.state == "ready"
        assert run.live
        assert run.counts == {"pending": 5, "invalid": 1}
        ledger.record(answer(1, 2))
        ledger.record(answer(3, status=Status.FAILED))
        (run,) = list_runs(state)
        assert run.counts == {"success": 2, "failed": 1, "pending": 2, "invalid": 1}
        assert run.to_send == 3
        assert not run.finished
        assert run.info.input == "/data/in.csv"
        assert run.info.report == "/data/in.csv-report.csv"


def test_a_finished_run_shows_the_counts_it_saved(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with open_run(state, "k1", "in.csv") as ledger:
        ledger.record(answer(1, 2, 3, 4, 5))
        ledger.save_counts({"success": 5, "invalid": 1}, finished=True)
    with open_run(state, "k2", "other.csv"):
        pass
    first, second = list_runs(state)
    assert first.finished
    assert not first.live
    assert first.counts == {"success": 5, "invalid": 1}
    assert first.to_send == 0
    assert not second.finished
    assert second.info.input == "/data/other.csv"


@pytest.fixture
def locked_by_another_process(tmp_path: Path) -> Iterator[Path]:
    """The state directory, its lock held by a child process until the test ends."""
    state = tmp_path / "state"
    with open_run(state, "k1", "in.csv") as ledger:
        ledger.record(answer(1))
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from batcher.state import StateLock; "
            "StateLock(Path(sys.argv[1])).acquire(); print('locked', flush=True); "
            "sys.stdin.read(1)",
            str(state),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "locked"
            yield state
        finally:
            assert child.stdin is not None
            child.stdin.close()
            child.wait(timeout=60)


def test_status_works_while_another_process_holds_the_lock_and_changes_nothing(
    locked_by_another_process: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = locked_by_another_process
    before = files(state)
    (run,) = list_runs(state)
    assert run.counts == {"success": 1, "pending": 4, "invalid": 1}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BATCHER_STATE_DIR", str(state))
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 0, result.output
    assert f"batcher: 1 run in {state}" in result.output
    (line,) = [line for line in result.output.splitlines() if "unfinished" in line]
    assert line.endswith(
        f"unfinished: 4 rows still to send; `batcher resume {run.info.run_id}` finishes it (its "
        "input file is not needed), as does its own command"
    )
    assert "input      /data/in.csv" in result.output
    assert "rows       1 success, 1 invalid, 4 pending" in result.output
    assert files(state) == before
    # The other process still holds the lock: status never took it.
    with pytest.raises(StateLockedError):
        StateLock(state).acquire()


def test_status_with_an_option_but_no_input_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["status", "--action", "add"])
    assert result.exit_code == 2
    assert "--action goes with INPUT" in result.output
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 0
    assert result.output == "batcher: no runs in .batcher\n"
    assert not (tmp_path / ".batcher").exists()
