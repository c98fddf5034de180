"""Per-sleeve protection held by the exchange (pure): the settings (stop-loss, take-profit, trailing stop, each a
percent of the entry price or a multiple of ``atr_14``), the form the symbol lets us place them in, and the prices
and deterministic client order ids of one protection set.

Forms, chosen from the symbol's exchangeInfo (``choose_form``; ``ProtectionRefused`` with the reason at start):
* ``OCO``: take-profit (above, ``TAKE_PROFIT``) + stop-loss (below, ``STOP_LOSS`` or ``STOP_LOSS_LIMIT``), needs
  ``ocoAllowed`` and both types in ``orderTypes``;
* ``STOP``: one ``STOP_LOSS`` (or ``STOP_LOSS_LIMIT`` with ``stop_limit_bps``);
* ``TRAILING``: one ``STOP_LOSS`` SELL with ``trailingDelta`` (bips), needs ``allowTrailingStop`` and the delta
  inside the ``TRAILING_DELTA`` filter's ``min/maxTrailingBelowDelta``.
With a LIMIT entry (``with_entry``, ``entry_form``): the entry and its set go out as ONE list, ``OTOCO`` (entry + the
OCO pair, needs ``otoAllowed`` and ``ocoAllowed``) or ``OTO`` (entry + one stop, needs ``otoAllowed``): the venue
puts the legs to work the moment the entry fills, and expires them with an entry that expires unfilled.
Ids: the entry's client order id + ``-PL`` (list), ``-PS`` (stop leg), ``-PT`` (take-profit leg): a retry or a restart
finds the set it placed instead of placing a second (31 + 3 chars, inside Binance's 36). A set that ended without
exiting the position (cancelled by the kill switch, expired by the venue) is replaced by the next generation, its ids
the entry's id + the generation + the same suffixes (``...-B2-PS``; generation 1 keeps ``...-B-PS``): ``set_base``,
``entry_of`` and ``generation_of`` go both ways, up to ``MAX_GENERATION`` (31 + 1 + 3 = 35 chars).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from trader.filters import round_to_step

_DISTANCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|atr)\s*$", re.IGNORECASE)
LIST_SUFFIX, STOP_SUFFIX, TAKE_PROFIT_SUFFIX = "-PL", "-PS", "-PT"
WITH_ENTRY = ("auto", "require", "off")
LEG_INTENTS = {STOP_SUFFIX: "STOP_LOSS", TAKE_PROFIT_SUFFIX: "TAKE_PROFIT"}


class ProtectionRefused(ValueError):
    """The configuration cannot be honoured on this symbol (said at start, with the reason)."""


@dataclass(frozen=True)
class Distance:
    """How far from the entry price: ``value`` percent, or ``value`` times the entry bar's ``atr_14``."""

    value: Decimal
    unit: str  # "%" | "atr"

    @classmethod
    def parse(cls, text: str | int | float | Decimal) -> Distance:
        m = _DISTANCE.match(str(text))
        if m is None:
            raise ValueError(f"{text!r} must be a percent (\"2%\") or a multiple of atr_14 (\"1.5atr\")")
        value, unit = Decimal(m.group(1)), m.group(2).lower()
        if value <= 0 or (unit == "%" and value >= 100):
            raise ValueError(f"{text!r} must be above 0{' and below 100%' if unit == '%' else ''}")
        return cls(value, unit)

    def price_offset(self, entry: Decimal, atr: Decimal | None) -> Decimal:
        if self.unit == "%":
            return entry * self.value / 100
        if atr is None or atr <= 0:
            raise ValueError("no atr_14 for the entry bar")
        return atr * self.value

    def __str__(self) -> str:
        return f"{self.value}{self.unit}"


@dataclass(frozen=True, kw_only=True)
class ProtectionSettings:
    stop_loss: Distance | None = None
    take_profit: Distance | None = None
    trailing_stop: Distance | None = None
    stop_limit_bps: Decimal | None = None  # set: the stop is a STOP_LOSS_LIMIT, its limit this far below the stop
    with_entry: str = "auto"  # auto: a LIMIT entry goes out with its set (OTO/OTOCO) when the symbol allows it, else the
    # set follows the fill; require: refused at start unless it can; off: the set always follows the fill

    @property
    def active(self) -> bool:
        return any((self.stop_loss, self.take_profit, self.trailing_stop))

    @property
    def uses_atr(self) -> bool:
        return any(d is not None and d.unit == "atr" for d in (self.stop_loss, self.take_profit, self.trailing_stop))


