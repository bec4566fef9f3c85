# Everyday commands. Every target creates .venv and installs the package first when needed,
# so a fresh machine needs only python3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# make train / lr-find: configs/$(MODEL).yaml, GPUS processes on this machine (>1: torchrun), config overrides
MODEL ?= resnet50
GPUS ?= 1
ARGS ?=

.PHONY: install test test-fast lint format clean train lr-find demo explain bench

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)  # the whole suite (every test has a time limit; the ten slowest are listed at the end)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)  # the suite without the long end-to-end cases (marked slow)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check tame tests benchmarks
	$(BIN)/ruff format --check tame tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format tame tests benchmarks
	$(BIN)/ruff check --fix tame tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info

demo: $(STAMP)  # the whole method on a CPU, offline; finished stages are reused (make demo ARGS=--force to redo)
	MPLBACKEND=Agg $(BIN)/tame demo --config configs/demo.yaml --out demo $(ARGS)

explain: $(STAMP)  # make explain IMAGES="a.jpg dir/" MODEL=resnet50 CHECKPOINT=snapshots/resnet50/epoch_4.pt
	$(BIN)/tame explain $(IMAGES) --config configs/$(MODEL).yaml --checkpoint $(CHECKPOINT) --out $(or $(OUT),explanations)

train: $(STAMP)  # make train MODEL=resnet50 GPUS=4 [ARGS="key=value ..."]
	GPUS=$(GPUS) PYTHON=$(BIN)/python launch/torchrun.sh train configs/$(MODEL).yaml $(ARGS)

lr-find: $(STAMP)  # make lr-find MODEL=vgg16 GPUS=4 [ARGS="key=value ..."]
	GPUS=$(GPUS) PYTHON=$(BIN)/python launch/torchrun.sh lr-find configs/$(MODEL).yaml $(ARGS)

bench: $(STAMP)  # every CPU benchmark side by side (~10 min on 2 cores; QUICK=1: 64 px checks); GPU: benchmarks/gpu.sh
	$(BIN)/python -m benchmarks.training $(if $(QUICK),--quick)
	$(BIN)/python -m benchmarks.evaluation $(if $(QUICK),--quick)
	$(BIN)/python -m benchmarks.latency $(if $(QUICK),--quick)
	$(BIN)/python -m benchmarks.memory $(if $(QUICK),--quick)
	$(BIN)/python -m benchmarks.loaders $(if $(QUICK),--quick)
	$(BIN)/python -m benchmarks.export $(if $(QUICK),--quick)
	$(BIN)/python -m benchmarks.summary
