"""Which protection form a symbol allows (trader.protection, pure): an OCO when ocoAllowed, a STOP_LOSS(_LIMIT) alone, a
trailingDelta stop inside the TRAILING_DELTA filter; refused with the reason when the symbol cannot honour it; the
legs' prices and deterministic ids."""

from decimal import Decimal as D

import pytest

from tests.fake_binance.market import SymbolInfo
from trader.protection import (
    Distance, ProtectionRefused, ProtectionSettings, SymbolFlags, choose_form, entry_form, entry_of, protection_set,
)

ALL_TYPES = ("LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
OCO = ProtectionSettings(stop_loss=Distance(D(2), "%"), take_profit=Distance(D(4), "%"))
STOP = ProtectionSettings(stop_loss=Distance(D(2), "%"))
STOP_LIMIT = ProtectionSettings(stop_loss=Distance(D(2), "%"), stop_limit_bps=D(50))
TRAIL = ProtectionSettings(trailing_stop=Distance(D("1.5"), "%"))


def flags(**kw) -> SymbolFlags:
    return SymbolFlags(**({"symbol": "BTCUSDT", "order_types": ALL_TYPES, "oco_allowed": True, "allow_trailing_stop": True,
                           "trailing_below": (10, 2000), "oto_allowed": True} | kw))


def test_the_form_follows_the_settings_when_the_symbol_allows_it():
    assert choose_form(OCO, flags()) == "OCO"
    assert choose_form(STOP, flags()) == "STOP"
    assert choose_form(STOP_LIMIT, flags()) == "STOP"
    assert choose_form(TRAIL, flags()) == "TRAILING"
    assert choose_form(ProtectionSettings(), flags(oco_allowed=False)) is None


@pytest.mark.parametrize(("settings", "symbol", "reason"), [
    (OCO, flags(oco_allowed=False), "BTCUSDT: take_profit: the symbol does not allow OCO lists (ocoAllowed false)"),
    (OCO, flags(order_types=("MARKET", "LIMIT", "STOP_LOSS")), "BTCUSDT: take_profit: TAKE_PROFIT is not in the symbol's orderTypes"),
    (STOP, flags(order_types=("MARKET", "LIMIT")), "BTCUSDT: stop_loss: STOP_LOSS is not in the symbol's orderTypes"),
    (STOP_LIMIT, flags(order_types=("MARKET", "STOP_LOSS")), "BTCUSDT: stop_loss: STOP_LOSS_LIMIT is not in"),
    (TRAIL, flags(allow_trailing_stop=False), "BTCUSDT: trailing_stop: the symbol does not allow trailing stops"),
    (TRAIL, flags(trailing_below=(10, 100)), "BTCUSDT: trailing_stop: 150 bips outside the TRAILING_DELTA filter's [10, 100]"),
])
def test_a_configuration_the_symbol_cannot_honour_is_refused_with_the_reason(settings, symbol, reason):
    with pytest.raises(ProtectionRefused) as err:
        choose_form(settings, symbol)
    assert str(err.value).startswith(reason)


def test_flags_are_read_from_exchange_info_as_the_fake_serves_it():
    info = SymbolInfo("BTCUSDT", "BTC", "USDT")
    assert SymbolFlags.from_exchange_info(info.to_wire()) == flags()
    info.update(ocoAllowed=False, allowTrailingStop=False, otoAllowed=False, orderTypes=["LIMIT", "MARKET"])
    assert SymbolFlags.from_exchange_info(info.to_wire()) == flags(oco_allowed=False, allow_trailing_stop=False,
                                                                    order_types=("LIMIT", "MARKET"), oto_allowed=False)


def test_legs_are_priced_from_the_entry_rounded_away_from_the_fill_with_ids_derived_from_the_entry():
    entry = "kp-p-0123456789-1700000000000-B"
    oco = protection_set(OCO, "OCO", entry, D("0.01"), D("60000.37"), D("0.01"))
    stop, tp = oco.legs
    assert (stop.type, stop.stop_price, tp.type, tp.stop_price) == ("STOP_LOSS", D("58800.36"), "TAKE_PROFIT", D("62400.39"))
    assert (oco.list_client_order_id, stop.client_order_id, tp.client_order_id) == (entry + "-PL", entry + "-PS", entry + "-PT")
    assert all(len(i) <= 36 for i in (oco.list_client_order_id, stop.client_order_id))
    assert {entry_of(i) for i in (oco.list_client_order_id, stop.client_order_id, tp.client_order_id)} == {entry}
    assert entry_of(entry) is None
    (sl,) = protection_set(STOP_LIMIT, "STOP", entry, D("0.01"), D("100"), D("0.01")).legs
    assert (sl.type, sl.stop_price, sl.price) == ("STOP_LOSS_LIMIT", D("98.00"), D("97.51"))
    (tr,) = protection_set(TRAIL, "TRAILING", entry, D("0.01"), D("100"), D("0.01")).legs
    assert (tr.type, tr.stop_price, tr.trailing_delta) == ("STOP_LOSS", None, 150)
    atr = ProtectionSettings(stop_loss=Distance(D(2), "atr"), take_profit=Distance(D(3), "atr"))
    s, t = protection_set(atr, "OCO", entry, D(1), D("100"), D("0.01"), atr=D("1.5")).legs
    assert (s.stop_price, t.stop_price) == (D("97.00"), D("104.50"))


def test_a_replacement_sets_ids_carry_its_generation_and_lead_back_to_the_entry():
    from trader.orders import client_order_id
    from trader.protection import MAX_GENERATION, generation_of, set_base
    from trader.reconcile import orphan_protection

    entry = client_order_id("BTCUSDT:1m:sma_cross", 1_700_000_000_000, "BUY", "live")
    for generation in range(1, MAX_GENERATION + 1):
        oco = protection_set(OCO, "OCO", set_base(entry, generation), D("0.01"), D("60000"), D("0.01"))
        ids = (oco.list_client_order_id, *(leg.client_order_id for leg in oco.legs))
        assert all(len(i) <= 36 and i.endswith(("-PL", "-PS", "-PT")) for i in ids)
        assert {entry_of(i) for i in ids} == {entry} and {generation_of(i) for i in ids} == {generation}
        assert len(set(ids)) == 3
    assert set_base(entry, 2) + "-PS" == entry + "2-PS" and generation_of(entry) is None
    with pytest.raises(ValueError):
        set_base(entry, MAX_GENERATION + 1)
    second = set_base(entry, 2)  # reconciliation: a generation-2 leg the ledger holds open is ours, not an orphan
    assert orphan_protection({second + "-PS": "BTCUSDT", entry + "-PS": "BTCUSDT"}, {second + "-PS"}, "live") == [entry + "-PS"]


def test_a_set_that_ended_is_replaced_unless_the_kill_switch_holds_it():
    from trader.risk.killswitch import KillPolicy, KillState

    assert not KillPolicy().holds_replacement(KillState.ACTIVE) and not KillPolicy().holds_replacement(KillState.HALTED)
    assert KillPolicy(on_halted="cancel_all").holds_replacement(KillState.HALTED)
    assert not KillPolicy(on_halted="cancel_all").holds_replacement(KillState.ACTIVE)  # resumed: replaced
    assert KillPolicy().holds_replacement(KillState.REDUCING)  # flatten: the set was cancelled to take the position off
    assert not KillPolicy(on_reducing="exits_only").holds_replacement(KillState.REDUCING)


def test_a_limit_entry_goes_out_with_its_set_when_the_symbol_allows_oto_else_after_the_fill_or_refused_if_required():
    assert entry_form(OCO, "OCO", flags(), "LIMIT") == "OTOCO"
    assert entry_form(TRAIL, "TRAILING", flags(), "LIMIT") == "OTO"
    assert entry_form(STOP, "STOP", flags(), "LIMIT") == "OTO"
    assert entry_form(OCO, "OCO", flags(), "MARKET") is None  # a MARKET entry: the set follows the fill
    assert entry_form(OCO, "OCO", flags(oto_allowed=False), "LIMIT") is None
    off = ProtectionSettings(stop_loss=Distance(D(2), "%"), with_entry="off")
    assert entry_form(off, "STOP", flags(), "LIMIT") is None
    assert entry_form(ProtectionSettings(), None, flags(), "LIMIT") is None
    required = ProtectionSettings(stop_loss=Distance(D(2), "%"), take_profit=Distance(D(4), "%"), with_entry="require")
    assert entry_form(required, "OCO", flags(), "LIMIT") == "OTOCO"
    with pytest.raises(ProtectionRefused, match="BTCUSDT: with_entry: the symbol does not allow OTO lists"):
        entry_form(required, "OCO", flags(oto_allowed=False), "LIMIT")
    with pytest.raises(ProtectionRefused, match="with_entry: the sleeve's entries are MARKET orders"):
        entry_form(required, "OCO", flags(), "MARKET")
