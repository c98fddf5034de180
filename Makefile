# The two commands: `make run` (the whole pipeline on embedded defaults) and `make test`.
# Both create .venv when missing and install the pinned requirements; nothing else is assumed.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run status test bench venv clean-data

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@# make the project's packages (streaming, trader, devstack, plugins/klinepipe) importable in every venv process
	$(PYTHON) -c "import sysconfig, pathlib; pathlib.Path(sysconfig.get_paths()['purelib'], 'klinepipe-dev.pth').write_text('$(CURDIR)\n$(CURDIR)/plugins\n')"
	@rm -f $(VENV)/.installed-*
	@touch $@

run: $(STAMP)
	$(PYTHON) -m devstack

status: $(STAMP)  # each part of the running stack, newest candle/feature/order, consumer lag
	@$(PYTHON) -m devstack status

test: $(STAMP)
	@sh scripts/ensure-chromium.sh  # Debian's chromium for the Trading page's browser test, only when missing
	$(PYTHON) -m pytest -n 3 --dist loadgroup --no-loadscope-reorder  # three workers, longest files first: see tests/conftest.py

BENCH_STAMP := $(VENV)/.bench-$(shell cat bench/requirements.txt | sha1sum | cut -c1-12)

$(BENCH_STAMP): bench/requirements.txt $(STAMP)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r bench/requirements.txt  # vectorbt: bench only
	@rm -f $(VENV)/.bench-*
	@touch $@

bench: $(STAMP) $(BENCH_STAMP)
	$(PYTHON) -m bench

clean-data:
	rm -rf .data
