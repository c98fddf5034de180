"""Every error the streaming sidecar raises on purpose, in one tree (pure). Callers catch by category.

    StreamingError
    ├── StreamingRetryableError     the same call may succeed later
    │   ├── RestError               Binance REST did not answer after the retries (exchangeInfo, a gap fill)
    │   ├── ControlError            Binance answered a SUBSCRIBE with an error: that connection reconnects
    │   └── BrokerUnreachable       no Kafka broker answered at start (exit 1; the supervisor restarts us)
    └── StreamingFatalError         retrying the same thing cannot help
        ├── SettingsError           invalid setting, named in the message (exit 2)
        │   ├── ClientConfigError   librdkafka refused a KAFKA_* value
        │   └── UnknownSymbolsError STREAMING_SYMBOLS / STREAMING_UNIVERSE names nothing Binance lists
        ├── DeliveryError           the broker refuses our messages for good (exit 1)
        ├── FrameError              a websocket frame that is not a kline event: dead-lettered, never dropped
        └── RowError                a recorded or REST row that is not a kline: dead-lettered, never dropped

The process's exit code follows the category (``exit_code``): 2 for a setting, 1 for anything else.
"""

from __future__ import annotations

EXIT_FAILED, EXIT_SETTINGS = 1, 2


class StreamingError(Exception):
    """Base of the sidecar's errors."""


class StreamingRetryableError(StreamingError):
    """Transient: the same call may succeed later."""


class RestError(StreamingRetryableError):
    """Binance REST stayed unreachable, rate-limited or answered nonsense after the retries."""


class ControlError(StreamingRetryableError):
    """Binance refused a control message (SUBSCRIBE, LIST_SUBSCRIPTIONS) on one connection."""


class BrokerUnreachable(StreamingRetryableError):
    """No Kafka broker answered within the start-up wait."""


class StreamingFatalError(StreamingError):
    """Retrying cannot help: fix the setting, the broker's configuration or the input."""


class SettingsError(StreamingFatalError):
    """An invalid setting; the message names it."""


class ClientConfigError(SettingsError):
    """librdkafka refused a producer setting; the message names the KAFKA_* variable."""


class UnknownSymbolsError(SettingsError):
    """Configured symbols (or a quote asset) that Binance's exchangeInfo does not list."""


class DeliveryError(StreamingFatalError):
    """The broker refused messages for good, or they stayed unacknowledged past the flush timeout."""


class FrameError(StreamingFatalError):
    """A websocket frame that is not a kline event; the message says why."""


class RowError(StreamingFatalError):
    """A row of a recording or of a REST answer that is not a kline; the message says why."""


def exit_code(err: StreamingError) -> int:
    """The process's exit code for an error that ends it: 2 when a setting must change, else 1."""
    return EXIT_SETTINGS if isinstance(err, SettingsError) else EXIT_FAILED
