"""The paper broker holds a protection set and triggers it by the exchange's rule in bar terms: a stop when a candle's
low reaches it (at the stop, or at the open of a candle that gaps beyond it), a take-profit when the high reaches it,
the stop first when one candle reaches both, the sibling then EXPIRED (OCO_TRIGGER); trailing stops from the highest
price since the entry; a cancel before any trigger cancels every leg."""

from decimal import Decimal as D

import pytest

from trader.brokers.paper import Candle, PaperBroker
from trader.orders import OrderIntent


def leg(cid, type_, stop=None, price=None, trailing=None):
    return OrderIntent(sleeve="s", symbol="BTCUSDT", side="SELL", quantity=D("0.1"), open_time_ms=1, type=type_, stop_price=stop,
                       price=price, trailing_delta=trailing, interval="1m", mode="paper", stored_id=cid, list_id="e-PL")


OCO = [leg("e-PS", "STOP_LOSS", D("98")), leg("e-PT", "TAKE_PROFIT", D("104"))]


def broker(*bars):  # (open, high, low) per candle, from the entry's fill candle on
    return PaperBroker(lambda *a: [Candle(60_000 * (k + 1), D(o), D(h), D(low)) for k, (o, h, low) in enumerate(bars)],
                       fee_bps=D(0))


def outcome(reports):
    return [(r.status, [f.price for f in r.fills], r.expiry_reason) for r in reports]


@pytest.mark.parametrize(("bars", "want"), [
    ([("100", "101", "99")], [("NEW", [], None), ("NEW", [], None)]),
    ([("100", "101", "99"), ("99", "99.5", "97")], [("FILLED", [D("98")], None), ("EXPIRED", [], "OCO_TRIGGER")]),
    ([("100", "101", "99"), ("96", "97", "95")], [("FILLED", [D("96")], None), ("EXPIRED", [], "OCO_TRIGGER")]),  # gap: open
    ([("100", "105", "99")], [("EXPIRED", [], "OCO_TRIGGER"), ("FILLED", [D("104")], None)]),
    ([("100", "101", "99"), ("106", "107", "105")], [("EXPIRED", [], "OCO_TRIGGER"), ("FILLED", [D("106")], None)]),
    ([("100", "105", "97")], [("FILLED", [D("98")], None), ("EXPIRED", [], "OCO_TRIGGER")]),  # both in one bar: the stop
])
def test_an_oco_triggers_by_the_bar_rule(bars, want):
    assert outcome(broker(*bars).place_protection(OCO)) == want


def test_a_trailing_stop_follows_the_highest_price_since_the_entry():
    trail = [leg("e-PS", "STOP_LOSS", trailing=500)]  # 5 %
    rising = broker(("100", "110", "99"), ("110", "120", "112"))
    assert outcome(rising.place_protection(trail)) == [("NEW", [], None)]  # 95 then 104.5 never reached
    falls = broker(("100", "110", "99"), ("110", "120", "112"), ("118", "119", "113"))
    assert outcome(falls.place_protection(trail)) == [("FILLED", [D("114.00")], None)]  # 120 x 0.95


def test_a_stop_limit_never_sells_below_its_limit():
    stop_limit = [leg("e-PS", "STOP_LOSS_LIMIT", D("98"), D("97.5"))]
    assert outcome(broker(("100", "101", "97")).place_protection(stop_limit)) == [("FILLED", [D("98")], None)]
    assert outcome(broker(("100", "101", "99"), ("96", "97", "95")).place_protection(stop_limit)) == [("NEW", [], None)]
    assert outcome(broker(("100", "101", "99"), ("96", "98", "95")).place_protection(stop_limit)) == [("FILLED", [D("97.5")], None)]


def test_a_cancel_before_a_trigger_cancels_every_leg_and_a_filled_leg_stays_filled():
    assert [r.status for r in broker(("100", "101", "99")).cancel_protection(OCO)] == ["CANCELED", "CANCELED"]
    assert [r.status for r in broker(("100", "101", "97")).cancel_protection(OCO)] == ["FILLED", "EXPIRED"]


