"""Dev tooling for one machine: ``make run``'s stack, its supervisor and watchdog, the embedded services
(pgserver PostgreSQL, tansu broker) and ``make status``.

Not part of the library Airflow workers import (``plugins/klinepipe``): nothing in ``klinepipe``, ``streaming``
or ``trader`` imports this package (``tests/unit/test_layering.py``). Modules:

* ``stack`` -- ``make run``: starts and supervises every part (composition root).
* ``airflow_env`` -- Airflow's settings, secrets and quiet logging under ``make run``.
* ``restart_recovery`` -- what a restarted broker or sidecar loses, and how it is fetched again.
* ``supervisor``, ``stack_lock``, ``watchdog`` -- children restarted, one stack per data directory, nothing outlives it.
* ``embedded`` -- the embedded PostgreSQL and Kafka-API broker (also used by the test fixtures).
* ``status`` -- ``make status``: each part of the running stack and the newest data.
"""
