"""backfill_klines fails fast with its cause and without Airflow retries when Binance cannot help; file imports
are their own DAG. dag.test() on a PostgreSQL metadata database, real PostgreSQL, the fake Binance."""

import pytest
import sqlalchemy as sa

from devstack.embedded import free_port
from tests.conftest import ROOT, airflow_connections
from tests.helpers import sample_rows

pytestmark = [pytest.mark.airflow, pytest.mark.integration]
FORM = {"symbols": ["BTCUSDT"], "interval": "1m", "start": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z"}


@pytest.fixture
def dags(airflow_env, database_url, kafka_bootstrap, monkeypatch):
    for key, value in airflow_connections(database_url, kafka_bootstrap).items():
        monkeypatch.setenv(key, value)
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags")).dags


def _tries(run) -> list[tuple[str, int]]:
    return [(ti.state, ti.try_number) for ti in run.get_task_instances()]


def _count(engine) -> int:
    with engine.connect() as c:
        return c.execute(sa.text("SELECT count(*) FROM market.candles")).scalar()


@pytest.mark.parametrize(("base", "cause"), [("http://api.binance.invalid", "name resolution failed"),
                                             (f"http://127.0.0.1:{free_port()}", "connection refused")],
                         ids=["unresolvable-host", "closed-port"])  # the same ids on every xdist worker
def test_binance_unreachable_fails_the_run_once_with_the_cause_in_the_final_error(dags, engine, monkeypatch, capfd, base, cause):
    monkeypatch.setenv("BINANCE_REST_URL", base)

    run = dags["backfill_klines"].test(run_conf=FORM)

    assert run.state == "failed"
    assert _tries(run) == [("failed", 1)]  # not up_for_retry: two more tries a minute apart would fail the same way
    logged = "".join(capfd.readouterr())
    assert f"AirflowFailException: backfill_klines: cannot reach {base}: {cause} (3 attempts in " in logged
    assert _count(engine) == 0


def test_an_unknown_symbol_fails_the_run_at_once_naming_it(dags, engine, monkeypatch, capfd, fake_binance):
    fake = fake_binance()
    monkeypatch.setenv("BINANCE_REST_URL", fake.url)

    run = dags["backfill_klines"].test(run_conf={**FORM, "symbols": ["NOSUCHPAIR"]})

    assert len(fake.requests("/api/v3/klines")) == 1

    assert run.state == "failed" and _tries(run) == [("failed", 1)]
    assert "klines NOSUCHPAIR 1m: HTTP 400 -1121 Invalid symbol." in "".join(capfd.readouterr())


def test_files_are_imported_by_their_own_dag_and_refused_by_the_backfill(dags, engine, tmp_path, capfd):
    rows = sample_rows(5, "BTCUSDT-30m.csv")
    (tmp_path / "BTCUSDT-30m-2021-10.csv").write_text("".join(",".join(r) + "\n" for r in rows))

    imported = dags["import_kline_files"].test(run_conf={"files": str(tmp_path / "BTCUSDT-30m-*.csv")})
    refused = dags["backfill_klines"].test(run_conf={"files": str(tmp_path / "BTCUSDT-30m-*.csv")})

    assert imported.state == "success" and _count(engine) == 5
    assert refused.state == "failed" and _tries(refused) == [("failed", 1)]
    assert "files: file imports are the import_kline_files DAG's job" in "".join(capfd.readouterr())

