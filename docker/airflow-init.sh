#!/bin/sh
# docker compose service `airflow-init`: migrate Airflow's metadata database, then give the SimpleAuthManager
# user `admin` the password from AIRFLOW_ADMIN_PASSWORD (.env). Safe to run on every `up`.
set -eu
: "${AIRFLOW_ADMIN_PASSWORD:?set AIRFLOW_ADMIN_PASSWORD in .env}"
airflow db migrate
python - <<'PY'
import json, os, pathlib
path = pathlib.Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps({"admin": os.environ["AIRFLOW_ADMIN_PASSWORD"]}))
path.chmod(0o600)
print(f"airflow-init: metadata migrated; admin password set in {path}")
PY
