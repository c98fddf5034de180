"""Kill switch (pure): ACTIVE -> REDUCING (max daily loss) -> HALTED (max drawdown), escalating only.

* ACTIVE: everything allowed.
* REDUCING: no new entries; exits (orders that reduce a position) still go out.
* HALTED: no orders at all.
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
