"""Orders and fills in ``trading.*``. Every function runs inside the caller's transaction.

Orders are written as PENDING_SUBMIT before they are sent; every answer of the venue is applied with
``apply_report``, which is idempotent (fills are unique per (client order id, trade id)), so replaying a
report after a crash never moves a position or a balance twice.

A protection leg (``-PS`` / ``-PT``, ``trader.protector``) is applied by the same function whatever told us -- the
protector's REST lookups, the user data stream, its REST catch-up, the kill switch's cancel -- and in the same
transaction as its fill: a new fill is recorded as a ``protection_triggered`` event, and once a leg of an OCO is FILLED
its siblings still open in the ledger end ``EXPIRED`` (``OCO_TRIGGER``), as the venue ends them
(binance-protective-orders.md 3.2): the set is closed with the position's exit. A later word of the venue on the
sibling (its own report or event) still overwrites that status.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from trader.orders import OPEN_STATUSES, Fill, OrderIntent, OrderReport
from trader.sleeve_records import record_event
from trader.symbols import split_symbol
from trader.timestamps import from_ms, to_ms


def insert_order(cur, intent: OrderIntent, mode: str, ref_price: Decimal) -> bool:
    """Record the intent as PENDING_SUBMIT; ``False`` when this intent was already recorded (never order twice)."""
    cur.execute(
        "INSERT INTO trading.orders (client_order_id, sleeve, mode, symbol, side, type, quantity, price, stop_price,"
        " time_in_force, ref_price, status, signal_open_time, trailing_delta, list_client_order_id)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'PENDING_SUBMIT', %s, %s, %s) ON CONFLICT (client_order_id) DO NOTHING",
        (intent.client_order_id, intent.sleeve, mode, intent.symbol, intent.side, intent.type, intent.quantity, intent.price,
         intent.stop_price, intent.time_in_force, ref_price, from_ms(intent.open_time_ms), intent.trailing_delta,
         intent.list_id or None),
    )
    return cur.rowcount == 1


LEG_RE = "-P[ST]$"  # a protection leg's client order id (trader.protection: the entry's id + -PS / -PT)


def is_protection_leg(client_order_id: str) -> bool:
    return client_order_id.endswith(("-PS", "-PT"))


_ORDER_COLS = ("o.client_order_id, o.sleeve, o.symbol, o.side, o.quantity, o.signal_open_time, o.type, o.price, o.stop_price,"
               " o.time_in_force, s.interval, o.status, o.attempts, o.trailing_delta, o.list_client_order_id")


def open_orders(cur, mode: str, sleeve: str | None = None, protection: bool | None = False) -> list[tuple[OrderIntent, str, int]]:
    """(intent, status, attempts) of every order not final yet, oldest first. ``protection``: ``False`` leaves the
    protection legs out (``trader.protector`` owns them), ``True`` gives only them, ``None`` all."""
    return orders_where(cur, mode, "o.status = ANY(%s) AND (%s::text IS NULL OR o.sleeve = %s)", (list(OPEN_STATUSES), sleeve, sleeve),
                        protection)


def orders_where(cur, mode: str, where: str, params: tuple, protection: bool | None = None) -> list[tuple[OrderIntent, str, int]]:
    """(intent, status, attempts) of the mode's orders matching ``where``, oldest first."""
    legs = {None: "", True: f" AND o.client_order_id ~ '{LEG_RE}'", False: f" AND o.client_order_id !~ '{LEG_RE}'"}[protection]
    cur.execute(f"SELECT {_ORDER_COLS} FROM trading.orders o JOIN trading.sleeves s ON s.mode = o.mode AND s.sleeve = o.sleeve"
                f" WHERE o.mode = %s AND {where}{legs} ORDER BY o.signal_open_time, o.client_order_id", (mode, *params))
    out = []
    for cid, sl, sym, side, qty, t, type_, price, stop, tif, interval, status, attempts, trail, list_id in cur.fetchall():
        # the stored id is the truth: orders recorded before ids carried the mode (sql/015) keep theirs
        intent = OrderIntent(sleeve=sl, symbol=sym, side=side, quantity=qty, open_time_ms=to_ms(t), type=type_, price=price,
                             stop_price=stop, time_in_force=tif, intent=_intent_of(cid, side), interval=interval, mode=mode,
                             stored_id=cid, trailing_delta=trail, list_id=list_id or "")
        out.append((intent, status, attempts))
    return out


def _intent_of(cid: str, side: str) -> str:
    return {"-L": "STOP_LOSS", "-F": "FLATTEN", "PS": "STOP_LOSS", "PT": "TAKE_PROFIT"}.get(cid[-2:], side)


def bump_attempts(cur, client_order_id: str) -> int:
    """Count one more submit attempt (committed BEFORE the request is sent); return the new count."""
    cur.execute("UPDATE trading.orders SET attempts = attempts + 1, submitted_at = now(), updated_at = now()"
                " WHERE client_order_id = %s RETURNING attempts", (client_order_id,))
    return cur.fetchone()[0]


