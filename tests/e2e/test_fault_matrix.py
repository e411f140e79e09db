"""Each fault, and what must hold after it: the exit status, every row's status, the requests.

A `batcher run` child is killed (SIGKILL) at many moments of its life, each reached without
timing luck (see `helpers`): the sandbox holds the Nth answer, or the child parks at a named
place; then the same command, run again, must finish every row exactly once without sending
again any row the killed run had recorded. Disk full, a corrupt state file, a second Ctrl-C and
a bug inside a worker each end with one line, exit 3, and a rerun that completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import stat
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from batcher.app.execute import execute
from batcher.app.jobs import Job
from batcher.cli import main
from batcher.domain.config import BatchSettings, LimitSettings
from batcher.domain.errors import Interrupted, StateError
from batcher.domain.models import Batch, BatchOutcome
from batcher.loading import InputOptions
from batcher.sandbox import FaultConfig, Sandbox, SandboxConfig
from batcher.sending.client import Answer, BulkTagsClient
from batcher.state import Ledger
from batcher.support.stopping import Stop

from .conftest import (
    LOCATION,
    SandboxFactory,
    ThreadedSandbox,
    contact_ids,
    fast_settings,
    write_csv,
)
from .helpers import (
    HOOK_MARK,
    SECRET,
    Gate,
    batcher_argv,
    batcher_lines,
    child_env,
    finish,
    read_csv,
    read_jsonl,
    read_until,
    reap_children,  # noqa: F401 - an autouse fixture: imported to take effect here
    recorded,
    report_temporaries,
    requests_for,
    sent_contacts,
    start,
    state_files,
    status_counts,
    untagged,
    write_config,
    write_hooks,
)

SIZE = 5
BATCHES = 10
ROWS = SIZE * BATCHES
ABORTED = (
    "batcher: error: SIGINT received again: stopped at once; what was saved is kept: run the "
    "same command again to resume"
)
ADD_VIP = InputOptions(action="add", tags=("vip",), default_location_id=LOCATION)


def config(directory: Path, backoff_s: float = 0.0) -> None:
    """Small batches, one at a time (so the Nth answer held means N-1 recorded), no waiting."""
    write_config(
        directory,
        api={"location_id": LOCATION},
        batch={"size": SIZE},
        limits={"concurrency": 1, "requests_per_interval": 100_000, "interval_ms": 1000},
        retry={"attempts": 6, "initial_backoff_s": backoff_s, "max_backoff_s": backoff_s},
    )


@dataclass(frozen=True)
class Moment:
    """Where the child is when it is killed, and how many rows it has recorded `success` then.

    `hold`: the sandbox holds this answer (1-based) and every later one; None lets all through.
    `recorded`: the possible counts of rows recorded `success` at the kill.
    """

    name: str
    hold: int | None
    recorded: frozenset[int]
    fail_first: int = 0
    backoff_s: float = 0.0
    pause: str = ""
    resumes: bool = True


MOMENTS = [
    # An answer held: its change applied, the answer not yet back; the earlier ones recorded.
    *(
        Moment(f"answer-{n}-in-flight", hold=n, recorded=frozenset({(n - 1) * SIZE}))
        for n in range(1, BATCHES + 1)
    ),
    # An answer let through just before the kill: between recording it and sending the next.
    *(
        Moment(f"just-after-answer-{n}", hold=n, recorded=frozenset({(n - 1) * SIZE, n * SIZE}))
        for n in (3, 7)
    ),
    # A 503 held (nothing applied), on the first and on the retried attempt.
    *(
        Moment(f"failing-attempt-{n}-held", hold=n, recorded=frozenset({0}), fail_first=2)
        for n in (1, 2)
    ),
    Moment("in-backoff", hold=1, recorded=frozenset({0}), fail_first=1, backoff_s=3600.0),
    Moment("just-spawned", hold=1, recorded=frozenset({0}), resumes=False),
    Moment("after-the-start-notice", hold=1, recorded=frozenset({0}), resumes=False),
    Moment("while-loading", hold=1, recorded=frozenset({0}), pause="loading", resumes=False),
    Moment("while-writing-the-report", hold=None, recorded=frozenset({ROWS}), pause="report"),
    Moment("while-stopping-after-sigterm", hold=3, recorded=frozenset({2 * SIZE})),
    Moment("during-a-resumed-run", hold=3, recorded=frozenset({3 * SIZE})),
]


@pytest.fixture
async def gated(sandboxes: list[Sandbox], request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A sandbox whose answers pass a Gate: `async with gated(hold, fail_first) as (sb, gate)`."""

    @contextlib.asynccontextmanager
    async def factory(hold: int | None, fail_first: int = 0) -> AsyncIterator[tuple[Sandbox, Gate]]:
        gate = Gate(open_for=(hold - 1) if hold is not None else 1 << 30)
        faults = FaultConfig(fail_first=fail_first)
        async with Sandbox(SandboxConfig(token=SECRET, rate=None, faults=faults), sleep=gate) as sb:
            sandboxes.append(sb)
            try:
                yield sb, gate
            finally:
                await gate.open()

    return factory


