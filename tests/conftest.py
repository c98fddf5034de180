"""Session fixtures: real PostgreSQL, a real Kafka-API broker and a real Airflow metadata database.

``DATABASE_URL`` / ``KAFKA_BOOTSTRAP_SERVERS`` are used when set; otherwise the embedded pgserver and
tansu broker are started here, so these tests always run and are never skipped for want of a service.
Each session gets its own database; each test gets empty tables and its own topic.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from devstack.embedded import start_broker, start_postgres
from klinepipe.db import apply_migrations, ensure_database, make_engine
from tests.fake_binance import FakeBinance, FakeState

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory) -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        yield sa.engine.make_url(url).set(database="postgres").render_as_string(hide_password=False)
        return
    server = start_postgres(tmp_path_factory.mktemp("pgdata"))
    yield server.get_uri("postgres")
    server.cleanup()
    atexit.unregister(server._cleanup)  # already stopped; pgserver would log again at exit


def _fresh_database(admin_url: str, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    ensure_database(admin_url, name)
    return sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def database_url(pg_admin_url) -> str:
    url = _fresh_database(pg_admin_url, "kp_test")
    engine = make_engine(url)
    apply_migrations(engine)
    engine.dispose()
    return url


_TABLES = ("market.candles", "market.features", "etl.kafka_offsets", "etl.dead_letters", "etl.quality_checks",
           "etl.features_pending", "etl.feature_state", "etl.feature_specs", "etl.candle_conflicts",
           "trading.fills", "trading.orders", "trading.signals", "trading.positions", "trading.balances",
           "trading.sleeves", "trading.trader_state", "trading.events", "trading.equity", "trading.reconciliations",
           "trading.notifications", "trading.notification_deliveries")


@pytest.fixture
def engine(database_url):
    eng = make_engine(database_url)
    with eng.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {', '.join(_TABLES)} RESTART IDENTITY")
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory) -> str:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap:
        yield bootstrap
        return
    broker = start_broker(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log")
    yield broker.bootstrap_servers
    broker.stop()


@pytest.fixture
def topic(kafka_bootstrap) -> str:
    from streaming.kafka_topics import ensure_topics

    name = f"klines-test-{uuid.uuid4().hex[:8]}"
    ensure_topics({"bootstrap.servers": kafka_bootstrap}, {name: 6, f"{name}.dlq": 1})
    return name


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory, pg_admin_url) -> dict:
    """A migrated Airflow 3 metadata database in PostgreSQL; env set before airflow is imported."""
    home = tmp_path_factory.mktemp("airflow_home")
    meta = sa.engine.make_url(_fresh_database(pg_admin_url, "airflow_test")).set(drivername="postgresql+psycopg2")
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta.render_as_string(hide_password=False),
        "AIRFLOW__CORE__PARALLELISM": "2",
    }
    os.environ.update(env)
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, env=os.environ, stdout=subprocess.DEVNULL)
    yield env
    from airflow import settings

    settings.dispose_orm()  # close metadata connections before the server stops


def airflow_connections(database_url: str, bootstrap: str) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` values pointing the DAG tasks at the test database and broker."""
    u = sa.engine.make_url(database_url)
    db = {"conn_type": "postgres", "host": u.query.get("host") or u.host, "port": u.port, "login": u.username,
          "password": u.password, "schema": u.database}
    return {
        "AIRFLOW_CONN_KLINEPIPE_DB": json.dumps(db),
        "AIRFLOW_CONN_KLINEPIPE_KAFKA": json.dumps({"conn_type": "kafka", "extra": {"bootstrap.servers": bootstrap}}),
    }


