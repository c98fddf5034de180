"""The feature set ``market.features`` holds: the default specs plus every spec registered in ``etl.feature_specs``.

The trader and the pipeline are separate processes, so what crosses between them is data: the trader
writes the specs its sleeves need (canonical text, ``sma(5)``) into ``etl.feature_specs``; the features
task reads them here, adds a ``double precision`` column per new output (``ALTER TABLE ... ADD COLUMN``,
in its write transaction, so readers see a new column only together with its values), and records in
``etl.feature_state.spec_set`` which set the table is complete for. Every function runs in the caller's
transaction.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from klinepipe.feature_specs import FeatureSpec
from klinepipe.features import DEFAULT_SPECS, parse_spec, spec_columns, union_specs, warmup_bars

log = logging.getLogger(__name__)
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")  # what the naming rule produces; checked before any DDL


@dataclass(frozen=True)
class FeatureSet:
    specs: tuple[FeatureSpec, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return spec_columns(self.specs)

    @property
    def warmup(self) -> int:
        return warmup_bars(self.specs)

    @property
    def spec_set(self) -> str:
        """The set as one text, independent of order: what ``etl.feature_state.spec_set`` records."""
        return "; ".join(sorted(s.text for s in self.specs))


DEFAULT_SET = FeatureSet(DEFAULT_SPECS)


def read_feature_set(cur) -> FeatureSet:
    """The default specs plus the registered ones. A registered text that is not a valid spec (written by hand)
    is left out with an error line naming it: one bad row must not stop the features of every series."""
    cur.execute("SELECT spec, registered_by FROM etl.feature_specs ORDER BY registered_at, spec")
    specs = []
    for text, by in cur.fetchall():
        try:
            specs.append(parse_spec(text))
        except ValueError as exc:
            log.error("etl.feature_specs: %r (registered by %s) left out: %s", text, by, exc)
    return FeatureSet(union_specs(DEFAULT_SPECS, specs))


def ensure_columns(cur, feature_set: FeatureSet) -> list[str]:
    """Add the set's missing ``market.features`` columns (double precision, like the others); return them."""
    have = stored_columns(cur)
    missing = [c for c in feature_set.columns if c not in have]
    for column in missing:
        if not _IDENTIFIER.match(column):
            raise ValueError(f"feature column {column!r} is not a plain SQL identifier")
    if missing:
        cur.execute("ALTER TABLE market.features " + ", ".join(f"ADD COLUMN IF NOT EXISTS {c} double precision" for c in missing))
        log.info("features: new columns %s", ", ".join(missing))
    return missing


def register_specs(cur, specs, registered_by: str) -> list[str]:
    """Register ``specs`` (those outside the default set) for the features task; return the texts that were new."""
    new = []
    for spec in specs:
        if spec in DEFAULT_SPECS:
            continue
        cur.execute("INSERT INTO etl.feature_specs (spec, registered_by) VALUES (%s, %s) ON CONFLICT (spec) DO NOTHING"
                    " RETURNING spec", (spec.text, registered_by))
        if cur.fetchone() is not None:
            new.append(spec.text)
    return new


def stored_columns(cur) -> set[str]:
    """The columns ``market.features`` has now."""
    cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 'market' AND table_name = 'features'")
    return {r[0] for r in cur.fetchall()}
