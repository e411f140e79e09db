"""Helpers for the fault, order and interrupt tests: a gate, child processes, reading results.

Every point at which a test kills or interrupts a run is reached deterministically: the sandbox's
injected `sleep` is a `Gate` that holds chosen answers until the test lets them through, and
`HOOKS` (a `sitecustomize` put on the child's PYTHONPATH) can park the child at a named place in
the program (importing the CLI, loading the input, writing the report) until the test writes a
byte to its stdin. Nothing waits for time to pass.
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import os
import re
import shutil
import sqlite3
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from batcher.domain.config import ApiSettings, Settings
from batcher.sandbox import Sandbox

from .conftest import fast_settings

# The worktree under test: children import this code, not whatever is installed.
ROOT = Path(__file__).resolve().parents[2]

# The token children and the sandbox use: made up, never a real one.
SECRET = "Sekr3t-token-4b7e91d0a6"

HOOK_MARK = "test-hook: paused"

# How long a test waits for a child to reach a point or to end before failing: a bound that
# turns a hang into a failure, never a duration any assertion depends on.
BOUND_S = 120.0

# Parks the child at one place named by BATCHER_TEST_PAUSE until a byte arrives on its stdin.
# A signal that arrives meanwhile runs its Python handler at once (the read is interrupted, the
# handler runs, and PEP 475 resumes the read if the handler returned).
SITECUSTOMIZE = """\
import os
import sys

_WHERE = os.environ.get("BATCHER_TEST_PAUSE", "")

if os.environ.get("BATCHER_TEST_REPEAT") == "at-once":
    # A test's second signal comes a moment after the first, sooner than a person's: it is
    # the second signal all the same (the window itself is pinned in tests/test_stopping.py).
    from batcher.support import stopping

    stopping.SAME_SIGNAL_S = 0.0


def _pause(label):
    os.write(2, ("@MARK@ %s\\n" % label).encode())
    os.read(0, 1)


class _PauseBeforeCli:
    def find_spec(self, name, path=None, target=None):
        if name == "batcher.cli":
            sys.meta_path.remove(self)
            _pause("importing batcher.cli")
        return None


if _WHERE == "import":
    sys.meta_path.insert(0, _PauseBeforeCli())
elif _WHERE == "loading":
    from batcher import loading

    _chunks = loading.InputTable.chunks

    def _paused_chunks(self):
        for number, chunk in enumerate(_chunks(self)):
            yield chunk
            if number == 0:
                _pause("loading")

    loading.InputTable.chunks = _paused_chunks
elif _WHERE == "writing-a-body":
    from aiohttp import client_reqrep

    _write_bytes = client_reqrep.ClientRequest.write_bytes
    _bodies = []

    async def _paused_write_bytes(self, *args, **kwargs):
        _bodies.append(self)
        if len(_bodies) == 3:
            _pause("writing the 3rd request's body")
        return await _write_bytes(self, *args, **kwargs)

    client_reqrep.ClientRequest.write_bytes = _paused_write_bytes
elif _WHERE == "report":
    from batcher.state import ledger

    _rows = ledger.Ledger.report_rows

    def _paused_rows(self, *args, **kwargs):
        for number, cells in enumerate(_rows(self, *args, **kwargs)):
            if number == 1:
                _pause("writing the report")
            yield cells

    ledger.Ledger.report_rows = _paused_rows
""".replace("@MARK@", HOOK_MARK)


class Gate:
    """The sandbox's `sleep`, called once per answer: answers up to `open_for` pass, later ones
    wait until `let_through` raises the bar. `on_answer(n)` runs as the n-th answer arrives."""

    def __init__(self, open_for: int = 1 << 30, on_answer: Callable[[int], None] | None = None):
        self.open_for = open_for
        self.calls = 0
        self.on_answer = on_answer
        self.waiting: set[int] = set()
        self._changed = asyncio.Condition()

    async def __call__(self, seconds: float) -> None:
        async with self._changed:
            self.calls += 1
            number = self.calls
            if self.on_answer is not None:
                self.on_answer(number)
            self.waiting.add(number)
            self._changed.notify_all()
            await self._changed.wait_for(lambda: number <= self.open_for)
            self.waiting.discard(number)

    async def held(self, number: int) -> None:
        """Return once the `number`-th answer is being held (it must be beyond `open_for`).

        Bounded, so that a child that died early fails the test instead of hanging the suite.
        """
        assert number > self.open_for

        async def arrived() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: number in self.waiting)

        await asyncio.wait_for(arrived(), timeout=BOUND_S)

    async def let_through(self, count: int = 1) -> None:
        async with self._changed:
            self.open_for += count
            self._changed.notify_all()

    async def open(self) -> None:
        await self.let_through(1 << 30)


def write_hooks(directory: Path) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    return directory


def child_env(
    hooks: Path | None = None, pause: str = "", *, repeat_at_once: bool = False
) -> dict[str, str]:
    """The environment of a `python -m batcher` child: this worktree's code, the test token;
    with `hooks`, parked at `pause`, and with `repeat_at_once` a second signal however soon
    after the first is the second signal (not GNU timeout's duplicate of the first)."""
    paths = [str(hooks)] if hooks is not None else []
    paths.append(str(ROOT))
    env = {**os.environ, "BATCHER_TOKEN": SECRET, "PYTHONPATH": os.pathsep.join(paths)}
    env.pop("BATCHER_TEST_PAUSE", None)
    env.pop("BATCHER_TEST_REPEAT", None)
    if pause:
        env["BATCHER_TEST_PAUSE"] = pause
    if repeat_at_once:
        assert hooks is not None, "the switch lives in the hooks"
        env["BATCHER_TEST_REPEAT"] = "at-once"
    return env


def write_config(directory: Path, **sections: dict[str, Any]) -> Path:
    """`batcher.toml` in `directory` (the child's working directory) from nested dicts."""
    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in keys.items())
    path = directory / "batcher.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def batcher_argv(command: str, source: Path, base_url: str, report: Path | None) -> list[str]:
    argv = [sys.executable, "-m", "batcher", command, str(source)]
    argv += ["--action", "add", "--tags", "vip", "--base-url", base_url]
    if report is not None:
        argv += ["--report", str(report)]
    return argv


