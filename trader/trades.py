"""What one trader step did, as the console prints it: the orders it decided and the fills it stored (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True, kw_only=True)
class Decision:
    sleeve: str
    open_time: datetime
    action: str
    reason: str
    quantity: Decimal | None = None
    price: Decimal | None = None

    order_type: str = "MARKET"

    def line(self) -> str:
        """The decision, as ordered: a market order's price is not known yet (it fills at the next open), so the
        line names the signal close as what it is; a LIMIT order shows its limit."""
        if self.quantity is None:
            trade = ""
        elif self.order_type == "LIMIT":
            trade = f" {self.quantity} ordered (LIMIT {self.price})"
        else:
            trade = f" {self.quantity} ordered ({self.order_type}, signal close {self.price})"
        return f"{self.open_time:%Y-%m-%d %H:%M} {self.sleeve} {self.action}{trade} {self.reason}".rstrip()


@dataclass(frozen=True, kw_only=True)
class Filled:
    """A fill the venue reported and the ledger stored: the price the sleeve actually traded at."""

    sleeve: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    filled_at: datetime
    signal_open_time: datetime

    def line(self) -> str:
        return (f"{self.filled_at:%Y-%m-%d %H:%M} {self.sleeve} {self.side} {self.quantity} filled @ {self.price}"
                f" (fee {_plain(self.fee)} {self.fee_asset}; signal {self.signal_open_time:%Y-%m-%d %H:%M})")


def _plain(x: Decimal, places: int = 8) -> str:
    """A decimal for a console line: at most ``places`` decimals, no trailing zeros, never exponent notation."""
    text = f"{x.quantize(Decimal(1).scaleb(-places)):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
