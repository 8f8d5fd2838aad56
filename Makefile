# The two commands a newcomer needs: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test test-fast lint bench broker models clean help

help:
	@echo "make demo       run the detector end to end on generated data"
	@echo "make test       run the whole test suite (installs .venv and mosquitto when missing)"
	@echo "make test-fast  the suite without tests marked slow"
	@echo "make lint       ruff (with bandit S rules), mypy and the import walls (lint-imports)"
	@echo "make bench      scoring-path benchmark against model.predict"
	@echo "make models     retrain the demo's shipped models in models/ (simulated normal data, a few minutes each)"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Stamp files re-run the install when a requirements file changes.
$(VENV)/.runtime-installed: requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt $(VENV)/.runtime-installed
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

broker:
	@bash scripts/ensure-mosquitto.sh

demo: $(VENV)/.runtime-installed
	$(PY) -m pdm demo

models: $(VENV)/.runtime-installed
	$(PY) -m pdm demo --train-models

# two workers, each test file on one of them (its broker fixtures and trained models stay together): 6-9 minutes
# on 2 cores instead of 11-12 one after the other
PYTEST_WORKERS = -n 2 --dist loadfile

test: $(VENV)/.dev-installed broker
	$(PY) -m pytest $(PYTEST_WORKERS)

test-fast: $(VENV)/.dev-installed broker
	$(PY) -m pytest $(PYTEST_WORKERS) -m "not slow"

lint: $(VENV)/.dev-installed
	$(PY) -m ruff check pdm simulators tests benchmarks
	$(PY) -m mypy pdm
	$(VENV)/bin/lint-imports

bench: $(VENV)/.runtime-installed
	$(PY) benchmarks/scoring_throughput.py

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
