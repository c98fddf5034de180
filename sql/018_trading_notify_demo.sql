-- 018: issue 16, trader side. Re-runnable.
-- * Demo Mode ('demo') is a trading mode beside paper / testnet / live: its own rows everywhere (keyed by mode).
-- * ``expiry_reason``: Binance's ``expiryReason`` of an order that ended EXPIRED (2026), when a report carried it.
-- * The notification outbox: every fill and every event worth telling the operator about is written to
--   ``trading.notifications`` by a trigger, in the SAME transaction as the fill or event it reports (so the
--   Trading page's kill-switch changes are told too); a separate thread of the trader delivers it to each channel
--   (``trading.notification_deliveries``: at least once, retried with capped backoff, rate limited).
ALTER TABLE trading.orders DROP CONSTRAINT IF EXISTS orders_mode_check;
ALTER TABLE trading.orders ADD CONSTRAINT orders_mode_check CHECK (mode IN ('paper', 'testnet', 'demo', 'live'));
ALTER TABLE trading.orders ADD COLUMN IF NOT EXISTS expiry_reason text;

CREATE TABLE IF NOT EXISTS trading.notifications (
    id         bigserial   PRIMARY KEY,  -- the message's stable id: sent with every delivery attempt
    mode       text        NOT NULL,
    kind       text        NOT NULL,     -- fill | risk_block | kill_switch | kill_switch_action | strategy_error |
                                         -- order_error | outage | protection_placed | protection_triggered | daily_summary
    payload    jsonb       NOT NULL,
    dedupe_key text        UNIQUE,       -- e.g. daily_summary:<mode>:<day>: one message however often it is asked for
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS notifications_mode_idx ON trading.notifications (mode, id);

CREATE TABLE IF NOT EXISTS trading.notification_deliveries (
    notification_id bigint      NOT NULL REFERENCES trading.notifications (id) ON DELETE CASCADE,
    channel         text        NOT NULL,  -- webhook | telegram
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    last_error      text,                  -- the channel's status or error class only: never a URL or a token
    PRIMARY KEY (notification_id, channel)
);

CREATE OR REPLACE FUNCTION trading.notify_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO trading.notifications (mode, kind, payload)
    VALUES (NEW.mode, NEW.kind, jsonb_build_object('sleeve', NEW.sleeve, 'rule', NEW.rule, 'detail', NEW.detail,
                                                   'open_time', NEW.open_time, 'at', NEW.at, 'event_id', NEW.id));
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS events_notify ON trading.events;
CREATE TRIGGER events_notify AFTER INSERT ON trading.events FOR EACH ROW
    WHEN (NEW.kind IN ('risk_block', 'kill_switch', 'kill_switch_action', 'strategy_error', 'protection_placed',
                       'protection_triggered', 'outage') OR (NEW.kind = 'order_error' AND NEW.rule = 'fatal'))
    EXECUTE FUNCTION trading.notify_event();

CREATE OR REPLACE FUNCTION trading.notify_fill() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO trading.notifications (mode, kind, payload)
    SELECT o.mode, 'fill', jsonb_build_object('sleeve', o.sleeve, 'client_order_id', NEW.client_order_id,
                                              'trade_id', NEW.trade_id, 'symbol', NEW.symbol, 'side', NEW.side,
                                              'quantity', NEW.quantity::text, 'price', NEW.price::text,
                                              'fee', NEW.fee::text, 'fee_asset', NEW.fee_asset, 'at', NEW.filled_at)
    FROM trading.orders o WHERE o.client_order_id = NEW.client_order_id;
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS fills_notify ON trading.fills;
CREATE TRIGGER fills_notify AFTER INSERT ON trading.fills FOR EACH ROW EXECUTE FUNCTION trading.notify_fill();
