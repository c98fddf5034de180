-- 016: candle lineage. Until now the streaming sidecar's gap fill (closed candles its ledger found missing,
-- fetched over REST) and the backfill_klines DAG both wrote source = 'backfill', so a row did not say which
-- process wrote it. The sidecar writes 'gap_fill' now; 'backfill' is only the DAG's (and scripts/backfill.py).
-- Rows stored before this migration keep 'backfill' whoever wrote them: lineage is not guessed after the fact.
-- Every value has one writer (plugins/klinepipe/lineage.py); the conflict rule ranks them by code points
-- (conflict_rank 1 lowest): a tie between two identical states of a candle keeps the higher-ranked source.
-- Not a foreign key: a message without a source header is still stored (as 'unknown'), never rejected.
CREATE TABLE IF NOT EXISTS market.candle_sources (
    source        text    PRIMARY KEY,
    written_by    text    NOT NULL,
    conflict_rank integer NOT NULL UNIQUE
);
INSERT INTO market.candle_sources (source, written_by, conflict_rank) VALUES
    ('backfill', 'backfill_klines DAG and scripts/backfill.py: REST history loads and gap repairs', 1),
    ('binance',  'streaming sidecar, live: websocket frames', 2),
    ('file',     'import_kline_files DAG: Binance public data files', 3),
    ('gap_fill', 'streaming sidecar, live: missing closed candles fetched over REST', 4),
    ('replay',   'streaming sidecar, replay: recorded klines', 5)
ON CONFLICT (source) DO UPDATE SET written_by = EXCLUDED.written_by, conflict_rank = EXCLUDED.conflict_rank;

COMMENT ON COLUMN market.candles.source IS
    'Which writer stored this version: binance, replay, gap_fill (streaming sidecar), backfill (backfill_klines DAG), '
    'file (import_kline_files DAG); see market.candle_sources';
