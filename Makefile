# The two commands of the quick start: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint format install migrate clean bench bench-workers

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[worker,dev]'
	touch $(STAMP)

install: $(STAMP)

# API + TUNER_WORKERS workers on SQLite under ./var (every TUNER_* variable is honoured).
run: $(STAMP)
	$(BIN)/tuner-service serve

migrate: $(STAMP)
	$(BIN)/tuner-service migrate

# Two test processes: most of the suite waits on worker processes and TensorFlow
# start-up, so two run side by side in a little over half the time.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n 2

# Performance figures (benchmarks/): one table, about eight minutes on two idle cores.
# PostgreSQL rows need TUNER_TEST_POSTGRES_URL (an admin URL; a scratch database is made).
bench: $(STAMP)
	$(BIN)/python -m benchmarks

# One 8-trial search on 1 worker vs spread over 2 (parallel_trials): about four minutes.
bench-workers: $(STAMP)
	$(BIN)/python -m benchmarks.parallel_workers

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache *.egg-info
