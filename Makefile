# notetune — two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench targets lint format chaos clean

$(STAMP): pyproject.toml
	@# fluidsynth renders audio with a piano soundfont (Debian's libfluidsynth3); without it audio is sine waves
	@ldconfig -p 2>/dev/null | grep -q libfluidsynth || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	  libfluidsynth3) >/dev/null 2>&1; } || echo "note: libfluidsynth is not installed (sudo apt-get install" \
	  "libfluidsynth3); audio falls back to sine waves"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: on these machines 2.13.0 is a local CPU wheel (an unpinned install pulls CUDA builds)
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python tools/demo.py

test: install
	$(BIN)/python -m pytest -q tests

bench: install
	mkdir -p bench-results
	$(BIN)/python tools/bench.py --out bench-results
	$(BIN)/python tools/bench_prior.py default lookback pretrained/lookback128 --lengths 32 128 256 --ppo-steps 65536 | tee bench-results/prior.jsonl

# The tuning targets: runs budgeted in steps (default, faithful, dqn, psi, g), 10,000-composition evaluations (~30 min).
targets: install
	mkdir -p bench-results
	$(BIN)/python tools/bench_targets.py --out bench-results/targets.json

# The slow reliability checks: bad MIDI folders, repeated SIGKILL + resume, byte-identical reruns (~3 min).
chaos: install
	$(BIN)/python tools/chaos.py --out out/chaos

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) out runs bench-results .pytest_cache
