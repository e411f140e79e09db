"""Time and peak memory of `batcher plan` on hostile CSV files: each must be refused fast, in
bounded memory, with one line (exit 2).

    python benchmarks/bombs_csv.py [NAME...]

Each bomb is made here (tests/test_loading_bombs.py makes the same ones and has the kernel
bound them); `batcher plan` runs on each in a child process, whose own peak RSS comes from
wait4. Printed per bomb: its size on disk and inflated, the exit status, wall and CPU time,
peak RSS, and the start of the line batcher wrote. Next to them, the same for a well-formed
file of a million rows, as the baseline of a file that is read whole.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out" / "bombs"
ID = "aB3dE5fG7hJ9kL1mN3pQ"
MIB = 1 << 20


def _gzip_of(path: Path, head: bytes, block: bytes, count: int, tail: bytes = b"") -> None:
    """A .csv.gz of `head`, then `block` `count` times, then `tail`: one gzip member per part,
    the block's compressed once (a multi-member gzip is one stream to every reader)."""
    member = gzip.compress(block, compresslevel=9)
    with path.open("wb") as fh:
        fh.write(gzip.compress(head))
        for _ in range(count):
            fh.write(member)
        if tail:
            fh.write(gzip.compress(tail))


def blank_lines_gz(path: Path) -> int:
    """2 GiB of blank lines after a header, about 2 MB compressed (issue 21: ~35 minutes)."""
    _gzip_of(path, b"contact_id,tags\n", b"\n" * MIB, 2048)
    return 2048 * MIB


def one_line_gz(path: Path) -> int:
    """A 1 GiB line in a 1 MB .csv.gz (issue 21: 2.1 GB, then exit 3 blaming the state file)."""
    _gzip_of(path, f"contact_id,tags\n{ID},".encode(), b"x" * MIB, 1024, b"\n")
    return 1024 * MIB


def quoted_cell_gz(path: Path) -> int:
    """A 2 GiB quoted cell of 1 KiB lines in a 2 MB .csv.gz (issue 21: ~7 GiB)."""
    _gzip_of(path, f'contact_id,tags\n{ID},"'.encode(), (b"y" * 1023 + b"\n") * 1024, 2048)
    return 2048 * MIB


def cell_100mib(path: Path) -> int:
    """One 100 MiB cell on one line (issue 21: 410 MiB at its peak)."""
    with path.open("wb") as fh:
        fh.write(f"contact_id,tags,note\n{ID},vip,".encode())
        for _ in range(100):
            fh.write(b"z" * MIB)
        fh.write(b"\n")
    return path.stat().st_size


def cell_100mib_of_lines(path: Path) -> int:
    """One quoted 100 MiB cell of 1 KiB lines: no line is long, the record is."""
    with path.open("wb") as fh:
        fh.write(f'contact_id,tags,note\n{ID},vip,"'.encode())
        for _ in range(100):
            fh.write((b"w" * 1023 + b"\n") * 1024)
        fh.write(b'"\n')
    return path.stat().st_size


def open_quote_100mib(path: Path) -> int:
    """A quote opened on line 2 of a million-row file and never closed."""
    with path.open("wb") as fh:
        fh.write(f'contact_id,name,tags\n{ID},"John,vip\n'.encode())
        row = f"{ID},Mary Smith-Jones of the long name,vip\n".encode() * 1000
        for _ in range(1000):
            fh.write(row)
    return path.stat().st_size


def crafted_sniff_sample(path: Path) -> int:
    """A first line that makes csv.Sniffer's regexes scan to the end from every delimiter
    (CVE-2026-18503: ~15-21 s of CPU on CPython 3.11.7)."""
    path.write_bytes(("contact_id\n" + ",'a" * 20_000 + f"\n{ID}\n").encode())
    return path.stat().st_size


def well_formed_1m_rows(path: Path) -> int:
    """The baseline: a million ordinary rows (each its own contact), read whole."""
    with path.open("wb") as fh:
        fh.write(b"contact_id,name,tags,action\n")
        for block in range(1000):
            fh.write(
                "".join(
                    f"{block:010d}{row:010d},A name of about forty characters or so,vip,add\n"
                    for row in range(1000)
                ).encode()
            )
    return path.stat().st_size


BOMBS: dict[str, tuple[str, Callable[[Path], int]]] = {
    "blank_lines_gz": ("bomb.csv.gz", blank_lines_gz),
    "one_line_gz": ("bomb.csv.gz", one_line_gz),
    "quoted_cell_gz": ("bomb.csv.gz", quoted_cell_gz),
    "cell_100mib": ("bomb.csv", cell_100mib),
    "cell_100mib_of_lines": ("bomb.csv", cell_100mib_of_lines),
    "open_quote_100mib": ("bomb.csv", open_quote_100mib),
    "crafted_sniff_sample": ("bomb.csv", crafted_sniff_sample),
    "well_formed_1m_rows": ("ok.csv", well_formed_1m_rows),
}


def measure(path: Path) -> tuple[int, float, float, float, str]:
    """`batcher plan` on `path`: exit status, wall s, CPU s, peak RSS MiB, first output line."""
    argv = [sys.executable, "-m", "batcher", "plan", str(path), "--action", "add",
            "--tags", "x", "--location-id", "L"]  # fmt: skip
    with tempfile.TemporaryDirectory() as cwd, tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        child = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        out.seek(0)
        first = next(iter(out.read().splitlines()), "")
    cpu = usage.ru_utime + usage.ru_stime
    return os.waitstatus_to_exitcode(status), seconds, cpu, usage.ru_maxrss / 1024, first


def main() -> None:
    names = sys.argv[1:] or list(BOMBS)
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"{'file':<22} {'on disk':>9} {'inflated':>9} exit {'wall':>7} {'CPU':>7} {'peak':>8}")
    for name in names:
        file_name, make = BOMBS[name]
        path = OUT / file_name
        inflated = make(path)
        code, seconds, cpu, peak, first = measure(path)
        print(
            f"{name:<22} {path.stat().st_size / MIB:>7.1f}Mi {inflated / MIB:>7.0f}Mi "
            f"{code:>4} {seconds:>6.2f}s {cpu:>6.2f}s {peak:>5.0f}MiB  "
            f"{first.replace(str(path), 'FILE')[:110]}"
        )
        path.unlink()


if __name__ == "__main__":
    main()
