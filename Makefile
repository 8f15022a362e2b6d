# trigger-ml: every target runs the CLI inside .venv, which `make setup` creates.
# The first command on a fresh clone may be any target: each depends on the venv.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MODEL  ?= dips-small
CLI    := $(BIN)/trigger-ml

.PHONY: setup data data-plots train hls rtl cost compare firmware verify scan distill models schema test lint format bench bench-emulator test-fast clean-projects help

help:
	@echo "make hls MODEL=dips-small   data, training, hls4ml project, C simulation, fidelity, report"
	@echo "make test                   ruff + the test suite (real Pythia, QKeras, hls4ml on tiny inputs)"
	@echo "make test-fast              ruff + the tests not marked slow (the inner loop)"
	@echo "make models | data | train | cost  MODEL=...   single stages (each cached)"
	@echo "make compare [MODELS=...] [SEEDS=3] [REFERENCE=M]  table and Pareto plots across the zoo, N training seeds each"
	@echo "make scan SPEC=scans/example-bits-reuse.yaml   design-space scan on Dask (SCHEDULER=, WORKERS=, WITH=)"
	@echo "make firmware MODEL=...     hand-off bundle firmware/<model>-<id>/ + .tar.gz; make verify BUNDLE=..."

# HGQ 0.2 (quantization.kind: hgq) declares a dependency on the `tensorflow` distribution;
# this stack ships the same module as `tensorflow-cpu`, so HGQ is installed without its
# dependencies (it needs only TensorFlow, Keras 2 and numpy, all pinned in pyproject.toml).
HGQ_PIN := hgq==0.2.6

# The venv is (re)installed when pyproject.toml (or the HGQ pin above) changes.
$(STAMP): pyproject.toml Makefile
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found -> install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps "$(HGQ_PIN)"
	@touch $(STAMP)

setup: $(STAMP)

models: $(STAMP)
	$(CLI) models

data: $(STAMP)
	$(CLI) data $(MODEL)

data-plots: $(STAMP)
	$(CLI) data-plots $(MODEL)

# JETS=N: jets to generate (default 4000); prints jets per second with all cores.
bench: $(STAMP)
	$(BIN)/python -m trigger_ml.data.bench $(if $(JETS),--jets $(JETS))

# The fast emulator against hls4ml's C simulation on the evaluation sample (JETS=N: its first N jets).
bench-emulator: $(STAMP)
	$(BIN)/python -m trigger_ml.hls.bench_emulator $(MODEL) $(if $(JETS),--jets $(JETS))

train: $(STAMP)
	$(CLI) train $(MODEL)

hls: $(STAMP)
	$(CLI) hls $(MODEL)

# MODELS="a b c" restricts the comparison; the default is the whole zoo. SEEDS=N trainings
# per model (default 3, on Dask: WORKERS=, SCHEDULER=); SEEDS=1 for one training each.
SEEDS ?= 3
compare: $(STAMP)
	$(CLI) compare --seeds $(SEEDS) $(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(if $(WORKERS),--workers $(WORKERS)) $(if $(REFERENCE),--reference $(REFERENCE)) $(MODELS)

# A design-space scan on Dask: a LocalCluster here, or SCHEDULER=tcp://host:port.
SPEC ?= scans/example-bits-reuse.yaml
scan: $(STAMP)
	$(CLI) scan $(SPEC) $(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(if $(WORKERS),--workers $(WORKERS)) $(if $(WITH),--with $(WITH))

# SR="backend=operon,generations=30" passes symbolic settings (docs/symbolic.md).
distill: $(STAMP)
	$(CLI) distill $(MODEL) $(if $(SR),--sr '$(SR)')

firmware: $(STAMP)
	$(CLI) firmware $(MODEL)

verify: $(STAMP)
	@test -n "$(BUNDLE)" || { echo "error: BUNDLE not set -> make verify BUNDLE=firmware/<model>-<id>.tar.gz"; exit 2; }
	$(CLI) verify $(BUNDLE)

# RTL cost: its own cached stage (Yosys takes minutes to an hour on large networks).
rtl: $(STAMP)
	$(CLI) rtl $(MODEL)

cost: $(STAMP)
	$(CLI) cost hls_projects/$(MODEL)

# The JSON Schemas of report.json and of the comparison table, from trigger_ml/artefacts.py.
schema: $(STAMP)
	$(BIN)/python -m trigger_ml.artefacts docs/schema

lint: $(STAMP)
	$(BIN)/ruff check trigger_ml tests
	$(BIN)/ruff format --check trigger_ml tests

format: $(STAMP)
	$(BIN)/ruff format trigger_ml tests
	$(BIN)/ruff check --fix trigger_ml tests

# pytest exit code 5 means "no tests collected": that is a failure here, said plainly.
test: lint
	@$(BIN)/python -m pytest -q -ra --durations=30; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests -> the suite is missing"; exit 1; fi; \
	exit $$rc

# The inner loop: ruff and the tests not marked slow (no training, hls4ml or Pythia runs of size).
test-fast: lint
	$(BIN)/python -m pytest -q -ra -m "not slow"

clean-projects:
	rm -rf hls_projects/*/ runs/
