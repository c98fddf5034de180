"""Kill switch (pure): ACTIVE -> REDUCING (max daily loss) -> HALTED (max drawdown), escalating only.

* ACTIVE: everything allowed.
* REDUCING: no new entries; exits (orders that reduce a position) still go out. With ``KillPolicy.on_reducing``
  ``flatten`` (the default) the trader also closes every open position at once with one MARKET exit per sleeve
  (``trader.kill_actions``); ``exits_only`` leaves the positions to the strategies' own exits.
* HALTED: no orders at all, except the protection of a position (a stop only ever reduces it). With
  ``KillPolicy.on_halted`` ``cancel`` (the default) the trader cancels its open entry and exit orders at the exchange
  and the protection sets stay working (a stop that fires while HALTED is the position's exit, a position whose entry
  fills gets its set); ``cancel_all`` cancels the sets too and places none while HALTED (on the resume each position still open gets a
new set); ``keep`` cancels nothing.
The state is persisted by the ledger and survives restarts; automatic transitions only ever escalate.
Only the operator returns it to ACTIVE (``python -m trader resume``) or trips it by hand (``kill``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal


class KillState(str, enum.Enum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


_RANK = {KillState.ACTIVE: 0, KillState.REDUCING: 1, KillState.HALTED: 2}


@dataclass(frozen=True, kw_only=True)
class KillSwitch:
    """The kill switch of one mode as ``trading.trader_state`` keeps it: key ``kill_switch:<mode>``, value
    ``{"state", "reason", "by"}`` (the Trading page writes the same). Decoded here only (``from_value``)."""

    state: KillState = KillState.ACTIVE
    reason: str = ""
    by: str = ""  # "risk" (an automatic escalation), "operator", or the Airflow user who changed it

    @staticmethod
    def key(mode: str) -> str:
        return f"kill_switch:{mode}"

    @classmethod
    def from_value(cls, value: dict | None) -> KillSwitch:
        """The stored JSON value (``None``: never set, so ACTIVE)."""
        if not value:
            return cls()
        return cls(state=KillState(value["state"]), reason=value.get("reason", ""), by=value.get("by", ""))

    def to_value(self) -> dict:
        return {"state": self.state.value, "reason": self.reason, "by": self.by}


REDUCING_ACTIONS = ("flatten", "exits_only")
HALTED_ACTIONS = ("cancel", "cancel_all", "keep")


@dataclass(frozen=True, kw_only=True)
class KillPolicy:
    """What the trader does on entering (and while in) REDUCING and HALTED, besides blocking orders."""

    on_reducing: str = "flatten"  # REDUCING_ACTIONS
    on_halted: str = "cancel"  # HALTED_ACTIONS

    def __post_init__(self) -> None:
        if self.on_reducing not in REDUCING_ACTIONS:
            raise ValueError(f"on_reducing must be one of {', '.join(REDUCING_ACTIONS)}, got {self.on_reducing!r}")
        if self.on_halted not in HALTED_ACTIONS:
            raise ValueError(f"on_halted must be one of {', '.join(HALTED_ACTIONS)}, got {self.on_halted!r}")

    def holds_protection(self, state: KillState) -> bool:
        """Whether no new protection set is placed in ``state`` (HALTED with ``cancel_all``: nothing at the venue)."""
        return state is KillState.HALTED and self.on_halted == "cancel_all"

    def holds_replacement(self, state: KillState) -> bool:
        """Whether a protection set that ended while its position is open is not replaced in ``state``: while none is
        placed at all, and under REDUCING + ``flatten`` (which cancels the sets to take the positions off)."""
        return self.holds_protection(state) or (state is KillState.REDUCING and self.on_reducing == "flatten")

    def cancels(self, intent: str) -> bool:
        """Whether HALTED cancels an open order placed for ``intent`` (protective intents only under cancel_all)."""
        if self.on_halted == "keep":
            return False
        return self.on_halted == "cancel_all" or intent not in PROTECTIVE_INTENTS


PROTECTIVE_INTENTS = ("STOP_LOSS", "TAKE_PROFIT", "PROTECT")


@dataclass(frozen=True)
class KillLimits:
    max_daily_loss: Decimal = Decimal("0.05")  # fraction of the equity at the start of the UTC day
    max_drawdown: Decimal = Decimal("0.15")  # fraction below the peak equity


def evaluate(state: KillState, equity: Decimal, peak: Decimal, day_start: Decimal, limits: KillLimits) -> tuple[KillState, str | None]:
    """The state after seeing ``equity``; the reason when it escalated, else ``None``."""
    target, reason = KillState.ACTIVE, None
    if limits.max_daily_loss and day_start > 0 and (day_start - equity) / day_start >= limits.max_daily_loss:
        target = KillState.REDUCING
        reason = f"daily loss {(day_start - equity):.2f} ({(day_start - equity) / day_start:.2%}) >= {limits.max_daily_loss:.2%} of {day_start:.2f}"
    if limits.max_drawdown and peak > 0 and (peak - equity) / peak >= limits.max_drawdown:
        target = KillState.HALTED
        reason = f"drawdown {(peak - equity) / peak:.2%} from peak {peak:.2f} >= {limits.max_drawdown:.2%}"
    if _RANK[target] > _RANK[state]:
        return target, reason
    return state, None


class KillSwitchRule:
    name = "kill_switch"

    def check(self, ctx) -> str | None:
        if ctx.kill_state is KillState.HALTED:
            return "kill switch HALTED: no orders until the operator resumes"
        if ctx.kill_state is KillState.REDUCING and ctx.is_entry:
            return "kill switch REDUCING: exits only"
        return None
