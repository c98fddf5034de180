"""Settings of the trader, validated once at start (env ``TRADER_*`` and ``DATABASE_URL``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class SettingsError(ValueError):
    """An invalid setting; the message names it."""


class TraderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRADER_", frozen=True)

    mode: Literal["paper", "testnet", "live"] = "paper"
    database_url: str = Field(validation_alias=AliasChoices("TRADER_DATABASE_URL", "DATABASE_URL"))
    sleeves: Annotated[tuple[str, ...], NoDecode] = ("BTCUSDT:1m:sma_cross",)
    strategy_params: dict[str, dict[str, int | float | str]] = Field(default_factory=lambda: {"sma_cross": {"fast": 10, "slow": 30}})
    order_quote: Decimal = Field(Decimal("1000"), gt=0, description="quote amount spent per BUY")
    qty_step: Decimal = Field(Decimal("0.00001"), gt=0, description="quantity step (LOT_SIZE stepSize)")
    fee_bps: Decimal = Field(Decimal("10"), ge=0)
    slippage_bps: Decimal = Field(Decimal("0"), ge=0)
    paper_balance: Decimal = Field(Decimal("10000"), ge=0, description="starting quote balance of the paper account")
    poll_interval: float = Field(5.0, gt=0, description="seconds between polls when no NOTIFY arrives")

    @field_validator("sleeves", mode="before")
    @classmethod
    def _split(cls, v):
        items = tuple(s.strip() for s in v.split(",") if s.strip()) if isinstance(v, str) else tuple(v)
        for item in items:
            if len(item.split(":")) != 3:
                raise ValueError(f"sleeve {item!r} must look like SYMBOL:interval:strategy, e.g. BTCUSDT:1m:sma_cross")
        if not items:
            raise ValueError("at least one sleeve is needed")
        return items


def load_settings(**overrides) -> TraderSettings:
    try:
        settings = TraderSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        parts = []
        for e in exc.errors():
            name = str(e["loc"][0]) if e["loc"] else "?"
            env = "DATABASE_URL" if name in ("database_url", "DATABASE_URL", "TRADER_DATABASE_URL") else f"TRADER_{name.upper()}"
            parts.append(f"{env}: {e['msg']}")
        raise SettingsError("invalid setting " + "; ".join(parts)) from None
    if settings.mode != "paper":
        raise SettingsError(f"TRADER_MODE={settings.mode}: only paper trading is available in this version")
    return settings
