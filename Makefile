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
	$(BIN)/ruff check src tests benchmarks handler.py
	$(BIN)/ruff format --check src tests benchmarks handler.py

types: $(STAMP)
	$(BIN)/mypy src tests benchmarks handler.py

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint types unit

# The RunPod handler behind the RunPod SDK's local API server (/run, /runsync, /docs).
HOST ?= 127.0.0.1
PORT ?= 8000
serve: $(STAMP)
	@test -n "$$COMFYUI_URL" || { echo "set COMFYUI_URL to your ComfyUI server, e.g. COMFYUI_URL=http://127.0.0.1:8188 make serve"; exit 2; }
	$(BIN)/python handler.py --rp_serve_api --rp_api_host $(HOST) --rp_api_port $(PORT)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
