"""python-binance pointed at a fake Binance, unmodified apart from base URLs (spot reference 7.3).

``await async_client(fake)`` is an ``AsyncClient`` (REST + its WebSocket API client ``ws_api``) whose only change is
the two base URLs, set as class attributes of a subclass before construction -- so ``BinanceSocketManager(client)
.user_socket()`` subscribes with ``userDataStream.subscribe.signature`` on the fake's ``/ws-api/v3``.
"""

from __future__ import annotations


def async_client_class(fake):
    """An ``AsyncClient`` subclass whose ``API_URL`` and ``WS_API_URL`` are the fake's."""
    from binance import AsyncClient

    return type("FakeBinanceAsyncClient", (AsyncClient,), {"API_URL": fake.api_url, "WS_API_URL": fake.ws_api_url})


async def async_client(fake, *, key: str | None = None, secret: str | None = None, ws_timeout: float = 1.0):
    """``AsyncClient.create`` (it pings and reads the server time) with the fake's key pair unless given.

    ``ws_timeout`` is the ws_api client's ``TIMEOUT`` (10 s by default): its read loop notices a close only at the end
    of a ``recv`` wait, so closing the client costs up to that long; the fake answers in milliseconds."""
    client = await async_client_class(fake).create(key or fake.api_key, secret or fake.api_secret)
    client.ws_api.TIMEOUT = ws_timeout
    return client


def api_error(call):
    """The ``BinanceAPIException`` that ``call()`` raises (fails the test when it raises none)."""
    import pytest
    from binance.exceptions import BinanceAPIException

    with pytest.raises(BinanceAPIException) as err:
        call()
    return err.value
