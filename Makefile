# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
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
	$(BIN)/python -m pytest --cov --cov-report=term $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .coverage htmlcov *.egg-info
