"""One settings layer per process: only the settings modules (and the make-run tooling) read the environment, one
name per concept, and the old names of the Binance REST base still work, each with one warning line."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

# The settings of each process, and the make-run handoff that fills a command's unset settings from the running
# stack's connection file before the command builds its settings (``connection_file``). The make-run tooling
# itself (``devstack/``) is a composition root of its own and is not scanned.
READERS = {"streaming/config.py", "trader/config.py", "plugins/klinepipe/settings.py", "plugins/klinepipe/connection_file.py"}
_READS = re.compile(r"\bos\.(environ|getenv)\b")


def test_only_the_settings_modules_read_the_environment():
    production = [p for folder in ("streaming", "trader", "plugins", "dags") for p in (ROOT / folder).rglob("*.py")]

    readers = {str(p.relative_to(ROOT)) for p in production if _READS.search(p.read_text())}

    assert readers <= READERS, sorted(readers - READERS)


def test_the_binance_rest_base_has_one_name_on_the_market_data_side(monkeypatch):
    from klinepipe.settings import load_settings
    from streaming.config import load_settings as streaming_settings

    monkeypatch.delenv("STREAMING_REST_URL", raising=False)
    monkeypatch.setenv("BINANCE_REST_URL", "http://127.0.0.1:8080/")

    assert streaming_settings()[0].rest_url == load_settings().binance_rest_url == "http://127.0.0.1:8080"


def test_the_old_streaming_name_still_works_with_one_warning(monkeypatch, caplog):
    from streaming.config import load_settings

    monkeypatch.delenv("BINANCE_REST_URL", raising=False)
    monkeypatch.setenv("STREAMING_REST_URL", "http://127.0.0.1:9/")
    with caplog.at_level(logging.WARNING, logger="streaming.config"):
        settings, _ = load_settings()

    assert settings.rest_url == "http://127.0.0.1:9"
    assert [r.getMessage() for r in caplog.records] == ["STREAMING_REST_URL is deprecated: name it BINANCE_REST_URL"]


@pytest.mark.parametrize("env,expected", [
    ({"TRADER_BINANCE_REST_URL": "http://127.0.0.1:8080"}, "http://127.0.0.1:8080"),
    ({"TRADER_BINANCE_API_URL": "http://127.0.0.1:8080/api"}, "http://127.0.0.1:8080"),  # the old name and form
    ({}, None),  # python-binance's URL for the mode
])
def test_the_trader_rest_base_has_the_same_form_under_its_old_and_new_name(monkeypatch, caplog, env, expected):
    from trader.config import load_settings

    for name in ("TRADER_BINANCE_REST_URL", "TRADER_BINANCE_API_URL", "BINANCE_REST_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BINANCE_REST_URL", "https://api.binance.com")  # the market-data base never redirects orders
    monkeypatch.setenv("DATABASE_URL", "postgresql://127.0.0.1:1/x")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with caplog.at_level(logging.WARNING, logger="trader.config"):
        settings = load_settings(require_keys=False)

    assert settings.binance_rest_url == expected
    assert len(caplog.records) == ("TRADER_BINANCE_API_URL" in env)


def test_the_topic_defaults_and_the_features_channel_are_written_once():
    texts = [p.read_text() for folder in ("streaming", "trader", "plugins", "dags") for p in (ROOT / folder).rglob("*.py")]

    assert sum(t.count('"binance.klines"') for t in texts) == 1 and sum(t.count('"binance.klines.dlq"') for t in texts) == 1
    assert not any("LISTEN klinepipe_features" in t or "NOTIFY klinepipe_features'" in t for t in texts)


def test_a_bad_value_on_the_airflow_side_is_one_line_naming_every_bad_variable(monkeypatch):
    from klinepipe.errors import KlinepipeConfigError
    from klinepipe.settings import load_settings

    monkeypatch.setenv("KAFKA_TOPIC", "bad topic")
    monkeypatch.setenv("KLINEPIPE_TRIGGER_POLL_S", "often")
    with pytest.raises(KlinepipeConfigError) as err:
        load_settings()
    fell_back: list[tuple[str, object]] = []
    settings = load_settings(fallback=lambda line, default: fell_back.append((line.split(":")[0], default)))

    assert "KAFKA_TOPIC" in str(err.value) and "KLINEPIPE_TRIGGER_POLL_S" in str(err.value) and "\n" not in str(err.value)
    assert sorted(fell_back) == [("KAFKA_TOPIC", "binance.klines"), ("KLINEPIPE_TRIGGER_POLL_S", 2.0)]
    assert (settings.kafka_topic, settings.trigger_poll_s) == ("binance.klines", 2.0)
    assert Path(settings.reports_dir) == Path(".data") / "reports"
