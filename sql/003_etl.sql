-- 003: the loader's bookkeeping.
CREATE TABLE IF NOT EXISTS etl.kafka_offsets (
    consumer    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition)
);

CREATE TABLE IF NOT EXISTS etl.dead_letters (
    id          bigserial   PRIMARY KEY,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    key         bytea,
    raw         bytea,
    error       text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (topic, partition, "offset")
);

CREATE TABLE IF NOT EXISTS etl.quality_checks (
    id         bigserial   PRIMARY KEY,
    run_at     timestamptz NOT NULL DEFAULT now(),
    check_name text        NOT NULL,
    symbol     text,
    interval   text,
    passed     boolean     NOT NULL,
    details    jsonb       NOT NULL DEFAULT '{}'::jsonb
);
