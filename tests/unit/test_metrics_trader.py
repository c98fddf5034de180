"""The trader's metric families from a ledger snapshot and the loop's stats (pure: no database, no server)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from trader.metrics import LedgerSnapshot, LoopStats, metric_families


def _samples(snap, loop=None) -> dict[tuple[str, tuple], float]:
    from prometheus_client import CollectorRegistry, generate_latest

    class One:
        def collect(self):
            return metric_families(snap, "paper", loop or LoopStats())

    registry = CollectorRegistry(auto_describe=False)
    registry.register(One())
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _snap(**kw) -> LedgerSnapshot:
    base = dict(mode="paper", decisions=[("S", "BUY", 2), ("S", "HOLD", 7)], orders={"FILLED": 3, "NEW": 1, "PENDING_SUBMIT": 1},
                fills={"BUY": 2, "SELL": 1}, risk_blocks={"max_exposure": 4}, equity=9_500.0, first_equity=10_000.0,
                peak_equity=11_000.0, kill_state="REDUCING", sleeves=[("S", 0.25, False, 42.0), ("T", 0.0, True, None)])
    return LedgerSnapshot(**{**base, **kw})


def test_ledger_counts_become_labelled_metrics():
    s = _samples(_snap())

    assert s[("trader_decisions_total", (("action", "HOLD"), ("sleeve", "S")))] == 7
    assert s[("trader_orders", (("mode", "paper"), ("status", "FILLED")))] == 3
    assert s[("trader_open_orders", (("mode", "paper"),))] == 2  # NEW + PENDING_SUBMIT
    assert s[("trader_fills_total", (("mode", "paper"), ("side", "SELL")))] == 1
    assert s[("trader_risk_blocks_total", (("mode", "paper"), ("rule", "max_exposure")))] == 4
    assert s[("trader_metrics_up", ())] == 1


def test_equity_pnl_and_drawdown_are_derived_from_the_marks():
    s = _samples(_snap())

    assert s[("trader_equity", (("mode", "paper"),))] == 9_500
    assert s[("trader_pnl", (("mode", "paper"),))] == -500
    assert s[("trader_drawdown_ratio", (("mode", "paper"),))] == pytest.approx(1 - 9_500 / 11_000)


@pytest.mark.parametrize("state", ["ACTIVE", "REDUCING", "HALTED"])
def test_the_kill_switch_is_one_hot_over_its_states(state):
    s = _samples(_snap(kill_state=state))

    values = {dict(k[1])["state"]: v for k, v in s.items() if k[0] == "trader_kill_switch_state"}
    assert values == {st: (1 if st == state else 0) for st in ("ACTIVE", "REDUCING", "HALTED")}


def test_sleeves_report_position_halt_and_decision_age():
    s = _samples(_snap())

    assert s[("trader_position_quantity", (("sleeve", "S"),))] == 0.25
    assert s[("trader_sleeve_halted", (("sleeve", "T"),))] == 1
    assert s[("trader_last_decision_age_seconds", (("sleeve", "S"),))] == 42
    assert ("trader_last_decision_age_seconds", (("sleeve", "T"),)) not in s  # never decided: no sample


def test_no_equity_marks_yet_means_no_equity_samples():
    s = _samples(_snap(equity=None, first_equity=None, peak_equity=None))

    assert not [k for k in s if k[0] in ("trader_equity", "trader_pnl", "trader_drawdown_ratio")]


def test_loop_steps_fill_the_histogram():
    loop = LoopStats()
    for seconds in (0.02, 0.3, 12.0):
        loop.observe_step(seconds, ended_at=1_700_000_000.0)

    s = _samples(_snap(), loop)

    assert s[("trader_loop_steps_total", ())] == 3
    assert s[("trader_loop_step_seconds_bucket", (("le", "0.025"),))] == 1
    assert s[("trader_loop_step_seconds_bucket", (("le", "0.5"),))] == 2
    assert s[("trader_loop_step_seconds_bucket", (("le", "+Inf"),))] == 3
    assert s[("trader_loop_step_seconds_sum", ())] == pytest.approx(12.32)
    assert s[("trader_loop_last_step_timestamp_seconds", ())] == 1_700_000_000


def test_a_database_outage_reports_down_but_keeps_the_loop_metrics():
    loop = LoopStats()
    loop.observe_step(0.1, ended_at=5.0)

    s = _samples(None, loop)

    assert s[("trader_metrics_up", ())] == 0
    assert s[("trader_loop_steps_total", ())] == 1
    assert not [k for k in s if k[0].startswith(("trader_orders", "trader_equity", "trader_kill"))]
