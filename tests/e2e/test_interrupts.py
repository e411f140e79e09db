"""Ctrl-C (SIGINT) at several instants of `batcher run` and `batcher plan`: never a traceback.

Each instant is reached without timing luck: the child parks at a named place (`helpers.HOOKS`:
importing the CLI, loading the input, writing the report) or the sandbox holds an answer, and
the signal is sent while it waits there. A signal while loading ends the run at once: the child
parked in the loading is never released, and must end by itself. One test also interrupts a
large input once its state file appears: whichever step it lands in, what must hold for that
step holds.
"""

from __future__ import annotations

import asyncio
import csv
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import xlsxwriter

from batcher.sandbox import Sandbox, SandboxConfig

from .conftest import LOCATION, contact_ids, write_csv
from .helpers import (
    BOUND_S,
    HOOK_MARK,
    SECRET,
    Gate,
    batcher_argv,
    batcher_lines,
    child_env,
    finish,
    read_csv,
    read_until,
    reap_children,  # noqa: F401 - an autouse fixture: imported to take effect here
    report_temporaries,
    run_id,
    start,
    state_files,
    write_config,
    write_hooks,
)

SIZE = 5
ROWS = 50
ACK = (
    "batcher: SIGINT received: finishing what is in flight, then writing the report "
    "(SIGINT again to stop at once)"
)
STOPPED = (
    "batcher: stopped: interrupted by SIGINT; run the same command again to resume "
    "(or `batcher resume {}`)"
)
PENDING = "not sent: interrupted by SIGINT; run the same command again to send it"
LOADING = (
    "batcher: error: interrupted by {} while loading the input: nothing was sent; run the same "
    "command again to start over"
)


@pytest.fixture
async def gated(sandboxes: list[Sandbox]) -> AsyncIterator[Any]:
    async def make(hold: int | None) -> tuple[Sandbox, Gate]:
        gate = Gate(open_for=(hold - 1) if hold is not None else 1 << 30)
        sandbox = Sandbox(SandboxConfig(token=SECRET, rate=None), sleep=gate)
        await sandbox.start()
        sandboxes.append(sandbox)
        made.append((sandbox, gate))
        return sandbox, gate

    made: list[tuple[Sandbox, Gate]] = []
    yield make
    for sandbox, gate in made:
        await gate.open()
        await sandbox.stop()


def setup(tmp_path: Path, rows: int = ROWS, size: int = SIZE) -> tuple[Path, list[str]]:
    write_config(
        tmp_path,
        api={"location_id": LOCATION},
        batch={"size": size},
        limits={"concurrency": 1, "requests_per_interval": 100_000, "interval_ms": 1000},
        retry={"initial_backoff_s": 0.0, "max_backoff_s": 0.0},
    )
    ids = contact_ids(rows, seed=12)
    return write_csv(tmp_path / "in.csv", ids), ids


@pytest.mark.parametrize("command", ["run", "plan"])
async def test_ctrl_c_while_starting_up_exits_3_with_one_line(
    tmp_path: Path, gated: Any, command: str
) -> None:
    """Ctrl-C before the command has even loaded its code ends it with exit 3 and one line."""
    source, _ = setup(tmp_path)
    sandbox, _ = await gated(hold=None)
    report = tmp_path / "report.csv"
    argv = batcher_argv(command, source, sandbox.url, report if command == "run" else None)
    env = child_env(write_hooks(tmp_path / "hooks"), pause="import")
    process = await start(tmp_path, argv, env)
    seen: list[str] = []
    await read_until(process.stderr, HOOK_MARK, seen)  # importing the CLI, launcher's handler on
    process.send_signal(signal.SIGINT)
    stdout, stderr, code = await finish(process, seen)

    assert code == 3
    assert batcher_lines(stderr) == ["batcher: SIGINT received: stopped"]
    assert stdout == ""
    assert not report.exists()
    assert not (tmp_path / ".batcher").exists()
    assert sandbox.stats.total_requests == 0


async def stopped_in_loading(
    tmp_path: Path, argv: list[str], signum: signal.Signals = signal.SIGINT
) -> tuple[str, list[str]]:
    """Start `argv` parked in its loading (after the first chunk), signal it, and wait for it to
    end by itself (it is never released: the loading cannot finish). Its stdout and lines."""
    env = child_env(write_hooks(tmp_path / "hooks"), pause="loading")
    process = await start(tmp_path, argv, env)
    seen: list[str] = []
    await read_until(process.stderr, HOOK_MARK, seen)  # the first rows are in the ledger
    process.send_signal(signum)
    await asyncio.wait_for(process.wait(), timeout=BOUND_S)
    stdout, stderr, code = await finish(process, seen)
    assert code == 3
    assert "Traceback" not in stderr
    return stdout, batcher_lines(stderr)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_while_loading_stops_at_once_sending_nothing(
    tmp_path: Path, gated: Any, signum: signal.Signals
) -> None:
    """SIGINT or SIGTERM while the input is being loaded ends the run at once, the loading left
    unfinished: exit 3, one line saying nothing was sent, no report; the same command then
    starts over and sends every row."""
    source, ids = setup(tmp_path)
    sandbox, _ = await gated(hold=None)
    report = tmp_path / "report.csv"
    argv = batcher_argv("run", source, sandbox.url, report)
    stdout, lines = await stopped_in_loading(tmp_path, argv, signum)

    assert len(lines) == 2
    assert lines[0].startswith('batcher: add ["vip"] at location sandboxLocation00001: sending')
    assert lines[1] == LOADING.format(signum.name)
    assert stdout == ""
    assert sandbox.stats.total_requests == 0
    assert not report.exists()
    assert not report_temporaries(report)
    assert len(state_files(tmp_path / ".batcher")) == 1  # "loading": the next run discards it

    rerun = await start(tmp_path, argv)
    stdout, stderr, code = await finish(rerun, [])
    assert code == 0, stderr
    assert "(continued an unfinished run)" not in stdout
    rows = read_csv(report)
    assert [row["contact_id"] for row in rows] == ids
    assert {row["status"] for row in rows} == {"success"}


