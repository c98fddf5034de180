"""The fake's WebSocket API user data stream (binance-protective-orders.md 4 and 6.8), with python-binance's own
``BinanceSocketManager.user_socket`` (``userDataStream.subscribe.signature``) and with a raw client for the framing."""

import asyncio
import json
import time

import aiohttp
import pytest
import websockets
from binance import BinanceSocketManager
from binance.exceptions import BinanceAPIException

from tests.fake_binance import FakeState
from tests.fake_binance.clients import async_client
from tests.fake_binance.signing import sign, ws_payload

WAIT = 5.0  # seconds an expected frame may take on a busy machine (not a timed assertion: only a hang guard)


@pytest.fixture
def fake(fake_binance):
    fake = fake_binance(price="60000.00", usdt="10000")
    fake.deposit("BTC", "0.05")
    return fake


async def next_events(socket, n: int) -> list[dict]:
    return [await asyncio.wait_for(socket.recv(), WAIT) for _ in range(n)]


def kinds(events: list[dict]) -> list[str]:
    return [e["e"] + (f":{e['x']}:{e['X']}" if e["e"] == "executionReport" else f":{e['l']}" if e["e"] == "listStatus" else "")
            for e in events]


def run_with_user_socket(fake, body):
    """Run ``body(client, socket)`` inside python-binance's user socket on the fake."""
    async def main():
        client = await async_client(fake)
        try:
            async with BinanceSocketManager(client).user_socket() as socket:
                return await body(client, socket)
        finally:
            await client.close_connection()
    return asyncio.run(main())


def test_python_binance_user_socket_gets_execution_reports_for_a_market_and_a_limit_fill(fake):
    async def body(client, socket):
        market = await client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01", newClientOrderId="kp-m-1")
        on_market = await next_events(socket, 3)
        await client.create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01",
                                  price="59000.00", newClientOrderId="kp-l-1")
        placed = await next_events(socket, 2)
        fake.set_price("BTCUSDT", "58990.00")
        filled = await next_events(socket, 2)
        return market, on_market, placed, filled

    market, on_market, placed, filled = run_with_user_socket(fake, body)

    assert kinds(on_market) == ["executionReport:NEW:NEW", "executionReport:TRADE:FILLED", "outboundAccountPosition"]
    trade = on_market[1]
    assert (trade["c"], trade["i"], trade["l"], trade["L"], trade["z"], trade["t"]) == (
        "kp-m-1", market["orderId"], "0.01000000", "60000.00000000", "0.01000000", market["fills"][0]["tradeId"])
    assert on_market[2]["E"] == trade["E"] and {b["a"] for b in on_market[2]["B"]} == {"BTC", "USDT"}
    assert kinds(placed) == ["executionReport:NEW:NEW", "outboundAccountPosition"] and placed[0]["w"] is True
    assert kinds(filled) == ["executionReport:TRADE:FILLED", "outboundAccountPosition"]
    assert (filled[0]["c"], filled[0]["L"], filled[0]["Z"]) == ("kp-l-1", "58990.00000000", "589.90000000")
    assert trade["I"] < placed[0]["I"] < filled[0]["I"]


def test_python_binance_user_socket_gets_list_status_for_an_oco_and_its_trigger(fake):
    async def body(client, socket):
        await client.create_oco_order(symbol="BTCUSDT", side="SELL", quantity="0.01", listClientOrderId="kp-oco-1",
                                      aboveType="LIMIT_MAKER", abovePrice="62000.00", aboveClientOrderId="kp-tp-1",
                                      belowType="STOP_LOSS", belowStopPrice="58000.00", belowClientOrderId="kp-sl-1")
        placed = await next_events(socket, 4)
        fake.set_price("BTCUSDT", "57990.00")
        triggered = await next_events(socket, 4)
        return placed, triggered

    placed, triggered = run_with_user_socket(fake, body)

    assert kinds(placed) == ["executionReport:NEW:NEW", "executionReport:NEW:NEW", "listStatus:EXEC_STARTED", "outboundAccountPosition"]
    status = placed[2]
    assert (status["c"], status["L"], status["C"]) == ("OCO", "EXECUTING", "kp-oco-1")
    assert {o["c"] for o in status["O"]} == {"kp-tp-1", "kp-sl-1"} and placed[0]["g"] == placed[1]["g"] == status["g"]
    assert kinds(triggered) == ["executionReport:EXPIRED:EXPIRED", "executionReport:TRADE:FILLED", "listStatus:ALL_DONE",
                                "outboundAccountPosition"]
    assert (triggered[0]["c"], triggered[0]["eR"], triggered[1]["c"]) == ("kp-tp-1", "OCO_TRIGGER", "kp-sl-1")
    assert triggered[2]["L"] == "ALL_DONE"


