"""What the protector reads of ``trading.*`` (every function runs inside the caller's transaction)."""

from __future__ import annotations

from decimal import Decimal

from trader import order_records
from trader.orders import OrderIntent
from trader.timestamps import to_ms


def newest_entry(cur, mode: str, sleeve: str) -> tuple[str, Decimal, int] | None:
    """(client order id, average fill price, signal open ms) of the sleeve's newest FILLED entry (a strategy BUY)."""
    cur.execute("SELECT client_order_id, price, signal_open_time FROM trading.orders WHERE mode = %s AND sleeve = %s"
                " AND side = 'BUY' AND status = 'FILLED' AND client_order_id ~ '-B$'"
                " ORDER BY signal_open_time DESC, client_order_id DESC LIMIT 1", (mode, sleeve))
    row = cur.fetchone()
    return None if row is None else (row[0], row[1], to_ms(row[2]))


def has_protection(cur, entry_cid: str) -> bool:
    """Whether a protection set was ever recorded for this entry (one per position, never a second)."""
    cur.execute("SELECT 1 FROM trading.orders WHERE client_order_id IN (%s, %s)", (entry_cid + "-PS", entry_cid + "-PT"))
    return cur.fetchone() is not None


def protection_legs(cur, mode: str, sleeve: str | None = None, *, open_only: bool = True) -> dict[str, list[tuple[OrderIntent, str, int]]]:
    """The protection legs (open ones, or all), grouped by the entry they protect (stop leg first)."""
    if open_only:
        rows = order_records.open_orders(cur, mode, sleeve, protection=True)
    else:
        rows = order_records.orders_where(cur, mode, "(%s::text IS NULL OR o.sleeve = %s)", (sleeve, sleeve), protection=True)
    out: dict[str, list] = {}
    for row in sorted(rows, key=lambda r: not r[0].client_order_id.endswith("-PS")):
        out.setdefault(row[0].client_order_id[:-3], []).append(row)
    return out


def pending_exit(cur, mode: str, sleeve: str) -> OrderIntent | None:
    """The sleeve's exit waiting to go out (a strategy SELL or a flatten, PENDING_SUBMIT)."""
    pending = [i for i, status, _ in order_records.open_orders(cur, mode, sleeve) if i.side == "SELL" and status == "PENDING_SUBMIT"]
    return pending[0] if pending else None


def atr_at(cur, symbol: str, interval: str, open_time_ms: int) -> Decimal | None:
    """``atr_14`` of the entry's decision bar (``market.features``)."""
    from trader.timestamps import from_ms

    cur.execute("SELECT atr_14 FROM market.features WHERE symbol = %s AND interval = %s AND open_time <= %s"
                " AND atr_14 IS NOT NULL ORDER BY open_time DESC LIMIT 1", (symbol, interval, from_ms(open_time_ms)))
    row = cur.fetchone()
    return None if row is None else Decimal(str(row[0]))


def sets_of(cur, mode: str, entry_cid: str) -> dict[int, list[tuple[str, str]]]:
    """Every protection set recorded for this entry, by generation (``trader.protection.generation_of``): its legs'
    (client order id, status)."""
    from trader.protection import entry_of, generation_of

    cur.execute(f"SELECT client_order_id, status FROM trading.orders WHERE mode = %s AND left(client_order_id, %s) = %s"
                f" AND client_order_id ~ '{order_records.LEG_RE}' ORDER BY client_order_id", (mode, len(entry_cid), entry_cid))
    out: dict[int, list[tuple[str, str]]] = {}
    for cid, status in cur.fetchall():
        if entry_of(cid) == entry_cid:
            out.setdefault(generation_of(cid), []).append((cid, status))
    return out


def open_exit(cur, mode: str, sleeve: str) -> OrderIntent | None:
    """The sleeve's exit not final yet (a strategy SELL or a flatten, sent or not): it takes the position off itself."""
    pending = [i for i, _, _ in order_records.open_orders(cur, mode, sleeve) if i.side == "SELL"]
    return pending[0] if pending else None


def list_entry(cur, mode: str, entry_cid: str) -> tuple[OrderIntent, str, int] | None:
    """(intent, status, attempts) of the entry that went out with its protection as one list (OTOCO / OTO), if it did."""
    rows = order_records.orders_where(cur, mode, "o.client_order_id = %s AND o.list_client_order_id IS NOT NULL", (entry_cid,),
                                      protection=False)
    return rows[0] if rows else None
