-- 011: what compute_features has to do, found in O(new candles) instead of joining every candle with every
-- feature row. Each candle merge (stream, backfill, file import) queues the range of closed candles it
-- changed, per series, in its own transaction; compute_features takes the queue in its write transaction.
CREATE TABLE IF NOT EXISTS etl.features_pending (
    id              bigserial   PRIMARY KEY,
    symbol          text        NOT NULL,
    interval        text        NOT NULL,
    first_open_time timestamptz NOT NULL,
    last_open_time  timestamptz NOT NULL,
    queued_at       timestamptz NOT NULL DEFAULT now()
);

-- The feature set market.features is complete for, up to the queue. No row, or another version: the next
-- features run scans every candle (the first run after this migration, and after a feature-set change).
CREATE TABLE IF NOT EXISTS etl.feature_state (
    one                 boolean     PRIMARY KEY DEFAULT true CHECK (one),
    feature_set_version text        NOT NULL,
    scanned_at          timestamptz NOT NULL DEFAULT now()
);
