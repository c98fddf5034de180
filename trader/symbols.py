"""Base and quote assets of a spot symbol, and what its trading status allows (pure).

Binance's exchangeInfo ``status`` (binance-protective-orders.md 1.2, binance-spot-api.md): ``TRADING`` takes new
orders; ``CANCEL_ONLY`` (2026) only cancels and amends; ``HALT``, ``BREAK`` and ``END_OF_DAY`` take no new orders
either. The trader places nothing new on a symbol that is not TRADING and records why (``status_block``).
"""

_QUOTES = ("FDUSD", "USDT", "USDC", "TUSD", "BUSD", "EUR", "TRY", "BTC", "ETH", "BNB")


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BTCUSDT`` -> ``("BTC", "USDT")``."""
    for quote in _QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise ValueError(f"cannot tell the quote asset of {symbol!r}")


NEW_ORDERS_STATUS = "TRADING"


def symbol_status(info: dict) -> str:
    """The ``status`` of one ``symbols[]`` entry of exchangeInfo (absent: TRADING, as old answers had it)."""
    return info.get("status") or NEW_ORDERS_STATUS


def status_block(symbol: str, status: str) -> str | None:
    """Why no new order may go to ``symbol`` in ``status``, or ``None`` when it is TRADING."""
    if status == NEW_ORDERS_STATUS:
        return None
    allows = "only cancels" if status == "CANCEL_ONLY" else "no orders"
    return f"symbol {symbol} status {status} at the exchange ({allows}): no new orders"
