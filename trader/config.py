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
from decimal import Decimal
from ipaddress import IPv4Address
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, IPvAnyAddress, SecretStr, ValidationError, field_validator
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

    mode: Literal["paper", "testnet", "live"] = "paper"
    database_url: str = Field(validation_alias=AliasChoices("TRADER_DATABASE_URL", "DATABASE_URL"))
    sleeves: Annotated[tuple[str, ...], NoDecode] = ("BTCUSDT:1m:sma_cross",)
    strategy_params: dict[str, dict[str, int | float | str]] = Field(default_factory=lambda: {"sma_cross": {"fast": 10, "slow": 30}})
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
    recv_window: int = Field(10000, gt=0, le=60000)
    startup_wait: float = Field(60.0, ge=0, description="seconds to wait at start for PostgreSQL / Binance before exit 1")
    retry_max_delay: float = Field(30.0, gt=0, description="cap of the reconnect backoff while a dependency is down")

    @field_validator("sleeves", mode="before")
    @classmethod
    def _split(cls, v):
        items = tuple(s.strip() for s in v.split(",") if s.strip()) if isinstance(v, str) else tuple(v)
        from klinepipe.binance.intervals import INTERVAL_MS
        from trader.strategies import REGISTRY

        for item in items:
            spec = SleeveSpec.parse(item)  # ValueError naming the shape
            if spec.interval not in INTERVAL_MS:
                raise ValueError(f"sleeve {item!r}: unknown kline interval {spec.interval!r}; valid: {', '.join(INTERVAL_MS)}")
            if spec.strategy not in REGISTRY:
                raise ValueError(f"sleeve {item!r}: unknown strategy {spec.strategy!r}; known: {', '.join(sorted(REGISTRY))}")
        if not items:
            raise ValueError("at least one sleeve is needed")
        return items

    @field_validator("binance_rest_url")
    @classmethod
    def _url(cls, v):
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) URL such as http://127.0.0.1:8080, got {v!r}")
        return v.rstrip("/").removesuffix("/api") if v is not None else None  # /api: the deprecated name's form

    def sleeve_specs(self) -> tuple[SleeveSpec, ...]:
        """``TRADER_SLEEVES`` parsed (checked when the settings were built)."""
        return tuple(SleeveSpec.parse(item) for item in self.sleeves)

    def api_credentials(self) -> tuple[SecretStr, SecretStr]:
        """The Binance key and secret from the environment or the named key file."""
        key, secret = self.binance_api_key, self.binance_api_secret
        if (key is None or secret is None) and self.binance_key_file is not None:
            key, secret = read_key_file(self.binance_key_file)
        if key is None or secret is None or not key.get_secret_value() or not secret.get_secret_value():
            raise SettingsError(f"TRADER_MODE={self.mode} needs BINANCE_API_KEY and BINANCE_API_SECRET "
                                "(or TRADER_BINANCE_KEY_FILE naming a file that holds them)")
        return key, secret

    def effective_staleness_basis(self) -> str:
        if self.staleness_basis != "auto":
            return self.staleness_basis
        return "ingested_at" if self.mode == "paper" else "close_time"


class BacktestSettings(BaseSettings):
    """``python -m trader backtest``'s one setting (everything else is a flag): the database of stored candles."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    database_url: str | None = Field(None, validation_alias="DATABASE_URL")

    @field_validator("database_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, v):
        return v or None


def read_key_file(path: Path) -> tuple[SecretStr, SecretStr]:
    """The key and secret in ``path``; refused when group or others may read or write the file."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise SettingsError(f"TRADER_BINANCE_KEY_FILE: cannot read {path} ({exc.strerror})") from None
    if mode & 0o077:
        raise SettingsError(f"TRADER_BINANCE_KEY_FILE: {path} is readable by others (mode {mode & 0o777:o}); "
                            f"make it private with `chmod 600 {path}`")
    try:
        lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    except OSError as exc:
        raise SettingsError(f"TRADER_BINANCE_KEY_FILE: cannot read {path} ({exc.strerror})") from None
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
    check_strategies(settings)
    quotes = {_quote(spec.symbol) for spec in settings.sleeve_specs()}
    if len(quotes) > 1:
        raise SettingsError(f"TRADER_SLEEVES: all sleeves must share one quote asset, got {', '.join(sorted(quotes))}")
    if settings.mode != "paper" and require_keys:
        settings.api_credentials()
    return settings


def _env_name(field: str) -> str:
    if field in ("database_url", "DATABASE_URL", "TRADER_DATABASE_URL"):
        return "DATABASE_URL"
    if field.upper() in ("BINANCE_API_KEY", "BINANCE_API_SECRET", "TRADER_BINANCE_API_KEY", "TRADER_BINANCE_API_SECRET"):
        return field.upper().removeprefix("TRADER_")
    if field.upper().startswith("TRADER_"):
        return field.upper()
    return f"TRADER_{field.upper()}"


def check_strategies(settings: TraderSettings) -> None:
    """Build every configured strategy once, so a bad TRADER_STRATEGY_PARAMS, or a feature spec that is invalid
    for its parameters (``sma(20000)``) or that no indicator provides, is refused at start, named, in one line."""
    from trader.strategies import REGISTRY, build_strategy

    for name in settings.strategy_params:
        if name not in REGISTRY:
            raise SettingsError(f"TRADER_STRATEGY_PARAMS: unknown strategy {name!r}; known: {', '.join(sorted(REGISTRY))}")
    for name in sorted({spec.strategy for spec in settings.sleeve_specs()} | set(settings.strategy_params)):
        sleeves = ", ".join(s.name for s in settings.sleeve_specs() if s.strategy == name)
        where = f"sleeve {sleeves}: " if sleeves else ""
        try:
            strategy = build_strategy(name, **settings.strategy_params.get(name, {}))
        except (ValueError, TypeError) as exc:
            raise SettingsError(f"TRADER_STRATEGY_PARAMS: {where}{exc}") from None
        try:  # the feature specs it reads (a column no indicator produces: named, with the valid indicators)
            strategy.feature_specs()
        except ValueError as exc:
            raise SettingsError(f"TRADER_SLEEVES: {where}strategy {name} reads {exc}") from None


def _quote(symbol: str) -> str:
    from trader.symbols import split_symbol

    try:
        return split_symbol(symbol.upper())[1]
    except ValueError as exc:
        raise SettingsError(f"TRADER_SLEEVES: {exc}") from None
