"""``python -m klinepipe.migrate``: apply the ``sql/`` migrations to ``DATABASE_URL`` (composition root)."""

import sys

from klinepipe.db import apply_migrations, make_engine
from klinepipe.errors import KlinepipeConfigError
from klinepipe.settings import load_settings


def main() -> int:
    try:
        url = load_settings().database_url
    except KlinepipeConfigError as exc:
        print(f"klinepipe.migrate: invalid setting {exc}", file=sys.stderr)
        return 2
    if not url:
        print("klinepipe.migrate: DATABASE_URL is not set", file=sys.stderr)
        return 2
    engine = make_engine(url)
    try:
        applied = apply_migrations(engine)
    finally:
        engine.dispose()
    print(f"klinepipe.migrate: {len(applied)} migration(s) applied: {', '.join(applied) or 'none (up to date)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
