# Tessera: `make sim` and `make test` bootstrap everything they need on a fresh clone.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

MODEL ?= llama3.1-8b
TARGET ?= matx-one
CONTEXT ?= 1024
BATCH ?= 1
PYTEST_ARGS ?=

.PHONY: setup sim test inspect lint bench clean system-tools

setup: $(STAMP) system-tools

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
		{ echo "Tessera needs Python >= 3.11; $(PYTHON) is $$($(PYTHON) --version)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# Icarus Verilog runs the cocotb testbenches; yosys gives FPGA resource figures.
system-tools:
	@missing=""; \
	command -v iverilog >/dev/null || missing="$$missing iverilog"; \
	command -v yosys >/dev/null || missing="$$missing yosys"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing$$missing with apt-get"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "missing system tools:$$missing -- install them with: sudo apt-get install$$missing"; exit 1; \
		fi; \
	fi

SIM_ARGS ?=

# Simulate MODEL on TARGET: tokens/s, TTFT/TPOT, bandwidth, energy, fit, per-layer time.
sim: setup
	$(BIN)/tessera sim --model $(MODEL) --target $(TARGET) --context $(CONTEXT) --batch $(BATCH) $(SIM_ARGS)

inspect: setup
	$(BIN)/tessera inspect $(MODEL)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check compiler simulator rtl models tests tools

clean:
	rm -rf $(VENV) build .pytest_cache

bench: setup
	$(BIN)/python tools/bench_frontend.py
