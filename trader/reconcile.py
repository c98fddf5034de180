"""Start-up reconciliation: exchange open orders, recent fills and balances against the ledger.

``compare`` is pure. ``reconcile`` first brings the ledger's own open orders up to date (each looked up
by client order id), then compares, records the result in ``trading.reconciliations`` (and one event per
difference), and, only when the operator accepts, adopts the exchange's balances. Trading must not
start while differences stand unaccepted (``ReconciliationError``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal

from trader import ledger
from trader.errors import ReconciliationError
from trader.execution import Executor


@dataclass(frozen=True)
class Difference:
    kind: str  # balance | unknown_open_order | missing_open_order | unknown_trade
    key: str
    exchange: str
    ledger: str

    def line(self) -> str:
        return f"{self.kind} {self.key}: exchange={self.exchange} ledger={self.ledger}"


def compare(exchange_balances: dict[str, Decimal], ledger_balances: dict[str, Decimal], assets: set[str],
            exchange_open: dict[str, str], ledger_open: set[str], exchange_trades: dict[str, str],
            ledger_exchange_ids: set[str], tolerance: Decimal = Decimal("0.00000001")) -> list[Difference]:
    """Differences between what the exchange holds and what the ledger believes (pure).

    ``exchange_open``: client order id -> symbol; ``exchange_trades``: trade id -> exchange order id.
    """
    out = []
    for asset in sorted(assets):
        ex, led = exchange_balances.get(asset, Decimal(0)), ledger_balances.get(asset, Decimal(0))
        if abs(ex - led) > tolerance:
            out.append(Difference("balance", asset, str(ex), str(led)))
    for cid in sorted(set(exchange_open) - ledger_open):
        out.append(Difference("unknown_open_order", cid, f"open on {exchange_open[cid]}", "not open"))
    for cid in sorted(ledger_open - set(exchange_open)):
        out.append(Difference("missing_open_order", cid, "not open", "open"))
    for trade_id, order_id in sorted(exchange_trades.items()):
        if order_id not in ledger_exchange_ids:
            out.append(Difference("unknown_trade", trade_id, f"order {order_id}", "no such order"))
    return out


def reconcile(transaction: Callable, executor: Executor, symbols: list[str], assets: set[str], accept: bool) -> list[Difference]:
    """Compare exchange and ledger; record it; adopt the exchange's balances when ``accept``. Returns the differences."""
    broker, mode = executor.broker, executor.broker.mode
    executor.settle()
    ex_balances = broker.balances()
    ex_open = {o["clientOrderId"]: o["symbol"] for o in broker.open_orders()}
    ex_trades = {str(t["id"]): str(t["orderId"]) for s in symbols for t in broker.recent_trades(s)}
    with transaction() as cur:
        led_open = {i.client_order_id for i, status, _ in ledger.open_orders(cur, mode) if status != "PENDING_SUBMIT"}
        cur.execute("SELECT exchange_order_id FROM trading.orders WHERE mode = %s AND exchange_order_id IS NOT NULL", (mode,))
        led_ids = {r[0] for r in cur.fetchall()}
        diffs = compare(ex_balances, ledger.balances(cur, mode), assets | set(ex_balances), ex_open, led_open, ex_trades, led_ids)
        cur.execute("INSERT INTO trading.reconciliations (mode, differences, accepted, accepted_at)"
                    " VALUES (%s, %s, %s, CASE WHEN %s THEN now() END)",
                    (mode, json.dumps([asdict(d) for d in diffs]), accept or not diffs, accept and bool(diffs)))
        for d in diffs:
            ledger.record_event(cur, mode, "reconcile", d.line() + (" (accepted by operator)" if accept else ""))
        if accept:
            for asset in assets | set(ex_balances):
                ledger.set_balance(cur, mode, asset, ex_balances.get(asset, Decimal(0)))
    return diffs


def require_reconciled(diffs: list[Difference], accepted: bool) -> None:
    if diffs and not accepted:
        raise ReconciliationError(f"{len(diffs)} difference(s) between the exchange and the ledger; "
                                  "inspect them and accept with `python -m trader reconcile --accept`:\n  "
                                  + "\n  ".join(d.line() for d in diffs))
