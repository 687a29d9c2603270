# The two commands of the README: `make run` and `make test`. Both create or update .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXAMPLE := examples/heart-failure
export TABOPS_HOME ?= $(CURDIR)/.tabops
export TABOPS_PORT ?= 8000

.PHONY: run test lint check install clean chromium

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

# The web UI's browser tests drive Debian's Chromium; without it they skip, saying so.
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "note: no /usr/bin/chromium and no apt-get: the browser tests will be skipped"; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
		|| echo "note: installing chromium failed: the browser tests will be skipped"; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		sudo -n apt-get update -qq && sudo -n env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq chromium \
		|| echo "note: installing chromium failed: the browser tests will be skipped"; \
	else \
		echo "note: /usr/bin/chromium is missing and apt-get needs root (sudo -n refused):"; \
		echo "      run 'sudo apt-get install chromium'; until then the browser tests are skipped"; \
	fi

test: lint chromium
	$(BIN)/pytest -n auto --dist worksteal --durations=25 --cov --cov-report=term

clean:
	rm -rf $(VENV) .tabops .pytest_cache .mypy_cache .ruff_cache
