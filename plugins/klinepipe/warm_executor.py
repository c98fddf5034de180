"""A LocalExecutor whose workers start warm: ``make run``'s executor (``AIRFLOW__CORE__EXECUTOR``).

Airflow's LocalExecutor forks its worker processes from the scheduler when it starts, and each worker forks a
process per task instance. Every task process then parses its DAG file and imports what the task needs: pandas,
TA-Lib, SQLAlchemy, confluent-kafka and the loader's modules, about 1 s of CPU per task on these machines, on
the event path of every candle (``bench latency``). This executor imports those modules once, in the scheduler,
before the workers are forked, so every task process inherits them already imported.

Only modules are imported: no connection, thread or engine exists before the fork. A module that fails to
import is logged and skipped (the task then imports it itself and reports the error where it belongs).
"""

from __future__ import annotations

import importlib
import logging

from airflow.executors.local_executor import LocalExecutor

log = logging.getLogger(__name__)

# What the event path's tasks (ingest_klines' plan and load_batch, compute_features) import, heaviest first.
TASK_MODULES = (
    "pandas", "numpy", "talib", "sqlalchemy", "psycopg2", "confluent_kafka", "msgspec",
    "airflow.sdk", "airflow.sdk.exceptions",
    "klinepipe.settings", "klinepipe.airflow_conn", "klinepipe.kafka_batch", "klinepipe.ingest",
    "klinepipe.feature_store", "klinepipe.features", "klinepipe.dead_letter_topic", "klinepipe.backfill",
)


def preload(modules: tuple[str, ...] = TASK_MODULES) -> list[str]:
    """Import ``modules``; the names that imported."""
    loaded = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a task that needs it reports it; the executor must start
            log.warning("not preloaded for task processes: %s (%s)", name, exc)
        else:
            loaded.append(name)
    return loaded


class WarmLocalExecutor(LocalExecutor):
    """``LocalExecutor`` that imports the tasks' modules before it forks its workers."""

    def start(self) -> None:
        preload()
        super().start()
