-- 014: two closed versions of one candle that differ (a price, a volume, the trade count, the close time).
-- Binance closes a candle once; two closed versions mean a source disagreed (a replay against a backfill, a
-- corrected REST answer, a bad recording). The loader keeps one by the conflict rule (README "How it works")
-- and records both here, in the transaction that loaded them, with which one won:
--   earlier: the version held first (stored in market.candles, or seen first in the same batch)
--   later:   the version that arrived after it
-- Each version is a JSON object of the candle's fields (money as decimal text, times in epoch ms) and its source.
CREATE TABLE IF NOT EXISTS etl.candle_conflicts (
    id                 bigserial   PRIMARY KEY,
    symbol             text        NOT NULL,
    interval           text        NOT NULL,
    open_time          timestamptz NOT NULL,
    earlier            jsonb       NOT NULL,
    later              jsonb       NOT NULL,
    earlier_event_time timestamptz NOT NULL,
    later_event_time   timestamptz NOT NULL,
    won                text        NOT NULL CHECK (won IN ('earlier', 'later')),
    recorded_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS candle_conflicts_series ON etl.candle_conflicts (symbol, interval, open_time);
