"""Input order per contact, end to end (SPEC "Input": "Input order is the truth for each contact").

Contacts touched several times with adds and removes of overlapping tags, in mixed order, must end
with the tags the rows give when applied one after another in input order; a row repeating the
same contact's previous row is a `duplicate`; each round takes the fewest requests; a stopped run
and a failed earlier row are both finished, in order, by running again.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from batcher.app.execute import execute
from batcher.app.jobs import Job
from batcher.domain.config import BatchSettings, LimitSettings, RetrySettings
from batcher.domain.errors import Interrupted
from batcher.loading import InputOptions
from batcher.sandbox import Sandbox, SandboxConfig
from batcher.support.stopping import Stop

from .conftest import LOCATION, SandboxFactory, contact_ids, fast_settings
from .helpers import Gate, read_csv, recorded

BATCH_SIZE = 7
POOL = ("vip", "news", "beta")
FROM_COLUMNS = InputOptions(default_location_id=LOCATION)

Op = tuple[str, frozenset[str]]


@dataclass
class Scenario:
    """Rows in input order, each contact's starting tags, and what must come of them."""

    rows: list[tuple[str, str, str]]  # (contact_id, tags cell, action cell)
    initial: dict[str, set[str]]
    expected_tags: dict[str, set[str]] = field(default_factory=dict)
    status: list[str] = field(default_factory=list)
    message: list[str] = field(default_factory=list)
    old_tags: list[set[str] | None] = field(default_factory=list)
    rounds: list[int | None] = field(default_factory=list)
    # Per contact: its sent operations (duplicates left out), in input order.
    sends: dict[str, list[Op]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Apply the rows one after another in input order: the truth the run must match."""
        state = {c: set(tags) for c, tags in self.initial.items()}
        previous: dict[str, tuple[Op, int]] = {}  # contact -> (last op, the row carrying it)
        for number, (contact, tags, action) in enumerate(self.rows, start=1):
            op: Op = (action.lower(), frozenset(t.strip() for t in tags.split(",")))
            last = previous.get(contact)
            if last is not None and last[0] == op:
                self.status.append("duplicate")
                self.message.append(f"duplicate of row {last[1]}")
                self.old_tags.append(None)
                self.rounds.append(None)
                continue
            previous[contact] = (op, number)
            self.sends.setdefault(contact, []).append(op)
            self.rounds.append(len(self.sends[contact]))
            self.status.append("success")
            self.message.append("Tags updated")
            self.old_tags.append(set(state[contact]))
            if op[0] == "add":
                state[contact] |= op[1]
            else:
                state[contact] -= op[1]
        self.expected_tags = state

    def requests_per_round(self, size: int) -> dict[int, int]:
        """Per round: the sum over its groups (action, tag set) of ceil(rows / batch size)."""
        members: Counter[tuple[int, Op]] = Counter()
        for contact, ops in self.sends.items():
            del contact
            for round_, op in enumerate(ops, start=1):
                members[(round_, op)] += 1
        per_round: Counter[int] = Counter()
        for (round_, _), count in members.items():
            per_round[round_] += math.ceil(count / size)
        return dict(sorted(per_round.items()))


def make_scenario(contacts: int = 300, seed: int = 2024) -> Scenario:
    rng = random.Random(seed)
    ids = contact_ids(contacts, seed=seed)
    tag_sets = [
        frozenset(s) for s in ({"vip"}, {"news"}, {"beta"}, {"vip", "news"}, {"beta", "news"})
    ]
    initial = {c: {t for t in (*POOL, "keep") if rng.random() < 0.4} for c in ids}
    queues: dict[str, list[tuple[str, str]]] = {}
    for contact in ids:
        ops: list[tuple[str, frozenset[str]]] = []
        for _ in range(rng.randint(2, 4)):
            if ops and rng.random() < 0.2:  # the same change again: a duplicate
                ops.append(ops[-1])
            else:
                ops.append((rng.choice(["add", "remove"]), rng.choice(tag_sets)))
        cells = []
        for action, tags in ops:
            shuffled = list(tags)
            rng.shuffle(shuffled)  # a tag set is the same in any order
            cells.append((", ".join(shuffled), action.upper() if rng.random() < 0.2 else action))
        queues[contact] = cells
    rows: list[tuple[str, str, str]] = []
    pending = list(ids)
    while pending:  # interleave the contacts, each keeping its own order
        contact = rng.choice(pending)
        tags, action = queues[contact].pop(0)
        rows.append((contact, tags, action))
        if not queues[contact]:
            pending.remove(contact)
    return Scenario(rows=rows, initial=initial)


def write_input(directory: Path, scenario: Scenario) -> tuple[Path, Path]:
    """The per-row CSV, and a sandbox fixture holding each contact's starting tags."""
    source = directory / "changes.csv"
    lines = ["contact_id,tags,action"]
    lines += [f'{contact},"{tags}",{action}' for contact, tags, action in scenario.rows]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    fixture = directory / "fixture.json"
    people = {c: sorted(tags) for c, tags in scenario.initial.items()}
    fixture.write_text(json.dumps({"locations": {LOCATION: people}}), encoding="utf-8")
    return source, fixture


def job(tmp_path: Path, source: Path) -> Job:
    return Job(input_path=source, input=FROM_COLUMNS, report_path=tmp_path / "report.csv")


def applied_ops(sandbox: Sandbox, since: int = 0) -> dict[str, list[Op]]:
    """Per contact, the operations the sandbox applied to it, in arrival order."""
    ops: dict[str, list[Op]] = defaultdict(list)
    for request in sandbox.stats.applied[since:]:
        op = (request.update.type, frozenset(request.update.tags))
        for contact in request.update.contacts:
            ops[contact].append(op)
    return dict(ops)


def final_tags(sandbox: Sandbox, scenario: Scenario) -> dict[str, set[str]]:
    return {c: set(sandbox.universe.tags(c) or ()) for c in scenario.initial}


async def test_each_contact_ends_as_its_rows_applied_in_input_order_in_the_fewest_requests(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """Every contact ends with its rows' tags applied in input order, repeats are duplicates
    naming the row they repeat, and each round takes exactly its groups' minimal requests."""
    scenario = make_scenario()
    source, fixture = write_input(tmp_path, scenario)
    settings_batch = BatchSettings(size=BATCH_SIZE)
    async with make_sandbox(fixture=fixture) as sandbox:
        settings = fast_settings(tmp_path, sandbox.url, batch=settings_batch)
        result = await execute(settings, job(tmp_path, source))

        assert result.exit_code == 0, result.stopped
        assert final_tags(sandbox, scenario) == scenario.expected_tags
        # Rounds run one after another: the applied requests split into rounds in order.
        per_round = scenario.requests_per_round(BATCH_SIZE)
        assert len(per_round) >= 3
        assert result.rounds == len(per_round)
        assert result.requests == len(sandbox.stats.applied) == sum(per_round.values())
        assert sandbox.stats.by_status == {201: sum(per_round.values())}
        start = 0
        for round_, count in per_round.items():
            for request in sandbox.stats.applied[start : start + count]:
                op = (request.update.type, frozenset(request.update.tags))
                for contact in request.update.contacts:
                    assert scenario.sends[contact][round_ - 1] == op, (round_, contact)
            start += count

    assert applied_ops(sandbox) == scenario.sends  # every change once, each contact in order
    lines = read_csv(tmp_path / "report.csv")
    assert [int(line["row"]) for line in lines] == list(range(1, len(scenario.rows) + 1))
    assert [line["status"] for line in lines] == scenario.status
    assert [line["message"] for line in lines] == scenario.message
    assert Counter(scenario.status)["duplicate"] >= 30
    for line, old in zip(lines, scenario.old_tags, strict=True):
        if old is not None:  # the contact's tags just before this row, as the API saw them
            assert set(json.loads(line["old_tags"])) == old, line["row"]


@pytest.mark.parametrize("stop_after", ["first-answer", "mid-round-1", "end-of-round-1", "round-2"])
async def test_a_run_stopped_midway_and_run_again_ends_in_input_order_sending_each_row_once(
    tmp_path: Path,
    sandboxes: list[Sandbox],
    monkeypatch: pytest.MonkeyPatch,
    stop_after: str,
) -> None:
    """A run stopped after some answers, then run again, leaves every contact as its rows in
    input order say, and no row recorded `success` by the first run is sent again."""
    scenario = make_scenario(contacts=120, seed=7)
    source, fixture = write_input(tmp_path, scenario)
    first_round = scenario.requests_per_round(BATCH_SIZE)[1]
    answers = {
        "first-answer": 1,
        "mid-round-1": first_round // 2,
        "end-of-round-1": first_round,
        "round-2": first_round + 2,
    }[stop_after]
    stop = Stop()

    def stop_at(number: int) -> None:
        if number == answers:
            stop.request("stopped by the test")

    gate = Gate(on_answer=stop_at)
    async with Sandbox(SandboxConfig(rate=None, fixture=fixture), sleep=gate) as sandbox:
        sandboxes.append(sandbox)
        monkeypatch.setenv("BATCHER_TOKEN", sandbox.token)
        settings = fast_settings(tmp_path, sandbox.url, batch=BatchSettings(size=BATCH_SIZE))
        first = await execute(settings, job(tmp_path, source), stop=stop)
        first_lines = read_csv(tmp_path / "report.csv")
        first_applied = len(sandbox.stats.applied)
        second = await execute(settings, job(tmp_path, source))
        tags = final_tags(sandbox, scenario)
        all_ops = applied_ops(sandbox)  # both runs
        second_ops = applied_ops(sandbox, first_applied)

    assert isinstance(first.stopped, Interrupted)
    assert first.exit_code == 3
    assert answers <= first_applied < sum(scenario.requests_per_round(BATCH_SIZE).values())
    counts = Counter(line["status"] for line in first_lines)
    assert set(counts) <= {"success", "duplicate", "pending"}
    assert counts["pending"] > 0
    assert second.resumed
    assert second.exit_code == 0
    assert second.requests == len(sandbox.stats.applied) - first_applied
    assert tags == scenario.expected_tags
    # Every change applied exactly once over both runs, each contact's in input order.
    assert all_ops == scenario.sends
    # A row the first report calls `success` was not sent by the second run.
    for line, round_ in zip(first_lines, scenario.rounds, strict=True):
        if line["status"] == "success":
            assert round_ is not None
            contact = line["contact_id"]
            resent = len(second_ops.get(contact, []))
            assert resent <= len(scenario.sends[contact]) - round_, line["row"]
    assert [line["status"] for line in read_csv(tmp_path / "report.csv")] == scenario.status


async def test_a_failed_earlier_row_holds_the_contacts_later_row_back_until_a_rerun(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """When a contact's first row fails, its second stays `pending` naming the row it waits for
    (exit 1), and running again sends both, in order."""
    a, b, c = contact_ids(3, seed=5)
    source = tmp_path / "changes.csv"
    source.write_text(
        "contact_id,tags,action\n"
        f"{a},x,add\n{b},x,add\n{c},y,add\n{a},x,remove\n{b},y,add\n{c},y,remove\n",
        encoding="utf-8",
    )
    retry = RetrySettings(attempts=1, initial_backoff_s=0.0, max_backoff_s=0.0)
    limits = LimitSettings(concurrency=1, requests_per_interval=1000, interval_ms=1000)
    # The first request (round 1's `add x` for a and b) fails, with no retry left.
    async with make_sandbox(faults={"fail_first": 1}) as sandbox:
        settings = fast_settings(tmp_path, sandbox.url, retry=retry, limits=limits)
        first = await execute(settings, job(tmp_path, source))
        lines = read_csv(tmp_path / "report.csv")
        assert first.exit_code == 1
        assert first.stopped is None
        assert first.requests == 3
        assert dict(sandbox.stats.by_status) == {503: 1, 201: 2}
        assert [line["status"] for line in lines] == [
            "failed", "failed", "success", "pending", "pending", "success",
        ]  # fmt: skip
        assert lines[3]["message"].startswith("not sent: waits for row 1 ")
        assert lines[4]["message"].startswith("not sent: waits for row 2 ")
        assert "the same contact's previous change" in lines[3]["message"]
        assert sandbox.universe.tags(a) is None  # never touched yet
        applied = len(sandbox.stats.applied)

        second = await execute(settings, job(tmp_path, source))
        rerun = [
            (r.update.type, r.update.tags, r.update.contacts)
            for r in sandbox.stats.applied[applied:]
        ]
        assert second.resumed
        assert second.exit_code == 0
        assert second.requests == 3
        # Round 1 (the failed `add x`) first, then both held-back rows.
        assert rerun[0] == ("add", ["x"], [a, b])
        assert sorted(rerun[1:]) == [("add", ["y"], [b]), ("remove", ["x"], [a])]
        assert sandbox.universe.tags(a) == ()
        assert set(sandbox.universe.tags(b) or ()) == {"x", "y"}
        assert sandbox.universe.tags(c) == ()
    assert {line["status"] for line in read_csv(tmp_path / "report.csv")} == {"success"}


async def test_a_run_abandoned_mid_request_and_run_again_still_ends_in_input_order(
    tmp_path: Path, sandboxes: list[Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run dropped at once while round-2 requests are in flight (as by a second Ctrl-C), then
    run again, leaves every contact as its rows in input order say; only the abandoned requests'
    rows are sent twice, never a row the first run had recorded."""
    scenario = make_scenario(contacts=120, seed=9)
    source, fixture = write_input(tmp_path, scenario)
    hold = scenario.requests_per_round(BATCH_SIZE)[1] + 2  # the 2nd request of round 2
    gate = Gate(open_for=hold - 1)
    async with Sandbox(SandboxConfig(rate=None, fixture=fixture), sleep=gate) as sandbox:
        sandboxes.append(sandbox)
        monkeypatch.setenv("BATCHER_TOKEN", sandbox.token)
        settings = fast_settings(tmp_path, sandbox.url, batch=BatchSettings(size=BATCH_SIZE))
        task = asyncio.create_task(execute(settings, job(tmp_path, source)))
        await gate.held(hold)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        state = recorded(tmp_path / "state", tmp_path / "inspect")
        await gate.open()
        second = await execute(settings, job(tmp_path, source))
        tags = final_tags(sandbox, scenario)
        ops = applied_ops(sandbox)

    assert second.resumed
    assert second.exit_code == 0
    assert tags == scenario.expected_tags
    settled = {row for row, status in state.items() if status == "success"}
    assert len(settled) > 0
    twice = 0
    for contact, sends in scenario.sends.items():
        collapsed: list[tuple[Op, int]] = []  # each op applied, and how many times in a row
        for op in ops[contact]:
            if collapsed and collapsed[-1][0] == op:
                collapsed[-1] = (op, collapsed[-1][1] + 1)
            else:
                collapsed.append((op, 1))
        assert [op for op, _ in collapsed] == sends, contact  # in input order, none skipped
        assert all(n <= 2 for _, n in collapsed)
        twice += sum(n == 2 for _, n in collapsed)
        for number, (row_contact, _, _) in enumerate(scenario.rows, start=1):
            round_ = scenario.rounds[number - 1]
            if row_contact == contact and number in settled and round_ is not None:
                assert collapsed[round_ - 1][1] == 1, number  # recorded: never sent again
    assert 0 < twice <= 4 * BATCH_SIZE  # only the abandoned requests' rows (4 workers)
    assert [line["status"] for line in read_csv(tmp_path / "report.csv")] == scenario.status
