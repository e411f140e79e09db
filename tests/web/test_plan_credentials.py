"""The page's plan names each location's credential, as `plan` does (Step 11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from batcher.web import WebOptions
from tests.web.helpers import SAMPLES, page_for, settings_for

LOCATION = "sandboxLocation00001"


async def test_the_plan_lists_each_location_s_credential_and_whether_it_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A location mapped to an unset variable shows that variable, NOT SET; nothing is sent."""
    monkeypatch.delenv("PAGE_TOKEN_MAIN", raising=False)
    settings = settings_for(
        tmp_path / ".batcher",
        **{
            "api.base_url": "http://127.0.0.1:9",  # never reached: a plan sends nothing
            "api.location_id": LOCATION,
            "api.location_tokens": {LOCATION: "PAGE_TOKEN_MAIN"},
        },
    )
    async with page_for(settings, WebOptions(sandbox=False)) as page:
        contacts = (SAMPLES / "contacts.csv").read_bytes()
        status, text, upload_id = await page.upload("contacts.csv", contacts)
        assert status == 200, text
        operation = {"upload": upload_id, "action": "add", "tags": "vip"}
        status, text = await page.post("/plan", operation)
    assert status == 200, text
    assert '<th scope="col">credential</th>' in text
    assert f"<code>{LOCATION}</code>" in text
    assert "$PAGE_TOKEN_MAIN (NOT SET)" in text
