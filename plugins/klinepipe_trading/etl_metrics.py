"""The ETL's Prometheus metrics, derived from the database at scrape time and served by the Airflow
plugin at ``/klinepipe/metrics``.

Why from the database: the ETL runs as short-lived Airflow tasks, so there is no long-lived process to
hold counters, and PostgreSQL already is the record of what was loaded (``market.candles``,
``etl.kafka_offsets``, ``etl.dead_letters``, ``etl.quality_checks``). The per-series figures come from
``market.series_summary`` and index lookups (O(series), whatever the history); the dead-letter and quality
counts are aggregates over those tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from klinepipe_trading.queries import series_summary

# name -> (type, help). The documented list; tests check the dashboard against it.
ETL_METRICS: dict[str, tuple[str, str]] = {
    "klinepipe_candles": ("gauge", "Candles stored per series (market.candles)"),
    "klinepipe_closed_candles": ("gauge", "Closed candles stored per series"),
    "klinepipe_features": ("gauge", "Feature rows per series (market.features)"),
    "klinepipe_newest_candle_age_seconds": ("gauge", "Now minus the close time of the newest closed candle, per series"),
    "klinepipe_ingest_lag_seconds": ("gauge", "Now minus the newest ingested_at, per series (time since the loader last wrote it)"),
    "klinepipe_features_lag_seconds": ("gauge", "Open time of the newest closed candle minus that of the newest feature row, per series"),
    "klinepipe_dead_letters": ("gauge", "Rows in etl.dead_letters, per topic"),
    "klinepipe_kafka_next_offset": ("gauge", "The loader's stored next offset per consumer, topic and partition"),
    "klinepipe_quality_check_failed": ("gauge", "1 when the newest run of a data-quality check failed, per check and series"),
    "klinepipe_quality_failures_24h": ("gauge", "Failed data-quality check results in the last 24 hours, per check"),
    "klinepipe_etl_metrics_up": ("gauge", "1 when the database answered this scrape"),
}


@dataclass
class EtlSnapshot:
    series: list[dict] = field(default_factory=list)   # symbol, interval, candles, closed, features, ages, lags
    dead_letters: dict[str, int] = field(default_factory=dict)
    offsets: list[tuple[str, str, int, int]] = field(default_factory=list)  # consumer, topic, partition, next_offset
    quality_latest: list[tuple[str, str, str, bool]] = field(default_factory=list)  # check, symbol, interval, passed
    quality_failures_24h: dict[str, int] = field(default_factory=dict)


def read_snapshot(conn) -> EtlSnapshot:
    q = lambda sql: conn.execute(sa.text(sql)).all()  # noqa: E731
    series = [{
        "symbol": r["symbol"], "interval": r["interval"], "candles": r["candles"], "closed": r["closed"],
        "features": r["features"],
        "newest_closed_open": r["newest_closed_open_time"],
        "newest_candle_age_s": _seconds(r["db_now"], r["newest_closed_close_time"]),
        "ingest_lag_s": _seconds(r["db_now"], r["newest_ingested_at"]),
        "features_lag_s": _seconds(r["newest_closed_open_time"], r["newest_feature_open_time"]),
    } for r in series_summary(conn)]  # O(series): sql/020_series_summary.sql
    return EtlSnapshot(
        series=series,
        dead_letters={t: n for t, n in q("SELECT topic, count(*) FROM etl.dead_letters GROUP BY topic")},
        offsets=[tuple(r) for r in q("SELECT consumer, topic, partition, next_offset FROM etl.kafka_offsets ORDER BY 1, 2, 3")],
        quality_latest=[tuple(r) for r in q("""
            SELECT DISTINCT ON (check_name, symbol, interval) check_name, coalesce(symbol, ''), coalesce(interval, ''), passed
            FROM etl.quality_checks ORDER BY check_name, symbol, interval, run_at DESC, id DESC""")],
        quality_failures_24h={c: n for c, n in q("""
            SELECT check_name, count(*) FROM etl.quality_checks WHERE NOT passed AND run_at > now() - interval '24 hours'
            GROUP BY check_name""")},
    )


def _seconds(later, earlier) -> float | None:
    return None if later is None or earlier is None else (later - earlier).total_seconds()


def metric_families(snap: EtlSnapshot | None):
    """Prometheus metric families for a snapshot (``None``: the database did not answer)."""
    from prometheus_client.core import GaugeMetricFamily

    def gauge(name: str, labels: list[str]) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, ETL_METRICS[name][1], labels=labels)

    up = gauge("klinepipe_etl_metrics_up", [])
    up.add_metric([], 0 if snap is None else 1)
    if snap is None:
        return [up]
    per_series = {k: gauge(k, ["symbol", "interval"]) for k in (
        "klinepipe_candles", "klinepipe_closed_candles", "klinepipe_features", "klinepipe_newest_candle_age_seconds",
        "klinepipe_ingest_lag_seconds", "klinepipe_features_lag_seconds")}
    columns = {"klinepipe_candles": "candles", "klinepipe_closed_candles": "closed", "klinepipe_features": "features",
               "klinepipe_newest_candle_age_seconds": "newest_candle_age_s", "klinepipe_ingest_lag_seconds": "ingest_lag_s",
               "klinepipe_features_lag_seconds": "features_lag_s"}
    for s in snap.series:
        for name, col in columns.items():
            if s.get(col) is not None:
                per_series[name].add_metric([s["symbol"], s["interval"]], float(s[col]))
    dead = gauge("klinepipe_dead_letters", ["topic"])
    for topic, n in sorted(snap.dead_letters.items()):
        dead.add_metric([topic], n)
    offsets = gauge("klinepipe_kafka_next_offset", ["consumer", "topic", "partition"])
    for consumer, topic, partition, nxt in snap.offsets:
        offsets.add_metric([consumer, topic, str(partition)], nxt)
    failed = gauge("klinepipe_quality_check_failed", ["check", "symbol", "interval"])
    for check, symbol, interval, passed in snap.quality_latest:
        failed.add_metric([check, symbol, interval], 0 if passed else 1)
    fails24 = gauge("klinepipe_quality_failures_24h", ["check"])
    for check, n in sorted(snap.quality_failures_24h.items()):
        fails24.add_metric([check], n)
    return [*per_series.values(), dead, offsets, failed, fails24, up]


def render(snap: EtlSnapshot | None) -> bytes:
    """The Prometheus text exposition of a snapshot."""
    from prometheus_client import CollectorRegistry, generate_latest

    class _Once:
        def collect(self):
            return metric_families(snap)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Once())
    return generate_latest(registry)
