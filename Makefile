# Two commands do all the set-up (README): `make run` and `make test`.
# Each creates/refreshes the virtual environment in .venv when pyproject.toml or
# constraints.txt changed, so a fresh machine needs nothing but Python 3.11+.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast bench migrate worker clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[test]"
	touch $(STAMP)

run: $(STAMP)          ## serve the demo on embedded defaults (SQLite, in-process Redis and WeChat)
	$(PY) -m server

test: $(STAMP)         ## the whole suite: embedded defaults, then PostgreSQL + Redis when installed
	./scripts/test

test-fast: $(STAMP)    ## the suite on embedded defaults only
	$(PY) -m pytest

migrate: $(STAMP)
	$(PY) -m server migrate

worker: $(STAMP)
	$(PY) -m server worker

bench: $(STAMP)        ## loopback benchmarks, results in bench/results/
	$(PY) -m bench

clean:
	rm -rf $(VENV) data .pytest_cache
