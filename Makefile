# `make demo` and `make test` work from a fresh clone: they create .venv, install the exact
# versions of requirements/lock.txt (what the suite was last run with), and run.
#
#   make lock          re-resolve requirements/lock.txt from pyproject.toml + requirements/torch.in (uv pip compile)
#   make test-fast     the suite without notebooks, demo and trained-model generation (-m "not slow")
#   make test-browser  only the notebooks in JupyterLab + headless Chromium (tests/test_notebooks_browser.py;
#                      needs Debian's chromium: apt-get install chromium; screenshots in outputs/browser/)
#   make gallery       docs/gallery.md: the browser test's screenshots + both pipelines' ablations (cooklab gallery)
#   make test-latest   a separate .venv-latest with the newest versions pyproject.toml allows, then the suite:
#                      drift is found on purpose, not by a new user
#   make dist          the sdist and the wheel in dist/ (offline), with the Toy Kitchen data and the notebooks:
#                      pip install dist/cooklab-*.whl (tests/test_wheel.py installs it into a fresh venv)
#
# torch and torchvision are pinned as a pair in requirements/torch.in: on a Linux machine PyPI's
# wheels are the CUDA build, which also runs on the CPU.
PYTHON ?= python3
VENV ?= .venv
LATEST_VENV ?= .venv-latest
DIST ?= dist
LOCK := requirements/lock.txt
TORCH_IN := requirements/torch.in
EXTRAS := dev,notebooks,agent,grounding
UV_VERSION ?= 0.13.9
STAMP := $(VENV)/.cooklab-installed
BIN := $(VENV)/bin
RUN_ENV := HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE

.PHONY: install demo test test-fast test-browser gallery test-latest lock lint mutation notebooks dist clean

$(STAMP): $(LOCK) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(RUN_ENV) $(BIN)/cooklab demo --out outputs/demo --overwrite

# Two or more pytest workers (pytest-xdist; one per core, each with one torch thread: tests/conftest.py), the longest
# tests first (conftest.py) and --dist worksteal: a worker that runs out takes the pending tests of another.
test: $(STAMP)
	$(RUN_ENV) $(BIN)/python -m pytest -q -n auto --dist worksteal

# Day-to-day: everything but the notebooks, the demo and generation with the trained models.
test-fast: $(STAMP)
	$(RUN_ENV) $(BIN)/python -m pytest -q -n auto -m "not slow"

# Every notebook run in JupyterLab in headless Chromium, a control of each explorer moved (part of make test too).
test-browser: $(STAMP)
	$(RUN_ENV) $(BIN)/python -m pytest -q -m browser tests/test_notebooks_browser.py

# docs/gallery.md: the browser test's screenshots, then both pipelines' ablations on the Toy Kitchen (cooklab gallery).
gallery: $(STAMP)
	$(RUN_ENV) $(BIN)/python -m pytest -q -m browser tests/test_notebooks_browser.py
	$(RUN_ENV) $(BIN)/cooklab gallery --out docs --screenshots outputs/browser --overwrite

# The lock is universal (markers for other platforms and Pythons >= 3.11), so one file serves
# Linux, macOS and Windows. uv is installed into .venv for this only.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip compile pyproject.toml $(TORCH_IN) --extra dev --extra notebooks --extra agent --extra grounding \
		--universal --python-version 3.11 --upgrade -o $(LOCK)

test-latest:
	test -x $(LATEST_VENV)/bin/python || $(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install --quiet -r $(TORCH_IN)
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -c $(TORCH_IN) -e ".[$(EXTRAS)]"
	$(LATEST_VENV)/bin/python requirements/drift.py $(LOCK)
	$(RUN_ENV) $(LATEST_VENV)/bin/python -m pytest -q -n auto

# Mutation testing of the mechanism modules ([tool.mutmut] in pyproject.toml): ~40 min on 2 cores.
mutation: $(STAMP)
	$(RUN_ENV) $(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

# ruff format --check (line length 119, pyproject.toml) and ruff check (E501 on) over every Python file of the project.
lint: $(STAMP)
	$(BIN)/ruff format --check cooklab tests benchmarks $(wildcard docs/*.py)
	$(BIN)/ruff check cooklab tests benchmarks $(wildcard docs/*.py)

# The sdist (setuptools' own backend, no isolated build: works offline), then the wheel built FROM that sdist, which
# proves the sdist is complete. Both carry data/ and notebooks/ through the links cooklab/data and cooklab/notebooks
# ([tool.setuptools.package-data]; cooklab/resources.py finds them). Install with `pip install dist/cooklab-*.whl`.
dist: $(STAMP)
	rm -rf $(DIST) cooklab.egg-info
	$(BIN)/python -c "from setuptools import build_meta; build_meta.build_sdist('$(DIST)')" > /dev/null
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir $(DIST) $(DIST)/cooklab-*.tar.gz
	ls -l $(DIST)

notebooks: $(STAMP)
	$(BIN)/jupyter lab notebooks

clean:
	rm -rf $(VENV) $(LATEST_VENV) outputs .pytest_cache mutants $(DIST) build cooklab.egg-info

