"""A strategy's search space (pure): which values each parameter may take, and constraints between them.

Written by the user as JSON or TOML, one entry per parameter::

    {"fast": {"int": [2, 50]}, "slow": {"int": [10, 200], "step": 5},
     "width": {"float": [1.0, 3.0]}, "k": {"float": [0.01, 1], "log": true}, "kind": {"choices": ["a", "b"]},
     "constraints": ["fast < slow"]}

A constraint compares two parameters (or a parameter and a number) with ``<``, ``<=``, ``>``, ``>=`` or ``!=``.
``a < b`` with ``a`` declared before ``b`` narrows ``b``'s range to the values above the ``a`` just drawn, so no trial
is spent on a point the strategy would refuse; any other constraint a drawn point breaks prunes that trial.

Without a ``--space``, a parameter's range comes from its declaration when it has one (``Param.low`` /
``Param.high`` / ``Param.choices``, read with ``getattr`` so a declaration without them still works).
"""

from __future__ import annotations

import json
import operator
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "!=": operator.ne}
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_]\w*|-?\d+(?:\.\d+)?)\s*(<=|>=|!=|<|>)\s*([A-Za-z_]\w*|-?\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class Dimension:
    """One parameter's values: ``kind`` is ``int``, ``float`` or ``choices``."""

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple = ()

    def values(self) -> list:
        """Every value (a grid): choices, or each step of an int range (a float range needs a ``step``)."""
        if self.kind == "choices":
            return list(self.choices)
        if self.kind == "float" and not self.step:
            raise ValueError(f"space: {self.name}: a float range needs a 'step' to be laid out as a grid")
        step = self.step or 1
        n = int(round((self.high - self.low) / step)) + 1
        return [self.low + i * step if self.kind == "float" else int(self.low + i * step) for i in range(n)]


@dataclass(frozen=True)
class Constraint:
    left: str | float
    op: str
    right: str | float

    def holds(self, params: dict) -> bool:
        value = lambda side: params[side] if isinstance(side, str) else side  # noqa: E731
        return _OPS[self.op](value(self.left), value(self.right))

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


@dataclass(frozen=True)
class SearchSpace:
    dimensions: tuple[Dimension, ...]
    constraints: tuple[Constraint, ...] = field(default_factory=tuple)

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    def feasible(self, params: dict) -> bool:
        return all(c.holds(params) for c in self.constraints)

    def grid(self) -> list[dict]:
        """Every feasible combination, in order (the first dimension varies slowest)."""
        points = [{}]
        for d in self.dimensions:
            points = [{**p, d.name: v} for p in points for v in d.values()]
        return [p for p in points if self.feasible(p)]

    def as_dict(self) -> dict:
        """The JSON form this space was read from (stored with the study, shown in the report)."""
        out = {}
        for d in self.dimensions:
            spec = {"choices": list(d.choices)} if d.kind == "choices" else {d.kind: [d.low, d.high]}
            if d.step:
                spec["step"] = d.step
            if d.log:
                spec["log"] = True
            out[d.name] = spec
        return {**out, "constraints": [str(c) for c in self.constraints]} if self.constraints else out


def parse_space(text_or_path: str | dict, declared: dict | None = None) -> SearchSpace:
    """A space from JSON/TOML text, a ``.json``/``.toml`` file, or a dict; names checked against ``declared``."""
    raw = text_or_path if isinstance(text_or_path, dict) else _read(text_or_path)
    raw = dict(raw)
    constraints = tuple(parse_constraint(c) for c in _as_list(raw.pop("constraints", [])))
    dims = tuple(_dimension(name, spec) for name, spec in raw.items())
    if not dims:
        raise ValueError("space: no parameter to search")
    if declared is not None and (unknown := [d.name for d in dims if d.name not in declared]):
        raise ValueError(f"space: no parameter {', '.join(unknown)}; the strategy takes: {', '.join(declared) or 'none'}")
    names = {d.name for d in dims}
    for c in constraints:
        if bad := [s for s in (c.left, c.right) if isinstance(s, str) and s not in names]:
            raise ValueError(f"space: constraint {c} names {', '.join(bad)}, which is not in the space ({', '.join(sorted(names))})")
    return SearchSpace(dims, constraints)


def space_from_declared(declared: dict) -> SearchSpace:
    """The space the strategy's parameter declarations give (``low``/``high`` or ``choices`` on each ``Param``)."""
    dims = []
    for name, param in declared.items():
        choices, low, high = getattr(param, "choices", None), getattr(param, "low", None), getattr(param, "high", None)
        if choices:
            dims.append(Dimension(name, "choices", choices=tuple(choices)))
        elif low is not None and high is not None:
            kind = "int" if isinstance(low, int) and isinstance(high, int) and isinstance(param.default, int) else "float"
            dims.append(_dimension(name, {kind: [low, high]}))
    if not dims:
        raise ValueError("space: the strategy declares no parameter ranges; give --space, e.g. "
                         "'{\"fast\": {\"int\": [2, 50]}, \"slow\": {\"int\": [10, 200]}, \"constraints\": [\"fast < slow\"]}'")
    return SearchSpace(tuple(dims))


def parse_constraint(text: str) -> Constraint:
    m = _CONSTRAINT.match(str(text))
    if not m:
        raise ValueError(f"space: constraint {text!r} is not 'NAME OP NAME' (OP one of {', '.join(_OPS)}), e.g. 'fast < slow'")
    side = lambda s: s if re.match(r"[A-Za-z_]", s) else float(s)  # noqa: E731
    return Constraint(side(m.group(1)), m.group(2), side(m.group(3)))


def _read(text: str) -> dict:
    path = Path(text)
    if text.endswith((".json", ".toml")):
        if not path.is_file():
            raise ValueError(f"space: no file {text}")
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            return _toml(text)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return _toml(text)


def _toml(text: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"space: neither JSON nor TOML ({exc})") from None


def _dimension(name: str, spec) -> Dimension:
    if not isinstance(spec, dict):
        raise ValueError(f"space: {name}: expected {{\"int\": [low, high]}}, {{\"float\": [low, high]}} or {{\"choices\": [...]}}")
    if "choices" in spec:
        choices = tuple(spec["choices"])
        if not choices:
            raise ValueError(f"space: {name}: empty choices")
        return Dimension(name, "choices", choices=choices)
    kind = next((k for k in ("int", "float") if k in spec), None)
    bounds = spec.get(kind) if kind else None
    if not (isinstance(bounds, (list, tuple)) and len(bounds) == 2 and all(isinstance(b, (int, float)) for b in bounds)):
        raise ValueError(f"space: {name}: expected {{\"int\": [low, high]}}, {{\"float\": [low, high]}} or {{\"choices\": [...]}}")
    low, high = (int(b) for b in bounds) if kind == "int" else (float(b) for b in bounds)
    if low > high:
        raise ValueError(f"space: {name}: low {low} > high {high}")
    step, log = spec.get("step"), bool(spec.get("log", False))
    if step is not None and (not isinstance(step, (int, float)) or step <= 0):
        raise ValueError(f"space: {name}: step must be a positive number")
    if log and (low <= 0 or step):
        raise ValueError(f"space: {name}: a log range needs low > 0 and no step")
    return Dimension(name, kind, low, high, int(step) if kind == "int" and step else step, log)


def _as_list(value) -> list:
    return [value] if isinstance(value, str) else list(value)
