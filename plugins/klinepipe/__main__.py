"""``python -m klinepipe status``: the running stack, part by part (``klinepipe/status.py``)."""

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m klinepipe", description="Tools of the klinepipe stack.")
    p.add_argument("command", choices=["status"], help="status: each part of the running stack and the newest data")
    p.parse_args(argv)
    from klinepipe.status import main as status

    return status()


if __name__ == "__main__":
    sys.exit(main())
