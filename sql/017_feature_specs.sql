-- 017: feature specs beyond the default set. The trader registers here every spec its sleeves' strategies
-- declare (canonical text, e.g. 'sma(5)', 'bbands(20, 2.5)'); compute_features stores the default set plus
-- these, one market.features column per output (added as double precision when a spec first appears).
CREATE TABLE IF NOT EXISTS etl.feature_specs (
    spec          text        PRIMARY KEY,
    registered_by text        NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now()
);

-- The spec set market.features was last completed for ('; '-joined canonical texts). Another set: the next
-- features run recomputes every series' whole history once (new columns filled), then goes on incrementally.
ALTER TABLE etl.feature_state ADD COLUMN IF NOT EXISTS spec_set text;
