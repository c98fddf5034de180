"""Start-up reconciliation: exchange account, open orders, recent fills, balances and positions against the ledger.

``compare`` is pure. ``reconcile`` first brings the ledger's own open orders up to date (each looked up
by client order id), then compares, records the result in ``trading.reconciliations`` (and one event per
difference), and, only when the operator accepts (``python -m trader accept-reconciliation``, recorded in
``trading.events``), adopts the exchange's balances, caps the sleeves' positions at what the account
holds and remembers the account. Trading must not start while differences stand unaccepted
(``ReconciliationError``).

Positions: the sleeves of this mode together may not believe they hold more of an asset than the account
has (free + locked); otherwise a SELL would sell coins the strategy never bought. Holding *more* than
the sleeves is normal (testnet accounts come funded, users hold coins of their own). The account is
identified by Binance's ``uid`` (else a hash of the API key, never the key): a different account under
the same mode is a difference too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal

from trader import account_records, order_records, sleeve_records
from trader.errors import ReconciliationError
from trader.execution import Executor
from trader.symbols import split_symbol

_QTY = Decimal("0.00000001")


@dataclass(frozen=True)
class Difference:
    kind: str  # account | balance | position | unknown_open_order | missing_open_order | unknown_trade
    key: str
    exchange: str
    ledger: str

    def line(self) -> str:
        return f"{self.kind} {self.key}: exchange={self.exchange} ledger={self.ledger}"


def compare(exchange_balances: dict[str, Decimal], ledger_balances: dict[str, Decimal], assets: set[str],
            exchange_open: dict[str, str], ledger_open: set[str], exchange_trades: dict[str, str],
            ledger_exchange_ids: set[str], tolerance: Decimal = Decimal("0.00000001"), *,
            ledger_positions: dict[str, Decimal] | None = None, account: tuple[str, str | None] | None = None) -> list[Difference]:
    """Differences between what the exchange holds and what the ledger believes (pure).

    ``exchange_open``: client order id -> symbol; ``exchange_trades``: trade id -> exchange order id;
    ``ledger_positions``: asset -> quantity the sleeves hold together; ``account``: (the exchange's, the
    recorded one or ``None`` before the first accepted start).
    """
    out = []
    if account is not None and account[1] is not None and account[0] != account[1]:
        out.append(Difference("account", "id", account[0], account[1]))
    for asset in sorted(assets):
        ex, led = exchange_balances.get(asset, Decimal(0)), ledger_balances.get(asset, Decimal(0))
        if abs(ex - led) > tolerance:
            out.append(Difference("balance", asset, str(ex), str(led)))
    for asset, held in sorted((ledger_positions or {}).items()):
        ex = exchange_balances.get(asset, Decimal(0))
        if held - ex > tolerance:
            out.append(Difference("position", asset, f"holds {ex}", f"sleeves hold {held}"))
    for cid in sorted(set(exchange_open) - ledger_open):
        out.append(Difference("unknown_open_order", cid, f"open on {exchange_open[cid]}", "not open"))
    for cid in sorted(ledger_open - set(exchange_open)):
        out.append(Difference("missing_open_order", cid, "not open", "open"))
    for trade_id, order_id in sorted(exchange_trades.items()):
        if order_id not in ledger_exchange_ids:
            out.append(Difference("unknown_trade", trade_id, f"order {order_id}", "no such order"))
    return out


def reconcile(transaction: Callable, executor: Executor, symbols: list[str], assets: set[str], accept: bool,
              protector=None) -> list[Difference]:
    """Compare exchange and ledger; record it; adopt the exchange's balances when ``accept``. Returns the differences.

    With the ``protector``: first the protection sets of open positions are brought up to date (a set the venue holds
    under the ids derived from the entry is adopted, not placed again; a missing one is placed), then every protection
    order of ours still open at the venue that the ledger does not hold open (its position is closed) is an orphan:
    cancelled, and recorded as an event, not a difference."""
    broker, mode = executor.broker, executor.broker.mode
    executor.settle()
    if protector is not None:
        protector.settle()
    ex_open = {o["clientOrderId"]: o["symbol"] for o in broker.open_orders()}
    if protector is not None:
        with transaction() as cur:
            held_open = {i.client_order_id for i, _, _ in order_records.open_orders(cur, mode, protection=True)}
        for cid in orphan_protection(ex_open, held_open, mode):
            _cancel_orphan(transaction, broker, mode, cid, ex_open.pop(cid))
    ex_balances = broker.balances()
    ex_trades = {str(t["id"]): str(t["orderId"]) for s in symbols for t in broker.recent_trades(s)}
    account = broker.account_id()
    with transaction() as cur:
        led_open = {i.client_order_id for i, status, _ in order_records.open_orders(cur, mode, protection=None)
                    if status not in ("PENDING_SUBMIT", "PENDING_NEW")}  # the venue lists no pending OTO leg as open
        cur.execute("SELECT exchange_order_id FROM trading.orders WHERE mode = %s AND exchange_order_id IS NOT NULL", (mode,))
        led_ids = {r[0] for r in cur.fetchall()}
        foreign_cids, foreign_ids = account_records.accepted_foreign(cur, mode)  # orders by hand the operator accepted before
        ex_open = {cid: sym for cid, sym in ex_open.items() if cid not in foreign_cids}
        led_ids |= foreign_ids
        held = _held_by_asset(sleeve_records.positions_by_symbol(cur, mode))
        diffs = compare(ex_balances, account_records.balances(cur, mode), assets | set(ex_balances), ex_open, led_open, ex_trades, led_ids,
                        ledger_positions=held, account=(account, account_records.account(cur, mode)))
        cur.execute("INSERT INTO trading.reconciliations (mode, differences, accepted, accepted_at)"
                    " VALUES (%s, %s, %s, CASE WHEN %s THEN now() END)",
                    (mode, json.dumps([asdict(d) for d in diffs]), accept or not diffs, accept and bool(diffs)))
        for d in diffs:
            sleeve_records.record_event(cur, mode, "reconcile", d.line() + (" (accepted by operator)" if accept else ""))
        if accept:
            for asset in assets | set(ex_balances):
                account_records.set_balance(cur, mode, asset, ex_balances.get(asset, Decimal(0)))
            for d in diffs:
                if d.kind == "position":
                    _cap_positions(cur, mode, d.key, ex_balances.get(d.key, Decimal(0)), held[d.key])
            account_records.accept_foreign(cur, mode, {d.key for d in diffs if d.kind == "unknown_open_order"},
                                  {d.exchange.removeprefix("order ") for d in diffs if d.kind == "unknown_trade"})
            if diffs:
                sleeve_records.record_event(cur, mode, "operator", f"reconciliation accepted: {len(diffs)} difference(s); "
                                    "the ledger adopted the exchange's balances and positions")
        if accept or not diffs:
            account_records.set_account(cur, mode, account)
    return diffs


def orphan_protection(exchange_open: dict[str, str], ledger_open_legs: set[str], mode: str) -> list[str]:
    """Client order ids of the trader's own protection legs (this mode's) open at the venue but not in the ledger (pure)."""
    from trader.orders import _MODE_CODES
    from trader.protection import entry_of

    ours = f"kp-{_MODE_CODES[mode]}-"
    return sorted(cid for cid in exchange_open if cid.startswith(ours) and entry_of(cid) and cid not in ledger_open_legs)


def _cancel_orphan(transaction: Callable, broker, mode: str, cid: str, symbol: str) -> None:
    from trader.orders import OrderIntent

    leg = OrderIntent(sleeve="", symbol=symbol, side="SELL", quantity=Decimal(0), open_time_ms=0, mode=mode, stored_id=cid)
    report = broker.cancel(leg)
    with transaction() as cur:
        sleeve_records.record_event(cur, mode, "reconcile", f"orphan protection {cid} on {symbol} (its position is closed): "
                                    f"cancelled, now {report.status if report else 'unknown'}")


def _held_by_asset(by_symbol: dict[str, Decimal]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for symbol, qty in by_symbol.items():
        base = split_symbol(symbol)[0]
        out[base] = out.get(base, Decimal(0)) + qty
    return out


def _cap_positions(cur, mode: str, asset: str, holds: Decimal, believed: Decimal) -> None:
    """Scale the sleeves' positions in ``asset`` down so that together they hold what the account holds."""
    ratio = max(holds, Decimal(0)) / believed
    cur.execute("SELECT sleeve, symbol, quantity FROM trading.positions WHERE mode = %s AND quantity > 0 ORDER BY sleeve", (mode,))
    for sleeve, symbol, qty in cur.fetchall():
        if split_symbol(symbol)[0] != asset:
            continue
        new = (qty * ratio).quantize(_QTY, rounding="ROUND_DOWN")
        cur.execute("UPDATE trading.positions SET quantity = %s, avg_price = CASE WHEN %s = 0 THEN 0 ELSE avg_price END,"
                    " updated_at = now() WHERE mode = %s AND sleeve = %s", (new, new, mode, sleeve))
        sleeve_records.record_event(cur, mode, "reconcile", f"position of {sleeve} set from {qty} to {new} {asset}: the account holds "
                            f"{holds} (accepted by operator)", sleeve)


def require_reconciled(diffs: list[Difference], accepted: bool) -> None:
    if diffs and not accepted:
        raise ReconciliationError(f"{len(diffs)} difference(s) between the exchange and the ledger (listed above, and in "
                                  "trading.reconciliations); not trading until they are accepted: inspect them, then run "
                                  "`python -m trader accept-reconciliation`")
