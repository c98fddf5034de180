-- 020: a per-series summary, so that the Trading page and the ETL metrics cost O(series) per refresh instead of
-- a count(*)/max() GROUP BY over all of market.candles and market.features (linear in history, every 15 s).
-- Kept by statement-level triggers with transition tables: every write to either table updates its series' row
-- in the same transaction, whoever writes (the loader's merge, backfills, file imports, the features DAG).
-- What is a max over the newest rows (newest open time, newest closed candle, its source, newest feature) is
-- not kept here: an index lookup on the primary key finds it (see plugins/klinepipe_trading/queries.py).
-- Re-runnable: the summary is rebuilt from a full scan, under locks that hold writers off while it is.
CREATE TABLE IF NOT EXISTS market.series_summary (
    symbol                text        NOT NULL,
    interval              text        NOT NULL,
    candles               bigint      NOT NULL DEFAULT 0,
    closed                bigint      NOT NULL DEFAULT 0,
    features              bigint      NOT NULL DEFAULT 0,
    newest_ingested_at    timestamptz,              -- max(ingested_at): a write only ever sets it to now()
    last_live_ingested_at timestamptz,              -- the newest ingested_at of a candle that arrived live
    PRIMARY KEY (symbol, interval)
);
COMMENT ON TABLE market.series_summary IS
    'Per series: how many candles (closed) and feature rows are stored, when candles were last written and last '
    'arrived live (streamed, ingested at most 10 minutes after closing); kept by triggers on market.candles/features';

-- "Arrived live": the rule of klinepipe.quality.arrived_live_sql (sources of the streaming sidecar, ingested at
-- most 10 minutes after the candle closed), evaluated when the candle is written.
CREATE OR REPLACE FUNCTION market.arrived_live(source text, ingested_at timestamptz, close_time timestamptz)
RETURNS boolean LANGUAGE sql IMMUTABLE AS
$$ SELECT source IN ('binance', 'replay') AND ingested_at - close_time <= interval '10 minutes' $$;

CREATE OR REPLACE FUNCTION market.summarise_candles() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO market.series_summary AS s (symbol, interval, candles, closed, newest_ingested_at, last_live_ingested_at)
        SELECT symbol, interval,
               CASE WHEN TG_OP = 'INSERT' THEN count(*) ELSE 0 END,
               count(*) FILTER (WHERE is_closed),
               max(ingested_at),
               max(ingested_at) FILTER (WHERE market.arrived_live(source, ingested_at, close_time))
        FROM new_rows GROUP BY symbol, interval
        ON CONFLICT (symbol, interval) DO UPDATE SET
            candles = s.candles + EXCLUDED.candles,
            closed = s.closed + EXCLUDED.closed,
            newest_ingested_at = greatest(s.newest_ingested_at, EXCLUDED.newest_ingested_at),
            last_live_ingested_at = greatest(s.last_live_ingested_at, EXCLUDED.last_live_ingested_at);
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE market.series_summary s SET
            candles = s.candles - CASE WHEN TG_OP = 'DELETE' THEN o.n ELSE 0 END,
            closed = s.closed - o.closed
        FROM (SELECT symbol, interval, count(*) AS n, count(*) FILTER (WHERE is_closed) AS closed
              FROM old_rows GROUP BY symbol, interval) o
        WHERE s.symbol = o.symbol AND s.interval = o.interval;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION market.summarise_features() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
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

CREATE OR REPLACE FUNCTION market.summarise_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'candles' THEN
        UPDATE market.series_summary SET candles = 0, closed = 0, newest_ingested_at = NULL, last_live_ingested_at = NULL;
    ELSE
        UPDATE market.series_summary SET features = 0;
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS summary_insert ON market.candles;
DROP TRIGGER IF EXISTS summary_update ON market.candles;
DROP TRIGGER IF EXISTS summary_delete ON market.candles;
DROP TRIGGER IF EXISTS summary_truncate ON market.candles;
DROP TRIGGER IF EXISTS summary_insert ON market.features;
DROP TRIGGER IF EXISTS summary_delete ON market.features;
DROP TRIGGER IF EXISTS summary_truncate ON market.features;
CREATE TRIGGER summary_insert AFTER INSERT ON market.candles REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION market.summarise_candles();
CREATE TRIGGER summary_update AFTER UPDATE ON market.candles REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION market.summarise_candles();
CREATE TRIGGER summary_delete AFTER DELETE ON market.candles REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION market.summarise_candles();
CREATE TRIGGER summary_truncate AFTER TRUNCATE ON market.candles
    FOR EACH STATEMENT EXECUTE FUNCTION market.summarise_truncate();
CREATE TRIGGER summary_insert AFTER INSERT ON market.features REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION market.summarise_features();
CREATE TRIGGER summary_delete AFTER DELETE ON market.features REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION market.summarise_features();
CREATE TRIGGER summary_truncate AFTER TRUNCATE ON market.features
    FOR EACH STATEMENT EXECUTE FUNCTION market.summarise_truncate();

-- The history stored before this migration, counted once.
LOCK TABLE market.candles, market.features IN SHARE ROW EXCLUSIVE MODE;
DELETE FROM market.series_summary;
INSERT INTO market.series_summary (symbol, interval, candles, closed, features, newest_ingested_at, last_live_ingested_at)
SELECT coalesce(c.symbol, f.symbol), coalesce(c.interval, f.interval), coalesce(c.candles, 0), coalesce(c.closed, 0),
       coalesce(f.features, 0), c.newest_ingested_at, c.last_live_ingested_at
FROM (SELECT symbol, interval, count(*) AS candles, count(*) FILTER (WHERE is_closed) AS closed,
             max(ingested_at) AS newest_ingested_at,
             max(ingested_at) FILTER (WHERE market.arrived_live(source, ingested_at, close_time)) AS last_live_ingested_at
      FROM market.candles GROUP BY symbol, interval) c
FULL JOIN (SELECT symbol, interval, count(*) AS features FROM market.features GROUP BY symbol, interval) f
    ON f.symbol = c.symbol AND f.interval = c.interval;
