"""Airflow Assets that connect the DAGs (imported at DAG parse time: keep it light)."""

from airflow.sdk import Asset

CANDLES = Asset(name="market.candles", uri="x-klinepipe://postgres/market/candles")
FEATURES = Asset(name="market.features", uri="x-klinepipe://postgres/market/features")
