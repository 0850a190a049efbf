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

.PHONY: setup sim test inspect lint bench clean system-tools rtl

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
	@# Optional: nextpnr-ice40 adds place-and-route timing to `make rtl`; never fails the set-up.
	@if ! command -v nextpnr-ice40 >/dev/null && [ ! -e $(VENV)/.nextpnr-unavailable ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing nextpnr-ice40 with apt-get (optional: FPGA timing for make rtl)"; \
			{ apt-cache show nextpnr-ice40 >/dev/null 2>&1 || apt-get update -qq; } && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nextpnr-ice40 >/dev/null 2>&1 || \
			{ echo "nextpnr-ice40 not installed: make rtl reports resources without timing"; \
			  mkdir -p $(VENV) && touch $(VENV)/.nextpnr-unavailable; }; \
		else \
			echo "optional: sudo apt-get install nextpnr-ice40 adds place-and-route timing to make rtl"; \
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

DESIGN ?= core
FPGA ?= ice40

# FPGA trials: Verilog, yosys resources per block and nextpnr timing in build/rtl/DESIGN/
# (DESIGN from rtl/designs.py or all; FPGA=ice40|ecp5|xilinx|all).
rtl: setup
	$(BIN)/python -m rtl.synth $(DESIGN) --fpga $(FPGA)

# The RTL testbenches (pytest -m rtl tests/rtl), then simulator vs RTL cycles for every kernel
# and program: kernel | shape | simulator cycles | RTL cycles | error, and cycles simulated per second.
.PHONY: verify
verify: setup
	$(BIN)/python tools/verify_rtl.py $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check compiler simulator rtl testbenches models tests tools

clean:
	rm -rf $(VENV) build .pytest_cache

bench: setup
	$(BIN)/python tools/bench_frontend.py

# Side-by-side comparison: build/compare/report.{json,md,html}. Defaults overridable, e.g.
# make compare COMPARE_CONTEXTS=1024,131072 COMPARE_ARGS="--baseline b.json --tolerance 5%"
COMPARE_TARGETS ?= taalas-hc1,matx-one,h100-sxm
COMPARE_MODELS ?= llama3.1-8b,llama3.1-8b-hybrid,llama3.1-8b-engram
COMPARE_CONTEXTS ?= 1024,8192,32768
COMPARE_BATCHES ?= 1
COMPARE_OUT ?= build/compare
COMPARE_ARGS ?=

.PHONY: compare
compare: $(STAMP)
	$(BIN)/tessera compare --targets $(COMPARE_TARGETS) --models $(COMPARE_MODELS) --contexts $(COMPARE_CONTEXTS) \
		--batches $(COMPARE_BATCHES) --out $(COMPARE_OUT) $(COMPARE_ARGS)

# Design-space sweep on a local dask cluster: build/sweeps/NAME/{results.jsonl,pareto.json,pareto.png}.
# Re-running resumes. make sweep SWEEP=sweeps/taalas-8b-regions.toml SWEEP_ARGS="--workers 4"
SWEEP ?= sweeps/matx-8b-decode-8k.toml
SWEEP_ARGS ?=

.PHONY: sweep bench-sweep
sweep: $(STAMP)
	$(BIN)/tessera sweep $(SWEEP) $(SWEEP_ARGS)

# 1000-point sweep speed on 2 workers and agreement with `tessera sim` on sampled points.
bench-sweep: $(STAMP)
	$(BIN)/python tools/bench_sweep.py --sweep $(SWEEP)

# The project's regression gate (make test runs it too, in tests/compare): the comparison recorded in
# tests/baselines/ci-compare.json, 5% tolerance. `make compare-baseline` rewrites that file.
GATE_BASELINE ?= tests/baselines/ci-compare.json
GATE_MATRIX := --targets taalas-hc1,matx-one,h100-sxm --models llama3.1-8b --contexts 1024,4096

.PHONY: compare-gate compare-baseline
compare-gate: $(STAMP)
	$(BIN)/tessera compare $(GATE_MATRIX) --baseline $(GATE_BASELINE) --tolerance 5% --out build/compare-gate \
		$(COMPARE_ARGS)

compare-baseline: $(STAMP)
	$(BIN)/tessera compare $(GATE_MATRIX) --baseline $(GATE_BASELINE) --update-baseline --out build/compare-gate \
		$(COMPARE_ARGS)
