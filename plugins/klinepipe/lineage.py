"""Candle lineage: which writer stores which ``source`` in ``market.candles`` (and the Kafka ``source`` header).

Every candle row says where it came from, and each value has exactly one writer:

=========== =========================================================================================
``binance``  the streaming sidecar, live websocket frames (``python -m streaming live``)
``replay``   the streaming sidecar, recorded klines replayed (``python -m streaming replay``, the demo)
``gap_fill`` the streaming sidecar, closed candles its ledger found missing and fetched over REST
``backfill`` the ``backfill_klines`` DAG / ``scripts/backfill.py``: REST history loads and gap repairs
``file``     the ``import_kline_files`` DAG: Binance public data files (data.binance.vision)
=========== =========================================================================================

The conflict rule (``kline.beats``) breaks a tie between two identical states of one candle by the greater
source in code-point order, so the rank is total: ``replay`` > ``gap_fill`` > ``file`` > ``binance`` >
``backfill`` (``SOURCES`` lists them lowest first). Rows stored before migration 016 say ``backfill`` for
both REST writers. The values are also in ``market.candle_sources`` (sql/016_candle_sources.sql), for joins.
Pure: no I/O.
"""

from __future__ import annotations

BINANCE = "binance"
REPLAY = "replay"
GAP_FILL = "gap_fill"
BACKFILL = "backfill"
FILE = "file"

SOURCES = tuple(sorted((BINANCE, REPLAY, GAP_FILL, BACKFILL, FILE)))  # lowest rank first (code points)
