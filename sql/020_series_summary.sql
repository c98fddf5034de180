-- 020: a per-series summary, so that the Trading page and the ETL metrics cost O(series) per refresh instead of
-- a count(*)/max() GROUP BY over all of market.candles and market.features (linear in history, every 15 s).
--
-- Candles: the guarded merge (plugins/klinepipe/candle_store.py: the loader, backfills, gap fills and file
-- imports all write through it) updates its series' rows in the same statement, at the cost of one aggregate over
-- the rows it returns anyway. Any other write to market.candles (SQL by hand, a delete) is caught by a cheap
-- statement trigger that marks the summary stale; the next reader rebuilds it from a full scan (once).
-- Feature rows: statement-level triggers with transition tables, in the writer's transaction (one row per
-- closed candle: far fewer writes than the candles' in-progress updates).
-- What is a max over the newest rows (newest open time, newest closed candle, its source, newest feature) is not
-- kept here: a backward scan of the primary key finds it; open candles are counted from a partial index of them
-- (few: the bars being built), closed = candles - open (see plugins/klinepipe_trading/queries.py).
-- Re-runnable: the summary is rebuilt from a full scan, under locks that hold writers off while it is.
CREATE TABLE IF NOT EXISTS market.series_summary (
    symbol                text        NOT NULL,
    interval              text        NOT NULL,
    candles               bigint      NOT NULL DEFAULT 0,
    features              bigint      NOT NULL DEFAULT 0,
    newest_ingested_at    timestamptz,              -- max(ingested_at): a write only ever sets it to now()
    last_live_ingested_at timestamptz,              -- the newest ingested_at of a candle that arrived live
    PRIMARY KEY (symbol, interval)
);
COMMENT ON TABLE market.series_summary IS
    'Per series: how many candles and feature rows are stored, when candles were last written and last arrived '
    'live (streamed, ingested at most 10 minutes after closing); kept by the candle merge and triggers (sql/020)';

-- A row here: market.candles was written outside the merge since the summary was last rebuilt.
CREATE TABLE IF NOT EXISTS market.series_summary_stale (
    one   boolean     PRIMARY KEY DEFAULT true CHECK (one),
    since timestamptz NOT NULL DEFAULT now()
);

-- "Arrived live": the rule of klinepipe.quality.arrived_live_sql (sources of the streaming sidecar, ingested at
-- most 10 minutes after the candle closed), evaluated when the candle is written.
CREATE OR REPLACE FUNCTION market.arrived_live(source text, ingested_at timestamptz, close_time timestamptz)
RETURNS boolean LANGUAGE sql IMMUTABLE AS
$$ SELECT source IN ('binance', 'replay') AND ingested_at - close_time <= interval '10 minutes' $$;

-- The merge sets klinepipe.summary_kept to its own statement's timestamp (it kept the summary itself). Any other
-- statement that writes market.candles finds another value there, and marks the summary stale.
CREATE OR REPLACE FUNCTION market.note_candle_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE market.series_summary SET candles = 0, newest_ingested_at = NULL, last_live_ingested_at = NULL;
    ELSIF coalesce(current_setting('klinepipe.summary_kept', true), '') = statement_timestamp()::text THEN
        NULL;
    ELSE
        INSERT INTO market.series_summary_stale DEFAULT VALUES ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION market.summarise_features() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE market.series_summary SET features = 0;
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO market.series_summary AS s (symbol, interval, features)
        SELECT symbol, interval, count(*) FROM new_rows GROUP BY symbol, interval
        ON CONFLICT (symbol, interval) DO UPDATE SET features = s.features + EXCLUDED.features;
    ELSE
        UPDATE market.series_summary s SET features = s.features - o.n
        FROM (SELECT symbol, interval, count(*) AS n FROM old_rows GROUP BY symbol, interval) o
        WHERE s.symbol = o.symbol AND s.interval = o.interval;
    END IF;
    RETURN NULL;
END $$;

-- The summary from a full scan: at this migration, and by the first reader after a write outside the merge.
CREATE OR REPLACE FUNCTION market.rebuild_series_summary() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE market.candles, market.features IN SHARE ROW EXCLUSIVE MODE;
    DELETE FROM market.series_summary;
    INSERT INTO market.series_summary (symbol, interval, candles, features, newest_ingested_at, last_live_ingested_at)
    SELECT coalesce(c.symbol, f.symbol), coalesce(c.interval, f.interval), coalesce(c.candles, 0),
           coalesce(f.features, 0), c.newest_ingested_at, c.last_live_ingested_at
    FROM (SELECT symbol, interval, count(*) AS candles, max(ingested_at) AS newest_ingested_at,
                 max(ingested_at) FILTER (WHERE market.arrived_live(source, ingested_at, close_time)) AS last_live_ingested_at
          FROM market.candles GROUP BY symbol, interval) c
    FULL JOIN (SELECT symbol, interval, count(*) AS features FROM market.features GROUP BY symbol, interval) f
        ON f.symbol = c.symbol AND f.interval = c.interval;
    DELETE FROM market.series_summary_stale;
END $$;

DROP TRIGGER IF EXISTS summary_write ON market.candles;
DROP TRIGGER IF EXISTS summary_truncate ON market.candles;
DROP TRIGGER IF EXISTS summary_insert ON market.features;
DROP TRIGGER IF EXISTS summary_delete ON market.features;
DROP TRIGGER IF EXISTS summary_truncate ON market.features;
CREATE TRIGGER summary_write AFTER INSERT OR UPDATE OR DELETE ON market.candles
    FOR EACH STATEMENT EXECUTE FUNCTION market.note_candle_write();
CREATE TRIGGER summary_truncate AFTER TRUNCATE ON market.candles
    FOR EACH STATEMENT EXECUTE FUNCTION market.note_candle_write();
CREATE TRIGGER summary_insert AFTER INSERT ON market.features REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION market.summarise_features();
CREATE TRIGGER summary_delete AFTER DELETE ON market.features REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION market.summarise_features();
CREATE TRIGGER summary_truncate AFTER TRUNCATE ON market.features
    FOR EACH STATEMENT EXECUTE FUNCTION market.summarise_features();

CREATE INDEX IF NOT EXISTS candles_open ON market.candles (symbol, interval) WHERE NOT is_closed;

SELECT market.rebuild_series_summary();
