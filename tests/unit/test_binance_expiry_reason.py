"""``expiryReason`` (Binance, 2026-03-26 on placement RESULT/FULL) is kept on the order report; ``NONE`` is no reason.
The client is a hand-written stub answering with the documented payload shape (binance-spot-api.md)."""

from decimal import Decimal as D

import pytest

from trader.brokers.binance import BinanceBroker
from trader.orders import OrderIntent


class AnsweringClient:
    """Answers ``create_order`` with a recorded IOC expiry, ``expiryReason`` set to ``reason``."""

    def __init__(self, reason):
        self.reason, self.sent = reason, []

    def create_order(self, **params):
        self.sent.append(params)
        answer = {"symbol": "BTCUSDT", "orderId": 28, "orderListId": -1, "clientOrderId": params["newClientOrderId"],
                  "transactTime": 1507725176595, "price": "1.00000000", "origQty": "10.00000000", "executedQty": "0.00000000",
                  "origQuoteOrderQty": "0.000000", "cummulativeQuoteQty": "0.00000000", "status": "EXPIRED",
                  "timeInForce": "IOC", "type": "LIMIT", "side": "BUY", "workingTime": 1507725176595,
                  "selfTradePreventionMode": "EXPIRE_MAKER", "fills": []}
        if self.reason is not None:
            answer["expiryReason"] = self.reason
        return answer


@pytest.mark.parametrize(("reason", "kept"), [("UNFILLED_IOC_QUANTITY_EXPIRED", "UNFILLED_IOC_QUANTITY_EXPIRED"),
                                              ("NONE", None), (None, None)])
def test_the_expiry_reason_of_an_answer_is_kept(reason, kept):
    client = AnsweringClient(reason)
    order = OrderIntent(sleeve="BTCUSDT:1m:x", symbol="BTCUSDT", side="BUY", quantity=D("10"), open_time_ms=1,
                        type="LIMIT", price=D("1"), time_in_force="IOC", mode="live")

    report = BinanceBroker(client, "live", stp_mode="EXPIRE_MAKER").submit(order)

    assert (report.status, report.expiry_reason) == ("EXPIRED", kept)
    assert client.sent[0]["selfTradePreventionMode"] == "EXPIRE_MAKER" and client.sent[0]["price"] == "1"
