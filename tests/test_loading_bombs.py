"""CSV bombs are refused in bounded time and memory, with one line naming the file and the place:
the kernel holds the child to its limits (RLIMIT_CPU kills it past the CPU seconds; RLIMIT_AS
makes any allocation past the budget fail), so no assertion depends on a clock.

The bombs are the ones benchmarks/bombs_csv.py makes and measures.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SPEC = importlib.util.spec_from_file_location("bombs_csv", ROOT / "benchmarks" / "bombs_csv.py")
assert _SPEC is not None
assert _SPEC.loader is not None
bombs = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bombs)

# The child reads the file as `batcher plan` does (open it, then every chunk) once pandas is
# imported, with at most BUDGET_MIB more address space than it then has, and CPU_S seconds.
BUDGET_MIB = 256
CPU_S = 20
CHILD = """
import resource, sys
from pathlib import Path
import pandas  # imported before the limit: its own size is not the file's
from batcher.domain.errors import InputError
from batcher.loading import InputOptions, open_input
with open("/proc/self/statm") as fh:
    pages = int(fh.read().split()[0])
size = pages * resource.getpagesize() + {budget} * 2**20
resource.setrlimit(resource.RLIMIT_AS, (size, size))
resource.setrlimit(resource.RLIMIT_CPU, ({cpu}, {cpu}))
options = InputOptions(action="add", tags=("x",), default_location_id="LocLocLocLocLocLoc01")
try:
    for chunk in open_input(Path(sys.argv[1]), options).chunks():
        pass
except InputError as exc:
    print("refused:", exc)
else:
    print("read")
"""


def read_bounded(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD.format(budget=BUDGET_MIB, cpu=CPU_S), str(path)],
        capture_output=True,
        text=True,
        timeout=600,  # turns a hang into a failure; the kernel's limits are the test
        check=False,
    )


@pytest.mark.parametrize(
    ("bomb", "name", "refusal"),
    [
        ("blank_lines_gz", "bomb.csv.gz", "inflates to more than"),
        ("one_line_gz", "bomb.csv.gz", "line 2 is longer than input.max_line_kb"),
        ("quoted_cell_gz", "bomb.csv.gz", "inflates to more than"),
        ("cell_100mib", "bomb.csv", "line 2 is longer than input.max_line_kb"),
        ("cell_100mib_of_lines", "bomb.csv", "line 2: a cell is longer than input.max_cell_kb"),
        ("open_quote_100mib", "bomb.csv", "line 2: a cell is longer than input.max_cell_kb"),
    ],
)
def test_a_bomb_is_refused_within_the_kernels_limits(
    tmp_path: Path, bomb: str, name: str, refusal: str
) -> None:
    """Each bomb ends in its one-line refusal within 20 CPU seconds and 256 MiB more address
    space (issue 21: 35 minutes, 2.1 GB, 7 GiB, 410 MiB)."""
    path = tmp_path / name
    getattr(bombs, bomb)(path)
    done = read_bounded(path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"refused: {path}: {refusal}"), done.stdout
