"""Mutation testing of the code that decides: one operator changed at a time, the tests that cover
it run, and the changes no test noticed (the survivors) listed.

    python benchmarks/mutation.py [TARGET ...] [--tests PATH ...] [--timeout S]
                                  [--line FILE:LINE] [--match TEXT] [--list]

TARGET is a name from TARGETS below (default: all of them) or a dotted module name with its
`--tests`. Each mutant changes one thing in the target's functions: a comparison (`<` to `<=` and
`>=`, `==` to `!=`, `is` to `is not`, `in` to `not in`, ...), `and`/`or`, `min`/`max`, an integer
off by one either way, `True`/`False`, or a `not` dropped. The target's tests then run
(`pytest -x -q`, stopped after `--timeout` seconds, by default three times their run on the
unchanged code): a failure kills the mutant; a pass is a survivor, either an equivalent mutant (no
behaviour changes) or a behaviour no test pins.

Everything happens on a copy: the files git knows in this checkout (tracked, and untracked ones it
does not ignore, as they are now) are copied to a temporary directory, which is put first on
PYTHONPATH so that the tests (and the processes they start) import the copy; the copy is removed
at the end, whatever happens (Ctrl-C and SIGTERM included). Nothing in the checkout is written.

Hand-written on `ast` and `tokenize` rather than with mutmut or cosmic-ray: the question asked
here is narrow (six kinds of change, in named functions, each judged by its own short list of
tests, a dict below), and a tool with its own config, session database and operators would be a
dependency for a script CI never runs. Not run by CI: a full run takes about 20 minutes on two
cores.
"""

from __future__ import annotations

import argparse
import ast
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tokenize
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    """What to mutate and what judges it.

    `module` is a dotted name (moving a module means changing this string); `scope` names the
    functions to mutate (`Class.method` or `function`; empty: the whole module); `tests` are the
    test files (or node ids) that cover them, run from the checkout's root.
    """

    module: str
    tests: tuple[str, ...]
    scope: tuple[str, ...] = ()


# The logic that decides (DESIGN.md, "Mutation-test the logic that decides").
TARGETS: dict[str, Target] = {
    "planning": Target(
        "batcher.domain.planning",
        tests=(
            "tests/test_planning.py",
            "tests/test_pins.py",
            "tests/test_lanes.py",
            "tests/e2e/test_order.py",
            "tests/e2e/test_pinned_runs.py",
        ),
    ),
    "lanes": Target(
        "batcher.sending.lanes",
        tests=(
            "tests/test_lanes.py",
            "tests/test_pins.py",
            "tests/e2e/test_order.py",
            "tests/e2e/test_guards.py",
        ),
    ),
    "sending": Target(
        "batcher.sending.sender",
        tests=(
            "tests/test_sending.py",
            "tests/test_breakers.py",
            "tests/test_stop_advice.py",
            "tests/e2e/test_guards.py",
            "tests/e2e/test_runs.py",
        ),
    ),
    "breakers": Target(
        "batcher.sending.breakers",
        tests=(
            "tests/test_breakers.py",
            "tests/test_stop_advice.py",
            "tests/e2e/test_guards.py",
            "tests/e2e/test_runs.py",
        ),
    ),
    # The ledger's work queue: what is still owed, a round and a location at a time.
    "work-queue": Target(
        "batcher.state.work",
        scope=(
            "WorkQueue._items",
            "WorkQueue.work",
            "WorkQueue.ready_work",
            "WorkQueue.rounds_by_location",
            "WorkQueue.members",
            "WorkQueue._page",
        ),
        tests=(
            "tests/test_ledger.py",
            "tests/test_pins.py",
            "tests/test_lanes.py",
            "tests/e2e/test_order.py",
            "tests/e2e/test_pinned_runs.py",
        ),
    ),
}

