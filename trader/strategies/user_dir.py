"""A user's strategies: every ``*.py`` file of a directory (not ``test_*.py``, not ``_*.py``), each defining one
or more ``Strategy`` subclasses with a ``name`` and the ``interface_version`` they were written for.

A bad file is refused with one line naming it and what is wrong: a syntax error (with its line), an
exception while importing, no strategy in it, a strategy without ``name``, an interface version other
than this trader's (``INTERFACE_VERSION``), a name used twice or taken by a bundled strategy.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from pathlib import Path

from trader.strategies.base import INTERFACE_VERSION, Param, Strategy

MODULE_PREFIX = "klinepipe_user_strategies"


class StrategyLoadError(ValueError):
    """A user strategy file that cannot be used; the message names the file and the reason."""


def strategy_files(path: Path) -> list[Path]:
    if not path.is_dir():
        raise StrategyLoadError(f"strategy directory {path} does not exist (or is not a directory)")
    return sorted(f for f in path.glob("*.py") if not f.name.startswith(("test_", "_")))


def load_strategy_dir(path: Path, reserved: dict | None = None) -> dict[str, type[Strategy]]:
    """name -> class of every strategy in ``path``'s files; ``StrategyLoadError`` on the first bad one."""
    found: dict[str, type[Strategy]] = {}
    for file in strategy_files(path):
        for cls in load_strategy_file(file):
            other = found.get(cls.name) or (reserved or {}).get(cls.name)
            if other is not None:
                owner = "a bundled strategy" if cls.name in (reserved or {}) else f"{other.__module__.rsplit('.', 1)[-1]}.py"
                raise StrategyLoadError(f"{file}: strategy name {cls.name!r} is already taken by {owner}; rename it")
            found[cls.name] = cls
    return found


def load_strategy_file(file: Path) -> list[type[Strategy]]:
    """The strategies ``file`` defines (imported as a module of its own), each checked."""
    module_name = f"{MODULE_PREFIX}.{file.stem}"
    try:
        source = file.read_text()
        code = compile(source, str(file), "exec")
    except SyntaxError as exc:
        raise StrategyLoadError(f"{file}: syntax error at line {exc.lineno}: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StrategyLoadError(f"{file}: cannot read it ({exc})") from None
    spec = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        exec(code, module.__dict__)  # noqa: S102 - loading the user's own strategy code is the point
    except Exception as exc:  # noqa: BLE001 - any error in the user's module is reported, by line
        del sys.modules[module_name]
        line = next((f.lineno for f in reversed(traceback.extract_tb(exc.__traceback__)) if f.filename == str(file)), "?")
        raise StrategyLoadError(f"{file}: importing it raised {type(exc).__name__} at line {line}: {exc}") from None
    classes = [v for v in vars(module).values()
               if isinstance(v, type) and issubclass(v, Strategy) and v.__module__ == module_name]
    if not classes:
        raise StrategyLoadError(f"{file}: defines no strategy (a subclass of trader.strategies.base.Strategy)")
    for cls in classes:
        check_strategy_class(file, cls)
    return classes


def check_strategy_class(file: Path, cls: type[Strategy]) -> None:
    """``StrategyLoadError`` unless ``cls`` has a name, states this interface version and declares valid parameters."""
    name = vars(cls).get("name")
    if not isinstance(name, str) or not name.isidentifier():
        raise StrategyLoadError(f"{file}: {cls.__name__} has no name (set name = \"my_strategy\", a Python identifier)")
    version = vars(cls).get("interface_version")
    if version is None:
        raise StrategyLoadError(f"{file}: {name} does not state the interface version it was written for "
                                f"(set interface_version = {INTERFACE_VERSION})")
    if version != INTERFACE_VERSION:
        raise StrategyLoadError(f"{file}: {name} was written for strategy interface {version}, this trader runs "
                                f"interface {INTERFACE_VERSION}; update it (see the README, 'Write your own strategy')")
    if not callable(getattr(cls, "signals", None)) or cls.signals is Strategy.signals:
        raise StrategyLoadError(f"{file}: {name} does not implement signals(frame)")
    bad = [k for k, p in cls.declared_params.items() if not isinstance(p, Param)]
    if bad:
        raise StrategyLoadError(f"{file}: {name}: declared_params {', '.join(bad)} must be Param(...)")
