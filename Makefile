# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

# A venv that fails half-way (Debian's python3 without python3-venv has no ensurepip) loses its
# python: left with it but no pip, it would pass for made, and every later run fail on pip. Only
# that file goes (venv completes the rest next time): VENV may name a folder that was there before.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { rm -f "$(BIN)/python"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall whenever the package metadata changes.
$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[testing,dev]'
	touch $@

var:
	mkdir -p var

run: $(VENV)/.installed var
	$(BIN)/honcho start -f Procfile

lint: $(VENV)/.installed
	$(BIN)/ruff check fftelemetry tests scripts

test: $(VENV)/.installed lint
	$(BIN)/python -m pytest --cov --cov-report=term --durations=20 $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .coverage htmlcov *.egg-info
