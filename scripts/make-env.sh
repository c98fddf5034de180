#!/bin/sh
# Write .env for docker compose from .env.example with fresh random secrets (refuses to overwrite .env).
# Usage: scripts/make-env.sh [path]   (default: .env next to docker-compose.yaml)
set -eu
cd "$(dirname "$0")/.."
out="${1:-.env}"
[ -e "$out" ] && { echo "make-env: $out exists; not overwriting" >&2; exit 1; }
PY="$(command -v python3 || command -v python)"
"$PY" - "$out" <<'PY'
import base64, os, secrets, sys
def rand(n=24):
    return secrets.token_urlsafe(n)
values = {"POSTGRES_PASSWORD": rand(), "AIRFLOW_ADMIN_PASSWORD": rand(12), "AIRFLOW_JWT_SECRET": rand(48),
          "AIRFLOW_API_SECRET_KEY": rand(48), "AIRFLOW_FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode()}
lines = []
for line in open(".env.example"):
    key = line.split("=", 1)[0]
    lines.append(f"{key}={values[key]}\n" if key in values else line)
with open(sys.argv[1], "w") as f:
    f.writelines(lines)
os.chmod(sys.argv[1], 0o600)
print(f"make-env: wrote {sys.argv[1]}; Airflow login admin / {values['AIRFLOW_ADMIN_PASSWORD']}")
PY
