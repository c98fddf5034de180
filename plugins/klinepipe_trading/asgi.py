"""The ASGI app the plugin mounts: built on its first request, so loading the plugin (which every Airflow
process does: scheduler, dag-processor, triggerer, task workers) imports neither FastAPI routes nor
SQLAlchemy, and opens no database connection."""

from __future__ import annotations


class LazyApp:
    def __init__(self) -> None:
        self._app = None

    async def __call__(self, scope, receive, send):
        if self._app is None:
            from klinepipe_trading.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)
