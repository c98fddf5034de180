"""Prometheus metrics of the trader, served at ``http://<host>:$TRADER_METRICS_PORT/metrics`` (default 9102, 0 = off).

Ledger-derived metrics are read from ``trading.*`` at scrape time (on the scraper's own connection), so they
are right after a restart and agree with ``python -m trader status``; the loop's own timings are kept in
memory (``LoopStats``, updated once per step).

| metric | type | meaning |
|---|---|---|
| ``trader_decisions_total{sleeve,action}`` | counter | decisions recorded in ``trading.signals`` (BUY, SELL, HOLD) |
| ``trader_orders{mode,status}`` | gauge | orders by status (PENDING_SUBMIT, NEW, PARTIALLY_FILLED, FILLED, CANCELED, REJECTED, EXPIRED) |
| ``trader_open_orders{mode}`` | gauge | orders not final yet |
| ``trader_fills_total{mode,side}`` | counter | fills recorded |
| ``trader_risk_blocks_total{mode,rule}`` | counter | orders blocked by a risk rule or exchange filter |
| ``trader_equity{mode}`` | gauge | newest mark-to-market equity (quote asset) |
| ``trader_pnl{mode}`` | gauge | equity now minus the first mark |
| ``trader_drawdown_ratio{mode}`` | gauge | 1 - equity / peak equity |
| ``trader_kill_switch_state{mode,state}`` | gauge | 1 for the current state (ACTIVE, REDUCING, HALTED), else 0 |
| ``trader_position_quantity{sleeve}`` | gauge | base quantity held per sleeve |
| ``trader_sleeve_halted{sleeve}`` | gauge | 1 when the sleeve is halted by a strategy error |
| ``trader_last_decision_age_seconds{sleeve}`` | gauge | seconds since the sleeve last recorded a decision |
| ``trader_loop_steps_total`` | counter | loop steps run by this process |
| ``trader_loop_step_seconds`` | histogram | duration of one loop step (all sleeves) |
| ``trader_loop_last_step_timestamp_seconds`` | gauge | Unix time the last step ended (a stuck loop stops moving it) |
| ``trader_metrics_up`` | gauge | 1 when the database answered this scrape |
| ``trader_dependency_up{dependency}`` | gauge | 1 while the loop reaches ``postgres`` / ``binance``, 0 during an outage |
| ``trader_outages_total{dependency}`` | counter | outages this process rode out (or is riding out) |
| ``trader_user_stream_connected{mode}`` | gauge | 1 while the user data stream is subscribed (testnet/demo/live, when on) |
| ``trader_user_stream_last_event_age_seconds{mode}`` | gauge | seconds since the stream's newest event (absent before the first) |
| ``trader_user_stream_subscriptions_total{mode}`` | counter | subscriptions made by this process (1 + resubscriptions) |
| ``trader_user_stream_fills_total{mode}`` | counter | fills new to the ledger that came from the stream (the rest came over REST) |
| ``trader_user_stream_protection_fills_total{mode}`` | counter | of those, fills of protection legs (a stop or take-profit that fired) |
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from trader.orders import OPEN_STATUSES
from trader.risk.killswitch import KillState, KillSwitch

log = logging.getLogger(__name__)

KILL_STATES = tuple(s.value for s in KillState)
STEP_BOUNDS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

TRADER_METRICS: dict[str, tuple[str, str]] = {
    "trader_decisions": ("counter", "Decisions recorded in trading.signals"),
    "trader_orders": ("gauge", "Orders by status"),
    "trader_open_orders": ("gauge", "Orders not final yet"),
    "trader_fills": ("counter", "Fills recorded"),
    "trader_risk_blocks": ("counter", "Orders blocked by a risk rule or exchange filter"),
    "trader_equity": ("gauge", "Newest mark-to-market equity in the quote asset"),
    "trader_pnl": ("gauge", "Equity now minus the first mark"),
    "trader_drawdown_ratio": ("gauge", "1 - equity / peak equity"),
    "trader_kill_switch_state": ("gauge", "1 for the current kill-switch state, else 0"),
    "trader_position_quantity": ("gauge", "Base quantity held per sleeve"),
    "trader_sleeve_halted": ("gauge", "1 when the sleeve is halted by a strategy error"),
    "trader_last_decision_age_seconds": ("gauge", "Seconds since the sleeve last recorded a decision"),
    "trader_loop_steps": ("counter", "Loop steps run by this process"),
    "trader_loop_step_seconds": ("histogram", "Duration of one loop step"),
    "trader_loop_last_step_timestamp_seconds": ("gauge", "Unix time the last loop step ended"),
    "trader_metrics_up": ("gauge", "1 when the database answered this scrape"),
    "trader_dependency_up": ("gauge", "1 while the loop reaches the dependency, 0 during an outage"),
    "trader_outages": ("counter", "Outages of a dependency seen by this process"),
    "trader_user_stream_connected": ("gauge", "1 while the user data stream is subscribed"),
    "trader_user_stream_last_event_age_seconds": ("gauge", "Seconds since the user data stream's newest event"),
    "trader_user_stream_subscriptions": ("counter", "User data stream subscriptions made by this process"),
    "trader_user_stream_fills": ("counter", "Fills new to the ledger that came from the user data stream"),
    "trader_user_stream_protection_fills": ("counter", "Of the user data stream's fills, those of protection legs (a stop or "
                                            "take-profit that fired)"),
}
DEPENDENCIES = ("postgres", "binance")


@dataclass
class LoopStats:
    """What the loop itself knows; ``observe_step`` is the only writer (the loop's thread)."""

    steps: int = 0
    last_step_end: float = 0.0
    step_counts: list[int] = field(default_factory=lambda: [0] * (len(STEP_BOUNDS_S) + 1))
    step_sum: float = 0.0
    dependency_up: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(DEPENDENCIES, True))
    outages: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DEPENDENCIES, 0))
    user_stream: object | None = None  # the running trader.user_stream.UserStream (read only here), None when off

    def observe_step(self, seconds: float, ended_at: float | None = None) -> None:
        self.steps += 1
        self.step_counts[bisect.bisect_left(STEP_BOUNDS_S, seconds)] += 1
        self.step_sum += seconds
        self.last_step_end = time.time() if ended_at is None else ended_at


