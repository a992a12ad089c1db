# Ratchet: every target installs what it needs; a fresh clone needs only Python 3.11, git and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ratchet-installed

.PHONY: install up demo test lint fmt bench clean traces

install: $(STAMP)

$(STAMP): pyproject.toml
	@command -v bwrap >/dev/null 2>&1 || { echo "installing bubblewrap (the test sandbox)"; \
	  apt-get update -qq >/dev/null && apt-get install -y -qq bubblewrap >/dev/null; } || \
	  echo "WARNING: bubblewrap could not be installed: tests run without a sandbox"
	@command -v docker-compose >/dev/null 2>&1 || { echo "installing docker-compose (tests/deploy check the compose file with it)"; \
	  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null 2>&1; } || \
	  echo "WARNING: docker-compose could not be installed: tests/deploy will fail"
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

# A trace UI without Docker: Arize Phoenix in a venv of its own (it pins many packages), on
# 127.0.0.1, offline (ratchet/phoenix.py). `make up` started after it exports its spans there.
PHOENIX_VERSION := 20.26.1
PHOENIX_VENV := .venv-phoenix
PHOENIX_STAMP := $(PHOENIX_VENV)/.installed-$(PHOENIX_VERSION)
RATCHET_PHOENIX_PORT ?= 6006

traces: $(PHOENIX_STAMP)
	@RATCHET_PHOENIX_PORT=$(RATCHET_PHOENIX_PORT) $(PHOENIX_VENV)/bin/python -P ratchet/phoenix.py

$(PHOENIX_STAMP):
	@test -x $(PHOENIX_VENV)/bin/python || $(PYTHON) -m venv $(PHOENIX_VENV)
	@echo "installing arize-phoenix $(PHOENIX_VERSION) into $(PHOENIX_VENV) (once)"
	@$(PHOENIX_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
	  'arize-phoenix==$(PHOENIX_VERSION)'
	@touch $@

clean:
	rm -rf $(VENV) .ratchet .pytest_cache .mypy_cache .ruff_cache
