"""librdkafka client plumbing shared by the sidecar's producer and admin client: where librdkafka's errors and
log lines go, and a start-up check of the client configuration that names the setting librdkafka refused."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException, Producer

from klinepipe.outage import Outage
from streaming.errors import ClientConfigError

log = logging.getLogger(__name__)
# librdkafka's own log lines (one per failed connection attempt, hundreds in an outage) go here, not to stderr;
# what they say reaches the operator once through ``error_cb`` (an outage) instead. Quiet unless raised.
LIBRDKAFKA_LOG = logging.getLogger("streaming.librdkafka")
LIBRDKAFKA_LOG.setLevel(logging.CRITICAL)
_BROKER_DOWN = frozenset((KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE))


def client_callbacks(kafka: Outage) -> dict:
    """librdkafka client config: its errors to ``kafka`` (broker down: one line per outage) and its log lines
    to the quiet ``LIBRDKAFKA_LOG``; any other error (auth, TLS, ...) is logged once until it changes."""
    last: list[str] = [""]

    def on_error(err: KafkaError) -> None:
        if err.code() in _BROKER_DOWN:
            kafka.failed(err.str())
        elif err.str() != last[0]:
            last[0] = err.str()
            log.error("kafka: %s", err.str())

    return {"error_cb": on_error, "logger": LIBRDKAFKA_LOG}


_SETTING_OF = {"bootstrap.servers": "KAFKA_BOOTSTRAP_SERVERS", "security.protocol": "KAFKA_SECURITY_PROTOCOL",
               "sasl.mechanism": "KAFKA_SASL_MECHANISM", "sasl.username": "KAFKA_SASL_USERNAME",
               "sasl.password": "KAFKA_SASL_PASSWORD", "ssl.ca.location": "KAFKA_SSL_CA_LOCATION",
               "ssl.certificate.location": "KAFKA_SSL_CERTIFICATE_LOCATION", "ssl.key.location": "KAFKA_SSL_KEY_LOCATION",
               "ssl.key.password": "KAFKA_SSL_KEY_PASSWORD", "linger.ms": "KAFKA_LINGER_MS",
               "message.timeout.ms": "KAFKA_MESSAGE_TIMEOUT_MS"}


def check_client_config(settings) -> None:
    """Build (and drop) a producer from ``KafkaSettings``, so that a key or value librdkafka refuses fails at
    start naming its setting: a key from ``KAFKA_CONFIG``, else the ``KAFKA_*`` setting behind it."""
    config = settings.producer_config()
    try:
        Producer({**config, "error_cb": lambda _e: None, "logger": LIBRDKAFKA_LOG})
    except (KafkaException, TypeError, ValueError) as exc:
        text = exc.args[0].str() if exc.args and isinstance(exc.args[0], KafkaError) else str(exc)
        for key, value in config.items():  # never echo a secret
            if "password" in key or "secret" in key:
                text = text.replace(str(value), "***")
        quoted = [k for k in config if f'"{k}"' in text or f"{k}:" in text or f"{k} " in text]
        name = next((("KAFKA_CONFIG" if k in settings.config else _SETTING_OF.get(k, "KAFKA_CONFIG")) for k in quoted),
                    "KAFKA_CONFIG" if settings.config else "KAFKA_*")
        raise ClientConfigError(f"invalid setting {name}: librdkafka refused it ({text})") from None
