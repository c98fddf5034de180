"""Paper broker (pure): orders fill at the NEXT price, i.e. the open of the candle after the decision candle.

This is the fill model shared with backtests: a signal on candle ``i``'s close fills at candle ``i+1``'s
open, moved against us by ``slippage_bps``, paying ``fee_bps`` of the notional in the quote asset. Until
that candle exists the order stays NEW (recorded in the ledger like a live one). LIMIT orders fill at the
first later candle that trades through the limit (at the open when it gaps through, else at the limit);
IOC looks at the next candle only and otherwise expires. Protection sets (``place_protection``) are held here and
triggered by the exchange's stop rule in bar terms (``_protection_price``). Candles come from an injected ``candles_after``
that only returns candles the order's sleeve has reached (no fills from the future while catching up).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from trader.filters import Lot, SymbolRules
from trader.market import Candle, CandlesAfter
from trader.orders import FINAL_STATUSES, Fill, OrderIntent, OrderReport
from trader.protection import SymbolFlags
from trader.symbols import split_symbol

_BPS = Decimal(10_000)


class PaperBroker:
    legs_need_entry = True  # an OTOCO's legs are found from its entry's fill (the protector always passes the entry)

    def __init__(self, candles_after: CandlesAfter, fee_bps: Decimal = Decimal("10"), slippage_bps: Decimal = Decimal("0"),
                 qty_step: Decimal = Decimal("0.00001"), tick: Decimal = Decimal("0.01"), min_notional: Decimal = Decimal("5"),
                 mode: str = "paper") -> None:
        self._candles_after = candles_after
        self._fee_bps, self.slippage_bps = Decimal(fee_bps), Decimal(slippage_bps)
        self._rules = dict(tick=tick, lot=Lot(qty_step, Decimal(0), qty_step), min_notional=min_notional)
        self.mode = mode

    def rules(self, symbol: str) -> SymbolRules:
        return SymbolRules(symbol, **self._rules)

    def fee_bps(self) -> Decimal:
        return self._fee_bps

    def submit(self, order: OrderIntent) -> OrderReport:
        return self.lookup(order)

    def cancel(self, order: OrderIntent) -> OrderReport:
        """An order that has not filled by the candles reached is cancelled (a filled one stays filled)."""
        report = self.lookup(order)
        return report if report.status in FINAL_STATUSES else OrderReport(client_order_id=order.client_order_id, status="CANCELED")

    def symbol_status(self, symbol: str) -> str:
        return "TRADING"

    def lookup(self, order: OrderIntent) -> OrderReport:
        limit = 1 if order.type == "MARKET" or order.time_in_force == "IOC" else 1000
        candles = self._candles_after(order.symbol, order.interval, order.open_time_ms, limit, order.sleeve)
        for candle in candles:
            price = self._fill_price(order, candle)
            if price is not None:
                return OrderReport(client_order_id=order.client_order_id, status="FILLED", exchange_order_id=None,
                                   executed_qty=order.quantity, fills=(self._fill(order, price, candle),))
        if candles and order.time_in_force == "IOC":
            return OrderReport(client_order_id=order.client_order_id, status="EXPIRED", expiry_reason="UNFILLED_IOC_QUANTITY_EXPIRED")
        return OrderReport(client_order_id=order.client_order_id, status="NEW")

    def _fill_price(self, order: OrderIntent, c: Candle) -> Decimal | None:
        buy = order.side == "BUY"
        if order.type == "MARKET":
            return c.open * (1 + (1 if buy else -1) * self.slippage_bps / _BPS)
        if order.type == "LIMIT":
            if buy and c.low <= order.price:
                return min(c.open, order.price)
            if not buy and c.high >= order.price:
                return max(c.open, order.price)
            return None
        if order.type == "TAKE_PROFIT":  # a SELL take-profit triggers when the high reaches it; the gap open or the level
            if (not buy and c.high >= order.stop_price) or (buy and c.low <= order.stop_price):
                return max(c.open, order.stop_price) if not buy else min(c.open, order.stop_price)
            return None
        if order.type == "STOP_LOSS":  # a SELL stop triggers when the low reaches it; fills at the stop or the gap open
            if (not buy and c.low <= order.stop_price) or (buy and c.high >= order.stop_price):
                return min(c.open, order.stop_price) if not buy else max(c.open, order.stop_price)
        return None

    # --- protection: held here, triggered by the bar rule (see the module's docstring) -------------
    def protection_flags(self, symbol: str) -> SymbolFlags:
        return SymbolFlags(symbol, ("LIMIT", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT"), True, True, None, True)

    def place_protection(self, legs: list[OrderIntent]) -> list[OrderReport]:
        return self.lookup_protection(legs)

    def lookup_protection(self, legs: list[OrderIntent]) -> list[OrderReport]:
        """From the entry's fill candle on, the first candle where a leg triggers fills it (the stop before the
        take-profit when one candle reaches both); its sibling then expires (``OCO_TRIGGER``).

        With its LIMIT entry first (an OTOCO / OTO): the legs wait (``PENDING_NEW``) until the entry fills, expire with an
        entry that expires (``OTO_PHASE_ONE_EXPIRED``), and work from the fill on: on the fill candle itself, when the
        entry filled inside it at its limit (on the way down from the open to the low), the candle's path counts from the
        fill: the rest of the way down to the low, then the high, then the close (the fill price in place of its open)."""
        if legs[0].side != "BUY":
            return self._legs_after(legs, self._candles_after(legs[0].symbol, legs[0].interval, legs[0].open_time_ms, 1000,
                                                              legs[0].sleeve))
        entry, legs = legs[0], legs[1:]
        report = self.lookup(entry)
        if report.status != "FILLED":
            status, reason = ("EXPIRED", "OTO_PHASE_ONE_EXPIRED") if report.status in FINAL_STATUSES else ("PENDING_NEW", None)
            return [report, *(OrderReport(client_order_id=leg.client_order_id, status=status, expiry_reason=reason) for leg in legs)]
        fill = report.fills[0]
        candles = [c for c in self._candles_after(entry.symbol, entry.interval, entry.open_time_ms, 1000, entry.sleeve)
                   if c.open_time_ms >= fill.filled_at_ms]
        if candles and fill.price < candles[0].open:
            candles[0] = replace(candles[0], open=fill.price)
        return [report, *self._legs_after(legs, candles)]

    def _legs_after(self, legs: list[OrderIntent], candles: list[Candle]) -> list[OrderReport]:
        peak: Decimal | None = None
        for candle in candles:
            for leg in legs:
                price = _protection_price(leg, candle, peak)
                if price is not None:
                    return [OrderReport(client_order_id=leg.client_order_id, status="FILLED", executed_qty=leg.quantity,
                                        fills=(self._fill(leg, price, candle),)) if other is leg else
                            OrderReport(client_order_id=other.client_order_id, status="EXPIRED", expiry_reason="OCO_TRIGGER")
                            for other in legs]
            peak = max(peak or candle.open, candle.high)
        return [OrderReport(client_order_id=leg.client_order_id, status="NEW") for leg in legs]

    def cancel_protection(self, legs: list[OrderIntent]) -> list[OrderReport]:
        reports = self.lookup_protection(legs)
        if any(r.status == "FILLED" for leg, r in zip(legs, reports) if leg.side == "SELL"):
            return reports
        return [r if leg.side == "BUY" and r.status in FINAL_STATUSES else OrderReport(client_order_id=leg.client_order_id,
                                                                                     status="CANCELED")
                for leg, r in zip(legs, reports)]

    def _fill(self, order: OrderIntent, price: Decimal, candle: Candle) -> Fill:
        fee = order.quantity * price * self._fee_bps / _BPS
        return Fill(trade_id=f"{order.client_order_id}-1", quantity=order.quantity, price=price, fee=fee,
                    fee_asset=split_symbol(order.symbol)[1], filled_at_ms=candle.open_time_ms)


def _protection_price(leg: OrderIntent, c: Candle, peak: Decimal | None) -> Decimal | None:
    """The fill price of a SELL protection leg on candle ``c`` (``None``: not triggered), by the exchange's rule in bar
    terms: a stop triggers when the low reaches it and fills at the stop, or at the open when the candle opens beyond
    it (a gap); a take-profit when the high reaches it (the level, or a gap open above it); a trailing stop (the trail
    ``delta`` below the highest price since the entry) by the candle's path open -> low -> high -> close: at the open
    when the open is at or below the trail (a gap), else at the trail when the low reaches it (the trail as of the open:
    the open ratchets it at once), else, the high having ratcheted it, at the new trail when the close is at or below
    it; otherwise the high carries into the next candle's trail; a STOP_LOSS_LIMIT fills like a stop, but never below its
    limit (a gap below the limit: at the limit when the candle's high comes back to it, else not on this candle)."""
    if leg.trailing_delta:
        keep = 1 - Decimal(leg.trailing_delta) / _BPS
        top = max(peak or c.open, c.open)
        if c.low <= top * keep:
            return min(c.open, top * keep)
        after_high = max(top, c.high) * keep
        return after_high if c.close is not None and c.close <= after_high else None
    if leg.type == "TAKE_PROFIT":
        return max(c.open, leg.stop_price) if c.high >= leg.stop_price else None
    if c.low > leg.stop_price:
        return None
    price = min(c.open, leg.stop_price)
    if leg.type == "STOP_LOSS_LIMIT" and price < leg.price:
        return leg.price if c.high >= leg.price else None
    return price