async def reach(
    moment: Moment,
    process: asyncio.subprocess.Process,
    gate: Gate,
    seen: list[str],
    argv: list[str],
    tmp_path: Path,
) -> asyncio.subprocess.Process:
    """Bring the child to `moment`; return the process to kill (a second one for a resumed run)."""
    name = moment.name
    if name.startswith(("answer-", "failing-attempt-")):
        assert moment.hold is not None
        await gate.held(moment.hold)
    elif name.startswith("just-after-answer-"):
        assert moment.hold is not None
        await gate.held(moment.hold)
        await gate.let_through(1)  # that answer goes; the next one will be held
    elif name == "in-backoff":
        await gate.held(1)
        await gate.let_through(1)  # the 503 goes; the retry waits at least half an hour
    elif name == "after-the-start-notice":
        await read_until(process.stderr, "sending to", seen)
    elif moment.pause:
        await read_until(process.stderr, HOOK_MARK, seen)
    elif name == "while-stopping-after-sigterm":
        await gate.held(3)
        process.send_signal(signal.SIGTERM)
        await read_until(process.stderr, "SIGTERM received", seen)
    elif name == "during-a-resumed-run":
        await gate.held(3)
        process.send_signal(signal.SIGKILL)
        await finish(process, seen)
        # The rerun sends batch 3 again (4th answer, let through) and batch 4 (5th, held).
        process = await start(tmp_path, argv, child_env())
        await gate.let_through(2)
        await gate.held(5)
        seen.clear()
    else:
        assert name == "just-spawned"
    return process


@pytest.mark.parametrize("moment", MOMENTS, ids=[m.name for m in MOMENTS])
async def test_a_run_killed_at_any_moment_loses_no_row_and_resends_no_settled_row(
    tmp_path: Path, gated: Any, moment: Moment
) -> None:
    """After SIGKILL at `moment`, the same command finishes every row exactly once (exit 0),
    sending exactly the rows the killed run had not recorded, in the fewest requests."""
    ids = contact_ids(ROWS, seed=3)
    source = write_csv(tmp_path / "in.csv", ids)
    report = tmp_path / "report.jsonl"
    config(tmp_path, backoff_s=moment.backoff_s)
    hooks = write_hooks(tmp_path / "hooks") if moment.pause else None
    async with gated(moment.hold, moment.fail_first) as (sandbox, gate):
        argv = batcher_argv("run", source, sandbox.url, report)
        process = await start(tmp_path, argv, child_env(hooks, moment.pause))
        seen: list[str] = []
        process = await reach(moment, process, gate, seen, argv, tmp_path)
        process.send_signal(signal.SIGKILL)
        _, stderr, code = await finish(process, seen)
        assert code == -signal.SIGKILL
        assert "Traceback" not in stderr

        state = recorded(tmp_path / ".batcher", tmp_path / "inspect")
        settled = {row for row, status in state.items() if status == "success"}
        assert len(settled) in moment.recorded
        assert set(state.values()) <= {"success"}
        assert settled == set(range(1, len(settled) + 1))  # one worker: a prefix of the rows
        if moment.pause == "report":  # a half-written report is never published
            assert report_temporaries(report)  # the killed writer's
            assert not report.exists()
        before = len(sandbox.stats.applied)
        retries_left = moment.fail_first - sandbox.stats.faults["fail_first"]

        config(tmp_path)
        await gate.open()
        process = await start(tmp_path, argv)
        stdout, stderr, code = await finish(process, [])

    assert code == 0, stderr
    assert "Traceback" not in stderr
    unsettled = [ids[row - 1] for row in range(1, ROWS + 1) if row not in settled]
    assert sent_contacts(sandbox, before) == unsettled  # each once, none recorded before
    requests = requests_for(len(unsettled), SIZE) + retries_left
    assert f"requests {requests:,} (retries {retries_left:,}," in stdout
    assert ("(continued an unfinished run)" in stdout) is moment.resumes
    lines = read_jsonl(report)
    assert [line["row"] for line in lines] == list(range(1, ROWS + 1))
    assert [line["contact_id"] for line in lines] == ids
    assert status_counts(lines) == {"success": ROWS}
    assert len(report_temporaries(report)) <= 1  # only the killed writer's
    assert len(state_files(tmp_path / ".batcher")) == 1


