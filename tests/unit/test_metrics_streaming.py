"""The sidecar's metrics in Prometheus' text format."""

import json

from prometheus_client import CollectorRegistry, generate_latest

from streaming.metrics import Stats, StatsCollector


def test_metrics_are_exposed_in_prometheus_format():
    stats = Stats(frames=10, acked=7, reconnects=2)
    stats.count(stats.published, "binance", 9)
    stats.observe_latency_ms(4.0)
    registry = CollectorRegistry()
    registry.register(StatsCollector(stats, lambda: 3))

    text = generate_latest(registry).decode()

    for line in ("streaming_frames_received_total 10.0", 'streaming_messages_published_total{source="binance"} 9.0',
                 "streaming_reconnects_total 2.0", "streaming_producer_queue_depth 3.0",
                 'streaming_receive_to_ack_seconds_bucket{le="0.005"} 1.0', "streaming_backfilled_candles_total 0.0"):
        assert line in text
    assert json.dumps(stats.rotations) == "{}"
