-- 030: market.candles and market.features partitioned by open_time (declarative RANGE partitions, one a month by
-- default), so that a bounded-time query reads only the partitions of its range and old months can be detached,
-- archived or dropped whole.
--
-- Layout: market.<table>_pYYYYMMDD holds [that UTC day, + one step) (the step of market.history_partitioning:
-- 'month' unless changed), market.<table>_default holds any row no other partition takes.
-- The DEFAULT partition is why a write never fails and nothing is lost when a candle arrives for a month whose
-- partition does not exist yet (a backfill of 2017, a clock far ahead): the row lands there, and the next
-- market.ensure_history_partitions call moves it into a partition of its own. That function is the only DDL:
-- the ingest DAG's plan task calls it for this month and the next two on every run (no DDL if they exist), a
-- history load for its [start, end) before fetching, a file import after loading (see klinepipe.partitions).
-- The merge itself never runs DDL: two loaders creating one partition would take locks in turn and deadlock.
--
-- The migration from the plain tables of 002: in this file's one transaction, per table, when it is not
-- partitioned yet: the old table is renamed, a partitioned one made LIKE it (columns, defaults, NOT NULL and
-- CHECK constraints, comments), partitions for the months its rows cover, the rows copied, then its primary
-- key, unique constraints, indexes (the partial index candles_open of 020 too), triggers, table and index
-- comments, and the functions taking its row type (etl.candle_version, etl.record_candle_conflict of 014)
-- re-created as they were; the old table is dropped. No row changes, so market.series_summary stays true.
-- Re-running it finds the tables partitioned and changes nothing.

CREATE TABLE IF NOT EXISTS market.history_partitioning (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    step text    NOT NULL DEFAULT 'month' CHECK (step IN ('day', 'week', 'month', 'year'))
);
INSERT INTO market.history_partitioning DEFAULT VALUES ON CONFLICT DO NOTHING;
COMMENT ON TABLE market.history_partitioning IS
    'The span of each new partition of market.candles and market.features (existing ones keep theirs); sql/030';

-- The [lower, upper) bounds of a table's range partitions (not its default).
CREATE OR REPLACE FUNCTION market.partition_bounds(parent regclass)
RETURNS TABLE (part regclass, lower timestamptz, upper timestamptz) LANGUAGE sql STABLE AS $$
    SELECT c.oid::regclass, m[1]::timestamptz, m[2]::timestamptz
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid,
         regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\) TO \(''([^'']+)''\)') m
    WHERE i.inhparent = parent
$$;

-- Partition [lower, upper) of a table's open_time, clipped to what no partition covers yet; rows of that range
-- in the default partition move into it (in the caller's transaction). Returns how many partitions it made.
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

-- Partitions, one step each, covering [first, last] of market.candles and market.features, and for every
-- row waiting in a default partition. Idempotent and cheap when they exist (catalog reads, no DDL); one
-- caller at a time. Returns how many partitions it made.
CREATE OR REPLACE FUNCTION market.ensure_history_partitions(first timestamptz, last timestamptz)
RETURNS integer LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    step   text := (SELECT p.step FROM market.history_partitioning p);
    parent regclass;
    b      timestamptz;
    made   integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('klinepipe.history_partitions'));
    FOREACH parent IN ARRAY ARRAY['market.candles'::regclass, 'market.features'::regclass] LOOP
        CONTINUE WHEN (SELECT relkind FROM pg_class WHERE oid = parent) <> 'p';
        FOR b IN
            SELECT generate_series(date_trunc(step, first, 'UTC'), last, ('1 ' || step)::interval)
            WHERE first IS NOT NULL AND last IS NOT NULL
            UNION
            SELECT DISTINCT date_trunc(step, open_time, 'UTC')
            FROM market.default_partition_times(parent) AS d(open_time)
        LOOP
            CONTINUE WHEN EXISTS (SELECT 1 FROM market.partition_bounds(parent) x WHERE x.lower <= b AND x.upper > b);
            made := made + market.add_partition(parent, b, b + ('1 ' || step)::interval);
        END LOOP;
    END LOOP;
    RETURN made;
END $$;

-- The open times of the rows waiting in a table's default partition (few: it is emptied by the function above).
CREATE OR REPLACE FUNCTION market.default_partition_times(parent regclass)
RETURNS SETOF timestamptz LANGUAGE plpgsql STABLE AS $$
DECLARE
    def regclass := to_regclass(format('market.%I', (SELECT relname FROM pg_class WHERE oid = parent) || '_default'));
