"""The Trading page and the ETL's metrics inside Airflow's UI (loaded by ``plugins/klinepipe_trading_plugin.py``).

Not scanned as a plugin itself (``plugins/.airflowignore``): Airflow loads every ``.py`` under the
plugins folder as a top-level module named after the file, which would shadow names like ``queries``.
"""
