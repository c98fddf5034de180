"""Paper broker: a MARKET order fills at once at the latest price, with fee and slippage (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from trader.orders import OrderIntent

_BPS = Decimal(10_000)


@dataclass(frozen=True)
class Fill:
    trade_id: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str


@dataclass(frozen=True)
class PaperBroker:
    fee_bps: Decimal = Decimal("10")
    slippage_bps: Decimal = Decimal("0")
    mode: str = "paper"

    def fill(self, intent: OrderIntent, last_price: Decimal, quote_asset: str) -> Fill:
        """Fill ``intent`` at ``last_price`` moved against us by the slippage; fee in the quote asset."""
        sign = 1 if intent.side == "BUY" else -1
        price = last_price * (1 + sign * self.slippage_bps / _BPS)
        fee = intent.quantity * price * self.fee_bps / _BPS
        return Fill(f"{intent.client_order_id}-1", intent.quantity, price, fee, quote_asset)
