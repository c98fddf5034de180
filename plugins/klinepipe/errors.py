"""The one exception tree of klinepipe (pure). Callers catch by category.

    KlinepipeError
    ├── KlinepipeRetryableError     transient: the same task may succeed later (Airflow retries it)
    │   └── BrokerUnavailableError  Kafka unreachable, or a transport error while reading
    └── KlinepipeFatalError         retrying cannot help: fix the input or the configuration (the task fails at once)
        ├── KlinepipeConfigError    invalid setting or trigger param, named in the message
        ├── KlineParseError         a message or row that is not a valid Binance kline; dead-lettered, never dropped
        ├── BrokerRejectedError     Kafka refused the read for good (authorization, a broken topic)
        └── BinanceUnreachable      Binance REST never answered this run (the quick retries are spent)

The names are the package's own (``Klinepipe*``): the trader and the sidecar import klinepipe's pure modules
next to their own trees (``TraderError``, ``StreamingError``), and no class name means two things.
"""


class KlinepipeError(Exception):
    """Base of every klinepipe error."""


class KlinepipeRetryableError(KlinepipeError):
    """A transient failure: the same call may succeed later."""


class BrokerUnavailableError(KlinepipeRetryableError):
    """Kafka could not be reached, or a read failed in transit."""


class KlinepipeFatalError(KlinepipeError):
    """A failure that retrying cannot fix."""


class KlinepipeConfigError(KlinepipeFatalError):
    """A setting is missing or invalid; the message names it."""


class KlineParseError(KlinepipeFatalError):
    """A message is not a valid Binance kline event; the message says why."""


class BrokerRejectedError(KlinepipeFatalError):
    """Kafka answered the read with an error that is not transient (e.g. not authorized for the topic)."""


class BinanceUnreachable(KlinepipeFatalError):
    """Binance REST never answered this run (DNS, refused, timeout, TLS): retrying the task in a minute will not
    help more than the quick retries already did; the message names the URL and the cause."""
