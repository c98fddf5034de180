"""Order lists on the fake Binance (binance-protective-orders.md 3), through python-binance's own Client:
OCO, OTO, OTOCO, contingency, cancel and the three queries."""

from decimal import Decimal

import pytest

from tests.fake_binance.clients import api_error
from tests.helpers import binance_client


@pytest.fixture
def fake(fake_binance):
    fake = fake_binance(price="60000.00", usdt="10000")
    fake.deposit("BTC", "0.05")
    return fake


@pytest.fixture
def client(fake):
    return binance_client(fake, signed=True)


def balance(client, asset) -> tuple[Decimal, Decimal]:
    b = next(b for b in client.get_account()["balances"] if b["asset"] == asset)
    return Decimal(b["free"]), Decimal(b["locked"])


def order(client, cid) -> dict:
    return client.get_order(symbol="BTCUSDT", origClientOrderId=cid)


PROTECT = dict(symbol="BTCUSDT", side="SELL", quantity="0.01", listClientOrderId="kp-prot-1",
               aboveType="LIMIT_MAKER", abovePrice="62000.00", aboveClientOrderId="kp-tp-1",
               belowType="STOP_LOSS_LIMIT", belowStopPrice="58000.00", belowPrice="57900.00", belowTimeInForce="GTC",
               belowClientOrderId="kp-sl-1")


def test_a_protective_oco_locks_once_and_its_stop_leg_expires_the_take_profit_before_executing(fake, client):
    placed = client.create_oco_order(**PROTECT)
    locked = balance(client, "BTC")

    fake.trade("BTCUSDT", "59000.00", "58000.00")
    listed = client.v3_get_order_list(orderListId=placed["orderListId"])

    reports = {r["clientOrderId"]: r for r in placed["orderReports"]}
    assert (placed["contingencyType"], placed["listStatusType"], placed["listOrderStatus"]) == ("OCO", "EXEC_STARTED", "EXECUTING")
    assert placed["listClientOrderId"] == "kp-prot-1" and set(reports) == {"kp-tp-1", "kp-sl-1"}
    assert reports["kp-sl-1"]["workingTime"] == -1 and reports["kp-tp-1"]["workingTime"] > 0
    assert locked == (Decimal("0.04"), Decimal("0.01"))  # one lock for both legs
    assert (order(client, "kp-tp-1")["status"], order(client, "kp-tp-1")["expiryReason"]) == ("EXPIRED", "OCO_TRIGGER")
    assert order(client, "kp-sl-1")["status"] == "FILLED"
    assert (listed["listStatusType"], listed["listOrderStatus"]) == ("ALL_DONE", "ALL_DONE") and "orderReports" not in listed
    assert balance(client, "BTC") == (Decimal("0.04"), Decimal("0")) and client.get_open_oco_orders() == []


def test_the_limit_maker_leg_fills_first_then_the_stop_expires(fake, client):
    placed = client.create_oco_order(**PROTECT)

    fake.set_price("BTCUSDT", "62000.00")

    assert order(client, "kp-tp-1")["status"] == "FILLED"
    assert (order(client, "kp-sl-1")["status"], order(client, "kp-sl-1")["expiryReason"]) == ("EXPIRED", "OCO_TRIGGER")
    assert [x["orderListId"] for x in client.v3_get_all_order_list()] == [placed["orderListId"]]


def test_a_take_profit_leg_that_triggers_expires_the_stop(fake, client):
    client.create_oco_order(**{**PROTECT, "aboveType": "TAKE_PROFIT", "abovePrice": None, "aboveStopPrice": "61000.00"})

    fake.set_price("BTCUSDT", "61500.00")

    assert order(client, "kp-tp-1")["status"] == "FILLED" and order(client, "kp-sl-1")["expiryReason"] == "OCO_TRIGGER"


