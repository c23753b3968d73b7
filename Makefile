# lfr-edge-agent developer targets. Each works on a fresh Debian machine.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# python3-venv: Debian's python3 has no ensurepip without it, so `python3 -m venv` fails.
APT_PACKAGES := python3 python3-venv mosquitto mosquitto-clients libsystemd-dev pkg-config libcap-dev gcc python3-dev systemd nftables iproute2
MODELS_DIR ?= var/models
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup apt venv models test test-fast lint typecheck bench demo hil hil-short arm64-smoke clean

setup: apt venv models ## install system packages, the virtualenv and the pinned models

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# apt first: the venv needs python3-venv (order-only, so an existing venv is kept).
$(BIN)/python: | apt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

venv: $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q systemd-python || echo "systemd-python not built (journald logging falls back to stderr)"

models: venv
	$(BIN)/lfr-agent models install --dir $(MODELS_DIR)
	$(BIN)/lfr-agent models verify --dir $(MODELS_DIR)

# pytest exits 5 when it collected nothing: a run that tested nothing is a failure here.
PYTEST = rc=0; LFR_TEST_MODELS_DIR=$(abspath $(MODELS_DIR)) $(BIN)/python -m pytest -q $(1) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make $@: pytest collected no tests" >&2; exit 1; fi; exit $$rc

test: setup ## the full test suite (slow, system and fault tests included)
	$(call PYTEST)

test-fast: venv ## unit tests only
	$(call PYTEST,-m "not slow and not system and not fault")

lint: venv ## ruff (lint and format check) and mypy --strict
	$(BIN)/ruff check agent tests hil
	$(BIN)/ruff format --check agent tests hil
	$(BIN)/mypy

typecheck: venv ## mypy --strict on agent/ and hil/
	$(BIN)/mypy

bench: setup
	$(BIN)/lfr-agent bench --models-dir $(MODELS_DIR) --json var/bench.json

demo: setup ## the whole system end to end on this machine
	$(BIN)/python -m hil.demo --models-dir $(MODELS_DIR)

hil: setup ## the virtual HIL rig: every scenario, report in var/hil
	$(BIN)/python -m hil.rig run --rig hil/rigs/virtual.toml --out var/hil --models-dir $(MODELS_DIR)

hil-short: setup ## the short HIL rig (CI form, a few minutes), report in var/hil-short
	$(BIN)/python -m hil.rig run --rig hil/rigs/virtual.toml --out var/hil-short --short --models-dir $(MODELS_DIR)

arm64-smoke: venv ## aarch64 proof under qemu: install in an arm64 Debian root, embed faces, compare with this host
	$(SUDO) hil/arm64-smoke.sh

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
