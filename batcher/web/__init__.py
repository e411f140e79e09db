"""The ops page: `batcher serve` (SPEC "The web page"; DESIGN "web/").

One server-rendered page over the same library as the CLI (`batcher.jobs.build_job`,
`batcher.runner.execute`, `batcher.ledger.runs_in`): upload a CSV or Excel file, choose the
operation, see the plan, start, watch, stop, download the report, see the runs. `create_app`
builds the aiohttp application; `serve_page` runs it until cancelled.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from batcher.config import Settings
from batcher.web.app import WebOptions, check_bind, create_app, is_loopback_host

__all__ = ["WebOptions", "check_bind", "create_app", "is_loopback_host", "serve_page"]


async def serve_page(
    settings: Settings,
    options: WebOptions,
    port: int,
    announce: Callable[[str], None],
) -> None:
    """Serve the page on `options.host`:`port` until cancelled (Ctrl-C).

    OSError when the address cannot be bound. On the way out a run in progress is stopped
    gracefully (in-flight requests finish, the report is written, the rest stays pending).
    """
    app = create_app(settings, options)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, options.host, port)
        await site.start()
        host = f"[{options.host}]" if ":" in options.host else options.host
        bound = runner.addresses[0][1] if runner.addresses else port
        announce(f"http://{host}:{bound}/")
        import asyncio

        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
