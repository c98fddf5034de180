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

-- A candle version as etl.candle_conflicts records it (the same fields as klinepipe.kline.content_json).
CREATE OR REPLACE FUNCTION etl.candle_version(c market.candles) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'close_time', (extract(epoch FROM c.close_time) * 1000)::bigint, 'open', c.open::text, 'high', c.high::text,
        'low', c.low::text, 'close', c.close::text, 'volume', c.volume::text, 'quote_volume', c.quote_volume::text,
        'trades', c.trades, 'taker_buy_base_volume', c.taker_buy_base_volume::text,
        'taker_buy_quote_volume', c.taker_buy_quote_volume::text,
        'event_time', (extract(epoch FROM c.event_time) * 1000)::bigint, 'source', c.source)
$$;

-- Called by the merge guard (plugins/klinepipe/candle_store.py) only for a closed candle that meets a stored closed
-- candle with other values: records both and returns the guard's verdict unchanged (true: the later one wins).
CREATE OR REPLACE FUNCTION etl.record_candle_conflict(earlier market.candles, later market.candles, later_won boolean)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO etl.candle_conflicts (symbol, interval, open_time, earlier, later, earlier_event_time, later_event_time, won)
    VALUES (later.symbol, later.interval, later.open_time, etl.candle_version(earlier), etl.candle_version(later),
            earlier.event_time, later.event_time, CASE WHEN later_won THEN 'later' ELSE 'earlier' END);
    RETURN later_won;
END
$$;
