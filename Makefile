# The two commands a newcomer types: `make run` and `make test`.
# Each creates .venv itself; nothing else needs installing by hand.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: run test bench bench-ray golden clean

$(VENV)/.installed-run: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed-run

# Compile the seed's streaming example, run the generated module, time it against the Engine.
run: $(VENV)/.installed-run
	@mkdir -p out
	$(VENV)/bin/operonx compile examples/streaming.py -o out/streaming.py
	$(PY) out/streaming.py --inputs '{"numbers": [1, 2, 3]}'
	$(PY) examples/speedup.py out/streaming.py
	$(PY) examples/run_all.py

# The whole suite: pytest, mypy --strict (package and generated modules), ruff.
test: $(VENV)/.installed-dev
	$(PY) -m pytest -q
	$(PY) -m mypy --strict operonx compiler
	$(PY) -m ruff check operonx compiler tests examples bench

# Benchmarks against hand-written asyncio and operonx 1.35 from PyPI (see bench/README.md).
bench: $(VENV)/.installed-dev
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/run.py $(BENCH_ARGS)
	$(PY) bench/cpu_bench.py $(BENCH_ARGS)

# The Ray target: per-task cost and a CPU-bound fan-out on a private local cluster (bench/ray).
bench-ray: $(VENV)/.installed-dev
	$(PY) bench/ray/run.py $(BENCH_ARGS)

# Regenerate golden files after an intended change; review the diff.
golden: $(VENV)/.installed-dev
	$(PY) -m tests.golden.regenerate

clean:
	rm -rf $(VENV) out .mypy_cache .pytest_cache .ruff_cache
