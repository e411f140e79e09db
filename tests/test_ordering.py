"""Ordering each contact's rows after a load (batcher.state.ordering): linear in a contact's
rows, and each duplicate names the row that carries it."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

from batcher.domain.models import Chunk, Row, Status
from batcher.state import Ledger

# A file naming one contact 200,000 times with the same operation: every row after the first
# is a duplicate. Looking back from each duplicate for the row carrying it took about 38 s of
# CPU for 20,000 rows, and four times that for each doubling; carried along in one pass, the
# whole load takes about 2.5 s of CPU here.
ONE_CONTACT = """
import json, sys, tempfile
from pathlib import Path
from batcher.domain.models import Chunk
from batcher.state import Ledger

n, step, contact = 200_000, 10_000, "qFSqySFkVvNzOSqgGqFi"
def chunks():
    for first in range(1, n + 1, step):
        numbers = list(range(first, min(first + step, n + 1)))
        size = len(numbers)
        yield Chunk(numbers, numbers, [contact] * size, ["loc"] * size, ["add"] * size,
                    [("vip",)] * size, False, {}, [[contact] * size])
with tempfile.TemporaryDirectory() as tmp, Ledger.open(Path(tmp), "k") as ledger:
    ledger.load(["contact_id"], chunks())
    last = [line.message for line in ledger.lines("pending")][-1]
    json.dump({"counts": ledger.status_counts(), "last": last}, sys.stdout)
"""
# CPU seconds the child may spend: many times what the load takes, a small part of what the
# quadratic look-back took.
CPU_SECONDS = 60


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))


def test_a_contact_named_200000_times_is_ordered_within_a_cpu_bound() -> None:
    """200,000 rows of one contact asking the same thing load and order well within a minute of
    CPU (the kernel kills the child past it): 199,999 duplicates of row 1."""
    done = subprocess.run(
        [sys.executable, "-c", ONE_CONTACT],
        capture_output=True,
        text=True,
        preexec_fn=_limited,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout)
    assert found == {
        "counts": {"duplicate": 199_999, "pending": 1},
        "last": "duplicate of row 1",
    }


def test_a_duplicate_names_the_latest_row_carrying_its_operation(tmp_path: Path) -> None:
    """add, add, remove, remove, add, add: each repeat names the row before it that is no
    duplicate (1, 3 and 5), not the contact's first row."""
    actions = ["add", "add", "remove", "remove", "add", "add"]
    rows = [
        Row(n, "qFSqySFkVvNzOSqgGqFi", "loc", action, ("vip",), False, extra=("x",))
        for n, action in enumerate(actions, start=1)
    ]
    with Ledger.open(tmp_path, "k") as ledger:
        ledger.load(["note"], [Chunk.of_rows(rows, 1)])
        said = [(line.status, line.message) for line in ledger.lines("to send")]
    assert said == [
        (Status.PENDING, "to send"),
        (Status.DUPLICATE, "duplicate of row 1"),
        (Status.PENDING, "to send"),
        (Status.DUPLICATE, "duplicate of row 3"),
        (Status.PENDING, "to send"),
        (Status.DUPLICATE, "duplicate of row 5"),
    ]
