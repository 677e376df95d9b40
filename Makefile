# The two commands of the README: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint types unit serve clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts handler.py
	$(BIN)/ruff format --check src tests benchmarks scripts handler.py

types: $(STAMP)
	$(BIN)/mypy src tests benchmarks scripts handler.py

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint types unit

# The README's main command: install the service, the pinned ComfyUI and the default models,
# then serve the HTTP API (scripts/serve.sh says how to change each step).
serve:
	VENV=$(abspath $(VENV)) scripts/serve.sh

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
