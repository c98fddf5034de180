"""Which symbols to stream, checked against ``GET /api/v3/exchangeInfo`` (pure, no I/O).

``check_symbols`` fails with one clear error naming every unknown symbol; ``select_universe`` picks every
TRADING symbol quoted in a given asset (e.g. all USDT pairs), optionally the first N alphabetically.
"""

from __future__ import annotations

from streaming.errors import UnknownSymbolsError


def check_symbols(exchange_info: dict, symbols: tuple[str, ...]) -> list[str]:
    """Raise for unknown symbols; return the known ones that are not TRADING (they stream nothing)."""
    status = {s["symbol"]: s.get("status") for s in exchange_info.get("symbols", [])}
    unknown = [s for s in symbols if s not in status]
    if unknown:
        raise UnknownSymbolsError(f"unknown symbol(s) {', '.join(unknown)}: not in Binance exchangeInfo "
                                  f"({len(status)} symbols listed)")
    return [s for s in symbols if status[s] != "TRADING"]


def select_universe(exchange_info: dict, quote_asset: str, limit: int = 0) -> tuple[str, ...]:
    """Every TRADING symbol quoted in ``quote_asset``, sorted; the first ``limit`` when ``limit`` > 0."""
    chosen = sorted(s["symbol"] for s in exchange_info.get("symbols", [])
                    if s.get("status") == "TRADING" and s.get("quoteAsset") == quote_asset.upper())
    if not chosen:
        raise UnknownSymbolsError(f"no TRADING symbol is quoted in {quote_asset!r}")
    return tuple(chosen[:limit] if limit else chosen)


def stream_names(symbols: tuple[str, ...], intervals: tuple[str, ...]) -> list[str]:
    """``<symbol lowercase>@kline_<interval>`` for every symbol x interval."""
    return [f"{s.lower()}@kline_{i}" for s in symbols for i in intervals]


def split_streams(streams: list[str], per_connection: int) -> list[list[str]]:
    """Chunks of at most ``per_connection`` streams (Binance allows 1024 per connection)."""
    return [streams[i:i + per_connection] for i in range(0, len(streams), per_connection)]
