# Ratchet: every target installs what it needs; a fresh clone needs only Python 3.11, git and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ratchet-installed

.PHONY: install up demo test lint fmt bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@command -v bwrap >/dev/null 2>&1 || { echo "installing bubblewrap (the test sandbox)"; \
	  apt-get update -qq >/dev/null && apt-get install -y -qq bubblewrap >/dev/null; } || \
	  echo "WARNING: bubblewrap could not be installed: tests run without a sandbox"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

up: install
	@$(BIN)/ratchet up

demo: install
	@$(BIN)/ratchet demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install lint
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .ratchet .pytest_cache .mypy_cache .ruff_cache
