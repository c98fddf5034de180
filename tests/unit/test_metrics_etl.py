"""The ETL's Prometheus text from a database snapshot (pure: no database, no Airflow)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from klinepipe_trading.etl_metrics import ETL_METRICS, EtlSnapshot, render


def _samples(snap) -> dict[tuple[str, tuple], float]:
    text = render(snap).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


SERIES = {"symbol": "BTCUSDT", "interval": "1m", "candles": 1440, "closed": 1439, "features": 1400,
          "newest_candle_age_s": 75.5, "ingest_lag_s": 3.0, "features_lag_s": 2340.0}


def test_per_series_freshness_and_counts():
    s = _samples(EtlSnapshot(series=[SERIES]))

    key = (("interval", "1m"), ("symbol", "BTCUSDT"))
    assert s[("klinepipe_candles", key)] == 1440
    assert s[("klinepipe_closed_candles", key)] == 1439
    assert s[("klinepipe_features", key)] == 1400
    assert s[("klinepipe_newest_candle_age_seconds", key)] == 75.5
    assert s[("klinepipe_ingest_lag_seconds", key)] == 3
    assert s[("klinepipe_features_lag_seconds", key)] == 2340
    assert s[("klinepipe_etl_metrics_up", ())] == 1


def test_a_series_without_closed_candles_or_features_omits_those_samples():
    s = _samples(EtlSnapshot(series=[{**SERIES, "newest_candle_age_s": None, "features_lag_s": None}]))

    assert not [k for k in s if k[0] in ("klinepipe_newest_candle_age_seconds", "klinepipe_features_lag_seconds")]


def test_dead_letters_offsets_and_quality():
    snap = EtlSnapshot(dead_letters={"binance.klines": 3}, offsets=[("ingest", "binance.klines", 2, 1234)],
                       quality_latest=[("gaps", "BTCUSDT", "1m", False), ("ohlc", "BTCUSDT", "1m", True)],
                       quality_failures_24h={"gaps": 5})

    s = _samples(snap)

    assert s[("klinepipe_dead_letters", (("topic", "binance.klines"),))] == 3
    assert s[("klinepipe_kafka_next_offset", (("consumer", "ingest"), ("partition", "2"), ("topic", "binance.klines")))] == 1234
    assert s[("klinepipe_quality_check_failed", (("check", "gaps"), ("interval", "1m"), ("symbol", "BTCUSDT")))] == 1
    assert s[("klinepipe_quality_check_failed", (("check", "ohlc"), ("interval", "1m"), ("symbol", "BTCUSDT")))] == 0
    assert s[("klinepipe_quality_failures_24h", (("check", "gaps"),))] == 5


def test_a_database_outage_is_reported_as_down_only():
    s = _samples(None)

    assert s == {("klinepipe_etl_metrics_up", ()): 0}


def test_every_family_has_help_text_from_the_documented_list():
    text = render(EtlSnapshot(series=[SERIES])).decode()

    helps = {line.split()[2] for line in text.splitlines() if line.startswith("# HELP")}
    assert helps == set(ETL_METRICS)
