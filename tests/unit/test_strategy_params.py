"""Strategy parameters are typed and bounded (``Param``): an unknown one, one of the wrong type, out of range or
breaking a named constraint is refused at start — by ``build_strategy``, the trader's settings and the
backtest CLI — in one line naming it and listing what is valid."""

import inspect

import pytest

from trader.backtest.cli import main as backtest_main
from trader.config import SettingsError, load_settings
from trader.strategies import BUNDLED, build_strategy
from trader.strategies.base import Param
from tests.helpers import SAMPLE


@pytest.mark.parametrize(("params", "message"), [
    ({"fsat": 5}, "has no parameter fsat; it takes: fast (int 2..500, default 10), slow (int 3..1000, default 30)"),
    ({"fast": 1}, "parameter fast must be int 2..500, got 1"),
    ({"fast": 10.5}, "parameter fast must be an integer"),
    ({"slow": "30"}, "parameter slow must be an integer"),
    ({"fast": True}, "parameter fast must be an integer"),
    ({"fast": 40}, "needs fast < slow, got fast=40, slow=30"),
])
def test_a_bad_sma_cross_parameter_is_named_with_what_is_valid(params, message):
    with pytest.raises(ValueError) as err:
        build_strategy("sma_cross", **params)

    assert message in str(err.value) and "\n" not in str(err.value)


def test_floats_and_categoricals_are_checked():
    assert build_strategy("rsi_reversion", lower=25, upper=75.5).params == {"period": 14, "lower": 25, "upper": 75.5}
    with pytest.raises(ValueError, match="parameter upper must be float 0..100, got 101"):
        build_strategy("rsi_reversion", upper=101)
    with pytest.raises(ValueError, match="parameter above_zero must be one of 0, 1, got 2"):
        build_strategy("macd_trend", above_zero=2)


def test_param_kinds_and_what_is_valid():
    assert (Param(10, low=2, high=500).kind, Param(0.5, low=0).kind, Param("a", choices=("a", "b")).kind) == \
        ("int", "float", "categorical")
    assert Param(1.0, low=0, high=1).valid() == "float 0..1" and Param(3).valid() == "int"
    with pytest.raises(ValueError, match="default 1 is not valid"):
        Param(1, low=2)


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_every_bundled_strategy_declares_every_parameter_it_takes_with_bounds(name):
    cls = BUNDLED[name]
    takes = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    if takes == ["params"]:  # Strategy.__init__(**params): no parameters of its own
        takes = []

    assert list(cls.declared_params) == takes
    for key, param in cls.declared_params.items():
        assert param.choices or (param.low is not None and param.high is not None), f"{name}.{key} is unbounded"
        assert inspect.signature(cls.__init__).parameters[key].default == param.default


def test_the_trader_refuses_an_out_of_range_parameter_at_start(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://x/y")
    monkeypatch.setenv("TRADER_STRATEGY_PARAMS", '{"sma_cross": {"fast": 10, "slow": 5000}}')

    with pytest.raises(SettingsError) as err:
        load_settings()

    assert str(err.value).startswith("TRADER_STRATEGY_PARAMS: sleeve BTCUSDT:1m:sma_cross: strategy 'sma_cross':"
                                     " parameter slow must be int 3..1000")


def test_the_backtest_cli_refuses_an_unknown_parameter_in_one_line(tmp_path, capsys):
    code = backtest_main(["--csv", str(SAMPLE / "BTCUSDT-1d.csv"), "--params", '{"period": 7}', "--out", str(tmp_path)])

    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "strategy 'sma_cross' has no parameter period; it takes: fast (int 2..500" in err


@pytest.mark.parametrize(("grid", "message"), [
    ('{"fast": [1, 10], "slow": [30]}', "parameter fast must be int 2..500, got 1"),
    ('{"fats": [5, 10]}', "strategy 'sma_cross' has no parameter fats; it takes: fast"),
])
def test_a_sweep_grid_value_out_of_range_is_refused_before_any_work(tmp_path, capsys, grid, message):
    code = backtest_main(["--csv", str(SAMPLE / "BTCUSDT-1d.csv"), "--sweep", grid, "--out", str(tmp_path / "out")])

    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
