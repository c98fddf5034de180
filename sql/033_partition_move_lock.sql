-- 033: a partition made while rows of its range wait in the DEFAULT partition locks the parent table first, so no
-- reader sees those rows vanish.
--
-- Why: market.add_partition (sql/030) deletes the range from DEFAULT, copies it into a new table and attaches that.
-- ATTACH PARTITION needs only SHARE UPDATE EXCLUSIVE on the parent, so a query that had built its plan with the
-- partitions it knew (no new one) and waited on DEFAULT's lock ran after the commit and found the moved rows in
-- neither place. In `make run` this was the trader's mark price (no candle: the position counted as worth 0) while
-- the ingest DAG made the replay month's partition: the daily-loss kill switch went to REDUCING on a paper account
-- that had lost 7 USDT (tests/integration/test_partition_move_readers.py). With ACCESS EXCLUSIVE on the parent for
-- the move (partitions are made once a month, ahead of the data), a reader waits for the commit and then plans with
-- the new partition. The callers' lock_timeout (klinepipe.partitions: 5 s) still bounds the wait for the lock.
CREATE OR REPLACE FUNCTION market.add_partition(parent regclass, lower timestamptz, upper timestamptz)
RETURNS integer LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    tbl   text := (SELECT relname FROM pg_class WHERE oid = parent);
    def   regclass := to_regclass(format('market.%I', tbl || '_default'));
    cols  text := (SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
                   WHERE attrelid = parent AND attnum > 0 AND NOT attisdropped);
    lo    timestamptz := lower;
    hi    timestamptz;
    part  text;
    made  integer := 0;
BEGIN
    WHILE lo < upper LOOP
        -- skip what a partition covers, stop before the next one
        SELECT max(b.upper) INTO hi FROM market.partition_bounds(parent) b WHERE b.lower <= lo AND b.upper > lo;
        IF hi IS NOT NULL THEN lo := hi; CONTINUE; END IF;
        hi := least(upper, (SELECT min(b.lower) FROM market.partition_bounds(parent) b WHERE b.lower > lo));
        part := format('%s_p%s', tbl, to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDD'));
        IF def IS NOT NULL THEN  -- rows may move: no reader may plan without the new partition and read after the move
            EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', parent);
        END IF;
        EXECUTE format('CREATE TABLE market.%I (LIKE market.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part, tbl);
        IF def IS NOT NULL THEN
            EXECUTE format('WITH moved AS (DELETE FROM %s WHERE open_time >= $1 AND open_time < $2 RETURNING %s)'
                           ' INSERT INTO market.%I (%s) SELECT %s FROM moved', def, cols, part, cols, cols) USING lo, hi;
        END IF;
        EXECUTE format('ALTER TABLE %s ATTACH PARTITION market.%I FOR VALUES FROM (%L) TO (%L)', parent, part, lo, hi);
        made := made + 1;
        lo := hi;
    END LOOP;
    RETURN made;
END $$;