def check_settings(p: ProtectionSettings) -> None:
    """The combinations we can place at all (whatever the symbol): ``ValueError`` naming the setting."""
    if p.trailing_stop is not None and p.stop_loss is not None:
        raise ValueError("trailing_stop: give either stop_loss or trailing_stop, not both")
    if p.trailing_stop is not None and p.take_profit is not None:
        raise ValueError("take_profit: a take-profit goes with stop_loss (an OCO), not with trailing_stop")
    if p.take_profit is not None and p.stop_loss is None:
        raise ValueError("take_profit: needs a stop_loss (placed together as an OCO)")
    if p.stop_limit_bps is not None and p.stop_loss is None:
        raise ValueError("stop_limit_bps: needs a stop_loss")
    if p.with_entry not in WITH_ENTRY:
        raise ValueError(f"with_entry: {p.with_entry!r} must be one of {', '.join(WITH_ENTRY)}")
    if p.trailing_stop is not None and p.trailing_stop.unit == "atr":
        raise ValueError("trailing_stop: a trailing delta is in percent of the price (\"1%\"), not in atr")


@dataclass(frozen=True)
class SymbolFlags:
    """What exchangeInfo says a symbol allows, for protection."""

    symbol: str
    order_types: tuple[str, ...]
    oco_allowed: bool
    allow_trailing_stop: bool
    trailing_below: tuple[int, int] | None = None  # TRAILING_DELTA min/maxTrailingBelowDelta (SELL stops), bips
    oto_allowed: bool = False

    @classmethod
    def from_exchange_info(cls, info: dict) -> SymbolFlags:
        f = {x["filterType"]: x for x in info.get("filters", [])}
        td = f.get("TRAILING_DELTA")
        below = (int(td["minTrailingBelowDelta"]), int(td["maxTrailingBelowDelta"])) if td else None
        return cls(info["symbol"], tuple(info.get("orderTypes", ())), bool(info.get("ocoAllowed", False)),
                   bool(info.get("allowTrailingStop", False)), below, bool(info.get("otoAllowed", False)))


def choose_form(p: ProtectionSettings, flags: SymbolFlags) -> str | None:
    """``OCO``, ``STOP`` or ``TRAILING`` (``None``: no protection configured), or ``ProtectionRefused``."""
    if not p.active:
        return None
    stop_type = stop_order_type(p)
    if p.trailing_stop is not None:
        if not flags.allow_trailing_stop:
            raise ProtectionRefused(f"{flags.symbol}: trailing_stop: the symbol does not allow trailing stops (allowTrailingStop false)")
        if "STOP_LOSS" not in flags.order_types:
            raise ProtectionRefused(f"{flags.symbol}: trailing_stop: STOP_LOSS is not in the symbol's orderTypes")
        bips = trailing_bips(p.trailing_stop)
        if flags.trailing_below is not None and not flags.trailing_below[0] <= bips <= flags.trailing_below[1]:
            lo, hi = flags.trailing_below
            raise ProtectionRefused(f"{flags.symbol}: trailing_stop: {bips} bips outside the TRAILING_DELTA filter's "
                                    f"[{lo}, {hi}] (minTrailingBelowDelta, maxTrailingBelowDelta)")
        return "TRAILING"
    if stop_type not in flags.order_types:
        raise ProtectionRefused(f"{flags.symbol}: stop_loss: {stop_type} is not in the symbol's orderTypes")
    if p.take_profit is None:
        return "STOP"
    if not flags.oco_allowed:
        raise ProtectionRefused(f"{flags.symbol}: take_profit: the symbol does not allow OCO lists (ocoAllowed false), "
                                "so a take-profit cannot be held beside the stop")
    if "TAKE_PROFIT" not in flags.order_types:
        raise ProtectionRefused(f"{flags.symbol}: take_profit: TAKE_PROFIT is not in the symbol's orderTypes")
    return "OCO"


