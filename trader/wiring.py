"""The trader's parts built from its settings, for the composition root (``trader/__main__.py``): the sleeves, the
risk configuration, the broker (paper, or Binance testnet / Demo Mode / live through python-binance), the database
connector and the notification drainer. Nothing here reads the environment: the settings object is the input."""

from __future__ import annotations

import psycopg2

from klinepipe.dsn import libpq_dsn
from trader.brokers.paper import PaperBroker
from trader.config import TraderSettings
from trader.dependencies import DependencyDown, wait_for
from trader.errors import FatalError, TraderError
from trader.risk.exposure import MaxExposure
from trader.risk.killswitch import KillLimits, KillPolicy
from trader.risk.order_rate import MaxOrderRate
from trader.risk.staleness import StaleData
from trader.sleeve import OrderSettings, RiskConfig, Sleeve
from trader.strategies import build_strategy
from trader.transaction import db_candles

DEMO_REST_URL = "https://demo-api.binance.com"  # Binance Demo Mode (2026-01-29): live-identical, play money


def build_sleeves(settings: TraderSettings) -> list[Sleeve]:
    return [Sleeve(name=spec.name, symbol=spec.symbol, interval=spec.interval, orders=spec.orders or OrderSettings(),
                   protection=spec.protection,
                   strategy=build_strategy(spec.strategy, **spec.params), allocation=spec.allocation or settings.order_quote)
            for spec in settings.sleeve_specs()]


def build_risk(settings: TraderSettings) -> RiskConfig:
    rules = (StaleData(settings.stale_intervals), MaxExposure(settings.max_symbol_notional, settings.max_total_notional),
             MaxOrderRate(settings.max_orders_per_minute, 60))
    return RiskConfig(rules, KillLimits(settings.max_daily_loss, settings.max_drawdown), settings.effective_staleness_basis(),
                      settings.order_type, settings.limit_tif, settings.limit_offset_bps,
                      KillPolicy(on_reducing=settings.kill_reducing, on_halted=settings.kill_halted))


def rest_base(settings: TraderSettings) -> str | None:
    """The REST base orders go to: ``TRADER_BINANCE_REST_URL``, else Demo Mode's for ``demo``, else python-binance's
    own for the mode (``None``)."""
    return settings.binance_rest_url or (DEMO_REST_URL if settings.mode == "demo" else None)


def build_broker(settings: TraderSettings, connect):
    """The paper broker, or the Binance one once Binance answers (waiting up to TRADER_STARTUP_WAIT)."""
    if settings.mode == "paper":
        return PaperBroker(db_candles(connect), fee_bps=settings.fee_bps, slippage_bps=settings.slippage_bps, qty_step=settings.qty_step)
    from trader.brokers.binance_errors import classify

    broker = _binance_broker(settings)

    def down(exc: Exception) -> TraderError:
        err = classify(exc)
        return err if isinstance(err, FatalError) else DependencyDown(f"Binance ({settings.mode}) unreachable: {err}")

    wait_for(broker.sync_time, down, settings.startup_wait, settings.retry_max_delay)
    broker.check_self_trade_prevention(sorted({spec.symbol for spec in settings.sleeve_specs()}))
    return broker


def _binance_broker(settings: TraderSettings):
    """A Binance broker on its own python-binance ``Client`` (one per thread: a ``requests`` session is not shared)."""
    from binance import Client

    from trader.brokers.binance import BinanceBroker

    key, secret = settings.api_credentials()
    client = Client(key.get_secret_value(), secret.get_secret_value(), testnet=settings.mode == "testnet",
                    demo=settings.mode == "demo", ping=False)
    base = rest_base(settings)
    if base:
        client.API_URL = client.API_TESTNET_URL = client.API_DEMO_URL = f"{base}/api"
    client.REQUEST_RECVWINDOW = settings.recv_window
    return BinanceBroker(client, settings.mode, fee_bps=settings.fee_bps, stp_mode=settings.self_trade_prevention or None)


