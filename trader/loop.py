"""The trader's main loop: for each sleeve, read new features, decide, size, place, record.

Each sleeve's new bars are processed in one PostgreSQL transaction that holds the sleeve's row
lock: the signal, the order, its fill, the position and the sleeve's progress commit together, so a
crash or a second trader can never decide a bar twice or order twice.
"""

from __future__ import annotations

import logging
import select
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from trader import ledger
from trader.brokers.paper import PaperBroker
from trader.orders import OrderIntent, round_down
from trader.strategies.base import Action, Strategy, StrategyError, decide_safely
from trader.symbols import split_symbol

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def epoch_ms(t: datetime) -> int:
    return (t - _EPOCH) // timedelta(milliseconds=1)


@dataclass
class Sleeve:
    name: str  # SYMBOL:interval:strategy
    symbol: str
    interval: str
    strategy: Strategy
    halted: str | None = None


@dataclass(frozen=True)
class Decision:
    sleeve: str
    open_time: datetime
    action: str
    reason: str
    quantity: Decimal | None = None
    price: Decimal | None = None

    def line(self) -> str:
        trade = f" {self.quantity} @ {self.price}" if self.quantity is not None else ""
        return f"{self.open_time:%Y-%m-%d %H:%M} {self.sleeve} {self.action}{trade} {self.reason}".rstrip()


class Trader:
    def __init__(self, connect: Callable, sleeves: list[Sleeve], broker: PaperBroker, *,
                 order_quote: Decimal, qty_step: Decimal, paper_balance: Decimal) -> None:
        self._connect = connect
        self.sleeves = sleeves
        self.broker = broker
        self.order_quote = order_quote
        self.qty_step = qty_step
        self._init(paper_balance)

    def _init(self, paper_balance: Decimal) -> None:
        with self._transaction() as cur:
            for s in self.sleeves:
                ledger.ensure_sleeve(cur, s.name, s.symbol, s.interval, s.strategy.name)
                ledger.seed_balance(cur, self.broker.mode, split_symbol(s.symbol)[1], paper_balance)

    def step(self) -> list[Decision]:
        """Decide every new bar of every active sleeve; return the BUY/SELL decisions taken."""
        trades: list[Decision] = []
        for sleeve in self.sleeves:
            if sleeve.halted:
                continue
            try:
                with self._transaction() as cur:
                    trades += self._process(cur, sleeve)
            except StrategyError as exc:
                sleeve.halted = str(exc)
                log.error("sleeve %s halted: %s", sleeve.name, exc)
        return trades

    def _process(self, cur, sleeve: Sleeve) -> list[Decision]:
        last = ledger.lock_sleeve(cur, sleeve.name)
        history = max(sleeve.strategy.warmup - 1, 0)
        frame = ledger.load_new_features(cur, sleeve.symbol, sleeve.interval, last, history)
        first_new = 0 if last is None else int((frame["open_time"] <= last).sum())
        trades = []
        for i in range(first_new, len(frame)):
            window = frame.iloc[max(0, i - sleeve.strategy.warmup + 1): i + 1]
            bar = frame.iloc[i]
            signal = decide_safely(sleeve.strategy, window)
            decision = self._act(cur, sleeve, bar["open_time"], Decimal(bar["close"]), signal.action, signal.reason)
            if decision.quantity is not None:
                trades.append(decision)
        if len(frame) > first_new:
            ledger.advance_sleeve(cur, sleeve.name, frame["open_time"].iloc[-1])
        return trades

    def _act(self, cur, sleeve: Sleeve, open_time: datetime, close: Decimal, action: Action, reason: str) -> Decision:
        base, quote = split_symbol(sleeve.symbol)
        held = ledger.position(cur, sleeve.name)
        quantity = None
        if action is Action.BUY and held == 0:
            spend = min(self.order_quote, ledger.balance(cur, self.broker.mode, quote))
            quantity = round_down(spend / close, self.qty_step)
            if quantity <= 0:
                quantity, reason = None, f"{reason}; not enough {quote} to buy"
        elif action is Action.SELL and held > 0:
            quantity = held
        elif action is not Action.HOLD:
            reason = f"{reason}; {'already long' if held > 0 else 'nothing to sell'}"
        ledger.record_signal(cur, sleeve.name, sleeve.symbol, sleeve.interval, open_time, sleeve.strategy.name, action.value, reason)
        if quantity is None:
            return Decision(sleeve.name, open_time, action.value, reason)
        intent = OrderIntent(sleeve.name, sleeve.symbol, action.value, quantity, epoch_ms(open_time))
        if not ledger.record_order(cur, intent, self.broker.mode, open_time):
            return Decision(sleeve.name, open_time, action.value, f"{reason}; order {intent.client_order_id} exists")
        fill = self.broker.fill(intent, close, quote)
        ledger.record_fill(cur, intent, fill, self.broker.mode, base, quote, open_time)
        return Decision(sleeve.name, open_time, action.value, reason, fill.quantity, fill.price)

    def _transaction(self):
        return _Transaction(self._connect)


class _Transaction:
    def __init__(self, connect: Callable) -> None:
        self._conn = connect()

    def __enter__(self):
        self._cur = self._conn.cursor()
        return self._cur

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._conn.commit()
            else:
                self._conn.rollback()
        finally:
            self._cur.close()
            self._conn.close()


def run_forever(trader: Trader, listen_conn, should_stop: Callable[[], bool], poll_interval: float,
                emit: Callable[[str], None]) -> None:
    """Step on every ``NOTIFY klinepipe_features`` and at least every ``poll_interval`` seconds."""
    while not should_stop():
        for decision in trader.step():
            emit(decision.line())
        if select.select([listen_conn], [], [], poll_interval)[0]:
            listen_conn.poll()
            listen_conn.notifies.clear()
