"""The ops page: `batcher serve` (SPEC "The web page"; DESIGN "web/").

One server-rendered page over the same library as the CLI (`batcher.app.jobs.build_job`,
`batcher.app.execute.execute`, `batcher.state.runs_in`): upload a CSV or Excel file,
choose the operation, see the plan, start, watch, stop, download the report, see the runs.
`create_app` builds the aiohttp application; `serve_page` runs it until cancelled and announces its
address with the start secret (`batcher.web.access`: only the operator may use the page).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
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
    say: Callable[[str], None] | None = None,
) -> None:
    """Serve the page on `options.host`:`port` until SIGINT/SIGTERM (or cancelled).

    `announce` gets the page's address with its start secret, once; `say` one line when a
    signal stops the server and one when it has stopped. UsageError for a state directory
    `run` would refuse; OSError when the address cannot be bound. On the way out a run in
    progress is stopped gracefully (in-flight requests finish, the report is written, the rest
    stays pending); a second signal ends the process at once.
    """
    tell = say or (lambda line: None)
    app = create_app(settings, options)
    page = app[PAGE]
    loop = asyncio.get_running_loop()
    signalled: asyncio.Future[signal.Signals] = loop.create_future()

    def on_signal(sig: signal.Signals) -> None:
        if signalled.done():
            tell(f"batcher: {sig.name} again: stopped at once; what was saved is kept")
            os._exit(3)
        signalled.set_result(sig)

    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, on_signal, sig)
            handled.append(sig)
    try:
        async with serving(app, options.host, port) as bound:
            announce(page_address(options.host, bound, page.access.secret))
            sig = await signalled
            running = page.runs.busy()
            tell(
                f"batcher: {sig.name} received: stopping the page's server"
                + (
                    "; the run in progress stops gracefully (requests in flight finish, the "
                    "report is written, the rest stays pending)"
                    if running
                    else ""
                )
            )
        tell("batcher: the page's server has stopped")
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