_STARTED: list[asyncio.subprocess.Process] = []


async def start(
    cwd: Path, argv: list[str], env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env or child_env(),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _STARTED.append(process)
    return process


@pytest.fixture(autouse=True)
def reap_children() -> Iterator[None]:
    """A test that failed half-way leaves no child of its own running (parked or held)."""
    yield
    while _STARTED:
        process = _STARTED.pop()
        if process.returncode is None:
            process.kill()


async def read_until(stream: asyncio.StreamReader | None, text: str, seen: list[str]) -> str:
    """Read lines into `seen` until one contains `text`; return it (fail at end of stream)."""
    assert stream is not None
    while True:
        raw = await asyncio.wait_for(stream.readline(), timeout=BOUND_S)
        assert raw, f"the child closed its output before {text!r}; it said: {seen}"
        line = raw.decode()
        seen.append(line)
        if text in line:
            return line


async def finish(
    process: asyncio.subprocess.Process, stderr_seen: list[str]
) -> tuple[str, str, int]:
    """Wait for the child (bounded: a hang fails the test instead of blocking the suite)."""
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=BOUND_S)
    assert process.returncode is not None
    return stdout.decode(), "".join(stderr_seen) + stderr.decode(), process.returncode


# The run's id that every line of a run carries once it is known (`batcher[run <id>]: ...`).
RUN_TAG = re.compile(r"^batcher\[run [0-9a-f]{16}\]:", re.M)


def untagged(text: str) -> str:
    """`text` with each line's run id taken out (`batcher[run <id>]:` read as `batcher:`), for
    tests about what the lines say."""
    return RUN_TAG.sub("batcher:", text)


def run_id(stderr: str) -> str:
    """The run id the lines of a run carry (the first one named)."""
    found = re.search(r"^batcher\[run ([0-9a-f]{16})\]:", stderr, re.M)
    assert found is not None, stderr
    return found.group(1)


def batcher_lines(stderr: str) -> list[str]:
    """stderr without the test hook's own notes, each line's run id taken out (`untagged`)."""
    return [untagged(line) for line in stderr.splitlines() if not line.startswith(HOOK_MARK)]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def per_location_settings(
    tmp_path: Path, base_url: str, variables: Mapping[str, str], api: ApiSettings | None = None
) -> Settings:
    """The fast settings, each location's token read from its variable of `variables` (or the
    `api` given)."""
    settings = fast_settings(tmp_path, base_url)
    api = api or ApiSettings(base_url=base_url, timeout_s=10.0, location_tokens=variables)
    return Settings(**{**settings.__dict__, "api": api})


def set_location_tokens(
    monkeypatch: pytest.MonkeyPatch, variables: Mapping[str, str], letters: str
) -> None:
    """Each variable of `variables` holds `token-of-location-<letter>-0001`, the letters in
    their order."""
    for letter, variable in zip(letters, variables.values(), strict=True):
        monkeypatch.setenv(variable, f"token-of-location-{letter}-0001")


def status_counts(lines: list[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(str(line["status"]) for line in lines))


def sent_contacts(sandbox: Sandbox, since: int = 0) -> list[str]:
    """Contacts of the requests the sandbox applied, in order, from the `since`-th request on."""
    return [c for request in sandbox.stats.applied[since:] for c in request.update.contacts]


def state_files(state_dir: Path) -> list[Path]:
    return sorted(state_dir.glob("run-*.sqlite")) if state_dir.is_dir() else []


def recorded(state_dir: Path, scratch: Path) -> dict[int, str]:
    """Each row's recorded status in the run's state file, as a killed run left it.

    Read from a copy (with its -wal and -shm), so that looking changes nothing the next run sees.
    """
    files = state_files(state_dir)
    if not files:
        return {}
    assert len(files) == 1, files
    scratch.mkdir(exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{files[0]}{suffix}")
        if source.exists():
            shutil.copyfile(source, scratch / f"copy.sqlite{suffix}")
    db = sqlite3.connect(scratch / "copy.sqlite")
    try:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        if "results" not in tables:
            return {}
        return dict(db.execute("SELECT row, status FROM results"))
    finally:
        db.close()


def requests_for(rows: int, size: int) -> int:
    return math.ceil(rows / size)


def report_temporaries(report: Path) -> list[Path]:
    """The temporary files a report writer leaves beside `report` if it is killed."""
    return list(report.parent.glob(f".{report.name}.*.tmp"))
