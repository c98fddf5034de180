"""Settings of the trader, validated once at start (env ``TRADER_*``, ``DATABASE_URL``, ``BINANCE_API_*``).

``TRADER_BINANCE_REST_URL`` is the REST base (no ``/api``, like the pipeline's ``BINANCE_REST_URL``) of the account
the orders go to; unset, python-binance's own for the mode (testnet or live). It is the trader's own setting, not
``BINANCE_REST_URL``: a market-data base set for the pipeline must never redirect orders made with real keys.
``TRADER_BINANCE_API_URL`` (``/api`` included) is its deprecated name, still read with a warning.

Secrets: the Binance key and secret come only from ``BINANCE_API_KEY``/``BINANCE_API_SECRET`` or from the
file named by ``TRADER_BINANCE_KEY_FILE`` (``BINANCE_API_KEY=...`` / ``BINANCE_API_SECRET=...`` lines, or
the key on the first line and the secret on the second). They are ``SecretStr``: never printed, logged
or stored; ``repr`` shows ``**********``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
import re
from decimal import Decimal
from ipaddress import IPv4Address
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, IPvAnyAddress, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from trader.errors import ConfigError
from trader.sleeve import SleeveSpec


log = logging.getLogger(__name__)
DEPRECATED = {"TRADER_BINANCE_API_URL": "TRADER_BINANCE_REST_URL"}  # old name -> the one name, still read (with a warning)


class SettingsError(ConfigError):
    """An invalid setting; the message names it."""


class TraderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRADER_", frozen=True)

    mode: Literal["paper", "testnet", "demo", "live"] = "paper"
    database_url: str = Field(validation_alias=AliasChoices("TRADER_DATABASE_URL", "DATABASE_URL"))
    sleeves: Annotated[tuple[str, ...], NoDecode] = ("BTCUSDT:1m:sma_cross",)
    strategy_params: dict[str, dict[str, int | float | str]] = Field(default_factory=lambda: {"sma_cross": {"fast": 10, "slow": 30}})
    sleeves_file: Path | None = Field(None, description="TOML file of [[sleeve]] tables (trader.sleeves_file), instead of "
                                                        "TRADER_SLEEVES and TRADER_STRATEGY_PARAMS")
    strategy_dir: Path | None = Field(None, description="directory of the user's own strategies (trader.strategies.user_dir)")
    order_quote: Decimal = Field(Decimal("1000"), gt=0, description="quote spent per entry unless the sleeve names its own")
    order_type: Literal["MARKET", "LIMIT"] = "MARKET"
    limit_tif: Literal["GTC", "IOC"] = "GTC"
    limit_offset_bps: Decimal = Field(Decimal("0"), ge=0, description="LIMIT price this far inside the close")
    qty_step: Decimal = Field(Decimal("0.00001"), gt=0, description="paper: quantity step (LOT_SIZE stepSize)")
    fee_bps: Decimal = Field(Decimal("10"), ge=0)
    slippage_bps: Decimal = Field(Decimal("0"), ge=0)
    paper_balance: Decimal = Field(Decimal("10000"), ge=0, description="starting quote balance of the paper account")
    poll_interval: float = Field(5.0, gt=0, description="seconds between polls when no NOTIFY arrives")
    metrics_port: int = Field(9102, ge=0, le=65535, description="Prometheus /metrics port (0 = off)")
    metrics_host: IPvAnyAddress = Field(IPv4Address("127.0.0.1"), description="address /metrics listens on (0.0.0.0 in a container)")
    max_symbol_notional: Decimal = Field(Decimal("5000"), ge=0, description="0: no limit")
    max_total_notional: Decimal = Field(Decimal("20000"), ge=0, description="0: no limit")
    max_orders_per_minute: int = Field(10, ge=0, description="0: no limit")
    max_daily_loss: Decimal = Field(Decimal("0.05"), ge=0, le=1, description="fraction of the day's starting equity")
    max_drawdown: Decimal = Field(Decimal("0.15"), ge=0, le=1, description="fraction below the peak equity")
    stale_intervals: float = Field(2.0, ge=0, description="no entries when the newest candle is older; 0: off")
    staleness_basis: Literal["auto", "close_time", "ingested_at"] = "auto"
    binance_api_key: SecretStr | None = Field(None, validation_alias=AliasChoices("BINANCE_API_KEY", "TRADER_BINANCE_API_KEY"))
    binance_api_secret: SecretStr | None = Field(None, validation_alias=AliasChoices("BINANCE_API_SECRET", "TRADER_BINANCE_API_SECRET"))
    binance_key_file: Path | None = None
    binance_rest_url: str | None = Field(None, validation_alias=AliasChoices("TRADER_BINANCE_REST_URL", "TRADER_BINANCE_API_URL"),
                                        description="REST base of the account (no /api), e.g. http://127.0.0.1:8080")
    binance_ws_api_url: str | None = Field(None, description="WebSocket API of the account, e.g. ws://127.0.0.1:8080/ws-api/v3 "
                                                          "(unset: derived from TRADER_BINANCE_REST_URL, else Binance's for the mode)")
    user_stream: bool = Field(True, description="testnet/demo/live: fills from the user data stream as they happen (REST stays the truth)")
    recv_window: int = Field(5000, gt=0, le=60000, description="ms a signed request stays valid (Binance's default 5000)")
    self_trade_prevention: Literal["", "NONE", "EXPIRE_MAKER", "EXPIRE_TAKER", "EXPIRE_BOTH", "DECREMENT", "TRANSFER"] = Field(
        "", description="selfTradePreventionMode sent on every order; empty: not sent (the symbol's default applies)")
    kill_reducing: Literal["flatten", "exits_only"] = Field("flatten", description="REDUCING: close every position now, or block entries only")
    kill_halted: Literal["cancel", "cancel_all", "keep"] = Field(
        "cancel", description="HALTED: cancel open entries/exits and keep the positions' stops working (cancel), cancel the"
        " stops too and place none while halted, new ones on resume (cancel_all), or cancel nothing (keep)")
    notify_webhook_url: SecretStr | None = Field(None, description="JSON POST of every notification (a secret: it may hold a token)")
    notify_webhook_secret: SecretStr | None = Field(None, description="HMAC-SHA256 key: X-Klinepipe-Signature over the body")
    notify_webhook_secret_file: Path | None = None
    telegram_bot_token: SecretStr | None = None
    telegram_bot_token_file: Path | None = None
    telegram_chat_id: str | None = None
    telegram_api_url: str = Field("https://api.telegram.org", description="Bot API base (a stand-in in tests)")
    notify_rate_per_minute: int = Field(20, gt=0, description="messages per minute and channel at most")
    notify_max_delay: float = Field(300.0, gt=0, description="cap of the retry backoff, seconds")
    notify_max_age_hours: float = Field(24.0, gt=0, description="older undelivered messages are dropped, not sent late")
    startup_wait: float = Field(60.0, ge=0, description="seconds to wait at start for PostgreSQL / Binance before exit 1")
    retry_max_delay: float = Field(30.0, gt=0, description="cap of the reconnect backoff while a dependency is down")
    _file_specs: tuple[SleeveSpec, ...] | None = PrivateAttr(None)  # TRADER_SLEEVES_FILE's, read by load_settings

    @field_validator("sleeves", mode="before")
    @classmethod
    def _split(cls, v):
        items = tuple(s.strip() for s in v.split(",") if s.strip()) if isinstance(v, str) else tuple(v)
        for item in items:
            SleeveSpec.parse(item)  # ValueError naming the shape; intervals and strategies: check_strategies
        if not items:
            raise ValueError("at least one sleeve is needed")
        return items

    @field_validator("telegram_api_url")
    @classmethod
    def _base_url(cls, v):
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) URL such as https://api.telegram.org, got {v!r}")
        return v.rstrip("/")

    @field_validator("notify_webhook_secret", "telegram_bot_token")
    @classmethod
    def _not_empty(cls, v):
        if v is not None and not v.get_secret_value().strip():
            raise ValueError("is empty; unset it, or give the secret")
        return v

    @field_validator("telegram_chat_id")
    @classmethod
    def _chat(cls, v):
        if v is not None and not re.fullmatch(r"-?\d+|@\w{5,}", v):
            raise ValueError(f"must be a chat id (e.g. 123456789 or -100123456789) or @channelname, got {v!r}")
        return v

    @field_validator("notify_webhook_url")
    @classmethod
    def _webhook_url(cls, v):
        if v is not None and not v.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")  # the value itself is not repeated: it may hold a token
        return v

    @field_validator("binance_rest_url")
    @classmethod
    def _url(cls, v):
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) URL such as http://127.0.0.1:8080, got {v!r}")
        return v.rstrip("/").removesuffix("/api") if v is not None else None  # /api: the deprecated name's form

    @field_validator("binance_ws_api_url")
    @classmethod
    def _ws_url(cls, v):
        if v is not None and not v.startswith(("ws://", "wss://")):
            raise ValueError(f"must be a ws(s) URL such as ws://127.0.0.1:8080/ws-api/v3, got {v!r}")
        return v

    def sleeve_specs(self) -> tuple[SleeveSpec, ...]:
        """The sleeves of ``TRADER_SLEEVES_FILE``, else ``TRADER_SLEEVES`` parsed, each with its strategy's
        ``TRADER_STRATEGY_PARAMS`` (checked by ``load_settings``)."""
        if self._file_specs is not None:
            return self._file_specs
        return tuple(replace(spec, params=dict(self.strategy_params.get(spec.strategy, {})))
                     for spec in map(SleeveSpec.parse, self.sleeves))

    def api_credentials(self) -> tuple[SecretStr, SecretStr]:
        """The Binance key and secret from the environment or the named key file."""
        key, secret = self.binance_api_key, self.binance_api_secret
        if (key is None or secret is None) and self.binance_key_file is not None:
            key, secret = read_key_file(self.binance_key_file)
        if key is None or secret is None or not key.get_secret_value() or not secret.get_secret_value():
            raise SettingsError(f"TRADER_MODE={self.mode} needs BINANCE_API_KEY and BINANCE_API_SECRET "
                                "(or TRADER_BINANCE_KEY_FILE naming a file that holds them)")
        return key, secret

    def webhook_secret(self) -> SecretStr | None:
        """The webhook's HMAC key from the environment or its named private file (``None``: unsigned)."""
        if self.notify_webhook_secret is not None or self.notify_webhook_secret_file is None:
            return self.notify_webhook_secret
        return SecretStr(read_private_file(self.notify_webhook_secret_file, "TRADER_NOTIFY_WEBHOOK_SECRET_FILE").strip())

    def telegram_token(self) -> SecretStr | None:
        """The Telegram bot token from the environment or its named private file (``None``: no Telegram)."""
        token = self.telegram_bot_token
        if token is None and self.telegram_bot_token_file is not None:
            token = SecretStr(read_private_file(self.telegram_bot_token_file, "TRADER_TELEGRAM_BOT_TOKEN_FILE").strip())
        if token is not None and not self.telegram_chat_id:
            raise SettingsError("TRADER_TELEGRAM_CHAT_ID: needed with a Telegram bot token (the chat the bot writes to)")
        if token is None and self.telegram_chat_id:
            raise SettingsError("TRADER_TELEGRAM_BOT_TOKEN: needed with TRADER_TELEGRAM_CHAT_ID "
                                "(or TRADER_TELEGRAM_BOT_TOKEN_FILE naming a private file that holds it)")
        return token

    def effective_staleness_basis(self) -> str:
        if self.staleness_basis != "auto":
            return self.staleness_basis
        return "ingested_at" if self.mode == "paper" else "close_time"