@pytest.fixture
def fake_binance():
    """A factory of fake Binances (``tests/fake_binance``), each stopped after the test.

    ``fake_binance(price="60000.00", usdt="10000")`` lists BTCUSDT (filters shaped like live), sets its price and
    deposits USDT; ``klines=rows`` serves 1m candles (and moves the price to the newest close); ``state`` is the
    fake's ``FakeState`` (clock, weight limit); ``keys`` the key pairs it accepts instead of its own."""
    started: list[FakeBinance] = []

    def start(*, price: str | None = None, usdt: str | None = None, klines: list[list[str]] | None = None,
              state: FakeState | None = None, keys: dict[str, str] | None = None) -> FakeBinance:
        fake = FakeBinance(state)
        started.append(fake.start())
        if keys is not None:
            fake.state.keys = keys
        fake.add_symbol("BTCUSDT", "BTC", "USDT")
        if klines is not None:
            fake.seed_klines("BTCUSDT", "1m", klines)
        if price is not None:
            fake.set_price("BTCUSDT", price)
        if usdt is not None:
            fake.deposit("USDT", usdt)
        return fake

    yield start
    for fake in started:
        fake.stop()


@pytest.fixture(autouse=True)
def _strategy_registry_as_it_was():
    """A user strategy directory loads into the process-wide registry, as a CLI or task process does once; tests
    share one process, so each test puts the registry back (a later test saw ``peek``, ``cold``, ``my_trend``)."""
    from trader.strategies import REGISTRY

    before = dict(REGISTRY)
    yield
    REGISTRY.clear()
    REGISTRY.update(before)


@pytest.fixture
def db(engine):
    """``engine`` with the trader v2 tables emptied too (conftest truncates only the original ones)."""
    with engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE trading.events, trading.equity, trading.reconciliations RESTART IDENTITY")
    return engine


# the test files that take longest (seconds, setup included, measured 2026-12-03 with --junitxml in a whole-suite run
# on three workers), slowest first; the rest keep their order after them. Re-measure when a file's time changes much.
LONGEST_FILES = (
    "tests/stack/test_chaos.py",  # 348
    "tests/readme/test_readme_commands.py",  # 333
    "tests/stack/test_make_run.py",  # 150-290 (95 alone)
    "tests/integration/test_trader_cli_settings.py",  # 152
    "tests/airflow/test_celery_executor.py",  # 109
    "tests/integration/test_trader_outage_drills.py",  # 102
    "tests/stack/test_live_broker_restart.py",  # 100
    "tests/ui/test_trigger_forms.py",  # 97
    "tests/stack/test_stack_found.py",  # 90
    "tests/integration/test_streaming_settings.py",  # 88
    "tests/ui/test_trading_page.py",  # 69
    "tests/airflow/test_dag_settings.py",  # 66
    "tests/integration/test_streaming_broker_down.py",  # 64
    "tests/airflow/test_watcher_outages.py",  # 59
    "tests/integration/test_trader_sleeves.py",  # 48
    "tests/integration/test_streaming_outage_drill.py",  # 44
    "tests/integration/test_streaming_binance_down.py",  # 35
    "tests/integration/test_streaming_live.py",  # 33
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items) -> None:
    """``make test`` runs the suite on three workers on the two cores (pytest-xdist, ``--dist loadgroup``; most of its
    time is spent waiting on outages, paced streams and Airflow's scheduler, not computing). Each test file stays on one worker, so
    its module fixtures (a browser test's Airflow) start once. The files that start the whole ``make run`` stack are
    groups of their own like any other: all of them on one worker made that worker the suite's long pole (15 min)."""
    from _pytest.nodeid import coerce_node_id

    if getattr(config.option, "loadgroup", False):
        # longest first (``make test`` passes --no-loadscope-reorder, which keeps this order): xdist's default puts
        # the files with most tests first, which started the 6-minute chaos drill last and made it the long pole
        if missing := [f for f in LONGEST_FILES if not (ROOT / f).is_file()]:
            raise pytest.UsageError(f"tests/conftest.py LONGEST_FILES names files that do not exist: {missing}")
        rank = {f: i for i, f in enumerate(LONGEST_FILES)}
        items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
    for item in items:
        group = item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))
        if getattr(config.option, "loadgroup", False):
            # pytest-xdist 3.8 marks a test's group by appending "@group" to ``item._nodeid``, which pytest 9 no
            # longer reads (a node's id is ``item._id``): without this, the groups were ignored and the tests of one
            # file (and its module fixtures) were spread over the workers.
            item._id = coerce_node_id(f"{item.nodeid}@{group}")
