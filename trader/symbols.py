"""Base and quote assets of a spot symbol (pure)."""

_QUOTES = ("FDUSD", "USDT", "USDC", "TUSD", "BUSD", "EUR", "TRY", "BTC", "ETH", "BNB")


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BTCUSDT`` -> ``("BTC", "USDT")``."""
    for quote in _QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise ValueError(f"cannot tell the quote asset of {symbol!r}")