BEGIN
    IF def IS NOT NULL THEN
        RETURN QUERY EXECUTE format('SELECT DISTINCT open_time FROM %s', def);
    END IF;
END $$;

-- The migration of one plain table (see the top of this file). Fails, changing nothing, when a view or a
-- foreign key depends on it (they would need re-creating, and this project has none).
CREATE OR REPLACE FUNCTION market.partition_plain_table(tbl text) RETURNS void LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    src     regclass := format('market.%I', tbl)::regclass;
    kept    text := tbl || '_unpartitioned';
    ddl     text[];
    funcs   text[];
    sig     text;
    stmt    text;
    first   timestamptz;
    last    timestamptz;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = src) = 'p' THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_constraint WHERE confrelid = src)
       OR EXISTS (SELECT 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
                  WHERE d.refobjid = src AND d.classid = 'pg_rewrite'::regclass AND r.ev_class <> src) THEN
        RAISE EXCEPTION 'market.%: a view or foreign key depends on it; re-create it after partitioning', tbl;
    END IF;
    EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', src);
    -- what is re-created on the new table, as SQL naming market.<tbl> (captured before the rename)
    ddl := ARRAY(
        SELECT format('ALTER TABLE %s ADD CONSTRAINT %I %s', src, conname, pg_get_constraintdef(oid))
        FROM pg_constraint WHERE conrelid = src AND contype IN ('p', 'u', 'x') ORDER BY conname);
    ddl := ddl || ARRAY(
        SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
        WHERE i.indrelid = src AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
        ORDER BY i.indexrelid);
    ddl := ddl || ARRAY(
        SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = src AND NOT tgisinternal ORDER BY tgname);
    ddl := ddl || ARRAY(
        SELECT format('COMMENT ON %s %s IS %L', CASE WHEN c.relkind = 'i' THEN 'INDEX' ELSE 'TABLE' END,
                      c.oid::regclass, obj_description(c.oid, 'pg_class'))
        FROM pg_class c WHERE (c.oid = src OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = src))
          AND obj_description(c.oid, 'pg_class') IS NOT NULL);
    ddl := ddl || ARRAY(
        SELECT format('COMMENT ON TRIGGER %I ON %s IS %L', tgname, src, obj_description(oid, 'pg_trigger'))
        FROM pg_trigger WHERE tgrelid = src AND obj_description(oid, 'pg_trigger') IS NOT NULL);
    -- functions taking or returning the row type (dropped with it, re-created for the new one)
    funcs := ARRAY(
        SELECT DISTINCT p.oid::regprocedure::text FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
        WHERE d.classid = 'pg_proc'::regclass AND d.refobjid = (SELECT reltype FROM pg_class WHERE oid = src));
    ddl := ddl || ARRAY(SELECT pg_get_functiondef(f::regprocedure) FROM unnest(funcs) f);
    FOREACH sig IN ARRAY funcs LOOP
        EXECUTE format('DROP FUNCTION %s', sig);
    END LOOP;

    EXECUTE format('ALTER TABLE %s RENAME TO %I', src, kept);
    FOR stmt IN SELECT format('ALTER INDEX market.%I RENAME TO %I', c.relname, 'unpartitioned_' || c.oid)
                FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = src LOOP
        EXECUTE stmt;
    END LOOP;
    EXECUTE format('CREATE TABLE market.%I (LIKE market.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS'
                   ' INCLUDING COMMENTS INCLUDING GENERATED INCLUDING IDENTITY INCLUDING STATISTICS'
                   ' INCLUDING STORAGE INCLUDING COMPRESSION) PARTITION BY RANGE (open_time)', tbl, kept);
    EXECUTE format('CREATE TABLE market.%I PARTITION OF market.%I DEFAULT', tbl || '_default', tbl);
    EXECUTE format('SELECT min(open_time), max(open_time) FROM market.%I', kept) INTO first, last;
    PERFORM market.ensure_history_partitions(first, last);  -- one a step, for the months of the rows
    EXECUTE format('INSERT INTO market.%I SELECT * FROM market.%I', tbl, kept);
    FOREACH stmt IN ARRAY ddl LOOP
        EXECUTE stmt;
    END LOOP;
    EXECUTE format('DROP TABLE market.%I', kept);
    EXECUTE format('ANALYZE market.%I', tbl);
END $$;

SELECT market.partition_plain_table('candles');
SELECT market.partition_plain_table('features');
