"""Every error the trader raises on purpose, in one tree (pure). Callers catch by category.

    TraderError
    ├── RetryableError              the same request may succeed later; the result of an order is UNKNOWN
    │   ├── TransportError          connection refused/reset, DNS, TLS
    │   ├── RequestTimeout          no answer in time (the order may have been executed)
    │   ├── ExchangeUnavailable     HTTP 5xx, -1007 "execution status unknown", -1000
    │   ├── RateLimited             HTTP 429 / 418 (-1003, -1015); ``retry_after`` seconds from ``Retry-After``
    │   └── ClockSkew               -1021 timestamp outside recvWindow (resync the server-time offset first)
    ├── DependencyDown              PostgreSQL or Binance stayed unreachable for the start-up wait
    └── FatalError                  retrying the same request cannot help; recorded and shown
        ├── ConfigError             invalid or missing setting (``SettingsError``, ``BadDatabaseURL``)
        ├── AuthError               -2014/-2015/-1022: key, signature or permissions
        ├── OrderRejected           -2010 and other -1xxx request errors; ``code`` and ``msg`` from Binance
        │   ├── FilterRejected      -1013 "Filter failure: NAME", or refused locally by the same filter
        │   └── InsufficientBalance refused locally or by Binance for lack of balance
        ├── ReconciliationError     exchange and ledger disagree and the operator has not accepted it
        └── StrategyError           a strategy raised or returned nonsense; only its sleeve halts

Messages never contain an API key or secret: the Binance adapter builds them from ``code``/``msg`` only.
The CLI's exit code follows the category (``exit_code``): 2 for a setting or credentials to fix, 3 for differences
the operator has not accepted, 1 for anything else.
"""

from __future__ import annotations


class TraderError(Exception):
    """Base of the trader's errors."""


class RetryableError(TraderError):
    """Try again later (after ``retry_after`` seconds when known); an order's fate is unknown until queried."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TransportError(RetryableError):
    pass


class RequestTimeout(RetryableError):
    pass


class ExchangeUnavailable(RetryableError):
    pass


class RateLimited(RetryableError):
    pass


class ClockSkew(RetryableError):
    pass


class DependencyDown(TraderError):
    """A dependency is unreachable (exit 1 once the start-up wait is over)."""


class FatalError(TraderError):
    """Retrying cannot help."""


class ConfigError(FatalError):
    pass


class AuthError(FatalError):
    pass


class OrderRejected(FatalError):
    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class FilterRejected(OrderRejected):
    pass


class InsufficientBalance(OrderRejected):
    pass


class ReconciliationError(FatalError):
    pass


class StrategyError(FatalError):
    """A strategy raised; the sleeve that runs it halts, the others go on."""


EXIT_FAILED, EXIT_SETTINGS, EXIT_UNRECONCILED = 1, 2, 3


def exit_code(err: TraderError) -> int:
    """The CLI's exit code for an error that ends the command, by category."""
    if isinstance(err, ReconciliationError):
        return EXIT_UNRECONCILED
    if isinstance(err, (ConfigError, AuthError)):
        return EXIT_SETTINGS
    return EXIT_FAILED
