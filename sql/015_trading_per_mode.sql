-- 015: nothing one trading mode records is read as another's (issue 12 point 6).
-- Sleeve progress, positions and signals were keyed by sleeve only, so a paper position was sold on testnet.
-- They are keyed by (mode, sleeve) now; every row written before this migration was paper trading.
-- Balances, equity, events, reconciliations, orders and the kill switch were already per mode.
-- Re-runnable: columns are added only when missing, keys are rebuilt to the same shape.
ALTER TABLE trading.sleeves   ADD COLUMN IF NOT EXISTS mode text NOT NULL DEFAULT 'paper';
ALTER TABLE trading.positions ADD COLUMN IF NOT EXISTS mode text NOT NULL DEFAULT 'paper';
ALTER TABLE trading.signals   ADD COLUMN IF NOT EXISTS mode text NOT NULL DEFAULT 'paper';

ALTER TABLE trading.sleeves   DROP CONSTRAINT IF EXISTS sleeves_pkey;
ALTER TABLE trading.sleeves   ADD CONSTRAINT sleeves_pkey PRIMARY KEY (mode, sleeve);
ALTER TABLE trading.positions DROP CONSTRAINT IF EXISTS positions_pkey;
ALTER TABLE trading.positions ADD CONSTRAINT positions_pkey PRIMARY KEY (mode, sleeve);
ALTER TABLE trading.signals   DROP CONSTRAINT IF EXISTS signals_pkey;
ALTER TABLE trading.signals   ADD CONSTRAINT signals_pkey PRIMARY KEY (mode, sleeve, open_time);