ENTRY = OrderIntent(sleeve="s", symbol="BTCUSDT", side="BUY", quantity=D("0.1"), open_time_ms=1, type="LIMIT", price=D("100"),
                    time_in_force="GTC", interval="1m", mode="paper", stored_id="e", list_id="e-PL")


@pytest.mark.parametrize(("bars", "want"), [
    # the entry waits above its limit: the legs wait with it (PENDING_NEW), whatever the price does meanwhile
    ([("103", "106", "101")], [("NEW", [], None), ("PENDING_NEW", [], None), ("PENDING_NEW", [], None)]),
    # filled inside a candle at its limit: that candle counts from the fill -- its low reaches the stop, which fills
    ([("103", "106", "97")], [("FILLED", [D("100")], None), ("FILLED", [D("98")], None), ("EXPIRED", [], "OCO_TRIGGER")]),
    # the path open -> low -> high -> close: the high comes after the fill, and the take-profit it reaches fills
    ([("103", "106", "99")], [("FILLED", [D("100")], None), ("EXPIRED", [], "OCO_TRIGGER"), ("FILLED", [D("104")], None)]),
    ([("103", "103.5", "99"), ("103", "103.5", "102")], [("FILLED", [D("100")], None), ("NEW", [], None), ("NEW", [], None)]),
    ([("103", "103.5", "99"), ("103", "105", "102")], [("FILLED", [D("100")], None), ("EXPIRED", [], "OCO_TRIGGER"),
                                                       ("FILLED", [D("104")], None)]),
    # a gap below the limit fills at the open; the whole candle is after the fill
    ([("99", "105", "98.5")], [("FILLED", [D("99")], None), ("EXPIRED", [], "OCO_TRIGGER"), ("FILLED", [D("104")], None)]),
])
def test_a_limit_entry_with_its_oco_as_one_otoco_holds_the_legs_until_it_fills(bars, want):
    assert outcome(broker(*bars).place_protection([ENTRY, *OCO])) == want


def test_an_otoco_whose_entry_expires_unfilled_expires_its_legs_and_a_cancel_keeps_the_filled_entry():
    ioc = OrderIntent(**{**vars(ENTRY), "time_in_force": "IOC"})
    assert outcome(broker(("103", "106", "101")).place_protection([ioc, *OCO])) == [
        ("EXPIRED", [], "UNFILLED_IOC_QUANTITY_EXPIRED"), ("EXPIRED", [], "OTO_PHASE_ONE_EXPIRED"),
        ("EXPIRED", [], "OTO_PHASE_ONE_EXPIRED")]
    assert [r.status for r in broker(("100", "101", "99")).cancel_protection([ENTRY, *OCO])] == ["FILLED", "CANCELED", "CANCELED"]


def test_a_trailing_stop_ratcheted_by_a_candles_high_fills_at_the_new_trail_when_the_close_comes_back_to_it():
    trail = [leg("e-PS", "STOP_LOSS", trailing=500)]  # 5 %: the path open -> low -> high -> close
    def bars(*rows):
        return PaperBroker(lambda *a: [Candle(60_000 * (k + 1), *(D(x) for x in r)) for k, r in enumerate(rows)], fee_bps=D(0))
    assert outcome(bars(("100", "120", "99", "113")).place_protection(trail)) == [("FILLED", [D("114.00")], None)]  # 120 x 0.95
    assert outcome(bars(("100", "120", "99", "114.5")).place_protection(trail)) == [("NEW", [], None)]
    assert outcome(bars(("100", "120", "99", "114.5"), ("113", "116", "112", "114")).place_protection(trail)) == [
        ("FILLED", [D("113")], None)]  # the next open is below the trail of 114: a gap, at the open
