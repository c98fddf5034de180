"""klinepipe: the shared library of the pipeline.

Pure domain code (``kline``, ``features``, ``intervals``, ``lineage``) imports no I/O library; the ETL's I/O
(``kafka_batch``, ``candle_store``, ``kafka_offsets``, ``dead_letters``, ``feature_store``, ``db``) builds on it. The
package sits in Airflow's plugins folder so that DAG tasks can import it, and the trader imports its pure
modules so that backtests compute features with the very code the DAG runs.
"""

FEATURE_SET_VERSION = "v3"  # v3: feature specs; exact SMA means (klinepipe.rolling); warm-up per spec
KLINES_TOPIC = "binance.klines"  # default of KAFKA_TOPIC, for the sidecar and the DAGs alike
DLQ_TOPIC = "binance.klines.dlq"  # default of KAFKA_DLQ_TOPIC
FEATURES_CHANNEL = "klinepipe_features"  # NOTIFY'd by the features task, LISTEN'd by the trader
