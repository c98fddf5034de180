"""``python -m devstack``: the whole pipeline on embedded defaults (``make run``); ``python -m devstack status``:
each part of the running stack and the newest data (``make status``)."""

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devstack", description="klinepipe on one machine, on embedded defaults.")
    p.add_argument("command", nargs="?", default="run", choices=["run", "status"],
                   help="run (default): start and supervise the whole stack until Ctrl-C; "
                        "status: each part of the running stack and the newest data")
    args = p.parse_args(argv)
    if args.command == "status":
        from devstack.status import main as status

        return status()
    from devstack.stack import main as run

    return run()


if __name__ == "__main__":
    sys.exit(main())
