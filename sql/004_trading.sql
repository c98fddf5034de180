-- 004: the trader's ledger. Nothing about an order lives only in memory.
CREATE TABLE IF NOT EXISTS trading.signals (
    sleeve     text        NOT NULL,
    symbol     text        NOT NULL,
    interval   text        NOT NULL,
    open_time  timestamptz NOT NULL,
    strategy   text        NOT NULL,
    action     text        NOT NULL CHECK (action IN ('BUY', 'SELL', 'HOLD')),
    reason     text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sleeve, open_time)
);

CREATE TABLE IF NOT EXISTS trading.orders (
    client_order_id   text        PRIMARY KEY,
    sleeve            text        NOT NULL,
    mode              text        NOT NULL CHECK (mode IN ('paper', 'testnet', 'live')),
    symbol            text        NOT NULL,
    side              text        NOT NULL CHECK (side IN ('BUY', 'SELL')),
    type              text        NOT NULL,
    quantity          numeric     NOT NULL CHECK (quantity > 0),
    price             numeric,
    status            text        NOT NULL,
    signal_open_time  timestamptz NOT NULL,
    exchange_order_id text,
    error             text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS trading.fills (
    id              bigserial   PRIMARY KEY,
    client_order_id text        NOT NULL REFERENCES trading.orders (client_order_id),
    trade_id        text        NOT NULL,
    symbol          text        NOT NULL,
    side            text        NOT NULL,
    quantity        numeric     NOT NULL,
    price           numeric     NOT NULL,
    fee             numeric     NOT NULL,
    fee_asset       text        NOT NULL,
    filled_at       timestamptz NOT NULL,
    UNIQUE (client_order_id, trade_id)
);

CREATE TABLE IF NOT EXISTS trading.positions (
    sleeve     text        PRIMARY KEY,
    symbol     text        NOT NULL,
    quantity   numeric     NOT NULL DEFAULT 0,
    avg_price  numeric     NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS trading.balances (
    mode       text        NOT NULL,
    asset      text        NOT NULL,
    free       numeric     NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mode, asset)
);

-- Per-sleeve progress: the newest feature row already decided on, so a restart never decides twice.
CREATE TABLE IF NOT EXISTS trading.sleeves (
    sleeve         text        PRIMARY KEY,
    symbol         text        NOT NULL,
    interval       text        NOT NULL,
    strategy       text        NOT NULL,
    last_open_time timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS trading.trader_state (
    key        text        PRIMARY KEY,
    value      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
