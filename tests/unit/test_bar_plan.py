"""The trader's per-bar arithmetic as a pure function over one snapshot: sizing, filters, risk."""

from decimal import Decimal as D

import pytest

from trader.bar_plan import BarSnapshot, plan_order
from trader.filters import Lot, SymbolRules
from trader.risk.killswitch import KillState, KillSwitchRule
from trader.sleeve import RiskConfig, Sleeve
from trader.strategies import build_strategy
from trader.strategies.base import Action

RULES = SymbolRules("BTCUSDT", tick=D("0.01"), lot=Lot(D("0.00001"), D("9000"), D("0.00001")), min_notional=D("5"))
SLEEVE = Sleeve(name="BTCUSDT:1m:sma_cross", symbol="BTCUSDT", interval="1m",
                strategy=build_strategy("sma_cross"), allocation=D("1000"))


def snap(**kw) -> BarSnapshot:
    base = dict(held=D(0), free_quote=D("10000"), free_base=D(0), rules=RULES, fee_bps=D("10"), exposure={},
                recent_orders_ms=(), data_as_of_ms=59_999, now_ms=60_000, kill=KillState.ACTIVE)
    return BarSnapshot(**{**base, **kw})


def plan(s: BarSnapshot, action: Action, risk: RiskConfig = RiskConfig()):
    return plan_order(s, sleeve=SLEEVE, action=action, reason="why", open_time_ms=0, close=D("50000"), interval_ms=60_000,
                      risk=risk, rules=[KillSwitchRule()], mode="paper")


def test_a_buy_spends_the_allocation_rounded_down_to_the_lot_step():
    p = plan(snap(), Action.BUY)

    assert p.block is None and p.reason == "why"
    assert (p.intent.side, p.intent.quantity, p.intent.type, p.intent.mode) == ("BUY", D("0.02"), "MARKET", "paper")


@pytest.mark.parametrize(("s", "action", "reason"), [
    (snap(held=D("0.1")), Action.BUY, "why; already long"),
    (snap(), Action.SELL, "why; nothing to sell"),
])
def test_no_order_when_the_position_already_matches(s, action, reason):
    p = plan(s, action)

    assert (p.intent, p.reason, p.block) == (None, reason, None)


def test_an_empty_balance_is_an_exchange_filter_block():
    p = plan(snap(free_quote=D(0)), Action.BUY)

    assert p.intent is None and p.block.rule == "exchange_filter"
    assert p.reason == "why; blocked by exchange_filter: insufficient balance: no free USDT"


def test_a_halted_kill_switch_blocks_the_order_with_its_rule():
    p = plan(snap(kill=KillState.HALTED), Action.BUY)

    assert p.intent is None and p.block.rule == "kill_switch"
    assert p.reason.startswith("why; blocked by kill_switch: kill switch HALTED")


def test_a_limit_order_is_offset_from_the_close():
    p = plan(snap(), Action.BUY, RiskConfig(order_type="LIMIT", limit_offset_bps=D("10")))

    assert (p.intent.type, p.intent.price, p.intent.time_in_force) == ("LIMIT", D("49950.00"), "GTC")
