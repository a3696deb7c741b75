# The README's commands. Each creates or updates the virtual environment in .venv and
# installs what it needs: the pinned packages (constraints.txt) and, on Debian, the
# Fashion-MNIST data package.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
FMNIST_DIR := /usr/share/datasets/fashion-mnist
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all demo test test-fast data bench lint clean docs docs-check

all: test

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	# zennit (DTD rules for InFIP fingerprints) asks for torchvision, which does not import beside
	# the pinned torch and is never used: it is installed without its dependencies.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -c constraints.txt zennit
	touch $(STAMP)

# Real Fashion-MNIST: Debian's dataset-fashion-mnist package, installed when missing.
data:
	@if [ -n "$$ADVPARAMS_DATA" ] && ls "$$ADVPARAMS_DATA"/*train-images-idx3-ubyte.gz >/dev/null 2>&1; then \
	  echo "Fashion-MNIST: using $$ADVPARAMS_DATA"; \
	elif [ -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz ]; then \
	  echo "Fashion-MNIST: found in $(FMNIST_DIR)"; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "Fashion-MNIST: installing Debian's dataset-fashion-mnist"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	else \
	  echo "Fashion-MNIST: not found; set ADVPARAMS_DATA to a folder with its four IDX .gz files"; \
	fi

demo: $(STAMP) data
	$(VENV)/bin/advparams demo --workdir runs/demo

# Tests run in one worker per core (pytest-xdist; a file's tests stay together), each
# with one torch thread; the slowest are listed at the end.
PYTEST_WORKERS := -n auto --dist loadfile --durations=15

test: $(STAMP) data
	ADVPARAMS_REQUIRE_DATA=1 $(PY) -m pytest $(PYTEST_WORKERS)

test-fast: $(STAMP)
	$(PY) -m pytest $(PYTEST_WORKERS) -m "not slow"

bench: $(STAMP) data
	$(PY) benchmarks/lock_speed.py --models lenet vgg --seeds 0 1 2 --out docs/benchmarks/lock_speed_v2.jsonl
	$(PY) benchmarks/lock_speed.py --models resnet18 large --seeds 0 --out docs/benchmarks/lock_speed_v2.jsonl
	$(PY) benchmarks/lock_targets.py --out docs/benchmarks/lock_targets.jsonl
	$(PY) benchmarks/lock_fmnist_seeds.py --out docs/benchmarks/lock_fmnist_seeds.jsonl
	$(PY) benchmarks/scale.py --sizes 125m 1b --dtypes float32 bfloat16 --work runs/scale --out docs/benchmarks/scale.jsonl

# The measured tables of README.md and docs/*.md between `<!-- generated: COMMAND -->` and
# `<!-- end generated -->`: `docs` rewrites them from the committed rows, `docs-check` says
# which is stale (make test checks them too, tests/unit/test_docs_blocks.py). Numbers in
# prose are claims (docs/claims.yaml) checked against their rows (tests/unit/test_docs_claims.py).
docs: $(STAMP)
	$(PY) tools/docs_blocks.py

docs-check: $(STAMP)
	$(PY) tools/docs_blocks.py --check
	$(PY) tools/docs_claims.py

lint: $(STAMP)
	$(PY) -m pip install --quiet ruff mypy
	$(PY) -m ruff check src tests benchmarks tools
	$(PY) -m mypy src

clean:
	rm -rf $(VENV) .pytest_cache build dist src/*.egg-info
