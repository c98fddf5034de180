"""Binance spot broker over python-binance's ``Client`` (testnet, demo or live; the client is injected).

* Server-time offset: ``sync_time()`` sets ``client.timestamp_offset`` from ``GET /api/v3/time``; a -1021
  answer resyncs and retries once (a -1021 rejection was never executed).
* Client order ids are deterministic (``OrderIntent.client_order_id``); ``submit`` sends one request and,
  when the outcome is unknown (timeout, 5xx, -1007), raises a ``RetryableError``: the caller must
  ``lookup`` the id before any retry. Binance accepts a reused id once the first order is filled, so a
  blind resend could double-order; the lookup is what prevents it.
* 429/418 become ``RateLimited`` with ``Retry-After``; reads wait that long (injected ``sleep``) and retry.
* Errors are classified into ``trader.errors``; messages carry Binance's code and text only, never
  URLs, parameters, signatures, keys or secrets.
* 2026 rules: ``selfTradePreventionMode`` is sent on every order when configured (``stp_mode``; unset, the
  symbol's default applies); an ``expiryReason`` in an answer is kept on the report; the symbol's ``status``
  (TRADING, CANCEL_ONLY, HALT, BREAK, END_OF_DAY) is re-read at most every ``status_ttl`` seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from decimal import Decimal

from trader.brokers.binance_errors import classify
from trader.errors import ClockSkew, ConfigError, OrderRejected, RetryableError
from trader.filters import SymbolRules
from trader.orders import Fill, OrderIntent, OrderReport
from trader.protection import SymbolFlags
from trader.symbols import symbol_status

log = logging.getLogger(__name__)


class BinanceBroker:
    def __init__(self, client, mode: str, *, fee_bps: Decimal = Decimal("10"), read_retries: int = 3,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
                 stp_mode: str | None = None, status_ttl: float = 30.0) -> None:
        self.client, self.mode = client, mode
        self._fee_bps, self._read_retries = fee_bps, read_retries
        self._sleep, self._clock = sleep, clock
        self._rules: dict[str, SymbolRules] = {}
        self.stp_mode, self._status_ttl = stp_mode, status_ttl
        self._status: dict[str, tuple[float, str]] = {}  # symbol -> (read at, status)

    # --- plumbing -------------------------------------------------------------------------------
    def sync_time(self) -> int:
        """Measure and store the server-time offset (ms) that python-binance adds to every timestamp."""
        before = self._clock()
        server = self._read(self.client.get_server_time)["serverTime"]
        local = (before + self._clock()) / 2 * 1000
        self.client.timestamp_offset = int(server - local)
        return self.client.timestamp_offset

    def _once(self, fn, **params):
        try:
            return fn(**params)
        except Exception as exc:  # noqa: BLE001 - everything is classified; nothing is swallowed
            raise classify(exc) from None

    def _read(self, fn, **params):
        """An idempotent request: resync on -1021, wait ``Retry-After`` on 429/418, retry transient errors."""
        for attempt in range(self._read_retries + 1):
            try:
                return self._once(fn, **params)
            except ClockSkew:
                if attempt == self._read_retries:
                    raise
                self.sync_time()
            except RetryableError as err:
                if attempt == self._read_retries:
                    raise
                wait = err.retry_after if err.retry_after is not None else min(2 ** attempt, 30)
                log.debug("binance read failed (%s); retrying in %.0fs", err, wait)  # the caller reports the outage once
                self._sleep(wait)
        raise AssertionError("unreachable")

    # --- Broker protocol ------------------------------------------------------------------------
    def fee_bps(self) -> Decimal:
        return self._fee_bps

    def rules(self, symbol: str) -> SymbolRules:
        if symbol not in self._rules:
            info = self._read(self.client.get_exchange_info)
            for s in info["symbols"]:
                self._rules[s["symbol"]] = SymbolRules.from_exchange_info(s)
        return self._rules[symbol]

    def check_self_trade_prevention(self, symbols: list[str]) -> None:
        """Refuse at start a ``stp_mode`` a symbol does not allow (``allowedSelfTradePreventionModes``): Binance would
        reject every order with -1013."""
        if not self.stp_mode:
            return
        info = {s["symbol"]: s for s in self._read(self.client.get_exchange_info)["symbols"]}
        for symbol in symbols:
            allowed = info.get(symbol, {}).get("allowedSelfTradePreventionModes")
            if allowed is not None and self.stp_mode not in allowed:
                raise ConfigError(f"TRADER_SELF_TRADE_PREVENTION={self.stp_mode}: {symbol} allows only {', '.join(allowed)}")

    def symbol_status(self, symbol: str) -> str:
        """exchangeInfo ``status`` of ``symbol``, re-read (for every symbol at once) when older than ``status_ttl``."""
        read_at, status = self._status.get(symbol, (None, ""))
        if read_at is None or self._clock() - read_at >= self._status_ttl:
            info, now = self._read(self.client.get_exchange_info), self._clock()
            self._status.update({s["symbol"]: (now, symbol_status(s)) for s in info["symbols"]})
            read_at, status = self._status.get(symbol, (now, "UNKNOWN"))
        return status

    def cancel(self, order: OrderIntent) -> OrderReport | None:
        try:
            self._read(self.client.cancel_order, symbol=order.symbol, origClientOrderId=order.client_order_id)
        except OrderRejected as err:
            if err.code != -2011:  # Unknown order sent: already final, or never seen; the lookup tells which
                raise
        return self.lookup(order)

    def submit(self, order: OrderIntent) -> OrderReport:
        params = order_params(order, self.stp_mode)
        try:
            answer = self._once(self.client.create_order, **params)
        except ClockSkew:
            self.sync_time()  # -1021 was refused before the engine: resending is safe
            answer = self._once(self.client.create_order, **params)
        return _report(answer, _fills(answer.get("fills", []), int(answer.get("transactTime", 0))))

    def lookup(self, order: OrderIntent) -> OrderReport | None:
        try:
            answer = self._read(self.client.get_order, symbol=order.symbol, origClientOrderId=order.client_order_id)
        except OrderRejected as err:
            if err.code == -2013:  # Order does not exist.
                return None
            raise
        fills: tuple[Fill, ...] = ()
        if Decimal(answer.get("executedQty", "0")) > 0:
            trades = self._read(self.client.get_my_trades, symbol=order.symbol, orderId=answer["orderId"])
            fills = tuple(Fill(trade_id=str(t["id"]), quantity=Decimal(t["qty"]), price=Decimal(t["price"]),
                               fee=Decimal(t["commission"]), fee_asset=t["commissionAsset"],
                               filled_at_ms=int(t["time"])) for t in trades)
        return _report(answer, fills)

    # --- protection (trader.protector): one set of legs per position --------------------------------
    def protection_flags(self, symbol: str) -> SymbolFlags:
        info = {s["symbol"]: s for s in self._read(self.client.get_exchange_info)["symbols"]}
        if symbol not in info:
            raise ConfigError(f"{symbol}: not listed in exchangeInfo")
        return SymbolFlags.from_exchange_info(info[symbol])

    def place_protection(self, legs: list[OrderIntent]) -> list[OrderReport]:
        """One request: a lone stop (``POST /api/v3/order``) or an OCO of take-profit above + stop below
        (``POST /api/v3/orderList/oco``), or, with a LIMIT BUY entry first, the entry and its set as one list
        (``/api/v3/orderList/otoco``, ``/oto`` for a lone stop); every id deterministic. Unknown outcome:
        ``RetryableError`` (look up first)."""
        if legs[0].side == "BUY":
            return self._place_with_entry(legs[0], legs[1:])
        if len(legs) == 1:
            return [self.submit(legs[0])]
        stop, tp = legs
        params = {"symbol": stop.symbol, "side": "SELL", "quantity": _s(stop.quantity), "listClientOrderId": stop.list_id,
                  "aboveType": tp.type, "aboveStopPrice": _s(tp.stop_price), "aboveClientOrderId": tp.client_order_id,
                  "belowType": stop.type, "belowStopPrice": _s(stop.stop_price), "belowClientOrderId": stop.client_order_id,
                  "newOrderRespType": "RESULT"}
        if stop.type == "STOP_LOSS_LIMIT":
            params.update(belowPrice=_s(stop.price), belowTimeInForce=stop.time_in_force or "GTC")
        if self.stp_mode:
            params["selfTradePreventionMode"] = self.stp_mode
        answer = self._once(self.client.create_oco_order, **params)
        by_id = {r["clientOrderId"]: r for r in answer.get("orderReports", [])}
        return [_report(by_id[leg.client_order_id], ()) if leg.client_order_id in by_id
                else OrderReport(client_order_id=leg.client_order_id, status="NEW") for leg in legs]

    def _place_with_entry(self, entry: OrderIntent, legs: list[OrderIntent]) -> list[OrderReport | None]:
        """The working LIMIT BUY and its pending SELL leg(s) (binance-protective-orders.md 3.3, 3.4); the answer's reports
        carry no fills, so every order is then looked up (an entry may fill at once)."""
        params = {"symbol": entry.symbol, "listClientOrderId": legs[0].list_id, "workingType": "LIMIT", "workingSide": "BUY",
                  "workingPrice": _s(entry.price), "workingQuantity": _s(entry.quantity),
                  "workingTimeInForce": entry.time_in_force or "GTC", "workingClientOrderId": entry.client_order_id,
                  "pendingSide": "SELL", "pendingQuantity": _s(legs[0].quantity), "newOrderRespType": "RESULT"}
        pair = len(legs) == 2
        for prefix, leg in ((("pendingAbove", legs[1]), ("pendingBelow", legs[0])) if pair else (("pending", legs[0]),)):
            params[prefix + "Type"] = leg.type
            params[prefix + "ClientOrderId"] = leg.client_order_id
            if leg.stop_price is not None:
                params[prefix + "StopPrice"] = _s(leg.stop_price)
            if leg.trailing_delta:
                params[prefix + "TrailingDelta"] = leg.trailing_delta
            if leg.type == "STOP_LOSS_LIMIT":
                params.update({prefix + "Price": _s(leg.price), prefix + "TimeInForce": leg.time_in_force or "GTC"})
        if self.stp_mode:
            params["selfTradePreventionMode"] = self.stp_mode
        self._once(self.client.v3_post_order_list_otoco if pair else self.client.v3_post_order_list_oto, **params)
        return self.lookup_protection([entry, *legs])

    def lookup_protection(self, legs: list[OrderIntent]) -> list[OrderReport | None]:
        return [self.lookup(leg) for leg in legs]

    def cancel_protection(self, legs: list[OrderIntent]) -> list[OrderReport | None]:
        """Cancel the set: canceling one leg of a list cancels the list (binance-protective-orders.md 3.2)."""
        reports = self.lookup_protection(legs)
        live = next((leg for leg, r in zip(legs, reports) if r is not None and r.status in ("NEW", "PARTIALLY_FILLED", "PENDING_NEW")
                     and leg.side == "SELL"), None)
        if live is not None:
            self.cancel(live)
            reports = self.lookup_protection(legs)
        return reports

    def balances(self) -> dict[str, Decimal]:
        """Free + locked per asset with a non-zero total."""
        account = self._read(self.client.get_account)
        out = {b["asset"]: Decimal(b["free"]) + Decimal(b["locked"]) for b in account["balances"]}
        return {a: v for a, v in out.items() if v}

    def open_orders(self) -> list[dict]:
        return self._read(self.client.get_open_orders)

    def recent_trades(self, symbol: str, limit: int = 100) -> list[dict]:
        return self._read(self.client.get_my_trades, symbol=symbol, limit=limit)

    def account_id(self) -> str:
        """Which exchange account this is: Binance's ``uid``, else a hash of the API key (never the key)."""
        import hashlib

        uid = self._read(self.client.get_account).get("uid")
        if uid is not None:
            return f"uid:{uid}"
        return "key-sha256:" + hashlib.sha256((self.client.API_KEY or "").encode()).hexdigest()[:16]

    def account_label(self) -> str:
        account = self._read(self.client.get_account)
        return f"{account.get('accountType', '?')} uid={account.get('uid', '?')} canTrade={account.get('canTrade')}"


