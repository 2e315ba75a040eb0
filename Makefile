# The two commands that matter: `make demo` and `make test`. Each sets itself up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: demo test serve bench lint setup postgres clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

postgres:
	@bash scripts/ensure-postgres.sh

demo: setup
	@rm -f ordermesh.db ordermesh.db-wal ordermesh.db-shm
	$(BIN)/ordermesh db upgrade
	$(BIN)/ordermesh demo

test: setup postgres
	$(BIN)/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

serve: setup
	$(BIN)/ordermesh db upgrade
	$(BIN)/ordermesh serve

BENCH_ARGS ?=

bench: setup postgres
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	$(BIN)/python bench/routing.py
	$(BIN)/python bench/allocation.py --orders 5000
	$(BIN)/python bench/flash.py $(BENCH_ARGS)

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) ordermesh.db ordermesh.db-wal ordermesh.db-shm .pytest_cache .mypy_cache .ruff_cache
