"""The Binance wire format, in one place (pure: no I/O, no clients).

- ``events``:    the kline stream event (``e``, ``E``, ``s``, ``k{...}``) as typed structs, and its decoder.
- ``rows``:      the 12-column kline row of ``GET /api/v3/klines`` and data.binance.vision files
                 (``BinanceKlineRow``, array-like), the µs->ms rule, and the files' names.
- ``intervals``: the interval table, with calendar months for ``1M``.
- ``times``:     epoch milliseconds <-> datetimes, ISO 8601 parsing.
- ``finality``:  when a candle is final: the one rule.

The sidecar (``streaming/``), the loader, the trigger, backfills, file imports and backtests all read the
wire through these modules; ``klinepipe.kline`` turns what they decode into the domain ``Kline``.
"""
