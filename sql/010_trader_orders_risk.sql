-- 010: the trader's order lifecycle, risk and audit records (trader v2). Idempotent.
-- Order status: PENDING_SUBMIT (intent recorded, not yet known to the exchange) -> NEW / PARTIALLY_FILLED /
-- FILLED / CANCELED / REJECTED / EXPIRED. ``attempts`` is raised (and committed) BEFORE every submit, so after
-- a crash an order with attempts > 0 is first looked up by its client order id, never blindly resent.
ALTER TABLE trading.orders ADD COLUMN IF NOT EXISTS time_in_force text;
ALTER TABLE trading.orders ADD COLUMN IF NOT EXISTS stop_price    numeric;
ALTER TABLE trading.orders ADD COLUMN IF NOT EXISTS ref_price     numeric;
ALTER TABLE trading.orders ADD COLUMN IF NOT EXISTS executed_qty  numeric NOT NULL DEFAULT 0;
ALTER TABLE trading.orders ADD COLUMN IF NOT EXISTS attempts      integer NOT NULL DEFAULT 0;
ALTER TABLE trading.orders ADD COLUMN IF NOT EXISTS error_kind    text;
ALTER TABLE trading.orders ADD COLUMN IF NOT EXISTS submitted_at  timestamptz;
CREATE INDEX IF NOT EXISTS orders_open_idx ON trading.orders (mode, status)
    WHERE status IN ('PENDING_SUBMIT', 'NEW', 'PARTIALLY_FILLED');

ALTER TABLE trading.sleeves ADD COLUMN IF NOT EXISTS allocation    numeric;
ALTER TABLE trading.sleeves ADD COLUMN IF NOT EXISTS halted_reason text;

-- Everything that happened and was not an order or a fill: risk blocks, strategy errors, order errors,
-- kill-switch transitions, reconciliation differences, operator actions.
CREATE TABLE IF NOT EXISTS trading.events (
    id         bigserial   PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    mode       text        NOT NULL,
    kind       text        NOT NULL,  -- risk_block | strategy_error | order_error | kill_switch | reconcile | operator
    sleeve     text,
    open_time  timestamptz,
    rule       text,
    detail     text        NOT NULL
);
CREATE INDEX IF NOT EXISTS events_kind_idx ON trading.events (mode, kind, at);

-- Mark-to-market equity after each decided candle (at = the candle's open time).
CREATE TABLE IF NOT EXISTS trading.equity (
    mode   text        NOT NULL,
    at     timestamptz NOT NULL,
    equity numeric     NOT NULL,
    PRIMARY KEY (mode, at)
);

-- Start-up reconciliations: what differed between the exchange and the ledger, and whether the operator accepted it.
CREATE TABLE IF NOT EXISTS trading.reconciliations (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    mode        text        NOT NULL,
    differences jsonb       NOT NULL,
    accepted    boolean     NOT NULL DEFAULT false,
    accepted_at timestamptz
);
