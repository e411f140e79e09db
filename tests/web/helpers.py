"""Driving the page through aiohttp's test client: the CSRF token, uploads, forms, waiting."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from batcher.app.settings import load_settings
from batcher.domain.config import Settings
from batcher.web import WebOptions, create_app

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_UPLOAD = re.compile(r'name="upload" value="([0-9a-f]{16})"')


def settings_for(state_dir: Path, **overrides: object) -> Settings:
    """Settings from no BATCHER_* variable; the token read from os.environ when the page sends,
    as the server reads it (a test sets it once its sandbox is up)."""
    settings = load_settings(environ={}, overrides={"state.dir": str(state_dir), **overrides})
    return dataclasses.replace(settings, environ=None)


def multipart(csrf: str, name: str, data: bytes) -> tuple[bytes, str]:
    """The upload form's body as a browser sends it: the file name as given, not escaped
    (aiohttp's client would percent-encode a slash, hiding what a hostile client can send)."""
    boundary = "----batcher-test-" + "x" * 16
    quoted = name.replace("\\", "\\\\").replace('"', "%22")
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="csrf"\r\n\r\n'
            f"{csrf}\r\n"
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{quoted}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


@dataclass
class Page:
    """A client of the page that keeps every answer's text (to look for the token in)."""

    client: TestClient[Any, Any]
    seen: list[str] = field(default_factory=list)
    csrf: str = ""

    async def get(self, path: str) -> tuple[int, str]:
        async with self.client.get(path) as response:
            text = await response.text()
        self.seen.append(text)
        if match := _CSRF.search(text):
            self.csrf = match.group(1)
        return response.status, text

    async def upload(
        self, name: str, data: bytes, *, csrf: str | None = None
    ) -> tuple[int, str, str]:
        """POST the upload form; (status, page, upload id or "")."""
        if not self.csrf:
            await self.get("/")
        body, content_type = multipart(self.csrf if csrf is None else csrf, name, data)
        async with self.client.post(
            "/upload", data=io.BytesIO(body), headers={"Content-Type": content_type}
        ) as response:
            text = await response.text()
        self.seen.append(text)
        found = _UPLOAD.search(text) if response.status == 200 else None
        return response.status, text, found.group(1) if found else ""

    async def post(
        self, path: str, fields: Mapping[str, str], *, csrf: str | None = None
    ) -> tuple[int, str]:
        data = {"csrf": self.csrf if csrf is None else csrf, **fields}
        async with self.client.post(path, data=data) as response:
            text = await response.text()
        self.seen.append(text)
        return response.status, text

    async def progress(self) -> dict[str, Any]:
        async with self.client.get("/progress") as response:
            text = await response.text()
            self.seen.append(text)
            value: dict[str, Any] = await response.json()
        return value

    async def wait_for_run(self, limit_s: float = 60.0, *, copy: bool = True) -> dict[str, Any]:
        """The run's last progress once it has ended, and (`copy`) its XLSX copy is written."""
        async with asyncio.timeout(limit_s):
            while True:
                snap = await self.progress()
                ended = snap["state"] not in ("running", "stopping")
                if ended and not (copy and snap.get("xlsx") == "writing"):
                    return snap
                await asyncio.sleep(0.05)


# The start secret the test pages use (a real start makes a random one).
SECRET = "test-start-secret-5f1c9a7e3b2d4860aa17c3e9d0b6f248"


@asynccontextmanager
async def page_for(
    settings: Settings, options: WebOptions | None = None, *, log_in: bool = True
) -> AsyncIterator[Page]:
    """The page on a test server; logged in with its start secret unless `log_in` is False."""
    options = options or WebOptions(sandbox=True)
    if not options.secret:
        options = dataclasses.replace(options, secret=SECRET)
    app = create_app(settings, options)
    async with TestClient(TestServer(app)) as client:
        page = Page(client)
        if log_in:
            async with client.get(f"/?token={options.secret}", allow_redirects=False) as response:
                assert response.status == 303, await response.text()
        yield page
