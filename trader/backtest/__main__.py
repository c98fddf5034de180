"""``python -m trader.backtest ...``: the backtest CLI on its own (``python -m trader backtest`` once wired)."""

import sys

from trader.backtest.cli import main

if __name__ == "__main__":
    sys.exit(main())
