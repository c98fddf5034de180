"""Market data of the fake Binance: symbols with their filters, klines, and the price feed (no I/O).

Klines are kept per (symbol, interval) as Binance REST rows (12 elements, times in ms, decimals as
strings) and served with the REST paging rules of the reference (section 3.3). The latest price of a
symbol is the close of its newest kline unless set explicitly.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from decimal import Decimal

from tests.fake_binance.errors import BAD_INTERVAL, BAD_SYMBOL, FakeBinanceError

INTERVALS = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M")
KLINES_DEFAULT_LIMIT, KLINES_MAX_LIMIT = 500, 1000


def default_filters(tick: str = "0.01000000", step: str = "0.00001000", min_notional: str = "5.00000000") -> list[dict]:
    """Filters shaped like live BTCUSDT's (reference 3.2)."""
    return [
        {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00000000", "tickSize": tick},
        {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000.00000000", "stepSize": step},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "100.00000000", "stepSize": "0.00000000"},
        {"filterType": "NOTIONAL", "minNotional": min_notional, "applyMinToMarket": True,
         "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
        {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10, "maxTrailingAboveDelta": 2000,
         "minTrailingBelowDelta": 10, "maxTrailingBelowDelta": 2000},
        {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        {"filterType": "MAX_NUM_ORDER_LISTS", "maxNumOrderLists": 20},
    ]


ORDER_TYPES = ("LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
STP_MODES = ("NONE", "EXPIRE_MAKER", "EXPIRE_TAKER", "EXPIRE_BOTH", "DECREMENT", "TRANSFER")
STATUSES = ("TRADING", "END_OF_DAY", "HALT", "BREAK", "CANCEL_ONLY")
# exchangeInfo name -> SymbolInfo attribute, for ``SymbolInfo.update`` (tests switch these per symbol)
WIRE_FLAGS = {"status": "status", "orderTypes": "order_types", "ocoAllowed": "oco_allowed", "otoAllowed": "oto_allowed",
              "allowTrailingStop": "allow_trailing_stop", "quoteOrderQtyMarketAllowed": "quote_order_qty_market_allowed",
              "icebergAllowed": "iceberg_allowed", "defaultSelfTradePreventionMode": "default_stp",
              "allowedSelfTradePreventionModes": "allowed_stp", "filters": "filters"}


@dataclass
class SymbolInfo:
    symbol: str
    base: str
    quote: str
    filters: list[dict] = field(default_factory=default_filters)
    status: str = "TRADING"
    order_types: tuple[str, ...] = ORDER_TYPES
    oco_allowed: bool = True
    oto_allowed: bool = True
    allow_trailing_stop: bool = True
    quote_order_qty_market_allowed: bool = True
    iceberg_allowed: bool = True
    default_stp: str = "EXPIRE_MAKER"
    allowed_stp: tuple[str, ...] = STP_MODES

    def filter(self, name: str) -> dict | None:
        return next((f for f in self.filters if f["filterType"] == name), None)

    def update(self, **wire) -> None:
        """Switch exchangeInfo fields by their wire names: ``update(status="HALT", ocoAllowed=False)``."""
        for name, value in wire.items():
            if name not in WIRE_FLAGS:
                raise ValueError(f"unknown symbol field {name!r}; one of {sorted(WIRE_FLAGS)}")
            if name == "status" and value not in STATUSES:
                raise ValueError(f"status must be one of {STATUSES}, not {value!r}")
            setattr(self, WIRE_FLAGS[name], tuple(value) if isinstance(value, list) else value)

    def to_wire(self) -> dict:
        return {
            "symbol": self.symbol, "status": self.status, "baseAsset": self.base, "baseAssetPrecision": 8,
            "quoteAsset": self.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
            "orderTypes": list(self.order_types), "icebergAllowed": self.iceberg_allowed, "ocoAllowed": self.oco_allowed,
            "otoAllowed": self.oto_allowed, "opoAllowed": False, "quoteOrderQtyMarketAllowed": self.quote_order_qty_market_allowed,
            "allowTrailingStop": self.allow_trailing_stop, "cancelReplaceAllowed": False, "amendAllowed": False,
            "pegInstructionsAllowed": False, "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
            "filters": self.filters, "permissions": [], "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": self.default_stp, "allowedSelfTradePreventionModes": list(self.allowed_stp),
        }


def kline_row(csv_row: list[str]) -> list:
    """A 12-column Binance kline CSV row -> a REST kline row (empty CSV cells served as zero)."""
    def dec(v: str) -> str:
        return v if v not in ("", None) else "0"
    t = int(csv_row[0])
    if t > 10**14:  # 2025+ data.binance.vision files are in microseconds
        t, close_t = t // 1000, int(csv_row[6]) // 1000
    else:
        close_t = int(csv_row[6])
    return [t, dec(csv_row[1]), dec(csv_row[2]), dec(csv_row[3]), dec(csv_row[4]), dec(csv_row[5]), close_t,
            dec(csv_row[7]), int(csv_row[8] or 0), dec(csv_row[9]), dec(csv_row[10]), "0"]


class Market:
    def __init__(self) -> None:
        self.symbols: dict[str, SymbolInfo] = {}
        self._klines: dict[tuple[str, str], list[list]] = {}
        self._prices: dict[str, Decimal] = {}

    def add_symbol(self, info: SymbolInfo) -> None:
        self.symbols[info.symbol] = info

    def symbol(self, symbol: str | None) -> SymbolInfo:
        if symbol not in self.symbols:
            raise FakeBinanceError(400, BAD_SYMBOL, "Invalid symbol.")
        return self.symbols[symbol]

    def seed_klines(self, symbol: str, interval: str, rows: list[list]) -> None:
        """Add kline rows (CSV strings or REST rows); a row with a known open time replaces it."""
        merged = {r[0]: r for r in self._klines.get((symbol, interval), [])}
        merged.update((row[0], row) for row in (kline_row([str(v) for v in raw]) for raw in rows))
        series = self._klines[(symbol, interval)] = [merged[t] for t in sorted(merged)]
        if series:
            self._prices[symbol] = Decimal(series[-1][4])

    def set_price(self, symbol: str, price: Decimal) -> None:
        """Move the price of ``symbol`` (seeding klines moves it to the newest close)."""
        self._prices[symbol] = Decimal(price)

    def price(self, symbol: str) -> Decimal:
        self.symbol(symbol)
        if symbol not in self._prices:
            raise FakeBinanceError(400, -2010, "Market is closed.")
        return self._prices[symbol]

    def klines(self, symbol: str | None, interval: str | None, start: int | None, end: int | None, limit: int | None) -> list[list]:
        """Reference 3.3: bars by open time; start -> oldest from start; end only -> newest up to end."""
        self.symbol(symbol)
        if interval not in INTERVALS:
            raise FakeBinanceError(400, BAD_INTERVAL, "Invalid interval.")
        limit = KLINES_DEFAULT_LIMIT if limit is None else max(1, min(limit, KLINES_MAX_LIMIT))
        series = self._klines.get((symbol, interval), [])
        times = [r[0] for r in series]
        lo = bisect.bisect_left(times, start) if start is not None else 0
        hi = bisect.bisect_right(times, end) if end is not None else len(series)
        if start is None:
            return [list(r) for r in series[max(lo, hi - limit):hi]]
        return [list(r) for r in series[lo:min(hi, lo + limit)]]
