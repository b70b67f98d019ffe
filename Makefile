# Two commands do all set-up on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint format bench bench-anomaly bench-mnist bench-continuous bench-image bench-tabular clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -c constraints.txt -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/quickstart.py

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Speed benchmarks (a few minutes; run nothing else meanwhile).
bench: $(STAMP)
	$(PY) -m pip install -c constraints.txt -e ".[bench]"
	$(PY) -m benchmarks.masking
	$(PY) -m benchmarks.sampling
	$(PY) -m benchmarks.peers

# Quality benchmarks: ADBench (about 5 minutes) and binarized MNIST (up to 30 minutes
# per configuration; choose with CONFIGS="1x500-1mask ...").
bench-anomaly: $(STAMP)
	$(PY) -m benchmarks.anomaly

bench-continuous: $(STAMP)
	$(PY) -m pip install -c constraints.txt -e ".[bench]"
	$(PY) -m benchmarks.continuous

# The defaults against Chow-Liu, GMM, KDE and zuko's MAF on real tables (about 30 min).
bench-tabular: $(STAMP)
	$(PY) -m pip install -c constraints.txt -e ".[bench]"
	$(PY) -m benchmarks.tabular

bench-image: $(STAMP)
	$(PY) -m pip install -c constraints.txt -e ".[bench]"
	$(PY) -m benchmarks.image_density

bench-mnist: $(STAMP)
	$(PY) -m pip install -c constraints.txt -e ".[bench]"
	$(PY) -m benchmarks.mnist $(if $(CONFIGS),--configs $(CONFIGS))
	$(PY) -m benchmarks.mnist_figures

clean:
	rm -rf $(VENV) demo_output .pytest_cache .ruff_cache
