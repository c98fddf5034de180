"""Risk rules, one by one, and the kill switch's escalation (pure)."""

from decimal import Decimal as D

import pytest

from trader.risk import RiskContext, first_block
from trader.risk.exposure import MaxExposure
from trader.risk.killswitch import KillLimits, KillState, KillSwitch, KillSwitchRule, evaluate
from trader.risk.order_rate import MaxOrderRate
from trader.risk.staleness import StaleData

MIN = 60_000


def ctx(**kw) -> RiskContext:
    base = dict(sleeve="s", symbol="BTCUSDT", side="BUY", is_entry=True, notional=D("1000"), now_ms=100 * MIN,
                data_as_of_ms=100 * MIN - 1, interval_ms=MIN)
    return RiskContext(**{**base, **kw})


@pytest.mark.parametrize(("rule", "kw", "blocked"), [
    (MaxExposure(per_symbol=D("2000")), {"symbol_exposure": D("1000")}, False),
    (MaxExposure(per_symbol=D("2000")), {"symbol_exposure": D("1000.01")}, True),
    (MaxExposure(total=D("5000")), {"total_exposure": D("4500")}, True),
    (MaxExposure(per_symbol=D("1")), {"is_entry": False, "side": "SELL"}, False),  # exits always allowed
    (MaxOrderRate(2, 60), {"recent_orders_ms": (100 * MIN - 61_000, 100 * MIN - 1000)}, False),
    (MaxOrderRate(2, 60), {"recent_orders_ms": (100 * MIN - 59_000, 100 * MIN - 1000)}, True),
    (StaleData(2), {"data_as_of_ms": 98 * MIN}, False),
    (StaleData(2), {"data_as_of_ms": 98 * MIN - 1}, True),
    (StaleData(2), {"data_as_of_ms": None}, True),
    (StaleData(2), {"data_as_of_ms": 10 * MIN, "is_entry": False}, False),
    (StaleData(0), {"data_as_of_ms": 10 * MIN}, False),
    (KillSwitchRule(), {"kill_state": KillState.REDUCING}, True),
    (KillSwitchRule(), {"kill_state": KillState.REDUCING, "is_entry": False}, False),
    (KillSwitchRule(), {"kill_state": KillState.HALTED, "is_entry": False}, True),
])
def test_each_rule_blocks_exactly_past_its_limit(rule, kw, blocked):
    assert (rule.check(ctx(**kw)) is not None) is blocked


def test_first_block_names_the_rule_that_fired():
    rules = [KillSwitchRule(), StaleData(2), MaxExposure(per_symbol=D("10"))]

    block = first_block(rules, ctx())

    assert block is not None and block.rule == "max_exposure" and "exceed 10" in block.reason
    assert first_block(rules[:2], ctx()) is None


@pytest.mark.parametrize(("state", "equity", "peak", "day", "want"), [
    (KillState.ACTIVE, D("9600"), D("10000"), D("10000"), KillState.ACTIVE),
    (KillState.ACTIVE, D("9500"), D("10000"), D("10000"), KillState.REDUCING),     # 5% daily loss
    (KillState.ACTIVE, D("8500"), D("10000"), D("9000"), KillState.HALTED),        # 15% drawdown
    (KillState.HALTED, D("12000"), D("12000"), D("10000"), KillState.HALTED),      # never de-escalates by itself
    (KillState.REDUCING, D("8000"), D("10000"), D("10000"), KillState.HALTED),
])
def test_kill_switch_escalates_only(state, equity, peak, day, want):
    new, reason = evaluate(state, equity, peak, day, KillLimits(D("0.05"), D("0.15")))

    assert new is want
    assert (reason is not None) is (want is not state)


def test_the_stored_kill_switch_value_is_decoded_in_one_place():
    stored = {"state": "HALTED", "reason": "drawdown", "by": "risk"}

    switch = KillSwitch.from_value(stored)

    assert (switch.state, switch.reason, switch.by) == (KillState.HALTED, "drawdown", "risk")
    assert switch.to_value() == stored and KillSwitch.key("paper") == "kill_switch:paper"
    assert KillSwitch.from_value(None) == KillSwitch(state=KillState.ACTIVE)  # never set: ACTIVE
