# The two commands of the README: `make run` and `make test`. Both create or update .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXAMPLE := examples/heart-failure
export TABOPS_HOME ?= $(CURDIR)/.tabops
export TABOPS_PORT ?= 8000

.PHONY: run test lint check install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/tabops train -p $(EXAMPLE)/tabops.yaml --if-absent
	@echo "API docs: http://127.0.0.1:$(TABOPS_PORT)/docs"
	$(BIN)/tabops serve --host 127.0.0.1 --port $(TABOPS_PORT)

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -n auto --cov --cov-report=term

clean:
	rm -rf $(VENV) .tabops .pytest_cache .mypy_cache .ruff_cache
