# `make demo` and `make test` work from a fresh clone: they create .venv, install, and run.
# torch: the pinned pair below installs from PyPI as the CUDA build on a Linux GPU machine
# (and runs on the CPU where there is no GPU); override with e.g. TORCH_SPEC="torch torchvision".
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.cooklab-installed
BIN := $(VENV)/bin

.PHONY: install demo test lint notebooks clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(TORCH_SPEC)
	$(BIN)/python -m pip install -e ".[dev,notebooks,agent,grounding]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE $(BIN)/cooklab demo --out outputs/demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check cooklab tests benchmarks

notebooks: $(STAMP)
	$(BIN)/jupyter lab notebooks

clean:
	rm -rf $(VENV) outputs .pytest_cache
