"""The operations endpoints of ``membot run``: ``GET /healthz`` (JSON, 200 or 503) and ``GET /metrics``.

They run on their own aiohttp server at ``MEMBOT_HTTP_HOST:MEMBOT_HTTP_PORT``; in Slack HTTP mode the same routes
are also mounted on the Slack server, so a load balancer can check each replica on the port it routes to.
"""

from __future__ import annotations

import logging

from aiohttp import web

from bot.ops.health import Health
from bot.ops.metrics import CONTENT_TYPE, Metrics

__all__ = ["OpsServer", "ops_routes"]

log = logging.getLogger(__name__)


def ops_routes(health: Health, metrics: Metrics) -> list[web.RouteDef]:
    """``/healthz`` and ``/metrics`` as aiohttp routes."""

    async def healthz(request: web.Request) -> web.Response:
        report = await health.report()
        return web.json_response(report.as_dict(), status=200 if report.ok else 503)

    async def metrics_page(request: web.Request) -> web.Response:
        response = web.Response(body=metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    return [web.get("/healthz", healthz), web.get("/metrics", metrics_page)]


class OpsServer:
    """An aiohttp server for the operations routes; ``port`` is the bound port (0 in settings picks a free one)."""

    def __init__(self, routes: list[web.RouteDef], host: str, port: int) -> None:
        self._app = web.Application()
        self._app.add_routes(routes)
        self._host = host
        self._requested_port = port
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        """Listen; raises OSError when the address is taken."""
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._requested_port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("health and metrics endpoints listening", extra={"host": self._host, "port": self.port})

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
