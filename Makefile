# Ratchet: every target installs what it needs; a fresh clone needs only Python 3.11, git and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ratchet-installed
PACKS := $(VENV)/npm-packs/.packed
# bun's own release binary, as the npm registry ships it (a package per platform).
BUN := 1.4.5
BUN_ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),aarch64,x64)

.PHONY: install up demo test test-faults lint fmt bench clean traces histories

install: $(STAMP) $(PACKS)

# The packages of the TypeScript example and of the JavaScript runners' tests (Vitest, Jest,
# Biome, ESLint), and pnpm, for the tests' loopback npm registry (tests/utils/npmreg.py).
NPM_LOCKS := examples/ts/repo/package-lock.json tests/fixtures/js/package-lock.json
NPM_TOOLS := pnpm@10.34.9
$(PACKS): $(NPM_LOCKS) $(STAMP)
	@$(BIN)/python -m tests.utils.npmreg $(VENV)/npm-packs $(NPM_LOCKS) $(NPM_TOOLS) && touch $@ || \
	  echo "WARNING: npm could not pack the JavaScript tests' packages: their tests will fail"

$(STAMP): pyproject.toml Makefile
	@command -v bwrap >/dev/null 2>&1 || { echo "installing bubblewrap (the test sandbox)"; \
	  apt-get update -qq >/dev/null && apt-get install -y -qq bubblewrap >/dev/null; } || \
	  echo "WARNING: bubblewrap could not be installed: tests run without a sandbox"
	@command -v npm >/dev/null 2>&1 || { echo "installing nodejs and npm (environments of JavaScript repositories)"; \
	  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null 2>&1; } || \
	  echo "WARNING: npm could not be installed: npm environments will not build"
	@command -v go >/dev/null 2>&1 || { echo "installing Go (go test suites: tests/gym/test_runners.py)"; \
	  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null 2>&1; } || \
	  echo "WARNING: Go could not be installed: Go suites will not run"
	@command -v staticcheck >/dev/null 2>&1 || command -v go-staticcheck >/dev/null 2>&1 || { echo "installing staticcheck (Go lint: tests/gym/test_lint.py)"; \
	  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq go-staticcheck >/dev/null 2>&1; } || \
	  echo "WARNING: staticcheck could not be installed: its lint test will fail"
	@command -v bun >/dev/null 2>&1 || { echo "installing bun $(BUN) (bun test suites: tests/gym/test_js_runners.py)"; \
	  d=$$(mktemp -d) && (cd $$d && npm pack --silent @oven/bun-linux-$(BUN_ARCH)@$(BUN) >/dev/null && tar xzf *.tgz) && \
	  install -m 755 $$d/package/bin/bun /usr/local/bin/bun && rm -rf $$d; } || \
	  echo "WARNING: bun could not be installed: bun suites will not run"
	@command -v cargo >/dev/null 2>&1 || test -x "$$HOME/.cargo/bin/cargo" || { echo "installing cargo (cargo test suites)"; \
	  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cargo >/dev/null 2>&1; } || \
	  echo "WARNING: cargo could not be installed: Rust suites will not run"
	@command -v docker-compose >/dev/null 2>&1 || { echo "installing docker-compose (tests/deploy check the compose file with it)"; \
	  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null 2>&1; } || \
	  echo "WARNING: docker-compose could not be installed: tests/deploy will fail"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@$(BIN)/python -m gym.warm  # pytest's rewrite cache for the sandbox's read-only site-packages
	@touch $(STAMP)

up: install
	@$(BIN)/ratchet up

EXAMPLE ?= median
demo: install
	@$(BIN)/ratchet demo --example $(EXAMPLE)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Two pytest workers, each with its own Temporal servers, a file's tests on one of them: most
# tests wait (on servers, sandboxes, subprocesses), so two halve the wall time on two cores.
TEST_WORKERS ?= 2
test: install lint
	$(BIN)/python -m pytest -q -m "not minutes" -n $(TEST_WORKERS) --dist loadfile --durations=15

# Fault-injection tests that take minutes (a 529 storm waited out); CI runs them beside `make test`.
test-faults: install
	$(BIN)/python -m pytest -q -m minutes

# Histories of real runs for tests/test_replay.py: re-record only on purpose (see that file).
RECORDED := \
  tests/workflows/test_forward.py::test_demo_example_is_repaired_verified_and_delivered \
  tests/workflows/test_agent.py::test_claude_reaches_a_verified_patch_through_the_sdk \
  tests/workflows/test_agent.py::test_a_turn_budget_pauses_with_the_work_kept_and_resumes_after_a_raise \
  tests/workflows/test_agent.py::test_cancel_while_paused_delivers_a_draft \
  tests/workflows/test_investigation.py::test_with_a_good_ref_and_a_test_id \
  tests/workflows/test_drift.py::test_a_scheduled_drift_check_starts_an_investigation \
  tests/workflows/test_patterns.py::test_the_synthesized_plan_shows_every_perspective \
  tests/workflows/test_patterns.py::test_a_valid_adversarial_test_sends_a_wrong_patch_back_and_ships_with_the_fix \
  tests/workflows/test_approvals.py::test_approved_twice_the_plan_then_the_patch_is_delivered_and_who_is_recorded \
  tests/workflows/test_approvals.py::test_unanswered_the_wait_expires_and_the_work_is_kept \
  tests/workflows/test_reproducer.py::test_a_mismatch_is_refused_then_the_written_test_drives_bisection_and_ships \
  tests/workflows/test_reproducer.py::test_a_latent_bug_goes_straight_to_the_fix \
  tests/workflows/test_ledger.py::test_a_task_with_perspectives_and_learning_is_billed_call_for_call

histories: install
	rm -f tests/histories/*.json
	$(BIN)/python -m pytest -q --record-histories $(RECORDED)
	@ls tests/histories | wc -l | xargs echo "histories recorded:"

bench: install
	$(BIN)/python -m bench

# A trace UI without Docker: Arize Phoenix in a venv of its own (it pins many packages), on
# 127.0.0.1, offline (ratchet/cli/phoenix.py). `make up` started after it exports its spans there.
PHOENIX_VERSION := 20.26.1
PHOENIX_VENV := .venv-phoenix
PHOENIX_STAMP := $(PHOENIX_VENV)/.installed-$(PHOENIX_VERSION)
RATCHET_PHOENIX_PORT ?= 6006

traces: $(PHOENIX_STAMP)
	@RATCHET_PHOENIX_PORT=$(RATCHET_PHOENIX_PORT) $(PHOENIX_VENV)/bin/python -P ratchet/cli/phoenix.py

$(PHOENIX_STAMP):
	@test -x $(PHOENIX_VENV)/bin/python || $(PYTHON) -m venv $(PHOENIX_VENV)
	@echo "installing arize-phoenix $(PHOENIX_VERSION) into $(PHOENIX_VENV) (once)"
	@$(PHOENIX_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
	  'arize-phoenix==$(PHOENIX_VERSION)'
	@touch $@

clean:
	rm -rf $(VENV) .ratchet .pytest_cache .mypy_cache .ruff_cache
