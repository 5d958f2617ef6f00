"""A service's /health endpoint on 127.0.0.1, answering with whatever status a test sets."""
from __future__ import annotations

import contextlib

from aiohttp import web

from conftest import free_port


@contextlib.asynccontextmanager
async def health_service(status: int = 200):
    """Yields the URL of /health, answering `status` with a JSON body."""
    async def health(request):
        return web.json_response({"status": "healthy" if status < 400 else "failing"}, status=status)

    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/health"
    finally:
        await runner.cleanup()
