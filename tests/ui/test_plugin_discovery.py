"""Airflow finds exactly one plugin in ``plugins/`` (the Trading page) and scans neither the ``klinepipe``
library nor the plugin's own package, whose modules it would otherwise import under bare names."""

from __future__ import annotations

import sys

from tests.conftest import ROOT


def test_the_plugins_folder_holds_the_trading_plugin_and_nothing_else(airflow_env):
    from airflow._shared.plugins_manager import _load_plugins_from_plugin_directory  # after airflow_env set the environment

    before = set(sys.modules)

    plugins, errors = _load_plugins_from_plugin_directory(plugins_folder=str(ROOT / "plugins"), ignore_file_syntax="glob")

    assert errors == {}
    assert [p.name for p in plugins] == ["klinepipe_trading"]
    assert not {"app", "queries", "auth", "ingest", "features", "db"} & (set(sys.modules) - before)
    (plugin,) = plugins
    assert [a["url_prefix"] for a in plugin.fastapi_apps] == ["/klinepipe"]
    assert [(v["name"], v["href"], v["url_route"]) for v in plugin.external_views] == [("Trading", "/klinepipe/trading", "trading")]