async def test_a_second_sigint_exits_3_at_once_and_the_rerun_resends_no_settled_row(
    tmp_path: Path, gated: Any
) -> None:
    """A second SIGINT while a request is held ends the child at once with exit 3 and one
    `batcher: error:` line; the rerun sends the abandoned batch and the rest, nothing settled."""
    ids = contact_ids(ROWS, seed=4)
    source = write_csv(tmp_path / "in.csv", ids)
    report = tmp_path / "report.jsonl"
    config(tmp_path)
    async with gated(hold=3) as (sandbox, gate):
        argv = batcher_argv("run", source, sandbox.url, report)
        env = child_env(write_hooks(tmp_path / "hooks"), repeat_at_once=True)
        process = await start(tmp_path, argv, env)
        seen: list[str] = []
        await gate.held(3)
        process.send_signal(signal.SIGINT)
        await read_until(process.stderr, "SIGINT received", seen)
        process.send_signal(signal.SIGINT)
        stdout, stderr, code = await finish(process, seen)  # the gate still holds answer 3
        assert gate.waiting == {3}
        assert not report.exists()  # stopped at once: no report
        state = recorded(tmp_path / ".batcher", tmp_path / "inspect")
        before = len(sandbox.stats.applied)

        await gate.open()
        rerun = await start(tmp_path, argv)
        rerun_out, rerun_err, rerun_code = await finish(rerun, [])

    assert code == 3
    assert "Traceback" not in stderr
    said = [line for line in batcher_lines(stderr) if line.startswith("batcher: ")]
    assert said[1:] == [
        "batcher: SIGINT received: finishing what is in flight, then writing the report "
        "(SIGINT again to stop at once)",
        ABORTED,
    ]
    assert stdout == ""  # no summary: it stopped at once
    assert state == dict.fromkeys(range(1, 2 * SIZE + 1), "success")
    assert rerun_code == 0, rerun_err
    assert sent_contacts(sandbox, before) == ids[2 * SIZE :]
    assert f"requests {BATCHES - 2} (retries 0," in rerun_out
    assert status_counts(read_jsonl(report)) == {"success": ROWS}


async def test_a_second_sigint_inside_an_http_write_leaves_no_traceback(
    tmp_path: Path, sandboxes: list[Sandbox]
) -> None:
    """A second SIGINT landing while the client writes a request body still ends with exit 3
    and one error line, and no traceback."""
    source = write_csv(tmp_path / "in.csv", contact_ids(ROWS, seed=5))
    config(tmp_path)
    async with Sandbox(SandboxConfig(token=SECRET, rate=None)) as sandbox:
        sandboxes.append(sandbox)
        argv = batcher_argv("run", source, sandbox.url, tmp_path / "report.jsonl")
        hooks = write_hooks(tmp_path / "hooks")
        env = child_env(hooks, pause="writing-a-body", repeat_at_once=True)
        process = await start(tmp_path, argv, env)
        seen: list[str] = []
        await read_until(process.stderr, HOOK_MARK, seen)  # in the 3rd request's body writer
        process.send_signal(signal.SIGINT)
        await read_until(process.stderr, "SIGINT received", seen)
        process.send_signal(signal.SIGINT)
        _, stderr, code = await finish(process, seen)

    assert code == 3
    assert [line for line in batcher_lines(stderr) if "error" in line] == [ABORTED]
    assert "Traceback" not in stderr


# -- in-process faults ------------------------------------------------------------------------


def one_at_a_time(tmp_path: Path, url: str) -> Any:
    limits = LimitSettings(concurrency=1, requests_per_interval=100_000, interval_ms=1000)
    return fast_settings(tmp_path, url, batch=BatchSettings(size=SIZE), limits=limits)


def job(tmp_path: Path, source: Path) -> Job:
    return Job(input_path=source, input=ADD_VIP, report_path=tmp_path / "report.csv")


