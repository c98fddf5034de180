"""Binance's answers and failures, as python-binance and requests raise them, mapped to the trader's error tree
(``trader.errors``): retryable or fatal, and with a message free of URLs, parameters, signatures, keys or secrets."""

from __future__ import annotations

import requests
from binance.exceptions import BinanceAPIException, BinanceRequestException

from trader.errors import (
    AuthError, ClockSkew, ExchangeUnavailable, FilterRejected, InsufficientBalance, OrderRejected, RateLimited,
    RequestTimeout, TraderError, TransportError,
)

_AUTH_CODES = (-2014, -2015, -1022, -2008)
_UNKNOWN_CODES = (-1000, -1001, -1006, -1007)  # the outcome is unknown: look the order up before any retry


def classify(exc: Exception) -> TraderError:
    """Map a python-binance/requests exception to the trader's error tree (message free of secrets)."""
    if isinstance(exc, TraderError):
        return exc
    if isinstance(exc, BinanceAPIException):
        status, code, msg = exc.status_code, exc.code, exc.message
        text = f"Binance HTTP {status} code {code}: {msg}"
        if status in (429, 418) or code in (-1003, -1015):
            retry_after = exc.response.headers.get("Retry-After") if exc.response is not None else None
            return RateLimited(text, float(retry_after) if retry_after else 60.0)
        if code == -1021:
            return ClockSkew(text)
        if status >= 500 or code in _UNKNOWN_CODES:
            return ExchangeUnavailable(text)
        if status == 401 or code in _AUTH_CODES:
            return AuthError(text)
        if code == -1013:
            return FilterRejected(text, code)
        if code == -2010 and "insufficient balance" in (msg or ""):
            return InsufficientBalance(text, code)
        return OrderRejected(text, code)
    if isinstance(exc, requests.Timeout):
        return RequestTimeout(f"no answer from Binance in time ({type(exc).__name__})")
    if isinstance(exc, (requests.ConnectionError, BinanceRequestException)):
        return TransportError(f"cannot talk to Binance ({type(exc).__name__})")
    return TransportError(f"unexpected error talking to Binance ({type(exc).__name__})")
