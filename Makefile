# Two commands do all set-up on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo docs test test-min package lint format bench bench-anomaly bench-mnist bench-continuous bench-image bench-tabular bench-regression clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -c constraints.txt -e ".[test]"
	touch $(STAMP)

# The quickstart's figure needs matplotlib: the `demo` extra.
DEMO_STAMP := $(VENV)/.demo-installed
$(DEMO_STAMP): $(STAMP)
	$(PY) -m pip install -c constraints.txt -e ".[demo]"
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	MPLBACKEND=Agg $(PY) examples/plot_quickstart.py --output demo_output

test: $(STAMP)
	$(PY) -m pytest
	$(MAKE) package
	$(MAKE) docs

# The documentation site, warnings as errors, from a copy of docs/ in build/ (nothing
# generated lands in the source tree); the gallery runs every examples/plot_*.py.
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install -c constraints.txt -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	rm -rf build/docs-src build/docs
	mkdir -p build
	cp -r docs build/docs-src
	MPLBACKEND=Agg $(PY) -m sphinx -W --keep-going -b html build/docs-src build/docs/html
	@echo "Open build/docs/html/index.html"

# The release artifacts: build the sdist and wheel (in an isolated build environment),
# check their metadata with twine, install the wheel into a fresh virtual environment
# and run the quickstart there, outside the source tree.
package: $(STAMP)
	rm -rf dist build/wheel-venv
	$(PY) -m build --outdir dist .
	$(VENV)/bin/twine check --strict dist/*
	$(PYTHON) -m venv build/wheel-venv
	build/wheel-venv/bin/pip install -q -c constraints.txt dist/skmade-*.whl
	cd build && MPLBACKEND=Agg wheel-venv/bin/python ../examples/plot_quickstart.py

# The lowest supported versions (constraints-min.txt): do the declared bounds hold?
VENV_MIN ?= .venv-min
test-min:
	$(PYTHON) -m venv $(VENV_MIN)
	$(VENV_MIN)/bin/python -m pip install -c constraints-min.txt -e ".[test]"
	# scikit-learn 1.6.0's parametrize_with_checks hands pytest a generator, which new
	# pytest deprecates; later scikit-learn releases return a list.
	$(VENV_MIN)/bin/python -m pytest -p no:cacheprovider \
		-W "ignore:Passing a non-Collection iterable to parametrize"

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

# Quality benchmarks: ADBench dev and test suites and the fit-time check (about
# 15 minutes) and binarized MNIST (up to 30 minutes
# per configuration; choose with CONFIGS="1x500-1mask ...").
bench-anomaly: $(STAMP)
	$(PY) -m pip install -c constraints.txt -e ".[bench]"
	$(PY) -m benchmarks.anomaly --suite dev
	$(PY) -m benchmarks.anomaly
	$(PY) -m benchmarks.anomaly --fit-time

bench-continuous: $(STAMP)
	$(PY) -m pip install -c constraints.txt -e ".[bench]"
	$(PY) -m benchmarks.continuous

# The defaults against Chow-Liu, GMM, KDE and zuko's MAF on real tables (about 30 min).
bench-tabular: $(STAMP)
	$(PY) -m pip install -c constraints.txt -e ".[bench]"
	$(PY) -m benchmarks.tabular

bench-regression: $(STAMP)
	$(PY) -m pip install -c constraints.txt -e ".[bench]"
	$(PY) -m benchmarks.regression

bench-image: $(STAMP)
	$(PY) -m pip install -c constraints.txt -e ".[bench]"
	$(PY) -m benchmarks.image_density

bench-mnist: $(STAMP)
	$(PY) -m pip install -c constraints.txt -e ".[bench]"
	$(PY) -m benchmarks.mnist $(if $(CONFIGS),--configs $(CONFIGS))
	$(PY) -m benchmarks.mnist_figures

clean:
	rm -rf $(VENV) $(VENV_MIN) build dist demo_output .pytest_cache .ruff_cache