def order_params(order: OrderIntent, stp_mode: str | None = None) -> dict:
    """``POST /api/v3/order`` parameters for ``order`` (decimals as plain strings, never floats)."""
    params = {"symbol": order.symbol, "side": order.side, "type": order.type, "quantity": _s(order.quantity),
              "newClientOrderId": order.client_order_id}
    if stp_mode:
        params["selfTradePreventionMode"] = stp_mode
    if order.type == "LIMIT":
        params.update(timeInForce=order.time_in_force or "GTC", price=_s(order.price))
    if order.type in ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT"):
        if order.stop_price is not None:
            params["stopPrice"] = _s(order.stop_price)
        if order.trailing_delta:
            params["trailingDelta"] = order.trailing_delta
        params["newOrderRespType"] = "RESULT"  # stops answer ACK by default: no status
    if order.type == "STOP_LOSS_LIMIT":
        params.update(timeInForce=order.time_in_force or "GTC", price=_s(order.price))
    if order.type in ("MARKET", "LIMIT"):
        params["newOrderRespType"] = "FULL"
    return params


def _s(v: Decimal) -> str:
    return format(v.normalize(), "f")


def _fills(raw: list[dict], at_ms: int) -> tuple[Fill, ...]:
    return tuple(Fill(trade_id=str(f["tradeId"]), quantity=Decimal(f["qty"]), price=Decimal(f["price"]),
                      fee=Decimal(f["commission"]), fee_asset=f["commissionAsset"], filled_at_ms=at_ms) for f in raw)


def _report(answer: dict, fills: tuple[Fill, ...]) -> OrderReport:
    return OrderReport(client_order_id=answer["clientOrderId"], status=answer.get("status", "NEW"),
                       exchange_order_id=str(answer["orderId"]), executed_qty=Decimal(answer.get("executedQty", "0")),
                       fills=fills, expiry_reason=_expiry_reason(answer))


def _expiry_reason(answer: dict) -> str | None:
    """``expiryReason`` as Binance sends it (RESULT/FULL since 2026-03-26, queries from 2026-05-08); ``NONE``: none."""
    reason = answer.get("expiryReason")
    return reason if reason and reason != "NONE" else None
