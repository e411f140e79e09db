"""The plan's preview: the first rows as batcher reads them, and the distinct operations."""

from __future__ import annotations

import re
from pathlib import Path

from tests.web.helpers import page_for, settings_for

DATA = (
    b"contact_id,tags,action,location_id\n"
    b'g9Tx27DdxE3tn8SefKjA,"vip, Newsletter ",add,loc1\n'
    b"not an id!,vip,add,loc1\n"
    b"h8Uy38EexF4uo9TfgLkB,vip,REMOVE,loc2\n"
)


async def test_the_plan_shows_the_first_rows_as_read_and_the_distinct_operations(
    tmp_path: Path,
) -> None:
    """Each of the first rows shows the id, action, tags (as split and trimmed) and location
    batcher will send, or why it will not; the distinct operations are listed with their rows."""
    async with page_for(settings_for(tmp_path / ".batcher")) as page:
        _, _, upload_id = await page.upload("contacts.csv", DATA)
        status, text = await page.post("/plan", {"upload": upload_id, "action": "file"})
    assert status == 200, text
    table = re.search(r'<table id="first-rows".*?</table>', text, re.S)
    assert table is not None, text
    rows = [
        re.findall(r"<td[^>]*>(?:<code>)?([^<]*)", row)
        for row in re.findall(r"<tr>(.*?)</tr>", table.group(0), re.S)[1:]
    ]
    assert rows[0] == ["1", "g9Tx27DdxE3tn8SefKjA", "add", "vip, Newsletter", "loc1", "to send"]
    assert rows[1][:2] == ["2", "not an id!"]
    assert rows[1][5].startswith("invalid: ")
    assert rows[2] == ["3", "h8Uy38EexF4uo9TfgLkB", "remove", "vip", "loc2", "to send"]
    operations = re.search(r'<table id="plan-operations".*?</table>', text, re.S)
    assert operations is not None
    added = re.search(r"<code>add \[([^\]]*)\]</code>", operations.group(0))
    assert added is not None
    assert sorted(added.group(1).split(", ")) == ["&quot;Newsletter&quot;", "&quot;vip&quot;"]
    assert "remove [&quot;vip&quot;]" in operations.group(0)
