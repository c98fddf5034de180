"""Feature specs: an indicator with its arguments (``sma(5)``, ``bbands(20, 2.5)``), parsed, validated, named (pure).

A spec is written ``name(arg, ...)``; arguments with a default may be left out from the right
(``macd()`` = ``macd(12, 26, 9)``, ``bbands(20)`` = ``bbands(20, 2)``). Each output of a spec is one
column of ``market.features``, named by one rule:

    <output>[_<arg>]...   every argument, except trailing ones equal to their default

An argument is written as a plain decimal with ``p`` for the point: ``bbands(20, 2.5)`` ->
``bb_upper_20_2p5``; ``bbands(20, 2)`` -> ``bb_upper_20``; ``macd(12, 26, 9)`` -> ``macd``,
``macd_signal``, ``macd_hist``; ``macd(8, 21, 5)`` -> ``macd_8_21_5``, ... The rule keeps the names of
feature set v2 and is unambiguous: ``spec_for_column`` turns a column name back into its one spec, and a
spec has exactly one spelling (integers are integers, floats have at most four decimals, defaults are
filled in before naming).

The indicators themselves (what they compute, how many bars of history a value depends on) are in
``klinepipe.indicators``; this module only knows their signatures.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

FLOAT_DECIMALS = 4  # at most this many decimals in a float argument, so that its name is short and exact


@dataclass(frozen=True)
class Arg:
    """One argument of an indicator: name, type, inclusive range and default (``None``: required)."""

    name: str
    kind: type  # int or float
    lo: float
    hi: float
    default: int | float | None = None

    def describe(self) -> str:
        rng = f"{self.kind.__name__} {self.lo:g}..{self.hi:g}"
        return f"{self.name}: {rng}" + ("" if self.default is None else f" = {self.default:g}")

    def check(self, indicator: str, value) -> int | float:
        """The canonical value, or ``ValueError`` naming the argument and its range."""
        where = f"{indicator}: {self.name}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where} must be a number ({self.describe()}), got {value!r}")
        if self.kind is int:
            if float(value) != int(value):
                raise ValueError(f"{where} must be an integer ({self.describe()}), got {value!r}")
            value = int(value)
        else:
            value = float(value)
            if round(value, FLOAT_DECIMALS) != value:
                raise ValueError(f"{where} takes at most {FLOAT_DECIMALS} decimals, got {value!r}")
        if not self.lo <= value <= self.hi:
            raise ValueError(f"{where} must be in {self.lo:g}..{self.hi:g}, got {value:g}")
        return value


@dataclass(frozen=True)
class Indicator:
    """An indicator family: its arguments, output columns, input series, computation and warm-up."""

    name: str
    args: tuple[Arg, ...]
    outputs: tuple[str, ...]
    inputs: tuple[str, ...]  # of "close", "high", "low", "volume"
    compute: Callable = field(repr=False, compare=False)  # (inputs dict, *args) -> tuple of arrays, one per output
    warmup: Callable = field(repr=False, compare=False)  # (*args) -> bars of history a value depends on, itself included
    doc: str = ""
    check: Callable | None = field(default=None, repr=False, compare=False)  # (*args) -> message when they do not fit together

    def signature(self) -> str:
        return f"{self.name}({', '.join(a.describe() for a in self.args)})"


@dataclass(frozen=True)
class FeatureSpec:
    """One indicator with canonical arguments (build with ``make_spec`` / ``parse_spec``)."""

    indicator: Indicator
    args: tuple

    @property
    def name(self) -> str:
        return self.indicator.name

    @property
    def text(self) -> str:
        """The canonical text form, e.g. ``bbands(20, 2.5)``."""
        return f"{self.name}({', '.join(_fmt(a) for a in self.args)})"

    @property
    def columns(self) -> tuple[str, ...]:
        """The column name of each output (see the module doc for the rule)."""
        named = list(self.args)
        for arg, value in reversed(list(zip(self.indicator.args, self.args))):
            if arg.default is None or value != arg.default:
                break
            named.pop()
        suffix = "".join(f"_{_fmt(v).replace('.', 'p')}" for v in named)
        return tuple(f"{out}{suffix}" for out in self.indicator.outputs)

    @property
    def warmup(self) -> int:
        """Bars of history one value depends on (itself included), to within a double's precision."""
        return int(self.indicator.warmup(*self.args))

    def __str__(self) -> str:
        return self.text


def make_spec(registry: Mapping[str, Indicator], name: str, *args) -> FeatureSpec:
    """The spec ``name(*args)``, validated: ``ValueError`` listing the valid indicators or the argument ranges."""
    ind = registry.get(name)
    if ind is None:
        raise ValueError(f"unknown indicator {name!r}; valid: {valid_list(registry)}")
    if len(args) > len(ind.args):
        raise ValueError(f"{name} takes at most {len(ind.args)} argument(s): {ind.signature()}; got {len(args)}")
    values = []
    for i, arg in enumerate(ind.args):
        if i < len(args):
            values.append(arg.check(name, args[i]))
        elif arg.default is None:
            raise ValueError(f"{name} needs {arg.name}: {ind.signature()}")
        else:
            values.append(arg.default)
    if ind.check is not None and (problem := ind.check(*values)):
        raise ValueError(problem)
    return FeatureSpec(ind, tuple(values))


_TEXT = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*(?:\((.*)\))?\s*$")


def parse_spec(registry: Mapping[str, Indicator], text: str) -> FeatureSpec:
    """``"bbands(20, 2.5)"`` (or a column name such as ``"sma_5"``) -> its spec; ``ValueError`` when invalid."""
    m = _TEXT.match(text)
    if m is None:
        raise ValueError(f"feature spec {text!r} must look like name(arg, ...), e.g. sma(5); valid: {valid_list(registry)}")
    name, inner = m.group(1), m.group(2)
    if inner is None and name not in registry:
        return spec_for_column(registry, name)[0]
    args = [_number(text, a) for a in inner.split(",")] if inner and inner.strip() else []
    return make_spec(registry, name, *args)


def spec_for_column(registry: Mapping[str, Indicator], column: str) -> tuple[FeatureSpec, int]:
    """The spec whose output ``column`` is, and the output's index: ``"bb_lower_20"`` -> (bbands(20, 2), 2)."""
    for ind in registry.values():
        for k, out in enumerate(ind.outputs):
            if column != out and not column.startswith(out + "_"):
                continue
            tokens = column[len(out) + 1:].split("_") if column != out else []
            try:
                spec = make_spec(registry, ind.name, *(_number(column, t.replace("p", ".")) for t in tokens))
            except ValueError:
                continue
            if spec.columns[k] == column:
                return spec, k
    raise ValueError(f"unknown feature {column!r}: not the column of any indicator; valid: {valid_list(registry)}")


def valid_list(registry: Mapping[str, Indicator]) -> str:
    return "; ".join(ind.signature() for ind in registry.values())


def _number(text: str, token: str) -> int | float:
    token = token.strip()
    try:
        return int(token)
    except ValueError:
        pass
    try:
        return float(token)
    except ValueError:
        raise ValueError(f"feature spec {text!r}: {token!r} is not a number") from None


def _fmt(value: int | float) -> str:
    """2 -> "2", 2.0 -> "2", 2.5 -> "2.5", 0.25 -> "0.25" (no exponent, no trailing zeros)."""
    if isinstance(value, int):
        return str(value)
    text = format(Decimal(repr(value)).normalize(), "f")
    return text