# A comparison becomes each of these (its boundary and its negation).
COMPARISONS: dict[type[ast.cmpop], tuple[str, ...]] = {
    ast.Lt: ("<=", ">="),
    ast.LtE: ("<", ">"),
    ast.Gt: (">=", "<="),
    ast.GtE: (">", "<"),
    ast.Eq: ("!=",),
    ast.NotEq: ("==",),
    ast.Is: ("is not",),
    ast.IsNot: ("is",),
    ast.In: ("not in",),
    ast.NotIn: ("in",),
}
SWAPS = {"and": "or", "or": "and", "min": "max", "max": "min", "True": "False", "False": "True"}


@dataclass(frozen=True)
class Mutant:
    """One change: the text from `start` to `end` (offsets in the file) becomes `new`."""

    path: str
    line: int
    column: int
    start: int
    end: int
    old: str
    new: str
    source_line: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def at(self) -> str:
        return f"{self.path}:{self.line}:{self.column + 1}"

    @property
    def what(self) -> str:
        return f"{self.old.strip() or repr(self.old)} -> {self.new.strip() or '(dropped)'}"

    def apply(self, text: str) -> str:
        assert text[self.start : self.end] == self.old, (self.where, self.old)
        return text[: self.start] + self.new + text[self.end :]


@dataclass
class _Source:
    """A module's text, its tokens and a way from (line, column) to an offset in the text."""

    path: str
    text: str
    starts: list[int] = field(default_factory=list)
    tokens: list[tokenize.TokenInfo] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.starts = [0]
        for line in self.text.splitlines(keepends=True):
            self.starts.append(self.starts[-1] + len(line))
        self.tokens = list(tokenize.generate_tokens(io.StringIO(self.text).readline))

    def offset(self, line: int, column: int) -> int:
        """`column` counted in characters (tokenize's)."""
        return self.starts[line - 1] + column

    def node_offset(self, line: int, byte_column: int) -> int:
        """`byte_column` counted in UTF-8 bytes (ast's)."""
        text = self.text[self.starts[line - 1] : self.starts[line]]
        return self.starts[line - 1] + len(text.encode()[:byte_column].decode())

    def between(self, a: ast.expr, b: ast.expr) -> list[tokenize.TokenInfo]:
        """The tokens after `a` ends and before `b` starts (an operator, and any parentheses)."""
        assert a.end_lineno is not None
        assert a.end_col_offset is not None
        low = self.node_offset(a.end_lineno, a.end_col_offset)
        high = self.node_offset(b.lineno, b.col_offset)
        return [
            token
            for token in self.tokens
            if token.type in (tokenize.NAME, tokenize.OP)
            and token.string not in ("(", ")")
            and low <= self.offset(*token.start)
            and self.offset(*token.end) <= high
        ]

    def mutant(self, start: int, end: int, new: str) -> Mutant:
        line = self.text.count("\n", 0, start) + 1
        shown = self.text[self.starts[line - 1] : self.starts[line]].strip()
        column = start - self.starts[line - 1]
        return Mutant(self.path, line, column, start, end, self.text[start:end], new, shown)


def _scoped(tree: ast.Module, scope: Sequence[str]) -> Iterator[ast.AST]:
    """The function bodies named in `scope` (`Class.method`), or the whole module."""
    if not scope:
        yield tree
        return
    found: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found[node.name] = node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    found[f"{node.name}.{item.name}"] = item
    missing = [name for name in scope if name not in found]
    if missing:
        raise SystemExit(f"mutation: not found: {', '.join(missing)} (TARGETS is out of date)")
    yield from (found[name] for name in scope)