@dataclass
class LedgerSnapshot:
    mode: str
    decisions: list[tuple[str, str, int]] = field(default_factory=list)  # sleeve, action, n
    orders: dict[str, int] = field(default_factory=dict)  # status -> n
    fills: dict[str, int] = field(default_factory=dict)  # side -> n
    risk_blocks: dict[str, int] = field(default_factory=dict)  # rule -> n
    equity: float | None = None
    first_equity: float | None = None
    peak_equity: float | None = None
    kill_state: str = "ACTIVE"
    sleeves: list[tuple[str, float, bool, float | None]] = field(default_factory=list)  # sleeve, qty, halted, age s


def read_snapshot(cur, mode: str) -> LedgerSnapshot:
    """Aggregate ``trading.*`` for one mode (a psycopg2 cursor; read only)."""
    snap = LedgerSnapshot(mode)
    cur.execute("SELECT sleeve, action, count(*) FROM trading.signals WHERE mode = %s GROUP BY 1, 2 ORDER BY 1, 2", (mode,))
    snap.decisions = [(s, a, n) for s, a, n in cur.fetchall()]
    cur.execute("SELECT status, count(*) FROM trading.orders WHERE mode = %s GROUP BY 1", (mode,))
    snap.orders = dict(cur.fetchall())
    cur.execute("SELECT f.side, count(*) FROM trading.fills f JOIN trading.orders o USING (client_order_id)"
                " WHERE o.mode = %s GROUP BY 1", (mode,))
    snap.fills = dict(cur.fetchall())
    cur.execute("SELECT coalesce(rule, ''), count(*) FROM trading.events WHERE mode = %s AND kind = 'risk_block' GROUP BY 1", (mode,))
    snap.risk_blocks = dict(cur.fetchall())
    cur.execute("""SELECT (SELECT equity FROM trading.equity WHERE mode = %(m)s ORDER BY at DESC LIMIT 1),
                          (SELECT equity FROM trading.equity WHERE mode = %(m)s ORDER BY at LIMIT 1),
                          (SELECT max(equity) FROM trading.equity WHERE mode = %(m)s)""", {"m": mode})
    snap.equity, snap.first_equity, snap.peak_equity = (None if v is None else float(v) for v in cur.fetchone())
    cur.execute("SELECT value FROM trading.trader_state WHERE key = %s", (KillSwitch.key(mode),))
    row = cur.fetchone()
    snap.kill_state = KillSwitch.from_value(row[0] if row else None).state.value
    cur.execute("""SELECT s.sleeve, coalesce(p.quantity, 0), s.halted_reason IS NOT NULL,
                          extract(epoch FROM now() - (SELECT max(created_at) FROM trading.signals x
                                                       WHERE x.mode = s.mode AND x.sleeve = s.sleeve))
                   FROM trading.sleeves s LEFT JOIN trading.positions p USING (mode, sleeve) WHERE s.mode = %s ORDER BY 1""", (mode,))
    snap.sleeves = [(s, float(q), bool(h), None if a is None else float(a)) for s, q, h, a in cur.fetchall()]
    return snap