@pytest.mark.parametrize(("params", "code", "msg"), [
    ({"belowStopPrice": "60500.00", "belowPrice": "60400.00"}, -2010, "The relationship of the prices for the orders is not correct."),
    ({"abovePrice": "59500.00"}, -2010, "The relationship of the prices for the orders is not correct."),
    ({"aboveType": "STOP_LOSS", "abovePrice": None, "aboveStopPrice": "61000.00",
      "belowType": "LIMIT_MAKER", "belowPrice": "59000.00", "belowStopPrice": None, "belowTimeInForce": None},
     -1166, "A limit order in a sell OCO must be above."),
    ({"aboveType": "STOP_LOSS", "abovePrice": None, "aboveStopPrice": "61000.00",
      "belowType": "TAKE_PROFIT", "belowPrice": None, "belowStopPrice": "59000.00", "belowTimeInForce": None},
     -1199, "A take profit order in a sell OCO must be above."),
    ({"belowType": "LIMIT_MAKER", "belowStopPrice": None, "belowTimeInForce": None}, -1168, "At least one OCO order must be contingent."),
    ({"aboveType": "MARKET", "abovePrice": None}, -1158, "Order type not supported in OCO."),
    ({"aboveType": None}, -1102, "Mandatory parameter 'aboveType' was not sent, was empty/null, or malformed."),
    ({"belowTimeInForce": None}, -1102, "Mandatory parameter 'belowTimeInForce' was not sent, was empty/null, or malformed."),
    ({"aboveTimeInForce": "GTC"}, -1106, "Parameter 'aboveTimeInForce' sent when not required."),
    ({"quantity": "1"}, -2010, "Account has insufficient balance for requested action."),
])
def test_oco_rejections_use_the_reference_codes(client, params, code, msg):
    request = {k: v for k, v in {**PROTECT, **params}.items() if v is not None}

    err = api_error(lambda: client.create_oco_order(**request))

    assert (err.code, err.message) == (code, msg)


def test_oco_gates_and_duplicate_list_ids(fake, client):
    client.create_oco_order(**PROTECT)
    dup = api_error(lambda: client.create_oco_order(**{**PROTECT, "aboveClientOrderId": "x1", "belowClientOrderId": "x2"}))
    leg_dup = api_error(lambda: client.create_oco_order(**{**PROTECT, "listClientOrderId": "other"}))
    fake.set_symbol("BTCUSDT", ocoAllowed=False)
    gated = api_error(lambda: client.create_oco_order(**{**PROTECT, "listClientOrderId": "third"}))

    assert (dup.code, dup.message) == (-2010, "Duplicate order sent.")
    assert (leg_dup.code, leg_dup.message) == (-2010, "Duplicate order sent.")
    assert (gated.code, gated.message) == (-2010, "OCO orders are not supported for this symbol")


def test_cancel_a_list_by_its_client_id_and_by_a_leg(fake, client):
    first = client.create_oco_order(**PROTECT)
    second = client.create_oco_order(**{**PROTECT, "listClientOrderId": "kp-prot-2", "aboveClientOrderId": "kp-tp-2",
                                        "belowClientOrderId": "kp-sl-2"})

    by_list = client.v3_delete_order_list(symbol="BTCUSDT", listClientOrderId="kp-prot-1", newClientOrderId="kp-cancel-1")
    by_leg = client.cancel_order(symbol="BTCUSDT", origClientOrderId="kp-tp-2")
    again = api_error(lambda: client.v3_delete_order_list(symbol="BTCUSDT", orderListId=first["orderListId"]))

    assert (by_list["listStatusType"], by_list["listOrderStatus"]) == ("ALL_DONE", "ALL_DONE")
    assert {(r["origClientOrderId"], r["clientOrderId"], r["status"]) for r in by_list["orderReports"]} == {
        ("kp-tp-1", "kp-cancel-1", "CANCELED"), ("kp-sl-1", "kp-cancel-1", "CANCELED")}
    assert by_leg["orderListId"] == second["orderListId"] and by_leg["listOrderStatus"] == "ALL_DONE"
    assert order(client, "kp-sl-2")["status"] == "CANCELED"
    assert (again.code, again.message) == (-2011, "Order list does not exist.")
    assert balance(client, "BTC") == (Decimal("0.05"), Decimal("0"))


def test_cancel_all_open_orders_answers_lists_as_lists(fake, client):
    client.create_oco_order(**PROTECT)
    client.create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="50000.00")

    answers = client.cancel_all_open_orders(symbol="BTCUSDT")
    nothing = api_error(lambda: client.cancel_all_open_orders(symbol="BTCUSDT"))

    assert sorted("orderListId" in a and "contingencyType" in a for a in answers) == [False, True]
    assert (nothing.code, nothing.message) == (-2011, "Unknown order sent.") and client.get_open_orders() == []


OTO = dict(symbol="BTCUSDT", listClientOrderId="kp-entry-1", workingType="LIMIT", workingSide="BUY", workingPrice="59000.00",
           workingQuantity="0.01", workingTimeInForce="GTC", workingClientOrderId="kp-in-1", pendingType="STOP_LOSS",
           pendingSide="SELL", pendingQuantity="0.01", pendingStopPrice="57000.00", pendingClientOrderId="kp-stop-1")


