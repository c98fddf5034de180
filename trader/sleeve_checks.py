"""The sleeves' checks at start (part of the trader's settings, ``trader.config.load_settings``): the sleeves file
read and validated, the user's strategy directory loaded, and every sleeve's strategy built once with its
parameters and feature specs, so that a bad one is refused before anything runs, in one line naming it."""

from __future__ import annotations

from trader.config import SettingsError, TraderSettings
from trader.sleeve import SleeveSpec


def read_file_specs(settings: TraderSettings) -> tuple[SleeveSpec, ...]:
    from trader.sleeves_file import read_sleeves_file

    for field, env in (("sleeves", "TRADER_SLEEVES (or --sleeves)"), ("strategy_params", "TRADER_STRATEGY_PARAMS")):
        if field in settings.model_fields_set:
            raise SettingsError(f"TRADER_SLEEVES_FILE and {env} are both set: give the sleeves and their params in the file only")
    try:
        return read_sleeves_file(settings.sleeves_file)
    except ValueError as exc:
        raise SettingsError(f"TRADER_SLEEVES_FILE: {settings.sleeves_file}: {exc}") from None


def check_strategies(settings: TraderSettings) -> None:
    """Load the user's strategies (``TRADER_STRATEGY_DIR``), then build every sleeve's strategy once, so an
    unknown strategy, interval or parameter, one out of range, or a feature spec that no indicator provides,
    is refused at start, named, in one line."""
    from klinepipe.binance.intervals import INTERVAL_MS
    from trader.strategies import REGISTRY, build_strategy, register_strategy_dir

    if settings.strategy_dir is not None:
        try:
            register_strategy_dir(settings.strategy_dir)
        except ValueError as exc:
            raise SettingsError(f"TRADER_STRATEGY_DIR: {exc}") from None
    known = ", ".join(sorted(REGISTRY))
    for name in settings.strategy_params:
        if name not in REGISTRY:
            raise SettingsError(f"TRADER_STRATEGY_PARAMS: unknown strategy {name!r}; known: {known}")
    from_file = settings.sleeves_file is not None
    for spec in settings.sleeve_specs():
        where = f"{'TRADER_SLEEVES_FILE' if from_file else 'TRADER_SLEEVES'}: sleeve {spec.name if not from_file else repr(spec.name)}"
        if spec.interval not in INTERVAL_MS:
            raise SettingsError(f"{where}: unknown kline interval {spec.interval!r}; valid: {', '.join(INTERVAL_MS)}")
        if spec.strategy not in REGISTRY:
            raise SettingsError(f"{where}: unknown strategy {spec.strategy!r}; known: {known}")
        try:
            strategy = build_strategy(spec.strategy, **(spec.params or {}))
        except (ValueError, TypeError) as exc:
            raise SettingsError(f"{where if from_file else f'TRADER_STRATEGY_PARAMS: sleeve {spec.name}'}: {exc}") from None
        try:  # the feature specs it reads (a column no indicator produces: named, with the valid indicators)
            strategy.feature_specs()
        except ValueError as exc:
            raise SettingsError(f"{where}: strategy {spec.strategy} reads {exc}") from None
    for name, params in settings.strategy_params.items():
        try:
            build_strategy(name, **params)
        except (ValueError, TypeError) as exc:
            raise SettingsError(f"TRADER_STRATEGY_PARAMS: {exc}") from None
