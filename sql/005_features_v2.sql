-- 005: feature set v2 (see plugins/klinepipe/features.py). v1 rows are recomputed by the next features run.
ALTER TABLE market.features
    ADD COLUMN IF NOT EXISTS sma_50        double precision,
    ADD COLUMN IF NOT EXISTS ema_50        double precision,
    ADD COLUMN IF NOT EXISTS macd          double precision,
    ADD COLUMN IF NOT EXISTS macd_signal   double precision,
    ADD COLUMN IF NOT EXISTS macd_hist     double precision,
    ADD COLUMN IF NOT EXISTS bb_upper_20   double precision,
    ADD COLUMN IF NOT EXISTS bb_middle_20  double precision,
    ADD COLUMN IF NOT EXISTS bb_lower_20   double precision,
    ADD COLUMN IF NOT EXISTS atr_14        double precision,
    ADD COLUMN IF NOT EXISTS volatility_30 double precision,
    ADD COLUMN IF NOT EXISTS volume_z_30   double precision;

