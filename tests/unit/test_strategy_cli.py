"""``python -m trader new-strategy`` writes a documented template and a test that passes as written (run by pytest in a
subprocess), never over an existing file; ``check-strategy`` says in plain lines what it found and exits non-zero
on a look-ahead or an under-declared warm-up, 2 on a file it cannot load."""

import subprocess
import sys

import pytest

from trader.__main__ import main
from trader.strategies.base import INTERFACE_VERSION

LEAKY = f'''
import numpy as np
from trader.strategies.base import Strategy
class Peek(Strategy):
    name = "peek"
    interface_version = {INTERFACE_VERSION}
    def signals(self, frame):
        close = frame["close"].to_numpy(dtype=float)
        return np.sign(np.append(close[1:], close[-1]) - close).astype(np.int8)
'''

COLD = f'''
from trader.strategies.base import Strategy
from trader.strategies.signals import crossed_above, crossed_below, to_signals
class Cold(Strategy):
    name = "cold"
    interface_version = {INTERFACE_VERSION}
    warmup = 2
    def signals(self, frame):
        close = frame["close"]
        mean = close.rolling(20).mean().to_numpy()
        return to_signals(crossed_above(close.to_numpy(), mean), crossed_below(close.to_numpy(), mean))
'''


@pytest.fixture
def strategy_dir(tmp_path, monkeypatch):
    path = tmp_path / "strategies"
    monkeypatch.setenv("TRADER_STRATEGY_DIR", str(path))
    return path


def test_the_generated_template_and_its_test_pass_as_written(strategy_dir, capsys):
    assert main(["new-strategy", "my_trend"]) == 0
    assert "wrote" in capsys.readouterr().out

    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(strategy_dir)],
                         cwd=strategy_dir, capture_output=True, text=True)

    assert run.returncode == 0 and "2 passed" in run.stdout, run.stdout + run.stderr
    text = (strategy_dir / "my_trend.py").read_text()
    assert f"interface_version = {INTERFACE_VERSION}" in text and "def signals" in text and "declared_params" in text


def test_new_strategy_never_overwrites(strategy_dir, capsys):
    strategy_dir.mkdir()
    (strategy_dir / "test_mine.py").write_text("# my own test\n")

    assert main(["new-strategy", "mine"]) == 2

    err = capsys.readouterr().err
    assert "test_mine.py exists already; not overwriting it" in err and err.count("\n") == 1
    assert (strategy_dir / "test_mine.py").read_text() == "# my own test\n" and not (strategy_dir / "mine.py").exists()


@pytest.mark.parametrize("name", ["My", "class", "test_x", "a-b"])
def test_new_strategy_refuses_a_name_that_is_no_identifier(strategy_dir, capsys, name):
    assert main(["new-strategy", name]) == 2
    assert "must be a lower-case Python identifier" in capsys.readouterr().err


def test_new_strategy_needs_a_directory(monkeypatch, capsys):
    monkeypatch.delenv("TRADER_STRATEGY_DIR", raising=False)

    assert main(["new-strategy", "mine"]) == 2
    assert "set TRADER_STRATEGY_DIR or pass --dir" in capsys.readouterr().err


def test_check_strategy_passes_the_template(strategy_dir, capsys):
    main(["new-strategy", "tmpl"])
    capsys.readouterr()

    assert main(["check-strategy", "tmpl", "--bars", "1500"]) == 0

    out = capsys.readouterr().out
    assert "look-ahead: ok:" in out and "warm-up: ok: declared warmup = 2" in out and "no problems found" in out


@pytest.mark.parametrize(("source", "name", "says"), [
    (LEAKY, "peek", "look-ahead: PROBLEM: candles from bar"),
    (COLD, "cold", "warm-up: PROBLEM: declared warmup = 2, but"),
])
def test_check_strategy_finds_a_leak_and_a_short_warmup(strategy_dir, capsys, source, name, says):
    strategy_dir.mkdir()
    (strategy_dir / f"{name}.py").write_text(source)

    assert main(["check-strategy", name, "--bars", "1500"]) == 1

    out = capsys.readouterr().out
    assert says in out and "problem(s)" in out


def test_check_strategy_refuses_a_strategy_of_another_interface_version(strategy_dir, capsys):
    strategy_dir.mkdir()
    (strategy_dir / "old.py").write_text(COLD.replace(f"interface_version = {INTERFACE_VERSION}", "interface_version = 1"))

    assert main(["check-strategy", "cold"]) == 2

    err = capsys.readouterr().err
    assert f"cold was written for strategy interface 1, this trader runs interface {INTERFACE_VERSION}" in err
    assert err.count("\n") == 1


def test_check_strategy_names_the_line_where_the_strategy_raised(strategy_dir, capsys):
    strategy_dir.mkdir()
    (strategy_dir / "cold.py").write_text(COLD.replace('mean = close.rolling(20).mean().to_numpy()', 'mean = 1 / 0'))

    assert main(["check-strategy", "cold"]) == 2

    err = capsys.readouterr().err
    assert err == "check-strategy: cold raised ZeroDivisionError at cold.py:10: division by zero\n"
