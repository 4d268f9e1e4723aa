# Two entry points: `make run` (main job on the default rig) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench wheel clean

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/bench run

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -n 4 --dist loadgroup --no-loadscope-reorder

lint: $(STAMP)
	$(BIN)/ruff check .

# each benchmark exits non-zero when its run failed or missed a bar: make stops at the first
bench: $(STAMP)
	$(BIN)/python scripts/perf/codec.py
	$(BIN)/python scripts/perf/transfer.py
	$(BIN)/python scripts/perf/shim.py
	$(BIN)/python scripts/perf/gateway.py
	$(BIN)/python scripts/perf/suite.py
	$(BIN)/python scripts/perf/fuzz.py
	$(BIN)/python scripts/perf/campaign.py

.PHONY: fuzz
fuzz: $(STAMP)  # robustness: 1,000,000 mutated inputs per meter-side decoder, a long campaign
	BENCH_FUZZ_CASES=1000000 BENCH_FUZZ_CAMPAIGN=5000 $(BIN)/pytest tests/fuzz -n 2 -o timeout=5400 -q

# mutation score of the modules that enforce the rules (scripts/mutation/modules.toml): one JSON
# object, exit 1 below the floors (0.9 per module and overall); not part of make test. Run by area:
# `make mutate GROUP=smets1` runs one group, `make mutate` every group one after another; each group
# must finish within 30 minutes on 2 cores (--group-budget: a group still running then is stopped
# and fails)
.PHONY: mutate
mutate: $(STAMP)
	$(BIN)/python scripts/mutate.py --group-budget 1800 $(if $(GROUP),--group $(GROUP))

# the installable bench (suite, rigs, fixtures and sample images inside): dist/*.whl
wheel: $(STAMP)
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir dist .

clean:
	rm -rf $(VENV) results dist build
