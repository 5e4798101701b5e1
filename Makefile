# Quickstart: `make repro` (build the labels on CPU) and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install repro test test-fast lint docs summary clean-checkpoints dag

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install whenever pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[cpu,embed,dev]'
	touch $(STAMP)

install: $(STAMP)

repro: $(STAMP)
	$(BIN)/dvc repro
	$(BIN)/dars summary --labels data/labels.parquet

summary: $(STAMP)
	$(BIN)/dars summary --labels data/labels.parquet

# The suite includes tests/test_docs.py, which runs `mkdocs build --strict`.
test: $(STAMP)
	$(BIN)/python -m pytest -q -ra

docs: $(STAMP)
	PYTHONPATH=pipeline $(BIN)/python -m dars.docgen
	$(BIN)/mkdocs build --strict

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -ra -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check pipeline tests benchmarks
	$(BIN)/ruff format --check pipeline tests benchmarks

dag: $(STAMP)
	$(BIN)/dvc dag

clean-checkpoints:
	rm -rf .dars/checkpoints
