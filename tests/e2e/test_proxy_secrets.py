"""A proxy's credentials are secrets like the token: a real `batcher run` through a proxy on
loopback that refuses with 407 and echoes the credentials in its reason phrase and body leaves
them in no output and no file."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from .conftest import LOCATION, contact_ids, write_csv
from .helpers import BOUND_S, ROOT, SECRET

USER = "opsuser"
PASSWORD = "Pr0xy-pa55word-9c1e"


@asynccontextmanager
async def refusing_proxy() -> AsyncIterator[tuple[int, list[bytes]]]:
    """A forward proxy that answers every request (CONNECT or absolute-URI) with a 407 whose
    reason phrase and body carry `user:password`, as a misconfigured proxy was seen to do."""
    heads: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            heads.append(await reader.readuntil(b"\r\n\r\n"))
            body = f"denied for {USER}:{PASSWORD} (see http://{USER}:{PASSWORD}@proxy/)".encode()
            writer.write(
                f"HTTP/1.1 407 {USER}:{PASSWORD} not allowed\r\n"
                f'Proxy-Authenticate: Basic realm="{USER}:{PASSWORD}"\r\n'
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1], heads


def files_under(folder: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.mark.parametrize("where", ["url", "netrc"])
@pytest.mark.parametrize("scheme", ["https", "http"])
async def test_proxy_credentials_are_in_no_output_and_no_file(
    tmp_path: Path, where: str, scheme: str
) -> None:
    """Through a CONNECT (https) or absolute-URI (http) proxy, with credentials in the proxy URL
    or in .netrc: stdout, stderr (JSON logs), the report, summary.json and the state files hold
    neither the password nor the user name."""
    work = tmp_path / "work"
    work.mkdir()
    write_csv(work / "in.csv", contact_ids(5))
    async with refusing_proxy() as (port, heads):
        env = {
            key: value
            for key, value in os.environ.items()
            if key.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
        }
        proxy = f"http://{USER}:{PASSWORD}@127.0.0.1:{port}"
        if where == "netrc":
            (tmp_path / "netrc").write_text(
                f"machine 127.0.0.1 login {USER} password {PASSWORD}\n", encoding="utf-8"
            )
            env["NETRC"] = str(tmp_path / "netrc")
            proxy = f"http://127.0.0.1:{port}"
        env.update(
            {
                "PYTHONPATH": str(ROOT),
                f"{scheme.upper()}_PROXY": proxy,
                "BATCHER_TOKEN": SECRET,
                "BATCHER_API_BASE_URL": f"{scheme}://api.batcher-test.invalid",
                "BATCHER_API_ALLOW_INSECURE": "true",
                "BATCHER_RETRY_ATTEMPTS": "1",
                "BATCHER_RETRY_MAX_CONSECUTIVE_FAILURES": "2",
            }
        )
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "batcher",
            "run",
            "in.csv",
            "--action",
            "add",
            "--tags",
            "vip",
            "--location-id",
            LOCATION,
            "--yes",
            "--log-format",
            "json",
            cwd=work,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(child.communicate(), BOUND_S)
    assert heads, "the run went through the proxy"
    assert b"Proxy-Authorization: Basic" in heads[0], "and offered it the credentials"
    # The proxy's refusal stops the run (exit 3, the rows pending for the next run): never a
    # row's fault, never "fix the row".
    assert child.returncode == 3, stderr.decode()
    assert b"the proxy refused its credentials" in stderr
    assert b"fix the proxy's user and password" in stderr
    assert b"407" in stdout + stderr  # the refusal is reported...
    written = files_under(work)
    assert work / "in-report.csv" in written
    assert work / "in-report.summary.json" in written
    assert any(path.suffix == ".sqlite" for path in written)
    assert b"407" in written[work / "in-report.csv"]
    # ...without the credentials, anywhere.
    for name, data in [("stdout", stdout), ("stderr", stderr), *written.items()]:
        for secret in (PASSWORD, PASSWORD[:8], USER):
            assert secret.encode() not in data, (name, secret)