def entry_form(p: ProtectionSettings, form: str | None, flags: SymbolFlags, order_type: str) -> str | None:
    """``OTOCO`` / ``OTO`` when the sleeve's entries go out together with their set, ``None`` when the set follows the
    entry's fill; ``ProtectionRefused`` (with the reason) when ``with_entry = "require"`` cannot be honoured."""
    if form is None or p.with_entry == "off":
        return None
    want = "OTOCO" if form == "OCO" else "OTO"
    reason = None
    if order_type != "LIMIT":
        reason = f"the sleeve's entries are {order_type} orders (an {want} list needs a LIMIT entry: order_type = \"LIMIT\")"
    elif not flags.oto_allowed:
        reason = "the symbol does not allow OTO lists (otoAllowed false)"
    elif "LIMIT" not in flags.order_types:
        reason = "LIMIT is not in the symbol's orderTypes"
    if reason is None:
        return want
    if p.with_entry == "require":
        raise ProtectionRefused(f"{flags.symbol}: with_entry: {reason}")
    return None


def stop_order_type(p: ProtectionSettings) -> str:
    return "STOP_LOSS_LIMIT" if p.stop_limit_bps is not None else "STOP_LOSS"


def trailing_bips(d: Distance) -> int:
    return int((d.value * 100).to_integral_value())


@dataclass(frozen=True)
class Leg:
    client_order_id: str
    type: str  # STOP_LOSS | STOP_LOSS_LIMIT | TAKE_PROFIT
    stop_price: Decimal | None
    price: Decimal | None = None  # the limit of a STOP_LOSS_LIMIT
    trailing_delta: int | None = None


@dataclass(frozen=True)
class ProtectionSet:
    """One position's protection: a SELL of ``quantity`` in one form, with its legs (stop first)."""

    entry_client_order_id: str
    form: str
    quantity: Decimal
    legs: tuple[Leg, ...]

    @property
    def list_client_order_id(self) -> str:
        return self.entry_client_order_id + LIST_SUFFIX


def protection_set(p: ProtectionSettings, form: str, entry_cid: str, quantity: Decimal, entry_price: Decimal,
                   tick: Decimal, atr: Decimal | None = None) -> ProtectionSet:
    """The legs protecting a long of ``quantity`` bought at ``entry_price``: stop below, take-profit above, rounded
    to the tick away from the market's side of the fill (the stop down, the take-profit up)."""
    stop_id = entry_cid + STOP_SUFFIX
    if form == "TRAILING":
        return ProtectionSet(entry_cid, form, quantity, (Leg(stop_id, "STOP_LOSS", None, None, trailing_bips(p.trailing_stop)),))
    stop = round_to_step(entry_price - p.stop_loss.price_offset(entry_price, atr), tick, ROUND_FLOOR)
    limit = None
    if p.stop_limit_bps is not None:
        limit = round_to_step(stop * (1 - p.stop_limit_bps / Decimal(10_000)), tick, ROUND_FLOOR)
    legs = [Leg(stop_id, stop_order_type(p), stop, limit)]
    if form == "OCO":
        tp = round_to_step(entry_price + p.take_profit.price_offset(entry_price, atr), tick, ROUND_CEILING)
        legs.append(Leg(entry_cid + TAKE_PROFIT_SUFFIX, "TAKE_PROFIT", tp))
    return ProtectionSet(entry_cid, form, quantity, tuple(legs))


def entry_of(client_order_id: str) -> str | None:
    """The entry's client order id a protection id was derived from (``None``: not a protection id), any generation."""
    split = _split(client_order_id)
    return None if split is None else split[0]


MAX_GENERATION = 9  # sets per position: one digit keeps the ids inside 36 chars; beyond it the operator is told
_GENERATION = re.compile(r"^(.*-[A-Za-z])([2-9])$")  # an entry id ends in its intent code (-B); a generation follows it


def set_base(entry_cid: str, generation: int) -> str:
    """What a set's ids are derived from (``protection_set``'s ``entry_cid``): the entry's id, + the generation from 2 on."""
    if not 1 <= generation <= MAX_GENERATION:
        raise ValueError(f"protection generation {generation} outside 1..{MAX_GENERATION}")
    return entry_cid if generation == 1 else f"{entry_cid}{generation}"


def generation_of(client_order_id: str) -> int | None:
    """The generation of the set a protection id belongs to (``None``: not a protection id)."""
    split = _split(client_order_id)
    return None if split is None else split[1]


def _split(client_order_id: str) -> tuple[str, int] | None:
    for suffix in (LIST_SUFFIX, STOP_SUFFIX, TAKE_PROFIT_SUFFIX):
        if client_order_id.endswith(suffix):
            base = client_order_id.removesuffix(suffix)
            m = _GENERATION.match(base)
            return (m.group(1), int(m.group(2))) if m else (base, 1)
    return None