class BacktestSettings(BaseSettings):
    """The offline commands' settings (``backtest``, ``new-strategy``, ``check-strategy``; everything else is a
    flag): the database of stored candles and the user's strategy directory."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    database_url: str | None = Field(None, validation_alias="DATABASE_URL")
    strategy_dir: Path | None = Field(None, validation_alias="TRADER_STRATEGY_DIR")

    @field_validator("database_url", "strategy_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, v):
        return v or None


def read_private_file(path: Path, setting: str) -> str:
    """The text of the secret file ``path`` (named by ``setting``); refused when group or others may read or write it."""
    try:
        mode = path.stat().st_mode
        if mode & 0o077:
            raise SettingsError(f"{setting}: {path} is readable by others (mode {mode & 0o777:o}); "
                                f"make it private with `chmod 600 {path}`")
        return path.read_text()
    except OSError as exc:
        raise SettingsError(f"{setting}: cannot read {path} ({exc.strerror})") from None


def read_key_file(path: Path) -> tuple[SecretStr, SecretStr]:
    """The key and secret in ``path``; refused when group or others may read or write the file."""
    text = read_private_file(path, "TRADER_BINANCE_KEY_FILE")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    pairs = dict(ln.split("=", 1) for ln in lines if "=" in ln)
    if "BINANCE_API_KEY" in pairs and "BINANCE_API_SECRET" in pairs:
        return SecretStr(pairs["BINANCE_API_KEY"].strip()), SecretStr(pairs["BINANCE_API_SECRET"].strip())
    if len(lines) == 2 and not pairs:
        return SecretStr(lines[0]), SecretStr(lines[1])
    raise SettingsError(f"TRADER_BINANCE_KEY_FILE: {path} must hold BINANCE_API_KEY=... and BINANCE_API_SECRET=... lines")


def load_settings(require_keys: bool = True, **overrides) -> TraderSettings:
    for old, new in DEPRECATED.items():  # one warning line each
        if old in os.environ:
            log.warning("%s is deprecated: name it %s%s", old, new, f"; {new} is set too and wins" if new in os.environ else "")
    try:
        settings = TraderSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        parts = []
        for e in exc.errors():
            name = str(e["loc"][0]) if e["loc"] else "?"
            parts.append(f"{_env_name(name)}: {e['msg'].removeprefix('Value error, ')}")
        raise SettingsError("invalid setting " + "; ".join(parts)) from None
    except SourceError as exc:  # a value pydantic-settings cannot even decode, e.g. TRADER_STRATEGY_PARAMS not JSON
        field = str(exc).split('"')[1] if str(exc).count('"') >= 2 else "?"
        raise SettingsError(f"invalid setting {_env_name(field)}: not valid JSON, e.g. "
                            '\'{"sma_cross": {"fast": 10, "slow": 30}}\'') from None
    from trader.sleeve_checks import check_strategies, read_file_specs  # they build strategies: imported when needed

    if settings.sleeves_file is not None:
        settings._file_specs = read_file_specs(settings)
    check_strategies(settings)
    quotes = {_quote(spec.symbol) for spec in settings.sleeve_specs()}
    if len(quotes) > 1:
        raise SettingsError(f"TRADER_SLEEVES: all sleeves must share one quote asset, got {', '.join(sorted(quotes))}")
    if settings.mode != "paper" and require_keys:
        settings.api_credentials()
    settings.webhook_secret(), settings.telegram_token()  # a bad secret file or a token without a chat: refused now
    return settings


def _env_name(field: str) -> str:
    if field in ("database_url", "DATABASE_URL", "TRADER_DATABASE_URL"):
        return "DATABASE_URL"
    if field.upper() in ("BINANCE_API_KEY", "BINANCE_API_SECRET", "TRADER_BINANCE_API_KEY", "TRADER_BINANCE_API_SECRET"):
        return field.upper().removeprefix("TRADER_")
    if field.upper().startswith("TRADER_"):
        return field.upper()
    return f"TRADER_{field.upper()}"


def _quote(symbol: str) -> str:
    from trader.symbols import split_symbol

    try:
        return split_symbol(symbol.upper())[1]
    except ValueError as exc:
        raise SettingsError(f"TRADER_SLEEVES: {exc}") from None
