# Every target builds its own virtual environment from the pinned lock file,
# so a fresh machine with Python 3.11 and PyPI access needs nothing else.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench e2e clean

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

test: lint
	$(BIN)/pytest -q
	$(BIN)/pytest -q -p no:cacheprovider --doctest-modules prefect_scenario scenario_emulator

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
