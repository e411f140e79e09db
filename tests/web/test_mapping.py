"""Mapping columns on the page (issue 25 item 1): a file calling its tags, action and location
columns otherwise ("Labels", "Do", "Sub-account") is planned and run with the columns chosen from
its header, and Resume keeps the choice."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from tests.web.helpers import page_for, settings_for

LOCATIONS = ("sandboxLocation00001", "asdrwHvLUxlfw5SqKVCN")  # the page sandbox's token's
IDS = [f"g9Tx27DdxE3tn8Sef{i:03d}" for i in range(30)]
_RESUME = re.compile(r'action="/resume" class="undo-form">.*?name="run" value="([^"]+)"', re.S)
MAPPING = {"tags_column": "Labels", "action_column": "Do", "location_column": "Sub-account"}


def mapped_csv() -> bytes:
    """Even rows add "vip, gold" at the first location, odd rows remove "old" at the second."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["contact_id", "Labels", "Do", "Sub-account"])
    for i, contact in enumerate(IDS):
        tags, action = ("old", "remove") if i % 2 else ("vip, gold", "add")
        writer.writerow([contact, tags, action, LOCATIONS[i % 2]])
    return out.getvalue().encode()


def selected(text: str, name: str) -> str:
    """The value selected in the page's `name` list ("" for its first, the detected one)."""
    select = re.search(rf'<select id="{name}".*?</select>', text, re.S)
    assert select is not None, text
    chosen = re.search(r'<option value="([^"]*)" selected>', select.group(0))
    return chosen.group(1) if chosen else ""


async def test_columns_chosen_on_the_page_are_planned_and_run(tmp_path: Path) -> None:
    """The upload lists the header under each of the three columns (none detected), the plan
    with the columns chosen shows the two distinct operations and the rows as read, and the
    run sends each row as its own cells say."""
    async with page_for(settings_for(tmp_path / ".batcher")) as page:
        status, text, upload_id = await page.upload("labels.csv", mapped_csv())
        assert status == 200, text
        for name in MAPPING:
            assert selected(text, name) == ""
            assert re.search(rf'<select id="{name}"[^>]*><option value="" selected>\(none\)', text)
            assert '<option value="Sub-account">Sub-account</option>' in text
        # No action column detected, but one can be chosen: "the file's action" is offered.
        assert re.search(r'<input type="radio" name="action" value="file"\s*>', text)

        operation = {"upload": upload_id, "action": "file", **MAPPING}
        status, text = await page.post("/plan", operation)
        assert status == 200, text
        for name, column in MAPPING.items():
            assert selected(text, name) == column
        operations = re.search(r'<table id="plan-operations".*?</table>', text, re.S)
        assert operations is not None, text
        assert "2 distinct operations" in operations.group(0)
        assert "add [&quot;gold&quot;, &quot;vip&quot;]" in operations.group(0)
        assert "remove [&quot;old&quot;]" in operations.group(0)
        first = re.search(r'<table id="first-rows".*?</table>', text, re.S)
        assert first is not None
        assert f"<code>{LOCATIONS[1]}</code>" in first.group(0)
        fields = dict(re.findall(r'type="hidden" name="([a-z_]+)" value="([^"]*)"', text))
        assert {name: fields[name] for name in MAPPING} == MAPPING  # Start sends the choice

        status, text = await page.post("/run", operation)
        assert status == 200, text
        snap = await page.wait_for_run()
        assert snap["state"] == "finished", snap
        assert snap["counts"]["success"] == len(IDS)
        async with page.client.get(f"/runs/{snap['id']}/report.csv") as response:
            report = list(csv.DictReader(io.StringIO(await response.text())))
    assert [(r["action"], r["tags"], r["location_id"]) for r in report[:2]] == [
        ("add", '["vip","gold"]', LOCATIONS[0]),
        ("remove", '["old"]', LOCATIONS[1]),
    ]
    assert {r["status"] for r in report} == {"success"}


async def test_a_plan_naming_a_column_the_file_lacks_says_so(tmp_path: Path) -> None:
    """A column the header does not have (a forged form) gets one line in the page's words,
    escaped, and nothing is planned."""
    async with page_for(settings_for(tmp_path / ".batcher")) as page:
        _, _, upload_id = await page.upload("labels.csv", mapped_csv())
        fields = {"upload": upload_id, "action": "add", "tags_column": "<b>Nope</b>"}
        status, text = await page.post("/plan", fields)
    assert status == 400
    assert "no column &#x27;&lt;b&gt;Nope&lt;/b&gt;&#x27; (the Tags column chosen)" in text
    assert "--tags-column" not in text
    assert 'id="run-button"' not in text


async def test_resume_keeps_the_columns_chosen(tmp_path: Path) -> None:
    """A stopped run with chosen columns is resumed after a restart with the same columns (its
    saved choices), and Start finishes that same run."""
    state_dir = tmp_path / ".batcher"
    slow = settings_for(state_dir, **{"limits.requests_per_interval": 1, "batch.size": 10})
    async with page_for(slow) as page:
        _, _, upload_id = await page.upload("labels.csv", mapped_csv())
        await page.post("/run", {"upload": upload_id, "action": "file", **MAPPING})
        await page.post("/stop", {"upload": upload_id})
        snap = await page.wait_for_run()
        assert snap["state"] == "stopped", snap
    runs = sorted(state_dir.glob("run-*.sqlite"))
    assert len(runs) == 1

    async with page_for(settings_for(state_dir)) as page:
        _, text = await page.get("/")
        found = _RESUME.search(text)
        assert found is not None, text
        status, text = await page.post("/resume", {"run": found.group(1)})
        assert status == 200, text
        assert "An unfinished run of this file and operation exists" in text
        for name, column in MAPPING.items():
            assert selected(text, name) == column
        fields = dict(re.findall(r'type="hidden" name="([a-z_]+)" value="([^"]*)"', text))
        await page.post("/run", fields)
        snap = await page.wait_for_run()
        assert snap["state"] == "finished", snap
        assert snap["counts"]["success"] == len(IDS)
    assert sorted(state_dir.glob("run-*.sqlite")) == runs