def ws_api_base(settings: TraderSettings) -> str | None:
    """The WebSocket API the user data stream subscribes on: ``TRADER_BINANCE_WS_API_URL``, else the one beside
    ``TRADER_BINANCE_REST_URL`` (``http`` -> ``ws``, ``/ws-api/v3``: how the local fake serves both), else
    python-binance's own for the mode (``None``; demo: ``wss://demo-ws-api.binance.com/ws-api/v3``)."""
    if settings.binance_ws_api_url:
        return settings.binance_ws_api_url
    if settings.binance_rest_url:
        return "ws" + settings.binance_rest_url.removeprefix("http") + "/ws-api/v3"
    return None


def build_user_stream(settings: TraderSettings, connect, emit=lambda line: None):
    """The user data stream on its own thread, not started (``None`` in paper mode or with ``TRADER_USER_STREAM=false``):
    python-binance's ``AsyncClient`` on the mode's (or the configured) REST and WebSocket API bases, and for its REST
    catch-up a broker and database connection of its own."""
    if settings.mode == "paper" or not settings.user_stream:
        return None
    from binance import AsyncClient

    from trader.execution import Executor
    from trader.user_stream import UserStream, refresh_open_orders
    from trader.user_stream_thread import UserStreamThread, announcing, reconnecting, recording

    key, secret = settings.api_credentials()
    urls: dict = {}
    if rest_base(settings):
        urls |= dict.fromkeys(("API_URL", "API_TESTNET_URL", "API_DEMO_URL"), f"{rest_base(settings)}/api")
    if ws_api_base(settings):
        urls |= dict.fromkeys(("WS_API_URL", "WS_API_TESTNET_URL", "WS_API_DEMO_URL"), ws_api_base(settings))
    client_class = type("TraderAsyncClient", (AsyncClient,), urls)

    async def client():
        made = await client_class.create(key.get_secret_value(), secret.get_secret_value(), testnet=settings.mode == "testnet",
                                         demo=settings.mode == "demo")
        made.ws_api.TIMEOUT = USER_STREAM_WS_TIMEOUT
        return made

    transaction = reconnecting(connect)
    rest = Executor(transaction, _binance_broker(settings), lambda seconds: None)

    def catch_up() -> None:
        rest.broker.sync_time()  # raises when Binance is away: a gap, retried with the stream's backoff
        refresh_open_orders(rest, transaction)

    stream = UserStream(client, transaction, settings.mode, catch_up, max_wait=settings.retry_max_delay,
                        on_fill=announcing(emit), on_state=recording(transaction))
    return UserStreamThread(stream)


USER_STREAM_WS_TIMEOUT = 3.0  # python-binance's ws_api wait for an answer, and how long closing it may take (default 10)


def connector(settings: TraderSettings):
    dsn = libpq_dsn(settings.database_url)
    return lambda: psycopg2.connect(dsn)


def build_channels(settings: TraderSettings) -> list:
    """The configured notification channels (none: notifications stay in the outbox, told to no one)."""
    from trader.notify.channels import TelegramChannel, WebhookChannel

    channels: list = []
    if settings.notify_webhook_url is not None:
        channels.append(WebhookChannel(settings.notify_webhook_url, settings.webhook_secret()))
    token = settings.telegram_token()
    if token is not None:
        channels.append(TelegramChannel(settings.telegram_api_url, token, settings.telegram_chat_id))
    return channels


def build_drainer(settings: TraderSettings, connect):
    """The notification drainer of the mode, not started (``None`` when no channel is configured)."""
    from trader.notify.drainer import NotificationDrainer

    channels = build_channels(settings)
    if not channels:
        return None
    return NotificationDrainer(connect, settings.mode, channels, rate_per_minute=settings.notify_rate_per_minute,
                               max_delay=settings.notify_max_delay, max_age_hours=settings.notify_max_age_hours)
