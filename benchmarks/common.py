"""What the benchmark scripts share: the sandbox's token, an unthrottled config, a timed child.

Each benchmark runs batcher as a separate process and reads that process's own peak memory
(`os.wait4`, not the largest of all children so far).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
TOKEN = "sandbox-token"  # the sandbox's own default: no real token is ever used here
LOCATION = "sandboxLocation00001"
# batcher's own cost, not the API's rate limit: the sandbox unthrottled, the client's pacing
# lifted, the sandbox keeping no copy of the requests.
UNTHROTTLED = """\
[limits]
concurrency = 8
requests_per_interval = 1000000
interval_ms = 1000
[sandbox]
rate = "off"
record_requests = false
"""
SERVE = """
import asyncio, sys
from pathlib import Path
from batcher.sandbox import SandboxConfig, serve
fixture = Path(sys.argv[1]) if len(sys.argv) > 1 else None
config = SandboxConfig(rate=None, record_requests=False, fixture=fixture)
asyncio.run(serve(config, lambda url: (print(url), sys.stdout.flush())))
"""


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_mib: float
    output: str
    # CPU time (user + system) of the process and of the children it waited for.
    cpu_s: float = 0.0


def run_child(argv: list[str], cwd: Path, env: dict[str, str], expect: int = 0) -> Measured:
    """Run a command; its wall time, its own peak RSS (from wait4, not the children's max) and
    its CPU time. Any exit status but `expect` stops the benchmark."""
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        child = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        output = out.read()
    if code != expect:
        raise SystemExit(f"{' '.join(argv[:4])} exited {code}:\n{output}")
    # ru_maxrss is in KiB on Linux.
    return Measured(seconds, usage.ru_maxrss / 1024, output, usage.ru_utime + usage.ru_stime)


@contextlib.contextmanager
def serving(
    argv: list[str], env: dict[str, str] | None = None, *, quiet: bool = False
) -> Iterator[str]:
    """A server started by `argv` that prints its URL as its first line; yields the URL and
    stops the server after. `quiet`: its stderr (a log) is dropped."""
    stderr = subprocess.DEVNULL if quiet else None
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    assert server.stdout is not None
    try:
        yield server.stdout.readline().strip()
    finally:
        server.terminate()
        server.wait()


def external_sandbox(fixture: Path | None = None) -> contextlib.AbstractContextManager[str]:
    """A fresh unthrottled sandbox in its own process (its contacts from `fixture`, if given);
    yields its URL."""
    argv = [sys.executable, "-c", SERVE, *([str(fixture)] if fixture is not None else [])]
    return serving(argv)