async def test_ctrl_c_while_a_plan_is_loading_exits_3(tmp_path: Path, gated: Any) -> None:
    """Ctrl-C while `plan` loads the input ends it at once with exit 3 and one line."""
    source, _ = setup(tmp_path)
    sandbox, _ = await gated(hold=None)
    stdout, lines = await stopped_in_loading(
        tmp_path, batcher_argv("plan", source, sandbox.url, None)
    )
    assert lines == [LOADING.format("SIGINT")]
    assert stdout == ""
    assert sandbox.stats.total_requests == 0


@pytest.fixture(scope="session")
def big_workbook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 200,000-row workbook (ids as inline strings), written once per session."""
    ids = contact_ids(200_000, seed=14)
    path = tmp_path_factory.mktemp("big") / "big.xlsx"
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = book.add_worksheet("Contacts")
    sheet.write_row(0, 0, ["contact_id", "email"])
    for n, contact in enumerate(ids, start=1):
        sheet.write_row(n, 0, [contact, f"p{n}@example.com"])
    book.close()
    return path


async def test_ctrl_c_while_a_workbook_loads_stops_its_reading_thread_at_once(
    tmp_path: Path, gated: Any, big_workbook: Path
) -> None:
    """Ctrl-C while a large workbook loads (its sheet read ahead in a thread of its own) ends
    the run at once: exit 3, one line, nothing sent, no report."""
    setup(tmp_path)
    sandbox, _ = await gated(hold=None)
    report = tmp_path / "report.csv"
    _, lines = await stopped_in_loading(
        tmp_path, batcher_argv("run", big_workbook, sandbox.url, report)
    )
    assert lines[1:] == [LOADING.format("SIGINT")]
    assert sandbox.stats.total_requests == 0
    assert not report.exists()


async def test_ctrl_c_while_sending_lets_the_request_in_flight_finish_and_exits_3(
    tmp_path: Path, gated: Any
) -> None:
    """Ctrl-C while a request is in flight: it finishes, nothing more is sent, the report has
    the answered rows `success` and the rest `pending`, exit 3, no traceback."""
    source, ids = setup(tmp_path)
    sandbox, gate = await gated(hold=3)
    report = tmp_path / "report.csv"
    process = await start(tmp_path, batcher_argv("run", source, sandbox.url, report))
    seen: list[str] = []
    await gate.held(3)
    process.send_signal(signal.SIGINT)
    await read_until(process.stderr, "SIGINT received", seen)
    await gate.open()  # the request in flight is answered only after the signal was seen
    stdout, stderr, code = await finish(process, seen)

    assert code == 3
    assert "Traceback" not in stderr
    assert batcher_lines(stderr)[1:] == [ACK, STOPPED.format(run_id(stderr))]
    assert "requests 3 (retries 0, 429s 0)" in stdout
    assert len(sandbox.stats.applied) == 3
    rows = read_csv(report)
    assert [row["contact_id"] for row in rows] == ids
    assert [row["status"] for row in rows] == ["success"] * 15 + ["pending"] * 35
    assert rows[15]["message"] == PENDING


async def test_the_line_after_a_ctrl_c_says_to_run_the_same_command_again(
    tmp_path: Path, gated: Any
) -> None:
    """After a Ctrl-C that stopped a run, the closing line says the same command resumes it."""
    source, _ = setup(tmp_path)
    sandbox, gate = await gated(hold=2)
    process = await start(tmp_path, batcher_argv("run", source, sandbox.url, tmp_path / "r.csv"))
    seen: list[str] = []
    await gate.held(2)
    process.send_signal(signal.SIGINT)
    await read_until(process.stderr, "SIGINT received", seen)
    await gate.open()
    _, stderr, code = await finish(process, seen)

    assert code == 3
    closing = batcher_lines(stderr)[-1]
    assert closing.startswith("batcher: stopped: interrupted by SIGINT")
    assert "run the same command again" in closing


async def test_ctrl_c_while_writing_the_report_still_writes_all_of_it(
    tmp_path: Path, gated: Any
) -> None:
    """Ctrl-C once every row is settled and the report is being written: the report is
    finished with every row `success`; the run had nothing left to stop, so it exits 0."""
    source, ids = setup(tmp_path)
    sandbox, _ = await gated(hold=None)
    report = tmp_path / "report.csv"
    env = child_env(write_hooks(tmp_path / "hooks"), pause="report")
    process = await start(tmp_path, batcher_argv("run", source, sandbox.url, report), env)
    seen: list[str] = []
    await read_until(process.stderr, HOOK_MARK, seen)
    process.send_signal(signal.SIGINT)
    await read_until(process.stderr, "SIGINT received", seen)
    assert process.stdin is not None
    process.stdin.write(b"go on\n")
    stdout, stderr, code = await finish(process, seen)

    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert batcher_lines(stderr)[1:] == [ACK]
    assert "requests 10 (retries 0, 429s 0)" in stdout
    rows = read_csv(report)
    assert [row["contact_id"] for row in rows] == ids
    assert {row["status"] for row in rows} == {"success"}


async def test_a_second_ctrl_c_while_writing_the_report_stops_at_once_publishing_no_half_report(
    tmp_path: Path, gated: Any
) -> None:
    """A second Ctrl-C while the report is written stops at once (exit 3, one error line); no
    half-written report is left, and the same command then writes it without sending."""
    source, _ = setup(tmp_path)
    sandbox, _ = await gated(hold=None)
    report = tmp_path / "report.csv"
    argv = batcher_argv("run", source, sandbox.url, report)
    env = child_env(write_hooks(tmp_path / "hooks"), pause="report", repeat_at_once=True)
    process = await start(tmp_path, argv, env)
    seen: list[str] = []
    await read_until(process.stderr, HOOK_MARK, seen)
    process.send_signal(signal.SIGINT)
    await read_until(process.stderr, "SIGINT received", seen)
    process.send_signal(signal.SIGINT)
    stdout, stderr, code = await finish(process, seen)
    assert code == 3
    assert "Traceback" not in stderr
    assert batcher_lines(stderr)[1:] == [
        ACK,
        "batcher: error: SIGINT received again: stopped at once; what was saved is kept: run "
        "the same command again to resume",
    ]
    assert stdout == ""
    assert not report.exists()
    assert not report_temporaries(report)

    rerun = await start(tmp_path, argv)
    stdout, stderr, code = await finish(rerun, [])
    assert code == 0, stderr
    assert "(continued an unfinished run)" in stdout
    assert "requests 0 (retries 0, 429s 0)" in stdout
    assert len(sandbox.stats.applied) == ROWS // SIZE
    assert [row["status"] for row in read_csv(report)] == ["success"] * ROWS


BIG = 150_000


@pytest.fixture(scope="session")
def big_input(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A 150,000-row input, written once per session: loading it takes a while."""
    ids = contact_ids(BIG, seed=13)
    path = tmp_path_factory.mktemp("big") / "big.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["contact_id", "email"])
        writer.writerows((contact, f"p{i}@example.com") for i, contact in enumerate(ids))
    return path, ids


