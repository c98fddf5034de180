"""A local fake of Binance Spot REST and the WebSocket API user data stream, faithful to
``shared/reference/binance-spot-api.md`` and ``shared/reference/binance-protective-orders.md``.

Use from tests::

    from tests.fake_binance import FakeBinance, Fault
    from tests.helpers import sample_rows

    with FakeBinance() as fake:                        # thread, free port; fake.url, fake.api_url, fake.ws_api_url
        fake.add_symbol("BTCUSDT", "BTC", "USDT")      # filters shaped like live BTCUSDT
        fake.seed_klines("BTCUSDT", "1m", sample_rows(1500))   # served by /api/v3/klines; sets the price
        fake.deposit("USDT", "10000")                  # stream=True: also a balanceUpdate on the user data stream
        fake.inject(Fault("GET", "/api/v3/klines", 429, -1003, retry_after=3))       # next call only
        fake.inject(Fault("POST", "/api/v3/order", 503, -1007, after_execute=True))  # placed, answer lost
        fake.set_skew(-3000)                           # server clock 3 s behind the client
        fake.set_price("BTCUSDT", "61000.00")          # one trade: fills resting LIMITs, triggers stops it reaches
        fake.trade("BTCUSDT", "61500", "60900")        # a run of trades (trailing stops see each)
        fake.set_symbol("BTCUSDT", status="CANCEL_ONLY", ocoAllowed=False)   # exchangeInfo fields by wire name
        fake.drop_user_streams(); fake.terminate_user_streams(); fake.shutdown_user_streams()
        client = binance_client(fake, signed=True)     # tests.helpers: python-binance pointed at the fake
        aclient = await clients.async_client(fake)     # AsyncClient with API_URL and WS_API_URL on the fake

In a test, the ``fake_binance`` factory fixture (``tests/conftest.py``) starts one with BTCUSDT listed and stops it
afterwards: ``fake_binance(price="60000.00", usdt="10000")``, ``fake_binance(klines=sample_rows(1500))``.
``FakeState(weight_limit=N)`` answers 429 + ``Retry-After`` + -1003 once a minute's weight passes N;
``FakeState(ws_ping_interval=s)`` sets the WebSocket API's ping period (20 s).
Standalone: ``python -m tests.fake_binance --port 8080 [--seed data/sample/BTCUSDT-1m.csv.gz]``.

Modules: ``app`` (REST routes), ``wsapi`` (WebSocket API), ``engine`` (account, matching), ``lists`` (order lists),
``triggers`` (stop and trailing rules), ``rules`` (status, flags, filters), ``reports`` (wire shapes, events),
``signing``, ``market``, ``state``, ``server``, ``clients`` (python-binance on the fake), ``ws`` (market streams).

What it covers of the checklist in binance-protective-orders.md section 6:

=====================================================  =========  ======================================================
Checklist item                                         Covered    How / what is left out
=====================================================  =========  ======================================================
1 exchangeInfo flags and filters, switchable           yes        ``set_symbol``: status (incl. CANCEL_ONLY), orderTypes,
                                                                  oco/otoAllowed, allowTrailingStop, STP modes, filters;
                                                                  opo/amend/cancelReplace listed as false (not served)
2 price feed = trades, stops on each trade             yes        inclusive rules, gaps, prints at the stop; trailing
                                                                  peaks; several stops on one trade in orderId order
3 validation codes                                     yes        -1102, -1106, -1114, -1115..-1117, -1121, flags
                                                                  (-2010 "... not supported for this symbol."), -1013
                                                                  filters (PRICE_FILTER on price and stopPrice,
                                                                  LOT_SIZE, NOTIONAL, TRAILING_DELTA, MAX_NUM_ORDERS,
                                                                  MAX_NUM_ALGO_ORDERS, MAX_NUM_ORDER_LISTS), immediate
                                                                  trigger, balance; not PERCENT_PRICE_BY_SIDE, icebergs
4 order states                                         yes        stop NEW (workingTime -1) -> trigger -> TRADE ->
                                                                  FILLED or EXPIRED + expiryReason; CANCELED (c/C);
                                                                  ACK default for stops; partial fills never happen
5 list states                                          yes        OCO, OTO, OTOCO ("OTO"); OCO_TRIGGER; PENDING_NEW until
                                                                  FILLED; cancel a leg = cancel the list; price
                                                                  relations; not OPO/OPOCO, amend, deprecated order/oco
6 event order                                          yes        executionReport per change, listStatus, then one
                                                                  outboundAccountPosition per action (same E)
7 balances: lock at placement, unlock on cancel        yes        stops lock at placement; an OCO holds one lock (the
                                                                  larger leg); pending legs lock when released (inferred)
8 WS API: subscribe.signature, -2035, unsubscribe,     yes        also session.status, -2036, balanceUpdate, pings with
  eventStreamTerminated, session.subscriptions, pings,            a pong deadline, serverShutdown; not session.logon /
  forced disconnects                                              userDataStream.subscribe (Ed25519), order.* over WS,
                                                                  24 h cut, ?timeUnit
9 REST signing over the raw query + body; -1022/-1021  yes        over the percent-encoded payload (2026-01-15);
                                                                  recvWindow default 5000, max 60000, 3 decimals, µs;
                                                                  HMAC only (no RSA/Ed25519 keys)
STP (5)                                                partly     mode validated against allowed modes and echoed
                                                                  (V in events); the fake's orders never meet each other,
                                                                  so no EXPIRED_IN_MATCH / TRADE_PREVENTION
Price Range Execution Rule, referencePrice (5)         no
=====================================================  =========  ======================================================
"""

from tests.fake_binance.market import SymbolInfo, default_filters
from tests.fake_binance.server import FakeBinance, free_port
from tests.fake_binance.state import Fault, FakeState

__all__ = ["FakeBinance", "FakeState", "Fault", "SymbolInfo", "default_filters", "free_port"]
