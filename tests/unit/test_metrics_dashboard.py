"""The Grafana dashboard and the metrics documentation name only metrics the code exposes, and the
documentation lists every one of them (streaming, ETL and trader)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from klinepipe_trading.etl_metrics import ETL_METRICS, EtlSnapshot, metric_families as etl_families
from streaming.metrics import Stats, StatsCollector
from trader.metrics import TRADER_METRICS, LedgerSnapshot, LoopStats, metric_families as trader_families
from trader.user_stream import UserStream

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\b((?:streaming|trader|klinepipe)_[a-z0-9_]+)")


class _Families:
    def __init__(self, families) -> None:
        self._families = families

    def collect(self):
        return self._families


def _exposed() -> dict[str, set[str]]:
    """Family name -> sample names, from every collector fed with data in every label."""
    stats = Stats(published={"binance": 1}, rotations={"age": 1})
    stats.dependency("kafka")
    ledger = LedgerSnapshot("paper", decisions=[("BTCUSDT:1m:sma_cross", "BUY", 1)], orders={"FILLED": 1}, fills={"BUY": 1},
                            risk_blocks={"max_exposure": 1}, equity=1.0, first_equity=1.0, peak_equity=1.0,
                            sleeves=[("BTCUSDT:1m:sma_cross", 0.1, False, 5.0)])
    stream = UserStream(lambda: None, lambda: None, "testnet", lambda: None)  # its metrics need a running one
    stream.last_event_at = 1.0
    etl = EtlSnapshot(series=[{"symbol": "BTCUSDT", "interval": "1m", "candles": 1, "closed": 1, "features": 1,
                               "newest_candle_age_s": 1, "ingest_lag_s": 1, "features_lag_s": 0}],
                      dead_letters={"t": 1}, offsets=[("c", "t", 0, 1)], quality_latest=[("gaps", "BTCUSDT", "1m", True)],
                      quality_failures_24h={"gaps": 1})
    families = [*StatsCollector(stats, lambda: 0).collect(), *trader_families(ledger, "paper", LoopStats(user_stream=stream)), *etl_families(etl)]
    out: dict[str, set[str]] = {}
    for fam in families:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families([fam]))
        text = generate_latest(registry).decode()
        out[fam.name] = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    return out


def _dashboard_names() -> set[str]:
    dash = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert exprs
    return {n for e in exprs for n in NAME.findall(e)}


def test_every_metric_in_the_dashboard_is_exposed_by_the_code():
    samples = set().union(*_exposed().values())

    missing = _dashboard_names() - samples

    assert missing == set()


def test_the_dashboard_covers_streaming_etl_and_trader():
    prefixes = {n.split("_")[0] for n in _dashboard_names()}
    assert prefixes == {"streaming", "klinepipe", "trader"}


def _documented(text: str) -> set[str]:
    """Metric names in the first cell of markdown/docstring table rows (``name`` or `name`, labels dropped)."""
    return set(re.findall(r"^\| ``?((?:streaming|trader|klinepipe)_[a-z0-9_]+)", text, re.M))


def test_the_metrics_documentation_lists_every_metric_and_nothing_else():
    doc = _documented((ROOT / "docs" / "metrics.md").read_text())
    # streaming's own list lives in streaming/metrics.py (its owner keeps it); docs/metrics.md copies it
    streaming_doc = _documented((ROOT / "streaming" / "metrics.py").read_text())
    exposed = _exposed()
    samples = {s for names in exposed.values() for s in names}
    documented_families = {n.removesuffix("_total") for n in doc | streaming_doc}

    assert set(exposed) - documented_families == set()
    assert (doc | streaming_doc) - samples - set(exposed) == set()


def test_metric_tables_and_code_lists_agree():
    assert set(TRADER_METRICS) <= set(_exposed())
    assert set(ETL_METRICS) <= set(_exposed())
