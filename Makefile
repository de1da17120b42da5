# Every target builds its own virtual environment from the pinned lock file,
# so a fresh machine with Python 3.11 and PyPI access needs nothing else.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint unit unit-fast doctest bench bench-smoke e2e clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/prefect-scenario demo

lint: $(STAMP)
	$(BIN)/ruff check prefect_scenario scenario_emulator tests benchmarks conftest.py
	$(BIN)/ruff format --check prefect_scenario scenario_emulator tests benchmarks conftest.py
	$(BIN)/mypy --strict prefect_scenario scenario_emulator

# Each pytest run gets its own PREFECT_HOME (profiles, local result storage, memo
# store), so two `make test` at once on one machine share no file under ~/.prefect.
define with_own_prefect_home
	@home=$$(mktemp -d "$${TMPDIR:-/tmp}/prefect-scenario-home.XXXXXX"); \
	echo "PREFECT_HOME=$$home $(1)"; \
	PREFECT_HOME=$$home $(1); status=$$?; rm -rf "$$home"; exit $$status
endef

# lint (ruff, mypy --strict on both packages), then the tests and the doctests; -k runs
# both even if one fails, and fails if either did.
test: lint
	@$(MAKE) --no-print-directory -k unit doctest

# The fast loop: lint, every test not marked e2e (no prefect server, workers, PostgreSQL,
# killed child processes or benchmark smoke run), and the doctests. See docs/development.md.
check: lint
	@$(MAKE) --no-print-directory -k -j 2 unit-fast doctest

# The test suite: unit, reliability and end-to-end tests, the benchmark smoke run, packaging.
unit: $(STAMP)
	$(call with_own_prefect_home,$(BIN)/pytest -q)

# In 3 processes (pytest-xdist): the suite mostly waits on servers and sockets (3 measured
# faster than 4 on 2 cores: each process starts its own ephemeral Prefect server).
unit-fast: $(STAMP)
	$(call with_own_prefect_home,$(BIN)/pytest -q -m 'not e2e' -n 3)

# Only the tests marked e2e (what `make test` runs on top of `make check`).
e2e: $(STAMP)
	$(call with_own_prefect_home,$(BIN)/pytest -q -m e2e)

# The docstring examples of both packages, run against the emulator (see conftest.py).
doctest: $(STAMP)
	$(call with_own_prefect_home,$(BIN)/pytest -q -p no:cacheprovider --doctest-modules prefect_scenario scenario_emulator)

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# Every benchmark once, tiny sizes, no targets; results in a temporary directory.
bench-smoke: $(STAMP)
	$(BIN)/python -m benchmarks --smoke

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
