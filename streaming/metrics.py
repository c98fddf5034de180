"""Prometheus metrics of the sidecar, served at ``/metrics``.

The hot path only increments plain integers on ``Stats`` (a ``prometheus_client`` counter costs a lock
per call, too much at 50,000 frames/s); ``StatsCollector`` turns them into metric families when scraped.

| metric | type | meaning |
|---|---|---|
| ``streaming_frames_received_total`` | counter | websocket (or replay) frames received |
| ``streaming_messages_published_total{source}`` | counter | kline events handed to the producer |
| ``streaming_messages_acked_total`` | counter | deliveries acknowledged by the broker |
| ``streaming_dead_lettered_total`` | counter | invalid frames sent to the dead-letter topic |
| ``streaming_duplicates_skipped_total`` | counter | closing frames already published (overlap, backfill) |
| ``streaming_reconnects_total`` | counter | connections lost and re-opened |
| ``streaming_rotations_total{reason}`` | counter | planned replacements: ``age`` (24 h cut), ``serverShutdown`` |
| ``streaming_backfilled_candles_total`` | counter | closed candles fetched over REST after a gap |
| ``streaming_backfill_errors_total`` | counter | failed REST backfill attempts (retried) |
| ``streaming_control_errors_total`` | counter | error replies from Binance to control messages |
| ``streaming_connections`` | gauge | open websocket connections |
| ``streaming_producer_queue_depth`` | gauge | messages waiting in the producer (unacknowledged) |
| ``streaming_backpressure`` | gauge | 1 while reading is paused because the producer is full |
| ``streaming_backpressure_pauses_total`` | counter | times reading was paused for the producer |
| ``streaming_producer_recycles_total`` | counter | stalled producers replaced (messages re-sent, none dropped) |
| ``streaming_redelivered_total`` | counter | deliveries that failed retriably and were sent again |
| ``streaming_recycled_messages_total`` | counter | messages taken back from a replaced producer and re-sent (one already written can repeat once) |
| ``streaming_gaps_unfilled_total`` | counter | gaps seen with ``STREAMING_BACKFILL=false`` (left to the backfill DAG) |
| ``streaming_receive_to_ack_seconds`` | histogram | frame received -> delivery acknowledged |
| ``streaming_dependency_up{dependency}`` | gauge | 1 while ``kafka``/``binance_ws``/``binance_rest`` answers, 0 in an outage |
| ``streaming_outages_total{dependency}`` | counter | outages of that dependency (each logged once, with its recovery) |
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from klinepipe.outage import Outage

LATENCY_BOUNDS_MS = (1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 150, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)


@dataclass
class Stats:
    frames: int = 0
    published: dict[str, int] = field(default_factory=dict)
    acked: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    reconnects: int = 0
    rotations: dict[str, int] = field(default_factory=dict)
    backfilled: int = 0
    backfill_errors: int = 0
    control_errors: int = 0
    connections: int = 0
    backpressure: int = 0
    backpressure_pauses: int = 0
    producer_recycles: int = 0
    redelivered: int = 0
    recycled_messages: int = 0
    gaps_unfilled: int = 0
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))
    latency_sum_ms: float = 0.0
    dependencies: dict[str, Outage] = field(default_factory=dict)  # kafka, binance_ws, binance_rest: seen once used

    def observe_latency_ms(self, ms: float) -> None:
        self.latency_counts[bisect.bisect_left(LATENCY_BOUNDS_MS, ms)] += 1
        self.latency_sum_ms += ms

    def dependency(self, name: str) -> Outage:
        """The outage tracker of one dependency (logs once per outage; feeds ``streaming_dependency_up``)."""
        tracker = self.dependencies.get(name)
        if tracker is None:
            tracker = self.dependencies[name] = Outage(name, logging.getLogger("streaming.outage"))
        return tracker

    def count(self, table: dict[str, int], label: str, n: int = 1) -> None:
        table[label] = table.get(label, 0) + n


class StatsCollector(Collector):
    def __init__(self, stats: Stats, queue_depth: Callable[[], int]) -> None:
        self._stats, self._queue_depth = stats, queue_depth

    def collect(self):
        s = self._stats
        yield _counter("frames_received", "Websocket or replay frames received", s.frames)
        pub = CounterMetricFamily("streaming_messages_published", "Kline events handed to the producer", labels=["source"])
        for source, n in sorted(s.published.items()):
            pub.add_metric([source], n)
        yield pub
        yield _counter("messages_acked", "Deliveries acknowledged by the broker", s.acked)
        yield _counter("dead_lettered", "Invalid frames sent to the dead-letter topic", s.dead_lettered)
        yield _counter("duplicates_skipped", "Closing frames already published", s.duplicates)
        yield _counter("reconnects", "Connections lost and re-opened", s.reconnects)
        rot = CounterMetricFamily("streaming_rotations", "Planned connection replacements", labels=["reason"])
        for reason, n in sorted(s.rotations.items()):
            rot.add_metric([reason], n)
        yield rot
        yield _counter("backfilled_candles", "Closed candles fetched over REST after a gap", s.backfilled)
        yield _counter("backfill_errors", "Failed REST backfill attempts", s.backfill_errors)
        yield _counter("control_errors", "Error replies to control messages", s.control_errors)
        yield GaugeMetricFamily("streaming_connections", "Open websocket connections", value=s.connections)
        yield GaugeMetricFamily("streaming_producer_queue_depth", "Messages not yet acknowledged", value=self._queue_depth())
        yield GaugeMetricFamily("streaming_backpressure", "1 while reading is paused by a full producer", value=s.backpressure)
        yield _counter("backpressure_pauses", "Times reading was paused for the producer", s.backpressure_pauses)
        yield _counter("producer_recycles", "Stalled producers replaced", s.producer_recycles)
        yield _counter("redelivered", "Deliveries that failed retriably and were sent again", s.redelivered)
        yield _counter("recycled_messages", "Messages re-sent on a new producer after a replacement", s.recycled_messages)
        yield _counter("gaps_unfilled", "Gaps seen with backfill off", s.gaps_unfilled)
        yield _histogram(s)
        up = GaugeMetricFamily("streaming_dependency_up", "1 while the dependency answers, 0 during an outage",
                               labels=["dependency"])
        outages = CounterMetricFamily("streaming_outages", "Outages of the dependency", labels=["dependency"])
        for name, tracker in sorted(s.dependencies.items()):
            up.add_metric([name], 1 if tracker.up else 0)
            outages.add_metric([name], tracker.outages)
        yield up
        yield outages


def _counter(name: str, doc: str, value: int) -> CounterMetricFamily:
    return CounterMetricFamily(f"streaming_{name}", doc, value=value)


def _histogram(s: Stats) -> HistogramMetricFamily:
    buckets, running = [], 0
    for bound, n in zip(LATENCY_BOUNDS_MS, s.latency_counts):
        running += n
        buckets.append((f"{bound / 1000:g}", running))
    buckets.append(("+Inf", running + s.latency_counts[-1]))
    return HistogramMetricFamily("streaming_receive_to_ack_seconds", "Frame received -> delivery acknowledged",
                                 buckets=buckets, sum_value=s.latency_sum_ms / 1000)


def serve_metrics(stats: Stats, queue_depth: Callable[[], int], port: int, addr: str = "127.0.0.1") -> CollectorRegistry:
    """Start the ``/metrics`` HTTP endpoint (a daemon thread) and return its registry."""
    registry = CollectorRegistry()
    registry.register(StatsCollector(stats, queue_depth))
    start_http_server(port, addr=addr, registry=registry)
    return registry
