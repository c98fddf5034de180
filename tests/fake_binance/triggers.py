"""When a stop order triggers (binance-protective-orders.md 1.1 and 2), as pure functions over an order dict.

The trigger price is the last trade. ``STOP_LOSS*`` BUY and ``TAKE_PROFIT*`` SELL trigger when a trade is at or
above ``stopPrice``; ``STOP_LOSS*`` SELL and ``TAKE_PROFIT*`` BUY at or below it (a gap through the stop counts).

Trailing (``trailingDelta`` in BIPS): a SELL-side order tracks the highest trade and triggers at or below
``peak * (1 - delta/10000)``; a BUY-side order tracks the lowest and triggers at or above ``trough * (1 + delta/10000)``.
With a ``stopPrice`` tracking starts at the first trade meeting the stop condition (that trade seeds the peak);
without one it starts at placement, seeded with the last price (reference 2, "seed with it", inferred).
The order dict carries ``trailingTime`` (-1 until tracking starts) and ``peak``.
"""

from __future__ import annotations

from decimal import Decimal

STOP_TYPES = ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
BIPS = Decimal(10_000)


def is_stop(order: dict) -> bool:
    return order["type"] in STOP_TYPES


def triggers_from_above(type_: str, side: str) -> bool:
    """STOP_LOSS BUY and TAKE_PROFIT SELL wait for the price to rise to the stop (the "above" trailing filter)."""
    return (side == "BUY") == type_.startswith("STOP_LOSS")


def stop_condition(order: dict, price: Decimal) -> bool:
    """The 1.1 rule for a stop price: the trade is at or through it."""
    if triggers_from_above(order["type"], order["side"]):
        return price >= order["stop"]
    return price <= order["stop"]


def start_tracking(order: dict, last: Decimal, now: int) -> None:
    """At placement: a trailing order without a stop price tracks from the last price on."""
    order["trailingTime"], order["peak"] = -1, None
    if order.get("trailingDelta") is not None and order["stop"] is None:
        order["trailingTime"], order["peak"] = now, last


def on_trade(order: dict, price: Decimal, now: int) -> bool:
    """Feed one trade to an untriggered stop; True when this trade triggers it."""
    delta = order.get("trailingDelta")
    if delta is None:
        return stop_condition(order, price)
    if order["trailingTime"] == -1:
        if stop_condition(order, price):
            order["trailingTime"], order["peak"] = now, price
        return False
    factor = Decimal(delta) / BIPS
    if order["side"] == "SELL":
        order["peak"] = max(order["peak"], price)
        return price <= order["peak"] * (1 - factor)
    order["peak"] = min(order["peak"], price)
    return price >= order["peak"] * (1 + factor)
