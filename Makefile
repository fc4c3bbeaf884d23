# govtrain: two commands on a fresh machine.
#   make run   set up .venv, write demo data, run the whole pipeline locally, print a summary
#   make test  set up .venv if needed and run the test suite (make test-fast: unit-level only; make lint)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# checkov pins its own dependency tree, so it lives in a venv of its own (used by tests/test_infra.py).
TOOLS := .venv-tools
CHECKOV := $(TOOLS)/bin/checkov
ROWS ?= 100000

.PHONY: setup tools run test test-fast lint test-browser compile image bench clean constraints

$(STAMP): pyproject.toml docker/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: on CPU machines this takes the local CPU wheel, not a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	# The exact versions the image installs (docker/constraints.txt): what the tests pass on is what ships.
	$(BIN)/python -m pip install --quiet -c docker/constraints.txt -e '.[test,server]'
	touch $(STAMP)

setup: $(STAMP)

$(CHECKOV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet 'checkov>=3.2,<4'

tools: $(CHECKOV)

run: setup
	$(BIN)/govtrain demo-data --rows $(ROWS) --out .govtrain/demo
	$(BIN)/govtrain run --config configs/demo.yaml

test: setup tools
	GOVTRAIN_CHECKOV=$(CHECKOV) $(BIN)/python -m pytest -q

# The unit-level tests, for the edit loop (under 2 minutes); `make test` runs everything.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not browser"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

# The MLflow UI in a real headless Chromium (Debian's chromium + chromium-driver, installed if missing).
test-browser: setup
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver)
	$(BIN)/python -m pytest -q -m browser tests/browser

compile: setup
	$(BIN)/govtrain compile --out govtrain-pipeline.yaml --config configs/cluster.yaml

# The cluster image (docker/Dockerfile); CUDA=1 for the CUDA build.
image:
	docker build -f docker/Dockerfile --build-arg TORCH_INDEX=$(if $(CUDA),cu128,cpu) \
	  -t ghcr.io/govtrain/govtrain:0.1.0$(if $(CUDA),-cuda,) .

bench: setup
	$(BIN)/python -m benchmarks.data_gates
	$(BIN)/python -m benchmarks.train_throughput
	$(BIN)/python -m benchmarks.audit_verify
	$(BIN)/python -m benchmarks.evaluate_speed
	$(BIN)/python -m benchmarks.drift

clean:
	rm -rf .govtrain govtrain-pipeline.yaml

# After changing a dependency: pin what the test environment resolved, for the image and for `make setup`.
constraints: setup
	{ echo "# Exact versions the image installs (pip install -c): the set the test suite ran against, from"; \
	  echo "# 'pip freeze' of the test environment (test and server extras). Regenerate with 'make constraints'."; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v -i '^govtrain' | sed 's/+cpu$$//'; } \
	  > docker/constraints.txt
