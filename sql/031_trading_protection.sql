-- 031: issue 16, protection held by the exchange. Re-runnable.
-- A position's protection set is one or two SELL rows in trading.orders (a stop leg ``<entry id>-PS``, a take-profit
-- leg ``<entry id>-PT``) placed together (an OCO list ``<entry id>-PL``, kept in ``list_client_order_id``) or alone
-- (a STOP_LOSS / STOP_LOSS_LIMIT, or a trailing stop: ``trailing_delta`` in bips).
ALTER TABLE trading.orders ADD COLUMN IF NOT EXISTS trailing_delta integer;
ALTER TABLE trading.orders ADD COLUMN IF NOT EXISTS list_client_order_id text;
