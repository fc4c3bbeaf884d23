# govtrain: two commands on a fresh machine.
#   make run   set up .venv, write demo data, run the whole pipeline locally, print a summary
#   make test  set up .venv if needed and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ROWS ?= 100000

.PHONY: setup run test compile bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: on CPU machines this takes the local CPU wheel, not a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/govtrain demo-data --rows $(ROWS) --out .govtrain/demo
	$(BIN)/govtrain run --config configs/demo.yaml

test: setup
	$(BIN)/python -m pytest -q

compile: setup
	$(BIN)/govtrain compile --out govtrain-pipeline.yaml --config configs/demo.yaml

bench: setup
	$(BIN)/python -m benchmarks.validate_vs_ge
	$(BIN)/python -m benchmarks.train_throughput

clean:
	rm -rf .govtrain govtrain-pipeline.yaml
