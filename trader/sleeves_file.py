"""The sleeves file (``TRADER_SLEEVES_FILE``, TOML): one ``[[sleeve]]`` table per sleeve, with its own strategy
parameters, allocation and order settings, validated with pydantic. Example::

    [[sleeve]]
    symbol = "BTCUSDT"
    interval = "1m"
    strategy = "sma_cross"
    allocation = "500"            # quote per entry (default TRADER_ORDER_QUOTE)
    params = { fast = 10, slow = 30 }

    [[sleeve]]
    name = "BTCUSDT:1m:sma_slow"  # needed when another sleeve has the same symbol, interval and strategy
    symbol = "BTCUSDT"
    interval = "1m"
    strategy = "sma_cross"
    params = { fast = 10, slow = 50 }
    order_type = "LIMIT"          # default TRADER_ORDER_TYPE; also limit_tif, limit_offset_bps
    stop_loss = "2%"              # protection held by the exchange (trader.protection): percent of the entry price
    take_profit = "1.5atr"        # or a multiple of the entry bar's atr_14; with stop_loss: an OCO
    # trailing_stop = "1%"        # instead of stop_loss: a trailingDelta stop; stop_limit_bps = 20: STOP_LOSS_LIMIT
    # with_entry = "require"      # LIMIT entries go out with their protection as one OTOCO/OTO list ("auto": when the
                                  # symbol allows it; "require": refused at start if not; "off": after the fill)

A sleeve's name is in its client order ids and ``trading.*`` rows: it defaults to ``SYMBOL:interval:strategy``
(the same as a ``TRADER_SLEEVES`` item), so keep it unchanged once the sleeve has traded.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trader.protection import Distance, ProtectionSettings, check_settings
from trader.sleeve import OrderSettings, SleeveSpec


class SleeveEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_:.()=,-]{1,80}$")
    symbol: str = Field(pattern=r"^[A-Za-z0-9]{2,20}$")
    interval: str
    strategy: str
    allocation: Decimal | None = Field(None, gt=0)
    params: dict[str, int | float | str] = Field(default_factory=dict)
    order_type: Literal["MARKET", "LIMIT"] | None = None
    limit_tif: Literal["GTC", "IOC"] | None = None
    limit_offset_bps: Decimal | None = Field(None, ge=0)
    stop_loss: Distance | None = None
    take_profit: Distance | None = None
    trailing_stop: Distance | None = None
    stop_limit_bps: Decimal | None = Field(None, gt=0, lt=10_000)
    with_entry: Literal["auto", "require", "off"] = "auto"

    @field_validator("stop_loss", "take_profit", "trailing_stop", mode="before")
    @classmethod
    def _distance(cls, v):
        if v is None or isinstance(v, Distance):
            return v
        if isinstance(v, bool) or not isinstance(v, str):
            raise ValueError(f"{v!r} must be a string: a percent (\"2%\") or a multiple of atr_14 (\"1.5atr\")")
        return Distance.parse(v)

    @model_validator(mode="after")
    def _protection(self):
        check_settings(self.protection())
        return self

    def protection(self) -> ProtectionSettings:
        return ProtectionSettings(stop_loss=self.stop_loss, take_profit=self.take_profit, trailing_stop=self.trailing_stop,
                                  stop_limit_bps=self.stop_limit_bps, with_entry=self.with_entry)

    @field_validator("params", mode="before")
    @classmethod
    def _no_bools(cls, v):
        if isinstance(v, dict):  # TOML true/false would pass as 1/0
            bad = [k for k, x in v.items() if isinstance(x, bool)]
            if bad:
                raise ValueError(f"params {', '.join(bad)}: use 1/0, not true/false")
        return v

    def spec(self) -> SleeveSpec:
        orders = OrderSettings(order_type=self.order_type, limit_tif=self.limit_tif, limit_offset_bps=self.limit_offset_bps)
        return SleeveSpec(symbol=self.symbol.upper(), interval=self.interval, strategy=self.strategy,
                          allocation=self.allocation, params=dict(self.params), label=self.name,
                          orders=orders if orders != OrderSettings() else None,
                          protection=self.protection() if self.protection().active else None)


class SleevesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sleeve: list[SleeveEntry] = Field(min_length=1)


def parse_sleeves(text: str) -> tuple[SleeveSpec, ...]:
    """The sleeves of a sleeves file's text; ``ValueError`` (one line, naming the sleeve and the key)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"not valid TOML: {exc}") from None
    try:
        specs = tuple(entry.spec() for entry in SleevesFile.model_validate(data).sleeve)
    except ValidationError as exc:
        e = exc.errors()[0]
        loc = list(e["loc"])
        where = f"sleeve {loc[1] + 1}" if loc[:1] == ["sleeve"] and len(loc) > 1 and isinstance(loc[1], int) else ""
        key = ".".join(str(p) for p in loc[2:]) if where else ".".join(map(str, loc))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = f"unknown key (valid: {', '.join(SleeveEntry.model_fields) if where else 'sleeve'})"
        raise ValueError(": ".join(x for x in (where, key, msg) if x)) from None
    names = [s.name for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"sleeve name {twice[0]!r} is used by more than one sleeve; give each of them its own name = \"...\"")
    return specs


def read_sleeves_file(path: Path) -> tuple[SleeveSpec, ...]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read {path} ({exc.strerror})") from None
    return parse_sleeves(text)
