# Two commands do all the set-up (README): `make run` and `make test`.
# Each creates/refreshes the virtual environment in .venv when pyproject.toml or
# constraints.txt changed, so a fresh machine needs nothing but Python 3.11+.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast bench proof migrate worker clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[test,proof]"
	touch $(STAMP)

run: $(STAMP)          ## serve the demo on embedded defaults (SQLite, in-process Redis and WeChat)
	$(PY) -m server

test: $(STAMP)         ## the whole suite: embedded defaults, then PostgreSQL + Redis when installed
	./scripts/test

test-fast: $(STAMP)    ## the suite on embedded defaults only
	$(PY) -m pytest

# The long proofs (docs/reliability.md "Proof"), each bounded, ~45 min in all on 2 CPUs:
# the soak (10 min + set-up), a province's volume (~10 M rows seeded by COPY, the hot
# queries timed and EXPLAINed), the benchmarks against the committed ratios, and the
# tests marked `proof`. Every step runs; the target fails if any failed. The soak and the
# province write their figures into docs/; the benchmarks write bench/results/compare.*.
PROOF_MINUTES ?= 10
PROOF_SCALE ?= 1.0
proof: $(STAMP)        ## long proofs: soak, province volume, bench --compare, pytest -m proof
	@rc=0; \
	echo "== soak ($(PROOF_MINUTES) min)"; timeout 30m $(PY) -m bench.soak --minutes $(PROOF_MINUTES) || rc=1; \
	echo "== province volume (scale $(PROOF_SCALE))"; timeout 40m $(PY) -m bench.province --scale $(PROOF_SCALE) || rc=1; \
	echo "== bench --compare"; timeout 40m $(PY) -m bench --compare || rc=1; \
	echo "== pytest -m proof"; timeout 30m $(PY) -m pytest -m proof -q; t=$$?; [ $$t = 0 ] || [ $$t = 5 ] || rc=1; \
	exit $$rc

migrate: $(STAMP)
	$(PY) -m server migrate

worker: $(STAMP)
	$(PY) -m server worker

bench: $(STAMP)        ## loopback benchmarks, results in bench/results/
	$(PY) -m bench

clean:
	rm -rf $(VENV) data .pytest_cache