def test_an_oto_places_its_pending_stop_only_when_the_working_order_fills(fake, client):
    placed = client.v3_post_order_list_oto(**OTO)
    pending_before = order(client, "kp-stop-1")

    fake.set_price("BTCUSDT", "59000.00")
    pending_after = order(client, "kp-stop-1")
    fake.set_price("BTCUSDT", "56900.00")

    reports = {r["clientOrderId"]: r for r in placed["orderReports"]}
    assert placed["contingencyType"] == "OTO" and reports["kp-stop-1"]["status"] == "PENDING_NEW"
    assert (pending_before["status"], pending_before["workingTime"]) == ("PENDING_NEW", -1)
    assert order(client, "kp-in-1")["status"] == "FILLED" and pending_after["status"] == "NEW"
    assert order(client, "kp-stop-1")["status"] == "FILLED"
    assert client.v3_get_order_list(origClientOrderId="kp-entry-1")["listOrderStatus"] == "ALL_DONE"


def test_a_working_order_filled_at_once_answers_the_pending_leg_still_pending(fake, client):
    placed = client.v3_post_order_list_oto(**{**OTO, "workingPrice": "61000.00"})

    reports = {r["clientOrderId"]: r["status"] for r in placed["orderReports"]}
    assert reports == {"kp-in-1": "FILLED", "kp-stop-1": "PENDING_NEW"}
    assert order(client, "kp-stop-1")["status"] == "NEW"  # re-query: it is working now


def test_a_working_order_that_expires_expires_the_pending_leg(fake, client):
    client.v3_post_order_list_oto(**{**OTO, "workingTimeInForce": "IOC"})

    got = order(client, "kp-stop-1")

    assert order(client, "kp-in-1")["expiryReason"] == "UNFILLED_IOC_QUANTITY_EXPIRED"
    assert (got["status"], got["expiryReason"]) == ("EXPIRED", "OTO_PHASE_ONE_EXPIRED")


OTOCO = dict(symbol="BTCUSDT", listClientOrderId="kp-bracket-1", workingType="LIMIT", workingSide="BUY", workingPrice="59000.00",
             workingQuantity="0.01", workingTimeInForce="GTC", workingClientOrderId="kp-in-2", pendingSide="SELL",
             pendingQuantity="0.01", pendingAboveType="LIMIT_MAKER", pendingAbovePrice="62000.00", pendingAboveClientOrderId="kp-tp-3",
             pendingBelowType="STOP_LOSS", pendingBelowStopPrice="57000.00", pendingBelowClientOrderId="kp-sl-3")


def test_an_otoco_releases_its_bracket_on_the_entry_fill_and_the_bracket_is_one_cancels_the_other(fake, client):
    placed = client.v3_post_order_list_otoco(**OTOCO)
    open_lists = client.get_open_oco_orders()

    fake.trade("BTCUSDT", "59000.00", "62000.00")

    assert placed["contingencyType"] == "OTO" and len(placed["orderReports"]) == 3
    assert [x["listClientOrderId"] for x in open_lists] == ["kp-bracket-1"]
    assert order(client, "kp-in-2")["status"] == "FILLED" and order(client, "kp-tp-3")["status"] == "FILLED"
    assert (order(client, "kp-sl-3")["status"], order(client, "kp-sl-3")["expiryReason"]) == ("EXPIRED", "OCO_TRIGGER")
    assert client.v3_get_order_list(orderListId=placed["orderListId"])["listOrderStatus"] == "ALL_DONE"
    assert client.get_open_oco_orders() == []


def test_list_queries_and_unknown_lists(fake, client):
    placed = client.create_oco_order(**PROTECT)

    by_id = client.v3_get_order_list(orderListId=placed["orderListId"])
    by_cid = client.v3_get_order_list(origClientOrderId="kp-prot-1")
    missing = api_error(lambda: client.v3_get_order_list(orderListId=999))
    none = api_error(lambda: client.v3_get_order_list())

    assert by_id == by_cid and {o["clientOrderId"] for o in by_id["orders"]} == {"kp-tp-1", "kp-sl-1"}
    assert (missing.code, missing.message) == (-2013, "Order list does not exist.")
    assert (none.code, none.message) == (-1102, "Param 'orderListId' or 'origClientOrderId' must be sent, but both were empty/null!")
