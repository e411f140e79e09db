"""The ops page: `batcher serve` (SPEC "The web page"; DESIGN "web/").

One server-rendered page over the same library as the CLI (`batcher.app.jobs.build_job`,
`batcher.app.execute.execute`, `batcher.state.runs_in`): upload a CSV or Excel file,
choose the operation, see the plan, start, watch, stop, download the report, see the runs.
`create_app` builds the aiohttp application; `serve_page` runs it until cancelled and announces its
address with the start secret (`batcher.web.access`: only the operator may use the page).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from batcher.domain.config import Settings
from batcher.web.access import PagePassword, check_bind
from batcher.web.app import PAGE, WebOptions, create_app
from batcher.web.connections import serving

__all__ = [
    "PagePassword",
    "WebOptions",
    "check_bind",
    "create_app",
    "page_address",
    "serve_page",
]


def page_address(host: str, port: int, secret: str) -> str:
    """The page's address with the start secret: the one line that opens it."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/?token={secret}"


async def serve_page(
    settings: Settings,
    options: WebOptions,
    port: int,
    announce: Callable[[str], None],
) -> None:
    """Serve the page on `options.host`:`port` until cancelled (Ctrl-C).

    `announce` gets the page's address with its start secret, once. UsageError for a state
    directory `run` would refuse; OSError when the address cannot be bound. On the way out a run
    in progress is stopped gracefully (in-flight requests finish, the report is written, the
    rest stays pending).
    """
    app = create_app(settings, options)
    async with serving(app, options.host, port) as bound:
        announce(page_address(options.host, bound, app[PAGE].access.secret))
        await asyncio.Event().wait()
