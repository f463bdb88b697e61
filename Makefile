# membot — the two commands that matter are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run chat test lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU build of torch first, so sentence-transformers does not pull the multi-GB CUDA build: from PyTorch's CPU
	# index when it answers, else from the configured indexes (a mirror or a local wheel that is already CPU-only).
	$(BIN)/pip install --quiet torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu --retries 0 --timeout 15 \
		|| $(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	bash deploy/ensure-redis.sh
	$(BIN)/membot run $(if $(USER_NAME),--user $(USER_NAME),)

chat: install
	bash deploy/ensure-redis.sh
	$(BIN)/membot chat $(if $(USER_NAME),--user $(USER_NAME),)

test: install
	bash deploy/ensure-redis.sh
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check bot adapters memory tests bench
	$(BIN)/ruff format --check bot adapters memory tests bench
	$(BIN)/mypy
	$(BIN)/mypy tests/memory/test_boundaries.py  # the stores conform to the narrow ports they are handed as

format: install
	$(BIN)/ruff format bot adapters memory tests bench
	$(BIN)/ruff check --fix bot adapters memory tests bench

bench: install
	bash deploy/ensure-redis.sh
	$(BIN)/python -m bench.turn_overhead

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
