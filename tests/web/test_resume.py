"""Resume: an unfinished page run goes on with the choices it saved, after a restart too."""

from __future__ import annotations

import re
from pathlib import Path

from tests.web.helpers import SAMPLES, page_for, settings_for

CONTACTS = (SAMPLES / "contacts.csv").read_bytes()
_RESUME = re.compile(r'action="/resume" class="undo-form">.*?name="run" value="([^"]+)"', re.S)


async def test_resume_after_a_restart_plans_the_unfinished_run_with_its_saved_choices(
    tmp_path: Path,
) -> None:
    """A stopped page run is listed unfinished with Resume; after a restart of the server,
    Resume shows the plan of the same run (not a new one) with its tags and action again,
    and Start finishes that run."""
    state_dir = tmp_path / ".batcher"
    # One request per 10 s: the run is still going when the stop comes.
    slow = settings_for(state_dir, **{"limits.requests_per_interval": 1, "batch.size": 100})
    async with page_for(slow) as page:
        _, _, upload_id = await page.upload("contacts.csv", CONTACTS)
        choices = {"upload": upload_id, "action": "remove", "tags": "my-own-tags"}
        await page.post("/run", choices)
        await page.post("/stop", {"upload": upload_id})
        snap = await page.wait_for_run()
        assert snap["state"] == "stopped", snap
        assert "press Resume in the runs list" in snap["message"]
        assert "same command" not in snap["message"]
    runs = sorted(state_dir.glob("run-*.sqlite"))
    assert len(runs) == 1

    async with page_for(settings_for(state_dir)) as page:  # the server started again
        _, text = await page.get("/")
        assert "unfinished" in text
        found = _RESUME.search(text)
        assert found is not None, text
        assert found.group(1) == runs[0].name
        status, text = await page.post("/resume", {"run": found.group(1)})
        assert status == 200, text
        assert "An unfinished run of this file and operation exists" in text
        assert 'value="my-own-tags"' in text
        assert re.search(r'value="remove"\s+checked', text)
        assert re.search(r'id="run-button"[^>]*autofocus', text)  # Start is next
        fields = dict(re.findall(r'type="hidden" name="([a-z_]+)" value="([^"]*)"', text))
        assert fields["tags"] == "my-own-tags"
        await page.post("/run", {k: fields[k] for k in ("upload", "action", "tags")})
        snap = await page.wait_for_run()
        assert snap["state"] == "finished", snap
    # The same run went on: no second state file beside it.
    assert sorted(state_dir.glob("run-*.sqlite")) == runs


async def test_resume_of_a_run_not_started_here_says_what_to_do(tmp_path: Path) -> None:
    """Resume naming a run not in the state directory gets one line saying what to do."""
    async with page_for(settings_for(tmp_path / ".batcher")) as page:
        await page.get("/")
        status, text = await page.post("/resume", {"run": "run-nothing.sqlite"})
        assert status == 400
        assert "not in the state directory" in text


async def test_the_runs_list_says_a_file_driven_operation_in_plain_words(tmp_path: Path) -> None:
    """A run whose action, tags and location come from the file's columns is listed in plain
    words naming those columns, not as "the action column's action"."""
    data = b"contact_id,tags,action,location_id\ng9Tx27DdxE3tn8SefKjA,vip,add,loc1\n"
    async with page_for(settings_for(tmp_path / ".batcher")) as page:
        _, _, upload_id = await page.upload("contacts.csv", data)
        await page.post("/run", {"upload": upload_id, "action": "file"})
        await page.wait_for_run()
        _, text = await page.get("/")
    assert (
        "add or remove each row&#x27;s tags (column tags) as each row&#x27;s action says "
        "(column action) at each row&#x27;s location (column location_id)"
    ) in text
    assert "column&#x27;s" not in text