async def test_a_full_disk_under_the_state_file_stops_with_exit_3_and_a_rerun_completes(
    tmp_path: Path, make_sandbox: SandboxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the ledger cannot record a batch (disk full), the run stops with a StateError
    (exit 3) naming the state file, the report lists the rest `pending`, and a rerun finishes."""
    ids = contact_ids(40, seed=6)
    source = write_csv(tmp_path / "in.csv", ids)
    full = False
    records = 0
    record = Ledger.record
    transaction = __import__("batcher.state.db", fromlist=["transaction"]).transaction

    def record_until_full(self: Ledger, outcome: BatchOutcome) -> None:
        nonlocal full, records
        records += 1
        full = records > 3  # three batches recorded, then the disk is full
        record(self, outcome)

    @contextlib.contextmanager
    def disk_full_transaction(db: sqlite3.Connection) -> Iterator[None]:
        if full:
            raise sqlite3.OperationalError("database or disk is full")
        with transaction(db):
            yield

    async with make_sandbox() as sandbox:
        settings = one_at_a_time(tmp_path, sandbox.url)
        with monkeypatch.context() as patch:
            patch.setattr(Ledger, "record", record_until_full)
            patch.setattr("batcher.state.outcomes.transaction", disk_full_transaction)
            patch.setattr("batcher.state.schema.transaction", disk_full_transaction)
            with pytest.raises(StateError) as raised:
                await execute(settings, job(tmp_path, source))
        [state_file] = state_files(tmp_path / "state")
        assert raised.value.exit_code == 3
        assert str(state_file) in str(raised.value)
        assert "database or disk is full" in str(raised.value)
        lines = read_csv(tmp_path / "report.csv")
        assert [line["status"] for line in lines] == ["success"] * 15 + ["pending"] * 25
        assert "cannot record outcomes (database or disk is full)" in lines[15]["message"]
        assert "run the same command again" in lines[15]["message"]
        assert len(sandbox.stats.applied) == 4  # the 4th was applied, its outcome not recorded

        result = await execute(settings, job(tmp_path, source))
        assert sent_contacts(sandbox, 4) == ids[15:]
    assert result.resumed
    assert result.exit_code == 0
    assert result.requests == 5
    assert status_counts(read_csv(tmp_path / "report.csv")) == {"success": 40}


def corrupt(state_file: Path) -> bytes:
    """Overwrite the state file with bytes that are not SQLite; return them."""
    garbage = b"this is not a SQLite database\n" * 200
    state_file.write_bytes(garbage)
    for suffix in ("-wal", "-shm"):
        Path(f"{state_file}{suffix}").unlink(missing_ok=True)
    return garbage


async def test_a_corrupt_state_file_is_set_aside_and_a_new_run_completes(
    tmp_path: Path, sandboxes: list[Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state file that cannot be read is renamed (kept, not deleted), the user is told which
    and where to, and a new run sends every row (exit 0)."""
    ids = contact_ids(40, seed=8)
    source = write_csv(tmp_path / "in.csv", ids)
    stop = Stop()
    gate = Gate(on_answer=lambda n: stop.request("stopped by the test") if n == 2 else None)
    async with Sandbox(SandboxConfig(rate=None), sleep=gate) as sandbox:
        sandboxes.append(sandbox)
        monkeypatch.setenv("BATCHER_TOKEN", sandbox.token)
        settings = one_at_a_time(tmp_path, sandbox.url)
        first = await execute(settings, job(tmp_path, source), stop=stop)
        assert isinstance(first.stopped, Interrupted)
        assert status_counts(read_csv(tmp_path / "report.csv")) == {"success": 10, "pending": 30}
        [state_file] = state_files(tmp_path / "state")
        garbage = corrupt(state_file)

        notices: list[str] = []
        before = len(sandbox.stats.applied)
        second = await execute(settings, job(tmp_path, source), notify=notices.append)
        assert sent_contacts(sandbox, before) == ids  # a new run: every row again

    aside = state_file.with_name(state_file.name.removesuffix(".sqlite") + ".unreadable.sqlite")
    told = [notice for notice in notices if "cannot be read" in notice]
    assert len(told) == 1
    assert told[0].startswith(f"{state_file}: the state file cannot be read")
    assert f"set aside as {aside.name}" in told[0]
    assert "a new run starts" in told[0]
    assert aside.read_bytes() == garbage
    assert sorted(state_files(tmp_path / "state")) == sorted([state_file, aside])
    assert not second.resumed
    assert second.exit_code == 0
    assert second.requests == 8
    assert status_counts(read_csv(tmp_path / "report.csv")) == {"success": 40}


@pytest.fixture
def cli_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory of an in-process CLI run, with its batcher.toml and token."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BATCHER_TOKEN", SECRET)
    config(tmp_path)
    return tmp_path