def metric_families(snap: LedgerSnapshot | None, mode: str, loop: LoopStats):
    """Prometheus metric families for a ledger snapshot (``None``: the database did not answer) and the loop."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    def fam(name: str, labels: list[str] | None = None):
        kind, doc = TRADER_METRICS[name]
        cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
        return cls(name, doc, labels=labels or [])

    out = []
    steps = fam("trader_loop_steps")
    steps.add_metric([], loop.steps)
    last = fam("trader_loop_last_step_timestamp_seconds")
    last.add_metric([], loop.last_step_end)
    buckets, running = [], 0
    for bound, n in zip(STEP_BOUNDS_S, loop.step_counts):
        running += n
        buckets.append((f"{bound:g}", running))
    buckets.append(("+Inf", running + loop.step_counts[-1]))
    out += [steps, last, HistogramMetricFamily("trader_loop_step_seconds", TRADER_METRICS["trader_loop_step_seconds"][1],
                                               buckets=buckets, sum_value=loop.step_sum)]
    up = fam("trader_metrics_up")
    up.add_metric([], 0 if snap is None else 1)
    dep_up, outages = fam("trader_dependency_up", ["dependency"]), fam("trader_outages", ["dependency"])
    for name in sorted(loop.dependency_up):
        dep_up.add_metric([name], 1 if loop.dependency_up[name] else 0)
        outages.add_metric([name], loop.outages.get(name, 0))
    out += [up, dep_up, outages, *_stream_families(loop.user_stream, mode, fam)]
    if snap is None:
        return out
    decisions = fam("trader_decisions", ["sleeve", "action"])
    for sleeve, action, n in snap.decisions:
        decisions.add_metric([sleeve, action], n)
    orders, open_orders = fam("trader_orders", ["mode", "status"]), fam("trader_open_orders", ["mode"])
    for status, n in sorted(snap.orders.items()):
        orders.add_metric([mode, status], n)
    open_orders.add_metric([mode], sum(n for s, n in snap.orders.items() if s in OPEN_STATUSES))
    fills = fam("trader_fills", ["mode", "side"])
    for side, n in sorted(snap.fills.items()):
        fills.add_metric([mode, side], n)
    blocks = fam("trader_risk_blocks", ["mode", "rule"])
    for rule, n in sorted(snap.risk_blocks.items()):
        blocks.add_metric([mode, rule], n)
    out += [decisions, orders, open_orders, fills, blocks]
    if snap.equity is not None:
        for name, value in (("trader_equity", snap.equity), ("trader_pnl", snap.equity - snap.first_equity),
                            ("trader_drawdown_ratio", 1 - snap.equity / snap.peak_equity if snap.peak_equity else 0.0)):
            g = fam(name, ["mode"])
            g.add_metric([mode], value)
            out.append(g)
    kill = fam("trader_kill_switch_state", ["mode", "state"])
    for state in KILL_STATES:
        kill.add_metric([mode, state], 1 if snap.kill_state == state else 0)
    qty, halted, age = (fam("trader_position_quantity", ["sleeve"]), fam("trader_sleeve_halted", ["sleeve"]),
                        fam("trader_last_decision_age_seconds", ["sleeve"]))
    for sleeve, q, h, a in snap.sleeves:
        qty.add_metric([sleeve], q)
        halted.add_metric([sleeve], 1 if h else 0)
        if a is not None:
            age.add_metric([sleeve], a)
    return [*out, kill, qty, halted, age]


def _stream_families(stream, mode: str, fam, now: Callable[[], float] = time.time) -> list:
    if stream is None:
        return []
    out = []
    for name, value in (("trader_user_stream_connected", 1 if stream.connected else 0),
                        ("trader_user_stream_subscriptions", stream.subscriptions), ("trader_user_stream_fills", stream.applied),
                        ("trader_user_stream_protection_fills", stream.protection_applied),
                        ("trader_user_stream_last_event_age_seconds",
                         None if stream.last_event_at is None else max(now() - stream.last_event_at, 0.0))):
        if value is not None:
            family = fam(name, ["mode"])
            family.add_metric([mode], value)
            out.append(family)
    return out


class TraderCollector:
    def __init__(self, connect: Callable, mode: str, loop: LoopStats) -> None:
        self._connect, self._mode, self._loop = connect, mode, loop
        self._failing = False

    def collect(self):
        snap = None
        try:
            conn = self._connect()
            try:
                with conn.cursor() as cur:
                    snap = read_snapshot(cur, self._mode)
                conn.rollback()
            finally:
                conn.close()
            self._failing = False
        except Exception as exc:  # noqa: BLE001 - a scrape reports the database as down instead of failing
            if not self._failing:  # one line per outage, not per scrape
                log.warning("trader metrics: the database did not answer (%s); trader_metrics_up=0 until it does",
                            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            self._failing = True
        return metric_families(snap, self._mode, self._loop)


def serve_metrics(connect: Callable, mode: str, port: int, loop: LoopStats, addr: str = "127.0.0.1"):
    """Start ``/metrics`` on ``port`` (a daemon thread) and return the registry."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(TraderCollector(connect, mode, loop))
    start_http_server(port, addr=addr, registry=registry)
    return registry
