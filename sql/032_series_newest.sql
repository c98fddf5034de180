-- 032: each series' newest open time and open-candle count in market.series_summary, kept by the candle merge, so
-- that the Trading page's and the metrics' per-series lookups read one month's partition instead of every partition.
--
-- Why: market.candles and market.features have a DEFAULT partition (sql/030), so PostgreSQL cannot scan their
-- partitions in bound order, and a per-series "ORDER BY open_time DESC LIMIT 1" became a Merge Append that probes
-- every partition's index (at 20M candles, 25 series over 63 partitions: /overview p95 137 ms). Bounded by the
-- series' newest open time, the same lookup is pruned at run time to the partitions of that range.
-- Kept like the counts (sql/020): the merge sets it to greatest(stored, newest merged) in its own statement; any
-- other write (a delete by hand) marks the summary stale and the next reader rebuilds it, newest open time included.
ALTER TABLE market.series_summary ADD COLUMN IF NOT EXISTS newest_open_time timestamptz;
ALTER TABLE market.series_summary ADD COLUMN IF NOT EXISTS open_candles bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN market.series_summary.newest_open_time IS
    'max(open_time) of the series'' candles: kept by the candle merge, rebuilt with the summary (sql/032)';
COMMENT ON COLUMN market.series_summary.open_candles IS
    'how many of the series'' candles are not closed (bars being built): kept by the candle merge (sql/032)';

CREATE OR REPLACE FUNCTION market.note_candle_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE market.series_summary
        SET candles = 0, newest_ingested_at = NULL, last_live_ingested_at = NULL, newest_open_time = NULL,
            open_candles = 0;
    ELSIF coalesce(current_setting('klinepipe.summary_kept', true), '') = statement_timestamp()::text THEN
        NULL;
    ELSE
        INSERT INTO market.series_summary_stale DEFAULT VALUES ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION market.rebuild_series_summary() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE market.candles, market.features IN SHARE ROW EXCLUSIVE MODE;
    DELETE FROM market.series_summary;
    INSERT INTO market.series_summary (symbol, interval, candles, features, newest_ingested_at, last_live_ingested_at,
                                       newest_open_time, open_candles)
    SELECT coalesce(c.symbol, f.symbol), coalesce(c.interval, f.interval), coalesce(c.candles, 0),
           coalesce(f.features, 0), c.newest_ingested_at, c.last_live_ingested_at, c.newest_open_time,
           coalesce(c.open_candles, 0)
    FROM (SELECT symbol, interval, count(*) AS candles, max(ingested_at) AS newest_ingested_at,
                 max(ingested_at) FILTER (WHERE market.arrived_live(source, ingested_at, close_time)) AS last_live_ingested_at,
                 max(open_time) AS newest_open_time, count(*) FILTER (WHERE NOT is_closed) AS open_candles
          FROM market.candles GROUP BY symbol, interval) c
    FULL JOIN (SELECT symbol, interval, count(*) AS features FROM market.features GROUP BY symbol, interval) f
        ON f.symbol = c.symbol AND f.interval = c.interval;
    DELETE FROM market.series_summary_stale;
END $$;

-- Existing rows: each series' newest open time and open candles (key scans per series, once).
UPDATE market.series_summary s
SET newest_open_time = (SELECT max(open_time) FROM market.candles c WHERE c.symbol = s.symbol AND c.interval = s.interval),
    open_candles = (SELECT count(*) FROM market.candles c WHERE c.symbol = s.symbol AND c.interval = s.interval
                    AND NOT c.is_closed)
WHERE s.candles > 0;

-- A Binance interval ('1s', '15m', '4h', '1d', '1w', '1M') as a PostgreSQL interval: bounds "the newest n candles"
-- of a series to n intervals back from its newest open time (the Trading page's precision sample).
CREATE OR REPLACE FUNCTION market.interval_span(iv text) RETURNS interval LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CAST(left(iv, -1) AS int) * CASE right(iv, 1) WHEN 's' THEN interval '1 second' WHEN 'm' THEN interval '1 minute'
        WHEN 'h' THEN interval '1 hour' WHEN 'd' THEN interval '1 day' WHEN 'w' THEN interval '1 week'
        WHEN 'M' THEN interval '1 month' END
$$;
