# Two commands for a newcomer: `make run` (dashboard on the bundled demo) and `make test`.
# Both create or reuse the virtual environment in $(VENV) and install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8501
# The dashboard answers this machine only; `make run ADDRESS=0.0.0.0` shares it on your network
# (for a shared server use the Docker image: its upload limits and worker budgets are on).
ADDRESS ?= 127.0.0.1

.PHONY: run test test-loaded test-fast lint format clean-venv browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed-run: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed-run
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed-run
	$(BIN)/ncviz serve --port $(PORT) --host $(ADDRESS)

# The browser test drives Debian's chromium; install it when we can (root + apt), else it is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	      || echo "note: could not install chromium; the browser tests will be skipped"; \
	  else echo "note: chromium not installed; the browser test will be skipped"; fi; }

test: $(VENV)/.installed-dev browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The whole suite on a busy machine: $(LOAD) processes spinning a core each beside it (started
# and stopped by benchmarks/busy.py). Tests wait on states, never on timers, so it must pass.
LOAD ?= 2
test-loaded: $(VENV)/.installed-dev browser
	$(BIN)/python benchmarks/busy.py $(LOAD) -- $(MAKE) --no-print-directory test

# The inner loop: lint, types and every test not marked slow (browser, every page of every run,
# torchrun, budgeted workers). `make test` runs everything.
test-fast: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean-venv:
	rm -rf $(VENV)
