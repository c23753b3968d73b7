# lfr-edge-agent developer targets. Each works on a fresh Debian machine.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# python3-venv: Debian's python3 has no ensurepip without it, so `python3 -m venv` fails.
# postgresql: the tests start private PostgreSQL clusters for the hub's shared store.
# chromium: the console's browser tests drive Debian's headless chromium (Playwright, no download).
APT_PACKAGES := python3 python3-venv mosquitto mosquitto-clients libsystemd-dev pkg-config libcap-dev gcc python3-dev systemd nftables iproute2 postgresql chromium
# LazyFS's build: Debian's spdlog and toml11 instead of its CMake downloads.
APT_PACKAGES += g++ cmake make fuse3 libfuse3-dev libspdlog-dev libtoml11-dev
MODELS_DIR ?= var/models
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# LazyFS (the power-cut filesystem) is built from the copy beside the checkout.
LAZYFS_SRC ?= ../shared/tools/lazyfs
LAZYFS_BIN := var/lazyfs/lazyfs/build/lazyfs
N ?= 50
SEED ?= 22
# 0: no limit; otherwise new crash points stop after this many minutes (the table says so).
MAX_MINUTES ?= 0

.PHONY: setup apt venv models lazyfs test test-fast lint typecheck bench bench-console demo hil hil-short power-cut soak arm64-smoke fleet-sim broker-probe clean

setup: apt venv models lazyfs ## install system packages, the virtualenv, the pinned models and LazyFS

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

# The plate models are read out of one pinned wheel that pip fetches (never installs):
# deploy/plate-models.txt says why and pins it by SHA-256.
PLATE_WHEEL_DIR ?= var/wheels
PLATE_WHEEL := $(PLATE_WHEEL_DIR)/rapidocr_onnxruntime-1.4.4-py3-none-any.whl

$(PLATE_WHEEL): deploy/plate-models.txt | $(BIN)/python
	$(BIN)/pip download -q --no-deps --ignore-requires-python --require-hashes -d $(PLATE_WHEEL_DIR) -r deploy/plate-models.txt

models: venv $(PLATE_WHEEL)
	$(BIN)/lfr-agent models install --dir $(MODELS_DIR) --plate-wheel $(PLATE_WHEEL)
	$(BIN)/lfr-agent models verify --dir $(MODELS_DIR) --plates

# build.sh installs its apt packages (cmake, libfuse3-dev, …) and prints the binary.
lazyfs: apt $(LAZYFS_BIN) ## LazyFS, the FUSE filesystem the power-cut tests lose unsynced data on

$(LAZYFS_BIN):
	@if [ -f $(LAZYFS_SRC)/build.sh ]; then \
	  echo "building LazyFS from $(LAZYFS_SRC) into var/lazyfs"; \
	  $(SUDO) bash $(LAZYFS_SRC)/build.sh $(abspath var/lazyfs); \
	else \
	  echo "LazyFS source not found at $(LAZYFS_SRC): the power-cut tests will not run (set LAZYFS_SRC)"; \
	fi

# pytest exits 5 when it collected nothing: a run that tested nothing is a failure here.
PYTEST = rc=0; LFR_TEST_MODELS_DIR=$(abspath $(MODELS_DIR)) $(BIN)/python -m pytest -q $(1) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make $@: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The endurance tests (marked: a real deployment of minutes, mostly waiting on the clock)
# run in a second pytest beside the rest, so they cost wall-clock time once; their output
# follows the main run's, and either failing fails the target.
test: setup ## the full test suite (slow, system, fault and endurance tests included)
	@mkdir -p var; \
	( $(call PYTEST,-m endurance --basetemp=$(abspath var/pytest-endurance)) ) \
	  > var/test-endurance.log 2>&1 & endurance=$$!; \
	( $(call PYTEST,-m "not endurance") ); rc=$$?; \
	wait $$endurance; erc=$$?; \
	echo "--- endurance tests (run beside the others; exit $$erc):"; cat var/test-endurance.log; \
	[ $$rc -eq 0 ] && [ $$erc -eq 0 ]

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

bench-console: venv ## alert stored -> visible in an open console page (p95 over 50 alerts), in chromium
	$(BIN)/python -m hil.console_latency --alerts 50 --json var/bench-console.json

demo: setup ## the whole system end to end on this machine (at a terminal the hub stays up until Ctrl-C)
	$(BIN)/python -m hil.demo --models-dir $(MODELS_DIR)

hil: setup ## the virtual HIL rig: every scenario, report in var/hil
	$(BIN)/python -m hil.rig run --rig hil/rigs/virtual.toml --out var/hil --models-dir $(MODELS_DIR)

hil-short: setup ## the short HIL rig (CI form, a few minutes), report in var/hil-short
	$(BIN)/python -m hil.rig run --rig hil/rigs/virtual.toml --out var/hil-short --short --models-dir $(MODELS_DIR)

# N: the largest fleet; the ladder 10, 100, 1000 below it is run first (report in var/fleet-sim).
N ?= 50
fleet-sim: setup ## N simulated cameras, several hub workers, one PostgreSQL, faults; scaling table + PNG
	$(BIN)/python -m hil.fleet_sim --cameras $(N) --out var/fleet-sim

broker-probe: venv ## which Debian MQTT brokers meet the fleet's needs (report in var/broker-probe)
	@missing=""; for p in rabbitmq-server nats-server; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; fi
	$(BIN)/python -m hil.broker_probe --out var/broker-probe
power-cut: setup ## power cuts on LazyFS: N crash points (default 50), every promise checked; table in var/power-cut
	$(BIN)/python -m hil.power_cut --points $(N) --seed $(SEED) --max-minutes $(MAX_MINUTES) --out var/power-cut --models-dir $(MODELS_DIR)
# HOURS=… for the verdict run (an hour or more: full budgets), MINUTES=… for short forms
# (the CI form is MINUTES=10: the same slopes against wider bounds).
HOURS ?=
MINUTES ?=
SOAK_OUT ?= var/soak
soak: setup ## endurance soak: make soak HOURS=1 (or MINUTES=10), report in var/soak
	@if [ -n "$(MINUTES)" ]; then len="--minutes $(MINUTES)"; \
	elif [ -n "$(HOURS)" ]; then len="--hours $(HOURS)"; \
	else echo "make soak: give HOURS=… or MINUTES=…" >&2; exit 2; fi; \
	$(BIN)/python -m hil.soak $$len --out $(SOAK_OUT) --models-dir $(MODELS_DIR)

arm64-smoke: venv ## aarch64 proof under qemu: install in an arm64 Debian root, embed faces, compare with this host
	$(SUDO) hil/arm64-smoke.sh

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
