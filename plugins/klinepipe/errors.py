"""The one exception tree of klinepipe.

    KlinepipeError
    ├── RetryableError            transient: retry the operation (broker unavailable, timeouts)
    │   └── BrokerUnavailableError
    └── FatalError                retrying cannot help: fix the input or the configuration
        ├── ConfigError           invalid setting, named in the message
        └── KlineParseError       a message that is not a valid Binance kline event

Callers catch by category: ``RetryableError`` fails a task so that Airflow retries it;
``KlineParseError`` sends the message to the dead-letter table, never drops it.
"""


class KlinepipeError(Exception):
    """Base of every klinepipe error."""


class RetryableError(KlinepipeError):
    """A transient failure: the same call may succeed later."""


class BrokerUnavailableError(RetryableError):
    """Kafka could not be reached or answered with an error."""


class FatalError(KlinepipeError):
    """A failure that retrying cannot fix."""


class ConfigError(FatalError):
    """A setting is missing or invalid; the message names it."""


class KlineParseError(FatalError):
    """A message is not a valid Binance kline event; the message says why."""
