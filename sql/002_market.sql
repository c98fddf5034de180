-- 002: market data. Prices and volumes are exact decimals (numeric), times are timestamptz (UTC).
CREATE TABLE IF NOT EXISTS market.candles (
    symbol                 text        NOT NULL,
    interval               text        NOT NULL,
    open_time              timestamptz NOT NULL,
    close_time             timestamptz NOT NULL,
    open                   numeric     NOT NULL,
    high                   numeric     NOT NULL,
    low                    numeric     NOT NULL,
    close                  numeric     NOT NULL,
    volume                 numeric     NOT NULL,
    quote_volume           numeric,
    trades                 bigint,
    taker_buy_base_volume  numeric,
    taker_buy_quote_volume numeric,
    is_closed              boolean     NOT NULL,
    event_time             timestamptz NOT NULL,
    source                 text        NOT NULL,
    ingested_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, interval, open_time)
);

-- Feature set v1: one row per closed candle. Floats: indicators are derived values, not money.
CREATE TABLE IF NOT EXISTS market.features (
    symbol              text             NOT NULL,
    interval            text             NOT NULL,
    open_time           timestamptz      NOT NULL,
    feature_set_version text             NOT NULL,
    close               numeric          NOT NULL,
    ret_1               double precision,
    log_ret_1           double precision,
    sma_10              double precision,
    sma_30              double precision,
    ema_10              double precision,
    ema_30              double precision,
    rsi_14              double precision,
    computed_at         timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, interval, open_time)
);
