"""What the loop needs from a broker (paper or Binance): one protocol, the same order path for both."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from trader.filters import SymbolRules
from trader.orders import OrderIntent, OrderReport
from trader.protection import SymbolFlags


class Broker(Protocol):
    mode: str  # paper | testnet | demo | live

    def rules(self, symbol: str) -> SymbolRules:
        """The symbol's exchange filters."""

    def submit(self, order: OrderIntent) -> OrderReport:
        """Place ``order`` with its deterministic client order id. Raises ``RetryableError`` when the
        outcome is unknown (the caller then looks the order up before any retry) or ``FatalError``."""

    def lookup(self, order: OrderIntent) -> OrderReport | None:
        """The venue's state of ``order`` by client order id, with its fills; ``None``: the venue never saw it."""

    def cancel(self, order: OrderIntent) -> OrderReport | None:
        """Cancel ``order`` at the venue (an order already final stays as it is) and return its state then, with its
        fills; ``None``: the venue never saw it."""

    def symbol_status(self, symbol: str) -> str:
        """The symbol's trading status now (exchangeInfo ``status``: TRADING, CANCEL_ONLY, HALT, BREAK, ...)."""

    def fee_bps(self) -> Decimal:
        """Fee per side used to refuse orders the balance cannot pay for."""

    def protection_flags(self, symbol: str) -> SymbolFlags:
        """What the symbol allows for protection (exchangeInfo ``orderTypes``, ``ocoAllowed``, ...)."""

    def place_protection(self, legs: list[OrderIntent]) -> list[OrderReport]:
        """Place one protection set (a lone stop, or an OCO of stop + take-profit) in one request, one report per leg."""

    def lookup_protection(self, legs: list[OrderIntent]) -> list[OrderReport | None]:
        """Each leg's state by client order id (``None``: the venue never saw it)."""

    def cancel_protection(self, legs: list[OrderIntent]) -> list[OrderReport | None]:
        """Cancel the set (a filled leg stays filled), then each leg's state."""