def test_terminate_sends_event_stream_terminated_to_the_python_binance_user_socket(fake):
    async def main():
        client = await async_client(fake)
        socket = BinanceSocketManager(client).user_socket()
        await socket.__aenter__()
        try:
            ended = fake.terminate_user_streams()
            return ended, await next_events(socket, 1), fake.user_stream_subscriptions()
        finally:
            with pytest.raises(BinanceAPIException) as err:  # python-binance unsubscribes on exit: the stream is gone
                await socket.__aexit__(None, None, None)
            await client.close_connection()
            assert err.value.code == -2036

    ended, terminated, subscriptions = asyncio.run(main())

    assert ended == 1 and terminated[0]["e"] == "eventStreamTerminated" and subscriptions == [[]]


def test_drop_cuts_the_connection_without_a_close_frame(fake):
    async def main():
        async with websockets.connect(fake.ws_api_url) as ws:
            await ws.send(subscribe_request(fake, 1))
            await asyncio.wait_for(ws.recv(), WAIT)
            dropped = fake.drop_user_streams()
            with pytest.raises(websockets.ConnectionClosedError) as err:
                await asyncio.wait_for(ws.recv(), WAIT)
            return dropped, err.value.rcvd

    dropped, close_frame = asyncio.run(main())

    assert dropped == 1 and close_frame is None


def subscribe_request(fake, ident, secret=None, **extra) -> str:
    params = {"apiKey": fake.api_key, "timestamp": int(time.time() * 1000), **extra}
    params["signature"] = sign(secret or fake.api_secret, ws_payload(params))
    return json.dumps({"id": ident, "method": "userDataStream.subscribe.signature", "params": params})


def test_ws_api_framing_subscription_rules_and_errors(fake):
    async def main():
        async with websockets.connect(fake.ws_api_url) as ws:
            async def ask(text):
                await ws.send(text)
                return json.loads(await asyncio.wait_for(ws.recv(), WAIT))
            out = {"bad_sig": await ask(subscribe_request(fake, "a", secret="x" * 64)),
                   "sub": await ask(subscribe_request(fake, "b")),
                   "again": await ask(subscribe_request(fake, "c")),
                   "subs": await ask('{"id":"d","method":"session.subscriptions"}'),
                   "status": await ask('{"id":"e","method":"session.status"}'),
                   "unsub_unknown": await ask('{"id":"f","method":"userDataStream.unsubscribe","params":{"subscriptionId":7}}'),
                   "unsub": await ask('{"id":"g","method":"userDataStream.unsubscribe"}')}
            out["terminated"] = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
            out["junk"] = await ask("not json")
            return out

    out = asyncio.run(main())

    assert (out["bad_sig"]["status"], out["bad_sig"]["error"]) == (400, {"code": -1022, "msg": "Signature for this request is not valid."})
    assert out["sub"]["status"] == 200 and out["sub"]["result"] == {"subscriptionId": 0} and out["sub"]["rateLimits"]
    assert out["again"]["error"] == {"code": -2035, "msg": "User Data Stream subscription already active."}
    assert out["subs"]["result"] == [{"subscriptionId": 0}] and out["status"]["result"]["userDataStream"] is True
    assert out["unsub_unknown"]["error"] == {"code": -2036, "msg": "User Data Stream subscription not active."}
    assert (out["unsub"]["id"], out["unsub"]["result"]) == ("g", {})
    assert out["terminated"]["subscriptionId"] == 0 and out["terminated"]["event"]["e"] == "eventStreamTerminated"
    assert out["junk"]["error"]["code"] == -1135


def test_a_stale_timestamp_is_refused_on_subscribe(fake):
    async def main():
        async with websockets.connect(fake.ws_api_url) as ws:
            await ws.send(subscribe_request(fake, 1, timestamp=int(time.time() * 1000) - 6_000))
            return json.loads(await asyncio.wait_for(ws.recv(), WAIT))

    reply = asyncio.run(main())

    assert reply["error"] == {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}


def test_balance_update_on_a_deposit(fake):
    async def body(client, socket):
        fake.deposit("USDT", "250", stream=True)
        return await next_events(socket, 2)

    events = run_with_user_socket(fake, body)

    assert [e["e"] for e in events] == ["balanceUpdate", "outboundAccountPosition"]
    assert (events[0]["a"], events[0]["d"]) == ("USDT", "250.00000000")
    assert events[1]["B"] == [{"a": "USDT", "f": "10250.00000000", "l": "0.00000000"}]


def test_the_server_pings_and_drops_a_client_that_never_pongs(fake_binance):
    fake = fake_binance(state=FakeState(ws_ping_interval=0.2))

    async def main():
        async with aiohttp.ClientSession() as http, http.ws_connect(fake.ws_api_url, autoping=False) as ws:
            first = await asyncio.wait_for(ws.receive(), WAIT)
            while (msg := await asyncio.wait_for(ws.receive(), WAIT)).type == aiohttp.WSMsgType.PING:
                pass  # never answered
            return first.type, msg.type

    first, last = asyncio.run(main())

    assert first == aiohttp.WSMsgType.PING
    assert last in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