def _nodes(root: ast.AST) -> Iterator[ast.AST]:
    """Every node under `root` but annotations, decorators and f-strings (message text)."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        for name, value in ast.iter_fields(node):
            if name in ("returns", "annotation", "decorator_list") or isinstance(
                node, ast.JoinedStr
            ):
                continue
            children = value if isinstance(value, list) else [value]
            stack.extend(child for child in children if isinstance(child, ast.AST))


def mutants(path: Path, relative: str, scope: Sequence[str]) -> list[Mutant]:
    """Every mutant of the functions of `scope` in the module at `path`, in file order."""
    source = _Source(relative, path.read_text(encoding="utf-8"))
    tree = ast.parse(source.text)
    found: list[Mutant] = []

    def token(lineno: int, col: int, new: str, text: str) -> None:
        start = source.node_offset(lineno, col)
        assert source.text.startswith(text, start), (relative, lineno, text)
        found.append(source.mutant(start, start + len(text), new))

    for root in _scoped(tree, scope):
        for node in _nodes(root):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                for i, op in enumerate(node.ops):
                    tokens = source.between(operands[i], operands[i + 1])
                    start = source.offset(*tokens[0].start)
                    end = source.offset(*tokens[-1].end)
                    for new in COMPARISONS[type(op)]:
                        found.append(source.mutant(start, end, new))
            elif isinstance(node, ast.BoolOp):
                for a, b in zip(node.values, node.values[1:], strict=False):
                    [word] = source.between(a, b)
                    start = source.offset(*word.start)
                    found.append(source.mutant(start, start + len(word.string), SWAPS[word.string]))
            elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
                # Only the word: a parenthesised operand keeps its parentheses.
                token(node.lineno, node.col_offset, "", "not")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id in ("min", "max"):
                    token(node.func.lineno, node.func.col_offset, SWAPS[node.func.id], node.func.id)
            elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
                text = str(node.value)
                token(node.lineno, node.col_offset, SWAPS[text], text)
            elif isinstance(node, ast.Constant) and type(node.value) is int:
                assert node.end_col_offset is not None
                start = source.node_offset(node.lineno, node.col_offset)
                end = source.node_offset(node.lineno, node.end_col_offset)
                for new in (node.value + 1, node.value - 1):
                    found.append(source.mutant(start, end, str(new)))
    return sorted(found, key=lambda m: (m.start, m.new))


# -- running ------------------------------------------------------------------------------------


class _Stopped(Exception):
    """SIGTERM: end as Ctrl-C does, through every `finally`."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


def copy_checkout(into: Path) -> None:
    """The files git knows here, as they are now (uncommitted changes included)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a file deleted but not yet committed is listed and absent
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)


def module_path(copy: Path, module: str) -> Path:
    base = copy.joinpath(*module.split("."))
    path = base.with_suffix(".py")
    if not path.is_file():
        path = base / "__init__.py"
    if not path.is_file():
        raise SystemExit(f"mutation: no module {module} (TARGETS is out of date)")
    return path


@dataclass
class Verdict:
    mutant: Mutant
    outcome: str  # killed, survived, timeout
    seconds: float


def run_tests(copy: Path, tests: Sequence[str], env: dict[str, str], timeout: float) -> str:
    """`killed` (a test failed, or the tests could not even start), `survived` or `timeout`."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    child = subprocess.Popen(
        command,
        cwd=copy,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: a timeout ends its children too
    )
    try:
        code = child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout"
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    return "survived" if code == 0 else "killed"


def environment(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(copy), env.get("PYTHONPATH")]))
    # Never a stale compiled file: a mutant of the same size in the same second as the last
    # one would otherwise be taken for it.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    found = subprocess.run(
        [sys.executable, "-c", "import batcher; print(batcher.__file__)"],
        cwd=copy,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not Path(found).is_relative_to(copy):
        raise SystemExit(f"mutation: the tests would import {found}, not the copy")
    return env


