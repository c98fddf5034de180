"""The sleeves file (TRADER_SLEEVES_FILE, TOML): each sleeve with its own parameters, allocation and order settings;
a bad file is refused in one line naming the sleeve and the key; names stay what TRADER_SLEEVES gave them."""

from decimal import Decimal

import pytest

from trader.config import SettingsError, load_settings
from trader.sleeve import OrderSettings, SleeveSpec
from trader.sleeves_file import parse_sleeves

TWO = """
[[sleeve]]
symbol = "btcusdt"
interval = "1m"
strategy = "sma_cross"
params = { fast = 10, slow = 30 }

[[sleeve]]
name = "BTCUSDT:1m:sma_slow"
symbol = "BTCUSDT"
interval = "1m"
strategy = "sma_cross"
allocation = "250.5"
params = { fast = 10, slow = 50 }
order_type = "LIMIT"
limit_offset_bps = 5
"""


def test_each_sleeve_has_its_own_params_allocation_and_order_settings():
    first, second = parse_sleeves(TWO)

    assert first == SleeveSpec(symbol="BTCUSDT", interval="1m", strategy="sma_cross", params={"fast": 10, "slow": 30})
    assert first.name == "BTCUSDT:1m:sma_cross"  # as TRADER_SLEEVES=BTCUSDT:1m:sma_cross names it
    assert second.name == "BTCUSDT:1m:sma_slow" and second.allocation == Decimal("250.5")
    assert second.orders == OrderSettings(order_type="LIMIT", limit_offset_bps=Decimal(5))


@pytest.mark.parametrize(("text", "message"), [
    (TWO.replace('name = "BTCUSDT:1m:sma_slow"\n', ""), "sleeve name 'BTCUSDT:1m:sma_cross' is used by more than one sleeve"),
    (TWO.replace("order_type", "ordr_type"), "sleeve 2: ordr_type: unknown key (valid: name, symbol, interval"),
    (TWO.replace('"LIMIT"', '"STOP"'), "sleeve 2: order_type: Input should be 'MARKET' or 'LIMIT'"),
    (TWO.replace('"250.5"', '"-1"'), "sleeve 2: allocation: Input should be greater than 0"),
    (TWO.replace("fast = 10, slow = 50", "fast = true"), "sleeve 2: params: params fast: use 1/0, not true/false"),
    (TWO.replace('interval = "1m"\n', "", 1), "sleeve 1: interval: Field required"),
    ("[[sleeve]\n", "not valid TOML"), ("", "sleeve: Field required"),
])
def test_a_bad_sleeves_file_is_one_line_naming_the_sleeve_and_key(text, message):
    with pytest.raises(ValueError) as err:
        parse_sleeves(text)

    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.fixture
def sleeves_env(monkeypatch, tmp_path):
    for name in ("TRADER_SLEEVES", "TRADER_STRATEGY_PARAMS", "TRADER_STRATEGY_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://x/y")
    path = tmp_path / "sleeves.toml"
    monkeypatch.setenv("TRADER_SLEEVES_FILE", str(path))
    return path


def test_the_settings_read_the_file(sleeves_env):
    sleeves_env.write_text(TWO)

    assert [s.name for s in load_settings().sleeve_specs()] == ["BTCUSDT:1m:sma_cross", "BTCUSDT:1m:sma_slow"]


@pytest.mark.parametrize(("text", "env", "message"), [
    (TWO, {"TRADER_SLEEVES": "BTCUSDT:1m:sma_cross"}, "TRADER_SLEEVES_FILE and TRADER_SLEEVES (or --sleeves) are both set"),
    (TWO, {"TRADER_STRATEGY_PARAMS": "{}"}, "TRADER_SLEEVES_FILE and TRADER_STRATEGY_PARAMS are both set"),
    (TWO.replace("slow = 50", "slow = 5"), {},
     "TRADER_SLEEVES_FILE: sleeve 'BTCUSDT:1m:sma_slow': strategy 'sma_cross' needs fast < slow"),
    (TWO.replace("slow = 50", "slw = 50"), {},
     "sleeve 'BTCUSDT:1m:sma_slow': strategy 'sma_cross' has no parameter slw; it takes"),
    (TWO.replace('interval = "1m"', 'interval = "7m"', 1), {}, "sleeve 'BTCUSDT:7m:sma_cross': unknown kline interval '7m'"),
    (TWO.replace('"sma_cross"', '"sma_crosss"', 1), {}, "unknown strategy 'sma_crosss'; known: bollinger_breakout"),
])
def test_a_bad_sleeve_is_refused_at_start_naming_it(sleeves_env, monkeypatch, text, env, message):
    sleeves_env.write_text(text)
    for k, v in env.items():
        monkeypatch.setenv(k, v)

    with pytest.raises(SettingsError) as err:
        load_settings()

    assert message in str(err.value)


def test_a_missing_sleeves_file_is_named(sleeves_env):
    with pytest.raises(SettingsError, match=f"TRADER_SLEEVES_FILE: {sleeves_env}: cannot read"):
        load_settings()


BASE = '[[sleeve]]\nsymbol = "BTCUSDT"\ninterval = "1m"\nstrategy = "sma_cross"\n'


def test_protection_settings_are_per_sleeve_percent_or_atr_multiples():
    from trader.protection import Distance, ProtectionSettings

    (spec,) = parse_sleeves(BASE + 'stop_loss = "2%"\ntake_profit = "1.5atr"\nstop_limit_bps = 20\n')
    assert spec.protection == ProtectionSettings(stop_loss=Distance(Decimal(2), "%"), take_profit=Distance(Decimal("1.5"), "atr"),
                                                 stop_limit_bps=Decimal(20))
    assert parse_sleeves(BASE)[0].protection is None
    (spec,) = parse_sleeves(BASE + 'order_type = "LIMIT"\nstop_loss = "2%"\nwith_entry = "require"\n')
    assert spec.protection.with_entry == "require"  # the LIMIT entry and its stop as one OTO list, or refused at start


@pytest.mark.parametrize(("extra", "message"), [
    ('stop_loss = "2"', 'sleeve 1: stop_loss: \'2\' must be a percent ("2%") or a multiple of atr_14 ("1.5atr")'),
    ("stop_loss = 2", "sleeve 1: stop_loss: 2 must be a string"),
    ('stop_loss = "100%"', "sleeve 1: stop_loss: '100%' must be above 0 and below 100%"),
    ('take_profit = "3%"', "sleeve 1: take_profit: needs a stop_loss (placed together as an OCO)"),
    ('stop_loss = "2%"\ntrailing_stop = "1%"', "sleeve 1: trailing_stop: give either stop_loss or trailing_stop, not both"),
    ('trailing_stop = "2atr"', "sleeve 1: trailing_stop: a trailing delta is in percent"),
    ('stop_loss = "2%"\nwith_entry = "always"', "sleeve 1: with_entry: Input should be 'auto', 'require' or 'off'"),
])
def test_a_bad_protection_setting_is_refused_in_one_line_naming_sleeve_and_setting(extra, message):
    with pytest.raises(ValueError) as err:
        parse_sleeves(BASE + extra + "\n")
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
