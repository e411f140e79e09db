"""`batcher run` as a separate process: killed, interrupted, resumed, and keeping its secret.

The sandbox runs in the test's event loop and holds the Nth request at a gate the test opens, so
the process is killed or interrupted at a known point, never by timing luck.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from batcher.sandbox import Sandbox, SandboxConfig

from .conftest import LOCATION, contact_ids, write_csv

SECRET = "Sekr3t-token-8d1f0c27e5"
BATCHES = 8
BATCH_SIZE = 5


class Gate:
    """The sandbox's `sleep`: passes the first `open_for` answers, holds the next one."""

    def __init__(self, open_for: int) -> None:
        self.open_for = open_for
        self.calls = 0
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    def open(self) -> None:
        self.open_for = 1 << 30
        self.release.set()

    async def __call__(self, seconds: float) -> None:
        self.calls += 1
        if self.calls > self.open_for:
            self.held.set()
            await self.release.wait()


@pytest.fixture
async def gated(sandboxes: list[Sandbox]) -> AsyncIterator[tuple[Sandbox, Gate]]:
    gate = Gate(open_for=3)
    config = SandboxConfig(token=SECRET, rate=None)
    async with Sandbox(config, sleep=gate) as sandbox:
        sandboxes.append(sandbox)
        yield sandbox, gate
        gate.open()


def command(tmp_path: Path, source: Path, base_url: str) -> list[str]:
    (tmp_path / "batcher.toml").write_text(
        f"[batch]\nsize = {BATCH_SIZE}\n[limits]\nconcurrency = 1\n"
        f'[api]\nlocation_id = "{LOCATION}"\n',
        encoding="utf-8",
    )
    return [
        sys.executable,
        "-m",
        "batcher",
        "run",
        str(source),
        "--action",
        "add",
        "--tags",
        "vip",
        "--base-url",
        base_url,
        "--report",
        str(tmp_path / "report.jsonl"),
    ]


ROOT = Path(__file__).resolve().parents[2]


async def start(tmp_path: Path, argv: list[str]) -> asyncio.subprocess.Process:
    env = {**os.environ, "BATCHER_TOKEN": SECRET, "PYTHONPATH": str(ROOT)}
    return await asyncio.create_subprocess_exec(
        *argv,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def sent_contacts(sandbox: Sandbox) -> list[str]:
    return [c for request in sandbox.stats.applied for c in request.update.contacts]


async def test_a_killed_run_resumes_without_resending_a_settled_row(
    tmp_path: Path, gated: tuple[Sandbox, Gate]
) -> None:
    sandbox, gate = gated
    ids = contact_ids(BATCHES * BATCH_SIZE)
    source = write_csv(tmp_path / "in.csv", ids)
    argv = command(tmp_path, source, sandbox.url)

    process = await start(tmp_path, argv)
    # Three batches answered and recorded; the fourth is in flight (bounded: a dead child fails).
    await asyncio.wait_for(gate.held.wait(), timeout=120)
    process.send_signal(signal.SIGKILL)
    await process.communicate()
    first = sent_contacts(sandbox)
    assert len(first) == 4 * BATCH_SIZE  # the fourth was applied, its answer never arrived

    gate.open()
    process = await start(tmp_path, argv)
    _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    resent = sent_contacts(sandbox)[len(first) :]
    assert set(resent) == set(ids[3 * BATCH_SIZE :])  # the 4th batch again, then the rest
    assert statuses_jsonl(tmp_path / "report.jsonl") == {"success": len(ids)}


async def test_sigterm_lets_the_request_in_flight_finish_then_exits_3(
    tmp_path: Path, gated: tuple[Sandbox, Gate]
) -> None:
    sandbox, gate = gated
    source = write_csv(tmp_path / "in.csv", contact_ids(BATCHES * BATCH_SIZE))
    process = await start(tmp_path, command(tmp_path, source, sandbox.url))
    await asyncio.wait_for(gate.held.wait(), timeout=120)
    process.send_signal(signal.SIGTERM)
    assert process.stderr is not None
    notice = await process.stderr.readline()
    while notice and b"SIGTERM received" not in notice:  # the start notice comes first
        notice = await process.stderr.readline()
    assert b"SIGTERM received" in notice  # the process has seen the signal...
    gate.open()  # ...before the request in flight is answered
    _, stderr = await process.communicate()
    assert process.returncode == 3, stderr.decode()
    assert "interrupted by SIGTERM" in stderr.decode()
    assert statuses_jsonl(tmp_path / "report.jsonl") == {
        "success": 4 * BATCH_SIZE,
        "pending": (BATCHES - 4) * BATCH_SIZE,
    }
    assert len(sandbox.stats.applied) == 4


async def test_the_token_is_in_no_output_report_or_state_file(
    tmp_path: Path, gated: tuple[Sandbox, Gate]
) -> None:
    sandbox, gate = gated
    gate.open()
    ids = contact_ids(12)
    source = write_csv(tmp_path / "in.csv", [*ids, "bad id", ids[0]])
    process = await start(tmp_path, command(tmp_path, source, sandbox.url))
    stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert SECRET.encode() not in stdout + stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]  # noqa: ASYNC240 - a test's last look
    assert any(p.suffix == ".sqlite" for p in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path


def statuses_jsonl(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        status = json.loads(line)["status"]
        counts[status] = counts.get(status, 0) + 1
    return counts
