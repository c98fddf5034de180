"""Airflow plugin: a "Trading" entry in the UI's navigation showing ``/klinepipe/trading`` (candles with
entries and exits, positions, open orders, P&L and equity, kill switch, data freshness), behind Airflow's
own login, and the ETL's Prometheus metrics at ``/klinepipe/metrics``. The code is in ``klinepipe_trading/``.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from klinepipe_trading.asgi import LazyApp


class KlinepipeTradingPlugin(AirflowPlugin):
    name = "klinepipe_trading"
    fastapi_apps = [{"name": "klinepipe", "app": LazyApp(), "url_prefix": "/klinepipe"}]
    external_views = [
        {"name": "Trading", "href": "/klinepipe/trading", "destination": "nav", "url_route": "trading",
         "category": None, "nav_top_level": True},
    ]
