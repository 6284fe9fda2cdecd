# The two commands of the quick start: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Every install (this Makefile, the Dockerfile, CI through `make test`) takes its versions
# from this file; `make lock` refreshes it.
LOCK := requirements.lock

.PHONY: run test test-fast test-cluster lint docs format install lock migrate clean bench \
	bench-workers bench-search bench-speed bench-floor bench-cluster bench-defaults \
	bench-default-job bench-queue

# Both distributions at once: the server (.) depends on the client (./client), which is
# not on PyPI, so pip must be handed both. pip's constraints refuse extras and editables,
# hence `-c` with the pins and the packages themselves named on the command line.
$(STAMP): pyproject.toml client/pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e ./client -e '.[worker,dev]'
	touch $(STAMP)

install: $(STAMP)

# Pins for Python 3.11 on Linux (the Dockerfile's python:3.11-slim). Versions already in the
# lock are kept while they still fit; `make lock LOCK_FLAGS=--upgrade` moves every pin to
# the newest allowed. Needs only uv (a dev dependency, also on PyPI), not an install.
LOCK_FLAGS ?=
lock:
	test -x $(BIN)/uv || { test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); \
		$(BIN)/python -m pip install --quiet uv; }
	printf '%s\n' '-e ./client' '-e .[worker,dev]' | $(BIN)/uv pip compile - --quiet \
		--python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
		--no-emit-package tuner-service --no-emit-package tuner-client \
		--custom-compile-command 'make lock' $(LOCK_FLAGS) -o $(LOCK)

# API + TUNER_WORKERS workers on SQLite under ./var (every TUNER_* variable is honoured).
run: $(STAMP)
	$(BIN)/tuner-service serve

migrate: $(STAMP)
	$(BIN)/tuner-service migrate

# Lint, import contracts, the docs build, then the whole suite on two test processes, with
# a throwaway PostgreSQL and the browser tests where the machine has them
# (tests/run_suite.py); it ends with what was skipped and why.
# ARGS go to pytest: make test ARGS=tests/test_queue.py
ARGS ?=
test: $(STAMP)
	$(BIN)/python tests/run_suite.py $(ARGS)

# The same without the tests that run real searches in worker processes: the edit-test loop.
test-fast: $(STAMP)
	$(BIN)/python tests/run_suite.py -m 'not slow' $(ARGS)

# Every fault of the cluster test (tests/test_cluster.py): network namespaces as hosts, so
# root and `ip netns`; 2.5 to 5 minutes on two cores. `make test` runs them too, last.
test-cluster: $(STAMP)
	$(BIN)/python -m pytest tests/test_cluster.py $(ARGS)

# Performance figures (benchmarks/): one table, about eight minutes on two idle cores.
# PostgreSQL rows need TUNER_TEST_POSTGRES_URL (an admin URL; a scratch database is made).
bench: $(STAMP)
	$(BIN)/python -m benchmarks

# One 8-trial search on 1 worker vs spread over 2 (parallel_trials): about four minutes.
bench-workers: $(STAMP)
	$(BIN)/python -m benchmarks.parallel_workers

# Held-out scores: the default job as a user gets it (its own budget) vs Optuna given its
# wall time vs two baselines, 4 tables x 5 seeds: about 2 h 10 min. e.g. ARGS='--budget 40'.
bench-search: $(STAMP)
	$(BIN)/python -m benchmarks.search_quality $(ARGS)

# Iris's default job as a new user submits it (only dataset_id), POST /jobs to succeeded,
# through `make run`'s service; ROUNDS rounds (about 1.5 minutes each).
bench-default-job: $(STAMP)
	$(BIN)/python -m benchmarks.default_job --rounds $(ROUNDS)

# Six small jobs queued on one worker: its search processes reused (the default) vs a fresh
# one per job, ROUNDS rounds of each, alternating (about 1.5 minutes a round).
bench-queue: $(STAMP)
	$(BIN)/python -m benchmarks.job_queue --rounds $(ROUNDS)

# Which small-table defaults (AdamW, label smoothing, batch normalization, robust scaling)
# help the default space's networks: each measured paired, the same network with and
# without it, 4 tables x 5 seeds x 6 networks: about 20 minutes on two cores.
bench-defaults: $(STAMP)
	$(BIN)/python -m benchmarks.small_table_defaults $(ARGS)

# A plain KerasTuner Hyperband script's search (30 epochs, no budget, no ensemble) through
# `make run`'s service vs the script itself, with and without model reuse
# (TUNER_MODEL_REUSE=0; ARGS=--no-reuse-off skips it), on 569 and 3,000 rows; medians over
# ROUNDS rounds (about 15 minutes a round on two cores, 25 with reuse off).
ROUNDS ?= 3
bench-speed: $(STAMP)
	$(BIN)/python -m benchmarks.speed --rounds $(ROUNDS) $(ARGS)

# One cross-validated trial in a bare process: what a new network and one seen before
# cost beyond their steps (bench-speed's fixed cost, without a search around it): 1 minute.
bench-floor: $(STAMP)
	$(BIN)/python -m benchmarks.fit_floor $(ARGS)

# Trials handed out and recorded per second by one chief, with 4 to 32 tuner clients running
# trivial trials, on a throwaway PostgreSQL: about two minutes. ARGS: e.g. ARGS='--clients 4 8'.
bench-cluster: $(STAMP)
	$(BIN)/python -m benchmarks.cluster $(ARGS)

lint: $(STAMP)
	$(BIN)/python tests/run_suite.py --lint-only

# The MkDocs site (mkdocs.yml, strict) into build/site; `make test` builds it too.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --site-dir build/site

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache *.egg-info client/*.egg-info
