"""Binance REST market data the sidecar needs: exchangeInfo at start, klines for backfills (aiohttp).

``BinanceRest`` takes its ``aiohttp.ClientSession`` as a seam. Klines are paged 1000 at a time by
open time (reference 3.3); a 429/418 answer waits ``Retry-After`` and retries, 5xx and transport errors
retry with backoff a few times, then raise ``RestError``.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from klinepipe.binance.rows import row_open_time
from streaming.errors import RestError
from streaming.limits import backoff_delay

log = logging.getLogger(__name__)

KLINES_PAGE = 1000


class BinanceRest:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, *, retries: int = 4, backoff: float = 0.5) -> None:
        self._session, self.base_url, self._retries, self._backoff = session, base_url.rstrip("/"), retries, backoff

    async def exchange_info(self) -> dict:
        return await self._get("/api/v3/exchangeInfo", {})

    async def closed_klines(self, symbol: str, interval: str, start: int, end: int) -> list[list]:
        """Kline rows with ``start <= open_time < end``, oldest first (every page fetched)."""
        rows: list[list] = []
        cursor = start
        while cursor < end:
            params = {"symbol": symbol, "interval": interval, "startTime": cursor, "endTime": end - 1, "limit": KLINES_PAGE}
            body = await self._get("/api/v3/klines", params)
            if not isinstance(body, list):
                raise RestError(f"GET /api/v3/klines {params}: expected a list of rows, got {type(body).__name__}")
            # A row that is not a kline (no whole-number open time) is kept: the caller dead-letters it.
            page = [r for r in body if (t := row_open_time(r)) is None or start <= t < end]
            rows.extend(page)
            times = [t for r in body if (t := row_open_time(r)) is not None]
            if len(body) < KLINES_PAGE or not times or max(times) + 1 <= cursor:
                break
            cursor = max(times) + 1
        return rows

    async def _get(self, path: str, params: dict):
        for attempt in range(self._retries + 1):
            try:
                async with self._session.get(self.base_url + path, params=params) as resp:
                    if resp.status in (418, 429):
                        wait = float(resp.headers.get("Retry-After", "1"))
                        log.warning("REST %s rate-limited (%d); waiting %.0fs", path, resp.status, wait)
                        await asyncio.sleep(wait)
                        continue
                    if resp.status >= 500:
                        raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status, message=await resp.text())
                    try:
                        body = await resp.json(content_type=None)
                    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, or nested too deep
                        raise RestError(f"GET {path}: HTTP {resp.status}, the answer is not JSON: {exc}") from None
                    if resp.status >= 400:
                        raise RestError(f"GET {path} {params}: HTTP {resp.status} {body}")
                    return body
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                if attempt == self._retries:
                    raise RestError(f"GET {path}: {type(exc).__name__}: {exc}") from exc
                await asyncio.sleep(backoff_delay(attempt, self._backoff, 10.0))
        raise RestError(f"GET {path}: still rate-limited after {self._retries + 1} attempts")

