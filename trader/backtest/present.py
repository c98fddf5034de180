"""A backtest's summary for people: labelled, rounded rows shared by the console table and ``report.html``.

``summary.json`` keeps every number at full precision; this is only how they are shown. Annualised
figures of a period shorter than ``metrics.MIN_ANNUALISED_DAYS`` are marked ``FLAG`` and the
summary's ``warnings`` say why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trader.backtest.metrics import ANNUALISED, format_period

FLAG = "⚠"


@dataclass(frozen=True)
class Row:
    label: str
    value: str
    flagged: bool = False


def _pct(v) -> str:
    return "–" if v is None else f"{v:,.2f} %"


def _num(v, places: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and not math.isfinite(v):
        return "–"
    return f"{v:,.{places}f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)


# (key, label, format); None values show as "–" (undefined: e.g. no losing trade for the profit factor)
_METRICS = (
    ("total_return_pct", "total return", _pct),
    ("buy_and_hold_return_pct", "buy and hold", _pct),
    ("cagr_pct", "CAGR", _pct),
    ("max_drawdown_pct", "max drawdown", _pct),
    ("sharpe", "Sharpe (annualised)", _num),
    ("sortino", "Sortino (annualised)", _num),
    ("win_rate_pct", "win rate", _pct),
    ("profit_factor", "profit factor", _num),
    ("exposure_pct", "exposure", _pct),
    ("fees_paid", "fees paid", _num),
    ("initial_equity", "initial equity", _num),
    ("final_equity", "final equity", _num),
)


def _time(iso: str | None) -> str:
    """``2024-03-01T00:00:00.000Z`` -> ``2024-03-01 00:00 UTC``."""
    if not iso:
        return "–"
    return iso.replace("T", " ")[:16] + " UTC"


def inline(mapping: dict | None) -> str:
    """``{"fast": 10, "slow": 30}`` -> ``fast=10, slow=30`` (``–`` when empty)."""
    return ", ".join(f"{k}={v}" for k, v in (mapping or {}).items()) or "–"


def summary_rows(summary: dict, extra: dict | None = None) -> list[Row]:
    """The rows of the console table and the report's summary table, in reading order."""
    extra = extra or {}
    reliable = summary.get("annualised_reliable", True)
    series = " ".join(x for x in (summary.get("symbol"), summary.get("interval")) if x)
    period = f"{summary.get('bars', 0):,} bars"
    if summary.get("period_days") is not None:
        period = f"{format_period(summary['period_days'])}, {period}"
    trades = f"{summary.get('trades', 0):,}" + (" (a position is still open)" if summary.get("open_position") else "")
    rows = [Row("strategy", str(summary.get("strategy", "–"))), Row("params", inline(summary.get("params"))),
            Row("series", series or "–"),
            Row("from", _time(summary.get("start"))), Row("to", _time(summary.get("end"))), Row("period", period), Row("closed trades", trades)]
    for key, label, fmt in _METRICS:
        if key in summary:
            flagged = key in ANNUALISED and not reliable
            rows.append(Row(label, fmt(summary[key]) + (f" {FLAG}" if flagged else ""), flagged))
    if extra.get("walk_forward_oos_return_pct") is not None:
        rows.append(Row("walk-forward out-of-sample return", _pct(extra["walk_forward_oos_return_pct"])))
    return rows


def warnings(summary: dict) -> list[str]:
    return [f"{FLAG} {w}" for w in summary.get("warnings") or ()]


def fill_model_rows(model: dict | None) -> list[Row]:
    """The fill model as label/value rows (the report's second table)."""
    m = model or {}
    labels = (("fee_bps", "fee per side (bps)"), ("slippage_bps", "slippage (bps)"), ("size", "fraction of equity per entry"),
              ("order_quote", "quote per entry (instead of the fraction)"), ("qty_step", "quantity step"),
              ("size_at", "sized with"), ("cash", "starting equity"), ("allow_short", "shorts allowed"))
    rows = [Row(label, _num(m[key]) if key not in ("size_at", "allow_short") else str(m[key]))
            for key, label in labels if key in m and m[key] is not None]
    if m.get("stops"):
        s = m["stops"]
        shown = [f"{name} {s[key]:g}{unit}" for key, name, unit in (
            ("stop_pct", "stop-loss", "%"), ("stop_atr", "stop-loss", " x atr_14"), ("take_profit_pct", "take-profit", "%"),
            ("take_profit_atr", "take-profit", " x atr_14"), ("trailing_pct", "trailing stop", "%")) if s.get(key)]
        rows.append(Row("protection", ", ".join(shown) + (f" (tick {s['tick']:g})" if s.get("tick") else "")))
    return rows + [Row(str(k), str(v)) for k, v in m.items() if k not in dict(labels) and k != "stops"]


def render_console(result: dict, console) -> None:
    """The summary table, its warnings and the output paths, on a rich ``console``."""
    from rich.table import Table
    from rich.text import Text

    summary = result["summary"]
    table = Table(title="backtest", show_header=False, title_justify="left")
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    for row in summary_rows(summary, result):
        table.add_row(Text(row.label), Text(row.value, style="yellow" if row.flagged else ""))
    console.print(table)
    for line in warnings(summary):
        console.print(Text(line, style="yellow"))
    console.print(Text(f"output: {result['out_dir']}"), soft_wrap=True)
    if result.get("report"):
        console.print(Text(f"report: {result['report']}"), soft_wrap=True)