def record_order_error(cur, mode: str, intent: OrderIntent, kind: str, message: str, final: bool) -> None:
    status_sql = ", status = 'REJECTED'" if final else ""
    cur.execute(f"UPDATE trading.orders SET error = %s, error_kind = %s{status_sql}, updated_at = now() WHERE client_order_id = %s",
                (message, kind, intent.client_order_id))
    record_event(cur, mode, "order_error", f"{intent.client_order_id}: {message}", intent.sleeve,
                 from_ms(intent.open_time_ms), kind)


def apply_report(cur, mode: str, intent: OrderIntent, report: OrderReport) -> list[Fill]:
    """Store the venue's state of the order and every fill not stored yet; move positions and balances by those.

    A report older than what is stored (the user data stream stored a fill while a REST lookup was answered) changes no
    status: the venue never lowers an order's executed quantity, nor reopens a final order."""
    new = [f for f in report.fills if _insert_fill(cur, intent, f)]
    for fill in new:
        _move(cur, mode, intent, fill)
    executed = sum((f.quantity for f in report.fills), Decimal(0)) or report.executed_qty
    cur.execute(
        "UPDATE trading.orders SET status = %s, exchange_order_id = coalesce(%s, exchange_order_id), executed_qty = %s,"
        " expiry_reason = coalesce(%s, expiry_reason),"
        " price = coalesce((SELECT sum(quantity * price) / nullif(sum(quantity), 0) FROM trading.fills WHERE client_order_id = %s), price),"
        " updated_at = now() WHERE client_order_id = %s"
        " AND coalesce(executed_qty, 0) <= %s AND NOT (status <> ALL(%s) AND %s = ANY(%s))",
        (report.status, report.exchange_order_id, executed, report.expiry_reason, intent.client_order_id, intent.client_order_id,
         executed or 0, list(OPEN_STATUSES), report.status, list(OPEN_STATUSES)),
    )
    if is_protection_leg(intent.client_order_id):
        _protection_applied(cur, mode, intent, report, new)
    return new


def _protection_applied(cur, mode: str, leg: OrderIntent, report: OrderReport, new: list[Fill]) -> None:
    """A protection leg's fill is the position's exit: the event, and the set closed with it (module docstring)."""
    if new:
        record_event(cur, mode, "protection_triggered", f"{leg.client_order_id}: {leg.type} SELL {report.executed_qty} {leg.symbol} "
                     f"filled at {new[0].price}: the position's exit", leg.sleeve, from_ms(leg.open_time_ms), leg.type)
    if not leg.list_id:
        return
    cur.execute("SELECT status FROM trading.orders WHERE client_order_id = %s", (leg.client_order_id,))
    if cur.fetchone()[0] != "FILLED":
        return
    cur.execute(f"UPDATE trading.orders SET status = 'EXPIRED', expiry_reason = 'OCO_TRIGGER', updated_at = now()"
                f" WHERE mode = %s AND list_client_order_id = %s AND client_order_id <> %s AND client_order_id ~ '{LEG_RE}'"
                f" AND status = ANY(%s)", (mode, leg.list_id, leg.client_order_id, list(OPEN_STATUSES)))


def _insert_fill(cur, intent: OrderIntent, fill: Fill) -> bool:
    cur.execute(
        "INSERT INTO trading.fills (client_order_id, trade_id, symbol, side, quantity, price, fee, fee_asset, filled_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (client_order_id, trade_id) DO NOTHING",
        (intent.client_order_id, fill.trade_id, intent.symbol, intent.side, fill.quantity, fill.price, fill.fee, fill.fee_asset,
         from_ms(fill.filled_at_ms or intent.open_time_ms)),
    )
    return cur.rowcount == 1


def _move(cur, mode: str, intent: OrderIntent, fill: Fill) -> None:
    base, quote = split_symbol(intent.symbol)
    sign = 1 if intent.side == "BUY" else -1
    held_delta = sign * fill.quantity - (fill.fee if fill.fee_asset == base else 0)
    cur.execute(
        "UPDATE trading.positions SET"
        " avg_price = CASE WHEN %(sign)s > 0 THEN (quantity * avg_price + %(q)s * %(p)s) / nullif(quantity + %(d)s, 0)"
        "  WHEN quantity + %(d)s = 0 THEN 0 ELSE avg_price END,"
        " quantity = quantity + %(d)s, updated_at = now() WHERE mode = %(mode)s AND sleeve = %(sleeve)s",
        {"sign": sign, "q": fill.quantity, "p": fill.price, "d": held_delta, "sleeve": intent.sleeve, "mode": mode},
    )
    for asset, delta in ((base, sign * fill.quantity), (quote, -sign * fill.quantity * fill.price), (fill.fee_asset, -fill.fee)):
        cur.execute("INSERT INTO trading.balances (mode, asset, free) VALUES (%s, %s, %s)"
                    " ON CONFLICT (mode, asset) DO UPDATE SET free = trading.balances.free + EXCLUDED.free, updated_at = now()",
                    (mode, asset, delta))


def recent_order_times(cur, mode: str, since: datetime) -> tuple[int, ...]:
    cur.execute("SELECT created_at FROM trading.orders WHERE mode = %s AND created_at > %s", (mode, since))
    return tuple(to_ms(t) for (t,) in cur.fetchall())