def judge(
    name: str,
    target: Target,
    copy: Path,
    env: dict[str, str],
    selected: list[Mutant],
    timeout: float | None,
    verdicts: list[Verdict],
) -> None:
    """Run the target's tests against each mutant in turn, adding to `verdicts`; the file is
    restored after each."""
    path = module_path(copy, target.module)
    original = path.read_text(encoding="utf-8")
    started = time.perf_counter()
    if run_tests(copy, target.tests, env, timeout=3600) != "survived":
        raise SystemExit(f"mutation: {name}: the tests fail on the unchanged code")
    baseline = time.perf_counter() - started
    limit = timeout or 3 * baseline + 5
    print(f"{name}: {len(selected)} mutants of {target.module}; tests {baseline:.1f} s, "
          f"timeout {limit:.0f} s", flush=True)  # fmt: skip
    try:
        for number, mutant in enumerate(selected, 1):
            path.write_text(mutant.apply(original), encoding="utf-8")
            began = time.perf_counter()
            outcome = run_tests(copy, target.tests, env, limit)
            verdicts.append(Verdict(mutant, outcome, time.perf_counter() - began))
            path.write_text(original, encoding="utf-8")
            print(f"  [{number:>3}/{len(selected)}] {outcome:<8} {mutant.at:<28} "
                  f"{mutant.what}", flush=True)  # fmt: skip
    finally:
        path.write_text(original, encoding="utf-8")


def report(verdicts: dict[str, list[Verdict]], seconds: float) -> None:
    print(f"\n{time.strftime('%Y-%m-%d')}, {seconds / 60:.0f} min")
    print("target        mutants  killed  survived  timeout  score")
    for name, found in verdicts.items():
        counts = Counter(v.outcome for v in found)
        total = len(found)
        score = (counts["killed"] + counts["timeout"]) / total if total else 1.0
        print(f"{name:<13} {total:>7} {counts['killed']:>7} {counts['survived']:>9} "
              f"{counts['timeout']:>8}  {score:.0%}")  # fmt: skip
    survivors = [v.mutant for found in verdicts.values() for v in found if v.outcome == "survived"]
    if survivors:
        print("\nsurvivors:")
        for mutant in survivors:
            print(f"  {mutant.at}: {mutant.what}    | {mutant.source_line}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help=f"of {', '.join(TARGETS)}, or a module")
    parser.add_argument("--tests", nargs="+", default=[], help="the tests of a module target")
    parser.add_argument("--timeout", type=float, help="seconds per mutant's tests")
    parser.add_argument("--line", action="append", default=[], help="only FILE:LINE's mutants")
    parser.add_argument("--match", help="only mutants whose change contains this (e.g. 'max')")
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    args = parser.parse_args(argv)
    chosen: dict[str, Target] = {}
    for name in args.targets or list(TARGETS):
        if name in TARGETS:
            chosen[name] = TARGETS[name]
        elif args.tests:
            chosen[name] = Target(name, tuple(args.tests))
        else:
            parser.error(f"{name}: not one of {', '.join(TARGETS)}; a module needs --tests")

    # Ctrl-C and SIGTERM end through every `finally` (even when a shell started this in the
    # background, with SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    started = time.perf_counter()
    copy = Path(tempfile.mkdtemp(prefix="batcher-mutation-"))
    verdicts: dict[str, list[Verdict]] = {}
    try:
        copy_checkout(copy)
        env = environment(copy)
        for name, target in chosen.items():
            path = module_path(copy, target.module)
            relative = str(path.relative_to(copy))
            selected = [
                mutant
                for mutant in mutants(path, relative, target.scope)
                if (not args.line or mutant.where in args.line)
                and (args.match is None or args.match in mutant.what)
            ]
            if args.list:
                for mutant in selected:
                    print(f"{name}: {mutant.at}: {mutant.what}    | {mutant.source_line}")
                continue
            if selected:
                judge(
                    name, target, copy, env, selected, args.timeout, verdicts.setdefault(name, [])
                )
    except (KeyboardInterrupt, _Stopped):
        print("\nmutation: stopped; the results so far:", file=sys.stderr)
        report(verdicts, time.perf_counter() - started)
        return 130
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    if not args.list:
        report(verdicts, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