def cli_args(source: Path, url: str) -> list[str]:
    return batcher_argv("run", source, url, source.parent / "report.csv")[3:]


def test_a_report_on_a_full_disk_exits_3_saying_every_outcome_is_saved_and_a_rerun_writes_it(
    cli_dir: Path, sandboxes: list[Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report that hits a full disk ends with exit 3 and one line saying every outcome is
    saved; the same command then writes the report without sending anything."""
    ids = contact_ids(30, seed=9)
    source = write_csv(cli_dir / "in.csv", ids)

    sync = os.fsync

    def disk_full(fd: int) -> None:
        """The disk fills up as the report is synced (the state file, synced after its load,
        is left alone: `os` is one module for all)."""
        if os.fstat(fd).st_ino in {p.stat().st_ino for p in (cli_dir / ".batcher").glob("*")}:
            sync(fd)
            return
        raise OSError(28, "No space left on device")

    with ThreadedSandbox(SandboxConfig(token=SECRET, rate=None)) as sandbox:
        sandboxes.append(sandbox)
        with monkeypatch.context() as patch:
            patch.setattr("batcher.reports.formats.os.fsync", disk_full)
            first = CliRunner().invoke(main, cli_args(source, sandbox.url))
        applied = len(sandbox.stats.applied)
        second = CliRunner().invoke(main, cli_args(source, sandbox.url))
        assert len(sandbox.stats.applied) == applied == 6

    report = cli_dir / "report.csv"
    assert first.exit_code == 3
    errors = [line for line in untagged(first.stderr).splitlines() if "error" in line]
    assert errors == [
        f"batcher: error: {report}: cannot write the report (No space left on device); every "
        "outcome is saved: run the same command again to write it"
    ]
    assert "Traceback" not in first.output
    assert second.exit_code == 0, second.output
    assert "(continued an unfinished run)" in second.stdout
    assert "requests 0 (retries 0," in second.stdout
    assert status_counts(read_csv(report)) == {"success": 30}
    assert not list(report.parent.glob(f".{report.name}.*.tmp"))


def test_an_exception_inside_a_worker_exits_3_with_a_private_crash_file_and_a_rerun_resumes(
    cli_dir: Path, sandboxes: list[Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug raised while sending ends with exit 3 and one line naming an owner-only crash file
    that holds the traceback but not the token; the same command then finishes the run."""
    ids = contact_ids(30, seed=10)
    source = write_csv(cli_dir / "in.csv", ids)
    send = BulkTagsClient.send
    calls = 0

    async def broken_send(self: BulkTagsClient, batch: Batch) -> Answer:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError(f"boom (Authorization: Bearer {SECRET})")
        return await send(self, batch)

    with ThreadedSandbox(SandboxConfig(token=SECRET, rate=None)) as sandbox:
        sandboxes.append(sandbox)
        with monkeypatch.context() as patch:
            patch.setattr(BulkTagsClient, "send", broken_send)
            first = CliRunner().invoke(main, cli_args(source, sandbox.url))
        applied = len(sandbox.stats.applied)
        second = CliRunner().invoke(main, cli_args(source, sandbox.url))
        resent = sent_contacts(sandbox, applied)

    assert first.exit_code == 3
    assert "Traceback" not in first.output
    assert SECRET not in first.output
    [line] = [line for line in untagged(first.stderr).splitlines() if "internal error" in line]
    assert line.startswith("batcher: error: internal error (RuntimeError: boom")
    found = re.search(r"details in (\S+\.txt);", line)
    assert found is not None
    crash = Path(found.group(1))
    assert crash.parent == Path(".batcher")
    assert (cli_dir / crash).is_file()
    assert stat.S_IMODE(os.stat(cli_dir / crash).st_mode) == 0o600
    text = (cli_dir / crash).read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text
    assert "RuntimeError: boom" in text
    assert "broken_send" in text
    assert SECRET not in text
    assert applied == 2
    assert second.exit_code == 0, second.output
    assert "(continued an unfinished run)" in second.stdout
    assert "requests 4 (retries 0, 429s 0)" in second.stdout
    assert resent == ids[10:]
    assert status_counts(read_csv(cli_dir / "report.csv")) == {"success": 30}
