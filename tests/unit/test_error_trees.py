"""The three error trees (klinepipe, streaming, trader): distinct names, categories that mean what they say, and exit
codes derived from the category."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError

import klinepipe.errors as klinepipe_errors
import streaming.errors as streaming_errors
import trader.errors as trader_errors
from klinepipe.errors import BrokerUnavailableError, KlinepipeFatalError, KlinepipeRetryableError
from klinepipe.kafka_batch import BatchRead, _chunks

TREES = {klinepipe_errors: "KlinepipeError", streaming_errors: "StreamingError", trader_errors: "TraderError"}


def _classes(module) -> dict[str, type]:
    return {name: c for name, c in vars(module).items()
            if inspect.isclass(c) and issubclass(c, Exception) and c.__module__ == module.__name__}


def test_every_error_of_a_package_descends_from_its_own_root_and_no_name_is_used_twice():
    seen: dict[str, str] = {}
    for module, root in TREES.items():
        classes = _classes(module)
        assert all(issubclass(c, classes[root]) for c in classes.values()), module.__name__
        assert all(name in module.__doc__ for name in classes), f"{module.__name__}: the docstring draws the whole tree"
        for name in classes:
            assert name not in seen, f"{name} is defined in {seen.get(name)} and {module.__name__}"
            seen[name] = module.__name__


class _Consumer:
    """A consumer whose one partition answers the fetch with ``error`` (a hand-written stub of confluent_kafka's)."""

    def __init__(self, error: KafkaError) -> None:
        self.error = error

    def list_topics(self, topic, timeout):
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions={0: None})})

    def assign(self, partitions) -> None:
        pass

    def consume(self, num_messages, timeout):
        return [SimpleNamespace(partition=lambda: 0, offset=lambda: 0, error=lambda: self.error)]


@pytest.mark.parametrize("code", [KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.UNSUPPORTED_VERSION])
def test_a_consume_error_kafka_will_not_retry_is_fatal_not_retryable(code):
    consumer = _Consumer(KafkaError(code, retriable=False))

    with pytest.raises(KlinepipeFatalError) as err:
        list(_chunks(consumer, "t", {}, BatchRead("t"), 10, 5.0, 1.0, None))

    assert not isinstance(err.value, KlinepipeRetryableError) and "consume from 't'" in str(err.value)


@pytest.mark.parametrize("code", [KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT])
def test_a_consume_error_on_the_way_to_the_broker_is_retryable(code):
    consumer = _Consumer(KafkaError(code, retriable=False))

    with pytest.raises(BrokerUnavailableError):
        list(_chunks(consumer, "t", {}, BatchRead("t"), 10, 5.0, 1.0, None))


@pytest.mark.parametrize("error,code", [
    (trader_errors.ConfigError("TRADER_MODE: bad"), 2),
    (trader_errors.AuthError("-2015"), 2),
    (trader_errors.ReconciliationError("2 differences"), 3),
    (trader_errors.DependencyDown("PostgreSQL unreachable"), 1),
    (trader_errors.StrategyError("boom"), 1),
    (trader_errors.TransportError("reset"), 1),
    (streaming_errors.SettingsError("STREAMING_MODE: bad"), 2),
    (streaming_errors.ClientConfigError("KAFKA_CONFIG: refused"), 2),
    (streaming_errors.UnknownSymbolsError("NOPE"), 2),
    (streaming_errors.BrokerUnreachable("no broker"), 1),
    (streaming_errors.RestError("exchangeInfo"), 1),
    (streaming_errors.DeliveryError("refused"), 1),
], ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v))
def test_the_exit_code_follows_the_category(error, code):
    tree = trader_errors if isinstance(error, trader_errors.TraderError) else streaming_errors

    assert tree.exit_code(error) == code


def test_the_trader_settings_errors_are_config_errors_without_a_value_error_mixin():
    from trader.config import SettingsError
    from trader.dependencies import BadDatabaseURL

    for cls in (SettingsError, BadDatabaseURL):
        assert issubclass(cls, trader_errors.ConfigError) and not issubclass(cls, ValueError)
        assert trader_errors.exit_code(cls("DATABASE_URL: x")) == 2
