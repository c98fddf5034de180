"""compute_features with dag.test() against real PostgreSQL: a registered spec grows market.features (growth path)."""

import numpy as np
import pytest
import sqlalchemy as sa

from klinepipe.db import raw_transaction
from klinepipe.feature_set import register_specs
from klinepipe.feature_store import compute_pending_features, load_features
from klinepipe.features import compute_specs, parse_spec
from tests.conftest import ROOT, airflow_connections
from tests.helpers import sample_rows, seed_candles

pytestmark = [pytest.mark.airflow, pytest.mark.integration]


@pytest.fixture
def features_dag(airflow_env, database_url, kafka_bootstrap, monkeypatch):
    for key, value in airflow_connections(database_url, kafka_bootstrap).items():
        monkeypatch.setenv(key, value)
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags")).dags["compute_features"]


def test_a_registered_spec_is_filled_for_the_history_then_kept_up_incrementally(features_dag, engine):
    rows = sample_rows(900)
    seed_candles(engine, rows[:800])
    compute_pending_features(engine)  # the default set is stored (the DAG's own code; two DAG runs follow)
    spec = parse_spec("ema(21)")
    with raw_transaction(engine) as cur:
        register_specs(cur, [spec], "test")

    grown = features_dag.test()
    seed_candles(engine, rows[800:])
    more = features_dag.test()

    assert grown.state == "success" and more.state == "success"
    with engine.connect() as c:
        spec_set = c.execute(sa.text("SELECT spec_set FROM etl.feature_state")).scalar()
    assert "ema(21)" in spec_set.split("; ")
    closes = np.array([float(r[4]) for r in rows])
    stored = load_features(engine, "BTCUSDT", "1m")
    assert len(stored) == 900
    np.testing.assert_array_equal(stored["ema_21"].to_numpy(dtype=float), compute_specs([spec], closes)["ema_21"])