async def test_ctrl_c_while_a_large_input_loads_stops_and_reports_every_row(
    tmp_path: Path, gated: Any, big_input: tuple[Path, list[str]]
) -> None:
    """Ctrl-C once a large input's state file appears: exit 3, no traceback, one line saying it
    stopped. Landing in the loading (as it nearly always does): nothing sent, no report;
    landing after it: a report listing every input row once, `pending` or `success`."""
    source, ids = big_input
    setup(tmp_path, size=500)
    sandbox, gate = await gated(hold=1)  # however far it gets, it cannot finish
    report = tmp_path / "report.csv"
    process = await start(tmp_path, batcher_argv("run", source, sandbox.url, report))
    for _ in range(100_000):  # a bounded wait for the state file: the moment, not the outcome
        if state_files(tmp_path / ".batcher") or process.returncode is not None:
            break
        await asyncio.sleep(0.001)
    assert state_files(tmp_path / ".batcher")
    process.send_signal(signal.SIGINT)
    seen: list[str] = []
    await read_until(process.stderr, "SIGINT", seen)
    await gate.open()  # if a request was already held, it may now be answered
    stdout, stderr, code = await finish(process, seen)

    assert code == 3
    assert "Traceback" not in stderr
    if batcher_lines(stderr)[1:] == [LOADING.format("SIGINT")]:
        assert stdout == ""
        assert sandbox.stats.total_requests == 0
        assert not report.exists()
        return
    assert batcher_lines(stderr)[1:] == [ACK, STOPPED.format(run_id(stderr))]
    assert stdout.startswith("batcher: run stopped in ")
    assert len(sandbox.stats.applied) <= 1
    rows = read_csv(report)
    assert [row["contact_id"] for row in rows] == ids
    statuses = Counter(row["status"] for row in rows)
    assert set(statuses) <= {"pending", "success"}
    assert statuses["success"] == 500 * len(sandbox.stats.applied)
